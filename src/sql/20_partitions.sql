-- Month partitions, immutability and the maintenance path.

CREATE FUNCTION ves.in_maintenance() RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_in_maintenance' LANGUAGE C VOLATILE;

-- Opens the maintenance path for the rest of the current transaction: the
-- only way to UPDATE, DELETE or TRUNCATE events. Every use is logged.
CREATE FUNCTION ves.begin_maintenance(reason text) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF reason IS NULL OR length(btrim(reason)) = 0 THEN
    RAISE EXCEPTION 'a maintenance reason is required' USING ERRCODE = 'VE011',
      HINT = 'Say why events are being changed; the reason is kept in ves.maintenance_log.';
  END IF;
  INSERT INTO ves.maintenance_log (action, detail) VALUES ('begin_maintenance', reason);
  PERFORM ves._enable_maintenance();
END $$;

CREATE FUNCTION ves._enable_maintenance() RETURNS void
  AS 'MODULE_PATHNAME', 'ves_enable_maintenance' LANGUAGE C VOLATILE;

CREATE FUNCTION ves.refuse_mutation() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF ves.in_maintenance() THEN
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END IF;
  RAISE EXCEPTION 'events are immutable: % on % is refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'VE008',
          HINT = 'Append a compensating event instead. Repairs go through ves.begin_maintenance(reason).';
END $$;

CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON ves.events
  FOR EACH ROW EXECUTE FUNCTION ves.refuse_mutation();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON ves.events
  FOR EACH STATEMENT EXECUTE FUNCTION ves.refuse_mutation();

-- Runs partition DDL, waiting at most `lock_wait` for its locks (NULL: as
-- long as lock_timeout allows). Creating or dropping a partition locks the
-- parent table exclusively, and every statement that arrives on the table
-- while the DDL waits queues behind it; so routine maintenance gives up
-- quickly and the next round tries again. Returns whether the DDL ran (all
-- of it, or nothing); locks it took are kept to the end of the transaction.
CREATE FUNCTION ves._partition_ddl(statements text[], lock_wait interval) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  previous text := current_setting('lock_timeout');
  stmt text;
BEGIN
  IF lock_wait IS NOT NULL THEN
    PERFORM set_config('lock_timeout', (extract(epoch FROM lock_wait) * 1000)::bigint::text, true);
  END IF;
  FOREACH stmt IN ARRAY statements LOOP
    EXECUTE stmt;
  END LOOP;
  PERFORM set_config('lock_timeout', previous, true);
  RETURN true;
EXCEPTION WHEN lock_not_available THEN
  -- Without lock_wait the timeout was the caller's own: it is their error.
  IF lock_wait IS NULL THEN RAISE; END IF;
  RETURN false;  -- the subtransaction's rollback also restores lock_timeout
END $$;

-- Makes sure the month partitions for `at` and the configured months ahead
-- exist; returns the end of the range known to exist, which the append path
-- caches so it asks again only when time passes it.
--
-- Creating a partition takes an exclusive lock on ves.events, and every
-- append arriving while that waits queues behind it. With `lock_wait` (the
-- sync worker passes 100 ms) a month whose lock is not granted in time is
-- left for a later round, and the range returned ends before it; without it
-- (an append that finds its own month missing) the creation waits like any
-- other statement.
CREATE FUNCTION ves.ensure_partitions(at timestamptz DEFAULT now(), lock_wait interval DEFAULT NULL)
  RETURNS timestamptz
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cfg ves.partition_config;
  month_start timestamptz;
  month_name text;
  part text;
  ddl text[];
  i int;
  b int;
BEGIN
  SELECT * INTO cfg FROM ves.partition_config;
  FOR i IN 0 .. cfg.months_ahead LOOP
    -- Month arithmetic in UTC: on timestamptz it would follow the session's time zone.
    month_start := (date_trunc('month', at AT TIME ZONE 'UTC') + make_interval(months => i)) AT TIME ZONE 'UTC';
    month_name := 'events_' || to_char(month_start AT TIME ZONE 'UTC', '"y"YYYY"m"MM');
    CONTINUE WHEN to_regclass('ves.' || month_name) IS NOT NULL;
    -- Creation is rare; serialise it so concurrent callers do not race. A
    -- table lock (unlike an advisory lock) also refreshes the catalog view,
    -- so the re-check below sees a partition another session just created.
    IF NOT ves._partition_ddl(ARRAY['LOCK TABLE ves.partition_config IN SHARE ROW EXCLUSIVE MODE'], lock_wait) THEN
      RETURN month_start;
    END IF;
    CONTINUE WHEN to_regclass('ves.' || month_name) IS NOT NULL;
    ddl := ARRAY[format('CREATE TABLE ves.%I PARTITION OF ves.events FOR VALUES FROM (%L) TO (%L) PARTITION BY HASH (tenant_id)',
                        month_name, month_start,
                        (date_trunc('month', at AT TIME ZONE 'UTC') + make_interval(months => i + 1)) AT TIME ZONE 'UTC')];
    FOR b IN 0 .. cfg.tenant_buckets - 1 LOOP
      part := month_name || '_t' || b;
      ddl := ddl || ARRAY[
        format('CREATE TABLE ves.%I PARTITION OF ves.%I FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
               part, month_name, cfg.tenant_buckets, b),
        format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON ves.%I FOR EACH STATEMENT EXECUTE FUNCTION ves.refuse_mutation()', part),
        format('ALTER TABLE ves.%I ADD PRIMARY KEY (position, tenant_id)', part),
        format('CREATE INDEX ON ves.%I (tenant_id, entity_type, entity_id, entity_version)', part),
        format('CREATE INDEX ON ves.%I (event_id)', part)];
    END LOOP;
    ddl := ddl || ARRAY[
      format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON ves.%I FOR EACH STATEMENT EXECUTE FUNCTION ves.refuse_mutation()', month_name),
      format('GRANT SELECT ON ves.%I TO ves_reader', month_name)];
    IF NOT ves._partition_ddl(ddl, lock_wait) THEN
      RETURN month_start;
    END IF;
  END LOOP;
  RETURN (date_trunc('month', at AT TIME ZONE 'UTC') + make_interval(months => cfg.months_ahead + 1)) AT TIME ZONE 'UTC';
END $$;

-- The month partitions of ves.events with their bounds.
CREATE VIEW ves.event_partitions AS
SELECT c.oid::regclass AS partition,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz AS month_start,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS month_end
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'ves.events'::regclass;
