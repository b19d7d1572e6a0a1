-- Retention: whole month partitions are dropped once older than
-- ves.retention_months, never while they hold an event that some
-- subscription of its tenant has not acknowledged or that the outbox has not
-- delivered.

-- True when the partition still holds events someone has not consumed.
-- Open outbox rows (not yet delivered) pin their events too.
CREATE FUNCTION ves.partition_pinned(part regclass) RETURNS boolean
  LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE pinned boolean;
BEGIN
  EXECUTE format(
    'SELECT EXISTS (SELECT 1 FROM ves.subscription_members m
                     WHERE coalesce(m.replay_checkpoint, m.checkpoint) <
                           (SELECT max(e.position) FROM %1$s e WHERE e.tenant_id = m.tenant_id))
         OR EXISTS (SELECT 1 FROM ves.outbox o JOIN %1$s e ON e.position = o.event_position
                     WHERE o.status IN (''pending'', ''failed''))', part)
  INTO pinned;
  RETURN pinned;
END $$;

-- Drops the month partitions that ended before `older_than` (default: the
-- start of the month ves.retention_months ago; ves.retention_months = 0 keeps
-- every month unless older_than is given). With `lock_wait` (the sync worker
-- passes 100 ms, once a day) a partition whose lock is not granted in time is
-- left for a later round and reported as busy; without it the drop waits like
-- any other statement.
CREATE FUNCTION ves.drop_expired_partitions(older_than timestamptz DEFAULT NULL,
                                            lock_wait interval DEFAULT NULL)
  RETURNS TABLE (partition text, dropped boolean, reason text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  months int := current_setting('ves.retention_months')::int;
  cutoff timestamptz := coalesce(older_than,
    CASE WHEN months > 0 THEN
      (date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => months)) AT TIME ZONE 'UTC'
    END);
  p record;
BEGIN
  IF cutoff IS NULL THEN
    RETURN;
  END IF;
  FOR p IN SELECT * FROM ves.event_partitions WHERE month_end <= cutoff ORDER BY month_start LOOP
    partition := p.partition::text;
    IF ves.partition_pinned(p.partition) THEN
      dropped := false;
      reason := 'holds events not yet acknowledged';
      RETURN NEXT;
      CONTINUE;
    END IF;
    dropped := ves._partition_ddl(ARRAY[
      format('DELETE FROM ves.idempotency_keys k USING %s e WHERE k.tenant_id = e.tenant_id AND k.event_id = e.event_id', p.partition),
      format('DELETE FROM ves.event_ids i USING %s e WHERE i.tenant_id = e.tenant_id AND i.event_id = e.event_id', p.partition),
      format('DROP TABLE %s', p.partition)], lock_wait);
    IF dropped THEN
      INSERT INTO ves.maintenance_log (action, detail) VALUES ('drop_partition', partition);
      reason := 'older than retention';
    ELSE
      reason := 'busy: its lock was not granted within lock_wait; left for a later round';
    END IF;
    RETURN NEXT;
  END LOOP;
END $$;
