-- Version conflicts at a sequencer. A ves_sequencer destination with the
-- option base_version sends each event's base_version (the number of events
-- of its entity before it); a sequencer that has accepted another number of
-- events for the entity refuses it with version_conflict. The worker then
-- records the outbox row as 'conflict' (the entity's later rows at that
-- destination wait behind it) and opens a conflict here, for a person:
-- ves.resolve_conflict with accept_local sends the event again without the
-- check, accept_remote closes the row unsent.

-- Opens one conflict per given outbox row that is in status 'conflict' and
-- has none open yet. Called by the sync worker as it records the rows.
CREATE FUNCTION ves._outbox_conflicts(ids bigint[], tenants uuid[]) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  c ves.conflicts;
BEGIN
  FOR r IN
    SELECT o.id, o.tenant_id, o.entity_type, o.entity_id, o.event_id, o.last_error, d.name AS destination,
           e.store_id, e.entity_version, e.event_type, e.payload, e.source, e.recorded_at
    FROM unnest(ids, tenants) AS x(id, tenant_id)
    JOIN ves.outbox o ON o.tenant_id = x.tenant_id AND o.id = x.id AND o.status = 'conflict'
    JOIN ves.destinations d ON d.id = o.destination_id
    JOIN ves.events e ON e.position = o.event_position AND e.recorded_at = o.event_recorded_at
    WHERE NOT EXISTS (SELECT 1 FROM ves.conflicts k
                      WHERE k.tenant_id = o.tenant_id AND k.entity_type = o.entity_type
                        AND k.entity_id = o.entity_id AND k.status = 'open'
                        AND k.rule = 'sequencer_version_conflict'
                        AND k.detail ->> 'outbox_id' = o.id::text)
    ORDER BY o.event_position
  LOOP
    c := NULL;
    c.tenant_id := r.tenant_id; c.store_id := r.store_id;
    c.entity_type := r.entity_type; c.entity_id := r.entity_id;
    c.conflict_type := 'version_mismatch';
    c.rule := 'sequencer_version_conflict';
    c.fields := '{}';
    c.base_version := r.entity_version - 1;
    c.local_version := r.entity_version;
    c.local_state := r.payload;
    c.local_source := r.source;
    c.local_observed_at := r.recorded_at;
    c.remote_source := 'sequencer';
    c.remote_observed_at := now();
    c.detail := jsonb_build_object('destination', r.destination, 'outbox_id', r.id, 'event_id', r.event_id,
                                   'event_type', r.event_type, 'reason', r.last_error);
    c.detected_at := now();
    PERFORM ves._open_conflict(c);
  END LOOP;
END $$;

-- What resolving a sequencer version conflict does to its outbox row.
-- accept_local: the row, and the entity's later rows at that destination
-- (written on the same view), are sent again without the version check;
-- accept_remote: the row is closed ('acknowledged') and its event stays
-- unsequenced there. The entity's state is not touched.
CREATE FUNCTION ves._resolve_outbox_conflict(c ves.conflicts, strategy text, OUT version bigint,
                                             OUT event_id uuid, OUT resolved_state jsonb)
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  row_id   bigint := (c.detail ->> 'outbox_id')::bigint;
  o        ves.outbox;
BEGIN
  IF strategy NOT IN ('accept_local', 'accept_remote') THEN
    RAISE EXCEPTION 'a version conflict at a sequencer is resolved with accept_local or accept_remote, not %',
      strategy USING ERRCODE = 'VE055',
      HINT = 'accept_local sends the event again without the version check; accept_remote leaves it unsent.';
  END IF;
  SELECT * INTO o FROM ves.outbox x WHERE x.tenant_id = c.tenant_id AND x.id = row_id FOR UPDATE;
  IF FOUND AND o.status = 'conflict' THEN
    IF strategy = 'accept_local' THEN
      UPDATE ves.outbox x SET base_check = false, updated_at = now(),
        status = CASE WHEN x.id = o.id THEN 'pending' ELSE x.status END,
        attempts = CASE WHEN x.id = o.id THEN 0 ELSE x.attempts END,
        next_attempt_at = CASE WHEN x.id = o.id THEN now() ELSE x.next_attempt_at END
      WHERE x.destination_id = o.destination_id AND x.tenant_id = o.tenant_id
        AND x.entity_type = o.entity_type AND x.entity_id = o.entity_id
        AND x.event_position >= o.event_position AND x.status IN ('pending', 'failed', 'conflict');
    ELSE
      UPDATE ves.outbox x SET status = 'acknowledged', updated_at = now(), lease_until = NULL
      WHERE x.tenant_id = o.tenant_id AND x.id = o.id;
    END IF;
    PERFORM ves._wake_worker();
  END IF;
  version := c.local_version;
  event_id := (c.detail ->> 'event_id')::uuid;
  resolved_state := c.local_state;
END $$;

REVOKE ALL ON FUNCTION ves._outbox_conflicts(bigint[], uuid[]),
  ves._resolve_outbox_conflict(ves.conflicts, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves._outbox_conflicts(bigint[], uuid[]) TO ves_worker;
