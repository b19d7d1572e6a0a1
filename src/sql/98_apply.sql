-- Applying events from other nodes. ves.ingest_event stores a foreign event
-- exactly as signed on its entity's stream; ves._apply_ingested(event_id)
-- then makes its effect visible in entity state, inventory and orders through
-- the same rules as the local verbs (75_state.sql, 80_inventory.sql,
-- 85_orders.sql), so that two nodes that exchange every event converge.
-- README "Applying events from other nodes" has the table per event type.

-- Foreign events already applied (or looked at and left stored only): the
-- marker that makes applying idempotent.
CREATE TABLE ves.applied_events (
  tenant_id   uuid        NOT NULL,
  event_id    uuid        NOT NULL,
  outcome     text        NOT NULL,  -- applied, resolved, conflict, held, rejected, restated, stored
  conflict_id uuid,
  applied_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, event_id)
);
SELECT pg_catalog.pg_extension_config_dump('ves.applied_events', '');

-- The state event that asserted a field's current value, by its stamp: the
-- original change from `source` observed at `at` (restatements excluded).
CREATE FUNCTION ves._asserting_event(tenant_id uuid, entity_type text, entity_id text, source text, at timestamptz)
  RETURNS ves.events
  LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE e ves.events;
BEGIN
  SELECT * INTO e FROM ves.events x
  WHERE x.tenant_id = _asserting_event.tenant_id AND x.entity_type = _asserting_event.entity_type
    AND x.entity_id = _asserting_event.entity_id
    AND x.event_type IN (_asserting_event.entity_type || '.created', _asserting_event.entity_type || '.updated')
    AND x.payload ->> 'source' = _asserting_event.source AND NOT x.payload ? 'applied_from'
    AND (x.payload ->> 'observed_at')::timestamptz = _asserting_event.at
  ORDER BY x.entity_version LIMIT 1;
  RETURN e;
END $$;

-- Records a conflict that ves._decide (`d`) found and resolved while applying
-- `ev`, with the sides given (local: as the entity stands; remote: the side
-- that lost, or resurrected a deleted entity). Returns its id.
CREATE FUNCTION ves._record_resolved(ev ves.events, d jsonb, local_state jsonb, local_source text,
                                     local_observed_at timestamptz, local_version bigint, remote_state jsonb,
                                     remote_source text, remote_observed_at timestamptz, detail jsonb) RETURNS uuid
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE c ves.conflicts;
BEGIN
  c.conflict_id := gen_random_uuid(); c.status := 'resolved';
  c.tenant_id := ev.tenant_id; c.store_id := ev.store_id; c.entity_type := ev.entity_type; c.entity_id := ev.entity_id;
  c.conflict_type := d ->> 'type'; c.rule := d ->> 'rule'; c.strategy := d ->> 'rule';
  c.fields := ARRAY(SELECT jsonb_array_elements_text(d -> 'fields'));
  c.local_version := local_version; c.base_state := '{}';
  c.local_state := local_state; c.remote_state := remote_state;
  c.proposed_state := d -> 'state'; c.resolved_state := d -> 'state';
  c.local_source := local_source; c.remote_source := remote_source;
  c.local_observed_at := local_observed_at; c.remote_observed_at := remote_observed_at;
  c.detail := detail; c.detected_at := now(); c.resolved_at := now(); c.resolved_by := session_user;
  INSERT INTO ves.conflicts SELECT c.*;
  RETURN c.conflict_id;
END $$;

-- A foreign change that won fields over values another node's change had
-- set: that other change lost them here, as it will lose them on the node
-- where it arrives after this one, so the same conflict is recorded here,
-- decided by ves._decide as that node decides it (the loser as the remote
-- side, against the state now). One record per losing change: a later loss
-- of the same change updates its fields.
CREATE FUNCTION ves._record_losers(ev ves.events, before ves.entity_state) RETURNS void
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  now_row ves.entity_state;
  policy  jsonb;
  loser   record;
  le      ves.events;
  d       jsonb;
  old_id  uuid;
BEGIN
  IF before.state IS NULL THEN RETURN; END IF;
  policy := ves.get_conflict_policy(ev.tenant_id, ev.entity_type);
  -- Under the other strategies what a change loses depends on the base it
  -- names and on arrival order, so only the arriving loser records it.
  IF policy ->> 'strategy' <> 'last_write_wins' THEN RETURN; END IF;
  SELECT * INTO now_row FROM ves.entity_state s WHERE s.tenant_id = ev.tenant_id AND s.entity_type = ev.entity_type
    AND s.entity_id = ev.entity_id;
  -- Who asserted each field this change altered: its stamp, or for a field
  -- without one the floor (absent) or the entity's last change (present).
  FOR loser IN
    SELECT DISTINCT st.src, st.at FROM (
      SELECT coalesce(f.stamp ->> 'src', before.last_source) AS src,
             CASE WHEN f.stamp IS NULL THEN before.last_observed_at
                  ELSE 'epoch'::timestamptz + (f.stamp ->> 'at')::numeric::bigint * interval '1 microsecond' END AS at
      FROM (SELECT k.key, coalesce(before.field_stamps -> 'fields' -> k.key,
                                   CASE WHEN NOT before.state ? k.key THEN before.field_stamps -> 'floor' END) AS stamp
            FROM (SELECT jsonb_object_keys(before.state) AS key UNION SELECT jsonb_object_keys(now_row.state)) k
            WHERE (before.state -> k.key) IS DISTINCT FROM (now_row.state -> k.key)) f) st
    WHERE st.src IS NOT NULL AND st.at IS NOT NULL
  LOOP
    le := ves._asserting_event(ev.tenant_id, ev.entity_type, ev.entity_id, loser.src, loser.at);
    CONTINUE WHEN le.event_id IS NULL OR le.source_agent_id = ev.source_agent_id;
    d := ves._decide(policy, '{}', now_row.state, le.payload -> 'state', true, false, false, NULL, now_row.version, 0,
                     NULL, now_row.last_source, now_row.last_observed_at, loser.src, loser.at, now_row.field_stamps);
    CONTINUE WHEN d ->> 'type' IS NULL OR d ->> 'outcome' <> 'resolved';
    SELECT x.conflict_id INTO old_id FROM ves.conflicts x
    WHERE x.tenant_id = ev.tenant_id AND x.entity_type = ev.entity_type AND x.entity_id = ev.entity_id
      AND x.remote_source = loser.src AND x.remote_observed_at = loser.at AND x.remote_state = le.payload -> 'state'
      AND x.status = 'resolved'
    ORDER BY x.detected_at DESC LIMIT 1;
    IF old_id IS NOT NULL THEN
      UPDATE ves.conflicts x SET fields = ARRAY(SELECT DISTINCT f FROM unnest(x.fields || ARRAY(
               SELECT jsonb_array_elements_text(d -> 'fields'))) f ORDER BY f),
             local_state = now_row.state, resolved_state = d -> 'state'
      WHERE x.conflict_id = old_id;
      CONTINUE;
    END IF;
    PERFORM ves._record_resolved(ev, d, now_row.state, now_row.last_source, now_row.last_observed_at, now_row.version,
                                 le.payload -> 'state', loser.src, loser.at,
                                 jsonb_build_object('lost_to_event', ev.event_id));
  END LOOP;
END $$;

-- <type>.deleted from another node: the entity is deleted as
-- ves.delete_entity does, except under last_write_wins, where the delete
-- (its source and observed_at) must win over the entity's last change;
-- when it does not, the entity's state is restated. Under last_write_wins
-- a delete and a change the deleting node had not seen are the
-- deleted_reference conflict that node records when the change reaches it;
-- it is recorded here the same way (the change as the remote side).
CREATE FUNCTION ves._apply_ingested_delete(ev ves.events, OUT outcome text, OUT conflict_id uuid)
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cur    ves.entity_state;
  policy jsonb := ves.get_conflict_policy(ev.tenant_id, ev.entity_type);
  lww    boolean := policy ->> 'strategy' = 'last_write_wins';
  src    text := coalesce(ev.payload ->> 'source', ev.source);
  at     timestamptz := coalesce((ev.payload ->> 'observed_at')::timestamptz, ev.created_at::timestamptz);
  gone   jsonb := coalesce(ev.payload -> 'state', '{}');
  le     ves.events;
  d      jsonb;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(ev.tenant_id::text || '/' || ev.entity_type || '/' || ev.entity_id, 11));
  SELECT * INTO cur FROM ves.entity_state s WHERE s.tenant_id = ev.tenant_id AND s.entity_type = ev.entity_type
    AND s.entity_id = ev.entity_id FOR UPDATE;
  IF NOT FOUND THEN
    outcome := 'stored';
    RETURN;
  END IF;
  IF lww AND NOT cur.deleted THEN
    le := ves._asserting_event(ev.tenant_id, ev.entity_type, ev.entity_id, cur.last_source, cur.last_observed_at);
    IF le.event_id IS NOT NULL AND le.source_agent_id <> ev.source_agent_id THEN
      d := ves._decide(policy, '{}', gone, cur.state, true, true, false, NULL, cur.version, 0, NULL, src, at,
                       cur.last_source, cur.last_observed_at, NULL);
      conflict_id := ves._record_resolved(ev, d, gone, src, at, cur.version, cur.state, cur.last_source,
                                          cur.last_observed_at, '{"entity_deleted": true}');
    END IF;
  END IF;
  IF cur.deleted OR NOT lww
     OR ves._resolution_effect(NULL, 'last_write_wins', NULL, NULL, policy, cur.last_source, cur.last_observed_at,
                               cur.state, src, at, gone) = 'accept_remote' THEN
    UPDATE ves.entity_state s SET deleted = true, version = ves._stream_version(ev.tenant_id, ev.entity_type, ev.entity_id),
      last_source = CASE WHEN cur.deleted THEN s.last_source ELSE src END,
      last_observed_at = CASE WHEN cur.deleted THEN s.last_observed_at ELSE at END, updated_at = now()
    WHERE s.tenant_id = ev.tenant_id AND s.entity_type = ev.entity_type AND s.entity_id = ev.entity_id;
    outcome := CASE WHEN conflict_id IS NULL THEN 'applied' ELSE 'resolved' END;
    RETURN;
  END IF;
  -- The entity's last change wins: say so on the stream, as a restatement.
  IF NOT ev.payload ? 'applied_from' THEN
    PERFORM ves.append(ev.tenant_id, ev.store_id, ev.entity_type, ev.entity_id, ev.entity_type || '.created',
      jsonb_build_object('state', cur.state, 'source', cur.last_source, 'observed_at', cur.last_observed_at,
                         'base_version', NULL, 'applied_from', ev.event_id),
      source => cur.last_source);
  END IF;
  UPDATE ves.entity_state s SET version = ves._stream_version(ev.tenant_id, ev.entity_type, ev.entity_id)
  WHERE s.tenant_id = ev.tenant_id AND s.entity_type = ev.entity_type AND s.entity_id = ev.entity_id;
  outcome := 'restated';
END $$;

-- A stock event from another node (entity_type 'inventory', entity_id the
-- SKU). Reservations are held, released or committed by id; the on-hand
-- count is then worked out from the SKU's stream, which holds the same
-- events on every node once they have exchanged them: the latest absolute
-- count (set_stock, a resolved conflict; by created_at, then event id) plus
-- every delta (adjust_stock, a committed reservation) signed after it. So a
-- delta counts once wherever it arrives, and a count taken later overrides
-- what came before it on both nodes. Reservations still win: a count below
-- the units held stops there (or waits for a person), as in ves.adjust_stock.
CREATE FUNCTION ves._apply_ingested_stock(ev ves.events, OUT outcome text, OUT conflict_id uuid)
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  loc    text := coalesce(ev.payload ->> 'location', 'default');
  rid    text := ev.payload ->> 'reservation_id';
  qty    bigint := (ev.payload ->> 'quantity')::bigint;
  at     timestamptz := ev.created_at::timestamptz;
  inv    ves.inventory;
  r      ves.reservations;
  anchor record;
  wanted bigint;
  sd     record;
  c      ves.conflicts;
BEGIN
  outcome := 'applied';
  IF ev.payload ->> 'sku' IS DISTINCT FROM ev.entity_id
     OR ev.event_type NOT IN ('inventory.stock_updated', 'inventory.reserved', 'inventory.released') THEN
    outcome := 'stored';  -- low_stock_alert and anything else: each node raises its own
    RETURN;
  END IF;
  inv := ves._lock_stock(ev.tenant_id, ev.store_id, ev.entity_id, loc);

  IF rid IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtextextended(ev.tenant_id::text || '/reservation/' || rid, 13));
    SELECT * INTO r FROM ves.reservations x WHERE x.tenant_id = ev.tenant_id AND x.reservation_id = rid FOR UPDATE;
    IF ev.event_type = 'inventory.reserved' AND r.reservation_id IS NULL THEN
      IF inv.on_hand - inv.reserved >= qty THEN
        INSERT INTO ves.reservations (tenant_id, reservation_id, store_id, sku, location, quantity, order_id, status)
        VALUES (ev.tenant_id, rid, ev.store_id, ev.entity_id, loc, qty, ev.payload ->> 'order_id', 'held');
        UPDATE ves.inventory i SET reserved = i.reserved + qty, version = i.version + 1, updated_at = now()
        WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location)
        RETURNING * INTO inv;
      ELSE
        -- Both nodes sold the last units: a person decides which order keeps them.
        c.tenant_id := ev.tenant_id; c.store_id := ev.store_id; c.entity_type := 'inventory';
        c.entity_id := ev.entity_id; c.conflict_type := 'reservation_conflict'; c.rule := 'manual';
        c.fields := ARRAY['reserved'];
        c.local_state := jsonb_build_object('on_hand', inv.on_hand, 'reserved', inv.reserved);
        c.remote_state := jsonb_build_object('reservation_id', rid, 'quantity', qty, 'order_id', ev.payload ->> 'order_id');
        c.proposed_state := c.local_state; c.local_version := inv.version;
        c.local_source := inv.last_source; c.remote_source := 'ves';
        c.local_observed_at := inv.last_observed_at; c.remote_observed_at := at;
        c.detail := jsonb_build_object('sku', inv.sku, 'location', loc, 'reason', 'reserved_on_another_node',
                                       'event_id', ev.event_id);
        c.detected_at := now();
        conflict_id := ves._open_conflict(c);
        outcome := 'conflict';
        RETURN;
      END IF;
    ELSIF ev.event_type IN ('inventory.released', 'inventory.stock_updated') AND r.status = 'held' THEN
      UPDATE ves.reservations x SET status = CASE WHEN ev.event_type = 'inventory.released' THEN 'released'
                                                  ELSE 'committed' END, closed_at = now()
      WHERE x.tenant_id = r.tenant_id AND x.reservation_id = r.reservation_id;
      UPDATE ves.inventory i SET reserved = i.reserved - r.quantity, version = i.version + 1, updated_at = now()
      WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location)
      RETURNING * INTO inv;
    END IF;
  END IF;

  IF ev.event_type = 'inventory.stock_updated' THEN
    SELECT (x.payload ->> 'on_hand')::bigint AS on_hand, x.created_at::timestamptz AS at, x.event_id INTO anchor
    FROM ves.events x
    WHERE x.tenant_id = ev.tenant_id AND x.entity_type = 'inventory' AND x.entity_id = ev.entity_id
      AND x.event_type = 'inventory.stock_updated' AND x.payload ->> 'location' = loc AND NOT x.payload ? 'delta'
    ORDER BY x.created_at::timestamptz DESC, x.event_id DESC LIMIT 1;
    SELECT coalesce(anchor.on_hand, 0) + coalesce(sum((x.payload ->> 'delta')::bigint), 0) INTO wanted
    FROM ves.events x
    WHERE x.tenant_id = ev.tenant_id AND x.entity_type = 'inventory' AND x.entity_id = ev.entity_id
      AND x.event_type = 'inventory.stock_updated' AND x.payload ->> 'location' = loc AND x.payload ? 'delta'
      AND (anchor.event_id IS NULL OR (x.created_at::timestamptz, x.event_id) > (anchor.at, anchor.event_id));
    wanted := greatest(wanted, 0);
    sd := ves._decide_stock(ves.get_conflict_policy(ev.tenant_id, 'inventory'), inv.on_hand, inv.reserved, wanted);
    IF sd.conflict_type IS NOT NULL THEN
      conflict_id := ves._reservation_conflict(inv, wanted, sd.conflict_type, sd.outcome, sd.rule, sd.on_hand, 'ves',
                                               at, 'stock_from_another_node');
      outcome := sd.outcome;
    END IF;
    IF sd.on_hand <> inv.on_hand THEN
      inv := ves._store_on_hand(inv, sd.on_hand, 'ves', at, NULL);
    END IF;
  END IF;
  PERFORM ves._low_stock_check(inv, 'ves');
END $$;

-- Applies the effect of an event ingested from another node (stored by
-- ves.ingest_event in this transaction or before). Idempotent: a second call
-- changes nothing. Events signed by this database's own agents are never
-- applied (they already are). What it did is kept in ves.applied_events:
-- applied, resolved, conflict, held, rejected, restated (the rules decided
-- another state, appended as a local event) or stored (no derived state).
CREATE FUNCTION ves._apply_ingested(event_id uuid) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  ev      ves.events;
  before  ves.entity_state;
  kind    text;
  outcome text;
  cid     uuid;
  sr      ves.upsert_result;
  orr     ves.order_result;
  src     text;
  at      timestamptz;
BEGIN
  IF event_id IS NULL THEN
    RAISE EXCEPTION 'event_id must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Pass the event_id that ves.ingest_event returned.';
  END IF;
  SELECT * INTO ev FROM ves.events e WHERE e.event_id = _apply_ingested.event_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'event % is not stored', event_id USING ERRCODE = 'VE070',
      HINT = 'Store the event with ves.ingest_event first, in the same transaction.';
  END IF;
  PERFORM ves.check_tenant(ev.tenant_id);
  -- This database's own events (signed by a local agent, or by a key it
  -- holds as local) already are applied.
  IF EXISTS (SELECT 1 FROM ves.local_agents a WHERE a.tenant_id = ev.tenant_id AND a.agent_id = ev.source_agent_id)
     OR EXISTS (SELECT 1 FROM ves.agent_key_store k WHERE k.tenant_id = ev.tenant_id
                AND k.agent_id = ev.source_agent_id AND k.key_id = ev.agent_key_id AND k.local) THEN
    RETURN;
  END IF;
  -- One applier per event at a time; the marker makes the second a no-op.
  PERFORM pg_advisory_xact_lock(hashtextextended(ev.tenant_id::text || '/applied/' || ev.event_id::text, 19));
  IF EXISTS (SELECT 1 FROM ves.applied_events a WHERE a.tenant_id = ev.tenant_id AND a.event_id = ev.event_id) THEN
    RETURN;
  END IF;

  kind := CASE
    WHEN ev.entity_type = 'inventory' THEN 'stock'
    WHEN ev.entity_type = 'order' THEN 'order'
    WHEN ev.entity_type LIKE 'sync.%' THEN 'other'
    WHEN ev.event_type IN (ev.entity_type || '.created', ev.entity_type || '.updated')
         AND jsonb_typeof(ev.payload -> 'state') = 'object' AND ev.payload ? 'source' THEN 'state'
    WHEN ev.event_type = ev.entity_type || '.deleted' AND ev.payload ? 'source' THEN 'delete'
    ELSE 'other' END;

  IF kind = 'state' THEN
    -- The entity's lock (ves._state_change takes it too) before reading what
    -- the change will replace.
    PERFORM pg_advisory_xact_lock(hashtextextended(ev.tenant_id::text || '/' || ev.entity_type || '/' || ev.entity_id, 11));
    SELECT * INTO before FROM ves.entity_state s WHERE s.tenant_id = ev.tenant_id AND s.entity_type = ev.entity_type
      AND s.entity_id = ev.entity_id;
    BEGIN
      src := ev.payload ->> 'source';
      at := (ev.payload ->> 'observed_at')::timestamptz;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
      RAISE EXCEPTION 'event % has an unreadable observed_at', event_id USING ERRCODE = 'VE072',
        DETAIL = format('observed_at=%s', ev.payload ->> 'observed_at'),
        HINT = 'State events carry observed_at as an RFC 3339 time; this one cannot be applied, so skip it.';
    END;
    sr := ves._state_change(ev.tenant_id, ev.store_id, ev.entity_type, ev.entity_id, ev.payload -> 'state', NULL,
                            src, at, ev);
    outcome := CASE WHEN sr.event_id IS DISTINCT FROM ev.event_id AND sr.outcome <> 'conflict' THEN 'restated'
                    ELSE sr.outcome END;
    cid := sr.conflict_id;
    IF NOT ev.payload ? 'applied_from' THEN
      PERFORM ves._record_losers(ev, before);
    END IF;
  ELSIF kind = 'delete' THEN
    SELECT * INTO outcome, cid FROM ves._apply_ingested_delete(ev);
  ELSIF kind = 'stock' THEN
    SELECT * INTO outcome, cid FROM ves._apply_ingested_stock(ev);
  ELSIF kind = 'order' THEN
    orr := ves._order_change(ev.tenant_id, ev.store_id, ev.entity_id, ev.event_type, ev.payload, 'ves',
                             ev.created_at::timestamptz, ev);
    outcome := orr.outcome;
  ELSE
    outcome := 'stored';
  END IF;

  INSERT INTO ves.applied_events (tenant_id, event_id, outcome, conflict_id)
  VALUES (ev.tenant_id, ev.event_id, outcome, cid);
END $$;

REVOKE ALL ON ves.applied_events FROM PUBLIC;
REVOKE ALL ON FUNCTION ves._asserting_event(uuid, text, text, text, timestamptz),
  ves._record_resolved(ves.events, jsonb, jsonb, text, timestamptz, bigint, jsonb, text, timestamptz, jsonb), ves._record_losers(ves.events, ves.entity_state),
  ves._apply_ingested_delete(ves.events), ves._apply_ingested_stock(ves.events), ves._apply_ingested(uuid),
  ves._stream_version(uuid, text, text), ves._state_change(uuid, uuid, text, text, jsonb, bigint, text, timestamptz, ves.events),
  ves._set_order_state(uuid, uuid, text, text, jsonb, bigint, record),
  ves._order_change(uuid, uuid, text, text, jsonb, text, timestamptz, ves.events)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves._apply_ingested(uuid) TO ves_admin, ves_worker;
ALTER TABLE ves.applied_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ves.applied_events FOR SELECT USING (ves.tenant_visible(tenant_id));
GRANT SELECT ON ves.applied_events TO ves_admin;
