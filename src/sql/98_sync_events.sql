-- The seeds' sync.* events and recovery tracking (README "Sync events" and
-- "Metrics"). Kept in one file that the upgrade script includes as well.
--
-- sync.failed, sync.started and sync.completed are appended, signed like
-- every event, on a `sync` stream per destination: entity_type 'sync',
-- entity_id the destination's name — never on the stream of the entity they
-- are about. The append's own fan-out skips entity_type 'sync'
-- (src/pg/store/append.cpp); ves._sync_event queues them itself, only to
-- destinations that list 'sync' in their entity_types (NULL, "everything",
-- does not include it), never to the destination the event is about, and
-- never to a commerce platform. A row carrying a sync.* or alert event that
-- goes dead appends nothing, so no chain of sync.failed can start.

CREATE FUNCTION ves._sync_event(event_type text, detail jsonb, tenant_id uuid, store_id uuid)
  RETURNS ves.append_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  dest text := detail ->> 'destination';
  tenant uuid := coalesce(tenant_id, '00000000-0000-0000-0000-000000000000');
  r ves.append_result;
BEGIN
  IF event_type IS NULL OR event_type NOT LIKE 'sync.%' OR detail IS NULL OR jsonb_typeof(detail) <> 'object'
     OR dest IS NULL OR dest = '' THEN
    RAISE EXCEPTION 'a sync event needs an event type sync.* and a detail object naming its destination'
      USING ERRCODE = 'VE010',
      HINT = 'ves._sync_event(''sync.started'', ''{"destination": "shop"}'', tenant_id, store_id)';
  END IF;
  -- Sync events report on work; failing to append one never stops it.
  BEGIN
    r := ves.append(tenant, coalesce(store_id, '00000000-0000-0000-0000-000000000000'), 'sync', dest,
                    event_type, detail, source => 'pg_ves');
    INSERT INTO ves.outbox (tenant_id, destination_id, event_position, event_id, entity_type, entity_id)
    SELECT tenant, d.id, r.position, r.event_id, 'sync', dest
    FROM ves.destinations d
    WHERE d.entity_types IS NOT NULL AND 'sync' = ANY (d.entity_types)
      AND (d.event_types IS NULL OR _sync_event.event_type = ANY (d.event_types))
      AND (d.tenant_id IS NULL OR d.tenant_id = tenant)
      AND d.name <> dest AND NOT ves._destination_kind_platform(d.kind)
    ORDER BY d.id;
    IF FOUND THEN
      PERFORM ves._wake_worker();
    END IF;
  EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'pg_ves: % about destination "%" was not appended: %', event_type, dest, SQLERRM;
    RETURN NULL;
  END;
  RETURN r;
END $$;

-- An outbox row went dead: sync.failed on its destination's sync stream,
-- with what the operator needs to find it (no response body: it may echo
-- anything the platform holds).
CREATE FUNCTION ves._outbox_went_dead() RETURNS trigger
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  dest text;
  store uuid;
BEGIN
  SELECT d.name INTO dest FROM ves.destinations d WHERE d.id = NEW.destination_id;
  SELECT s.store_id INTO store FROM ves.streams s
  WHERE s.tenant_id = NEW.tenant_id AND s.entity_type = NEW.entity_type AND s.entity_id = NEW.entity_id;
  PERFORM ves._sync_event('sync.failed', jsonb_strip_nulls(jsonb_build_object(
    'destination', dest, 'outbox_id', NEW.id, 'event_id', NEW.event_id, 'entity_type', NEW.entity_type,
    'entity_id', NEW.entity_id, 'attempts', NEW.attempts, 'last_status', NEW.last_status,
    'last_error', left(NEW.last_error, 500))), NEW.tenant_id, store);
  RETURN NULL;
END $$;

CREATE TRIGGER outbox_went_dead AFTER UPDATE OF status ON ves.outbox
  FOR EACH ROW WHEN (NEW.status = 'dead' AND OLD.status IS DISTINCT FROM 'dead'
                     AND NEW.entity_type NOT IN ('sync', 'sync.alert'))
  EXECUTE FUNCTION ves._outbox_went_dead();

-- Recoveries: from a circuit breaker opening, or a sync worker starting with
-- rows waiting, until the rows that were waiting then are delivered.
-- Observed by ves.evaluate_alerts (the worker runs it about every 30 s):
-- the start is when the breaker opened (the destination's last error) or
-- the worker started; backlog_until is when the breaker was seen closed
-- (or the worker start); drained_at the last delivery of a row created
-- before it, so the figure does not depend on how often it is looked at.
CREATE TABLE ves.recoveries (
  id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  destination_id int         NOT NULL REFERENCES ves.destinations ON DELETE CASCADE,
  cause          text        NOT NULL CHECK (cause IN ('breaker_open', 'worker_start')),
  started_at     timestamptz NOT NULL,
  backlog_until  timestamptz,
  drained_at     timestamptz
);
CREATE UNIQUE INDEX recoveries_open_idx ON ves.recoveries (destination_id) WHERE drained_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('ves.recoveries', '');

CREATE FUNCTION ves._track_recoveries() RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  worker_start timestamptz := (SELECT max(a.backend_start) FROM pg_catalog.pg_stat_activity a
                               WHERE a.backend_type = 'pg_ves worker' AND a.datname = pg_catalog.current_database());
BEGIN
  -- A breaker that is open starts a recovery (unless one is under way).
  INSERT INTO ves.recoveries (destination_id, cause, started_at)
  SELECT d.id, 'breaker_open', least(coalesce(d.last_error_at, now()), now())
  FROM ves.destinations d
  WHERE d.breaker_state = 'open'
    AND NOT EXISTS (SELECT FROM ves.recoveries r WHERE r.destination_id = d.id AND r.drained_at IS NULL)
  ON CONFLICT DO NOTHING;
  -- A worker that started with rows waiting (rows created before it that
  -- were still open when it started) starts one per destination. Looked
  -- for once per worker start and session: rows created before the start
  -- can only leave that set (purged), so a later look finds nothing new.
  -- Open rows come from outbox_open_idx, rows closed since the start from
  -- outbox_closed_idx (updated_at >= synced_at); the session's memo goes
  -- with its transaction if this one fails.
  IF worker_start IS NOT NULL
     AND pg_catalog.current_setting('pg_ves.recoveries_checked_for', true) IS DISTINCT FROM worker_start::text THEN
    INSERT INTO ves.recoveries (destination_id, cause, started_at, backlog_until)
    SELECT d.id, 'worker_start', worker_start, worker_start
    FROM ves.destinations d
    WHERE NOT EXISTS (SELECT FROM ves.recoveries r WHERE r.destination_id = d.id
                        AND (r.drained_at IS NULL OR r.started_at >= worker_start))
      AND (EXISTS (SELECT FROM ves.outbox o WHERE o.destination_id = d.id AND o.created_at < worker_start
                     AND o.status IN ('pending', 'failed') AND o.next_attempt_at IS NOT NULL)
           OR EXISTS (SELECT FROM ves.outbox o WHERE o.destination_id = d.id AND o.created_at < worker_start
                        AND o.status IN ('synced', 'acknowledged') AND o.updated_at >= worker_start
                        AND o.synced_at >= worker_start))
    ON CONFLICT DO NOTHING;
    PERFORM pg_catalog.set_config('pg_ves.recoveries_checked_for', worker_start::text, false);
  END IF;
  -- The breaker closed: what waited until now is the backlog.
  UPDATE ves.recoveries r SET backlog_until = now()
  FROM ves.destinations d
  WHERE d.id = r.destination_id AND r.drained_at IS NULL AND r.backlog_until IS NULL
    AND d.breaker_state <> 'open';
  -- Drained: no row of the backlog is open any more.
  UPDATE ves.recoveries r
  SET drained_at = greatest(r.started_at, coalesce(
        (SELECT max(o.synced_at) FROM ves.outbox o
         WHERE o.destination_id = r.destination_id AND o.created_at < r.backlog_until
           AND o.synced_at >= r.started_at), r.backlog_until))
  WHERE r.drained_at IS NULL AND r.backlog_until IS NOT NULL
    AND NOT EXISTS (SELECT FROM ves.outbox o WHERE o.destination_id = r.destination_id
                      AND o.created_at < r.backlog_until AND o.status IN ('pending', 'failed'));
  DELETE FROM ves.recoveries r WHERE r.drained_at < now() - interval '30 days';
END $$;

-- The figure ves.sync_metrics shows: the last recovery that ended in the
-- window, or the one under way (how long so far); NULL when none.
CREATE FUNCTION ves._recovery_time(destination_id int, "window" interval) RETURNS interval
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(r.drained_at, now()) - r.started_at
  FROM ves.recoveries r
  WHERE ($1 IS NULL OR r.destination_id = $1) AND (r.drained_at IS NULL OR r.drained_at >= now() - $2)
  ORDER BY (r.drained_at IS NULL) DESC, coalesce(r.drained_at, now()) - r.started_at DESC
  LIMIT 1
$$;

REVOKE ALL ON FUNCTION ves._sync_event(text, jsonb, uuid, uuid), ves._outbox_went_dead(),
  ves._track_recoveries(), ves._recovery_time(int, interval) FROM PUBLIC;
REVOKE ALL ON ves.recoveries FROM PUBLIC;
GRANT SELECT ON ves.recoveries TO ves_admin, pg_monitor;
