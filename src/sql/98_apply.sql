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

-- A conflict another node recorded (its sync.conflict_detected event carries
-- the whole record, ves._record_conflict) is held here as the same record,
-- and its sync.conflict_resolved closes it the same way; the entity's change
-- travels as an event of its own. A node records only the conflicts it
-- detects (a change that arrives and loses, or that it made and lost), so
-- every conflict is recorded once, by one node, and every node that has its
-- events holds the same records. A payload this version cannot read (an
-- older node's, a malformed one) is stored only.
CREATE FUNCTION ves._apply_ingested_conflict(ev ves.events, OUT outcome text, OUT conflict_id uuid)
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p jsonb := ev.payload;
  n bigint;
BEGIN
  outcome := 'stored';
  IF p ->> 'conflict_id' IS DISTINCT FROM ev.entity_id THEN RETURN; END IF;
  BEGIN
    conflict_id := ev.entity_id::uuid;
    IF ev.event_type = 'sync.conflict_detected' THEN
      INSERT INTO ves.conflicts (conflict_id, tenant_id, store_id, entity_type, entity_id, conflict_type, status, rule,
                                 strategy, fields, base_version, local_version, base_state, local_state, remote_state,
                                 proposed_state, resolved_state, local_source, remote_source, local_observed_at,
                                 remote_observed_at, detail, detected_at, resolved_at, resolved_by, event_id)
      VALUES (conflict_id, ev.tenant_id, ev.store_id, p ->> 'entity_type', p ->> 'entity_id', p ->> 'conflict_type',
              p ->> 'status', p ->> 'rule', p ->> 'strategy',
              ARRAY(SELECT jsonb_array_elements_text(p -> 'fields')),
              (p ->> 'base_version')::bigint, (p ->> 'local_version')::bigint,
              nullif(p -> 'base', 'null'), nullif(p -> 'local', 'null'), nullif(p -> 'remote', 'null'),
              nullif(p -> 'proposed', 'null'), nullif(p -> 'resolved', 'null'),
              p ->> 'local_source', p ->> 'remote_source', (p ->> 'local_observed_at')::timestamptz,
              (p ->> 'remote_observed_at')::timestamptz, coalesce(p -> 'detail', '{}'),
              (p ->> 'detected_at')::timestamptz, (p ->> 'resolved_at')::timestamptz, p ->> 'resolved_by', ev.event_id)
      ON CONFLICT ON CONSTRAINT conflicts_pkey DO NOTHING;
      GET DIAGNOSTICS n = ROW_COUNT;
      IF n > 0 THEN
        outcome := 'applied';
        IF p ->> 'status' = 'open' THEN PERFORM pg_notify('ves_conflicts', conflict_id::text); END IF;
      END IF;
    ELSIF ev.event_type = 'sync.conflict_resolved' THEN
      UPDATE ves.conflicts x SET status = 'resolved', strategy = p ->> 'strategy',
        resolved_state = nullif(p -> 'resolved', 'null'),
        resolved_at = coalesce((p ->> 'resolved_at')::timestamptz, ev.created_at::timestamptz),
        resolved_by = p ->> 'resolved_by', resolution_event_id = ev.event_id
      WHERE x.conflict_id = _apply_ingested_conflict.conflict_id AND x.tenant_id = ev.tenant_id AND x.status = 'open';
      GET DIAGNOSTICS n = ROW_COUNT;
      IF n > 0 THEN outcome := 'applied'; END IF;
    END IF;
  EXCEPTION WHEN invalid_text_representation OR invalid_datetime_format OR datetime_field_overflow
                 OR not_null_violation OR check_violation OR numeric_value_out_of_range THEN
    outcome := 'stored';
  END;
  IF outcome = 'stored' THEN conflict_id := NULL; END IF;
END $$;

-- <type>.deleted from another node: the entity is deleted as
-- ves.delete_entity does, except under last_write_wins, where the delete
-- (its source and observed_at) must win over the entity's last change;
-- when it does not, the entity's state is restated. A delete and a change
-- the deleting node had not seen are the deleted_reference conflict that
-- node records when the change reaches it (ves._state_change); its record
-- comes here as an event (ves._apply_ingested_conflict).
CREATE FUNCTION ves._apply_ingested_delete(ev ves.events, OUT outcome text, OUT conflict_id uuid)
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cur    ves.entity_state;
  policy jsonb := ves.get_conflict_policy(ev.tenant_id, ev.entity_type);
  lww    boolean := policy ->> 'strategy' = 'last_write_wins';
  src    text := coalesce(ev.payload ->> 'source', ev.source);
  at     timestamptz := coalesce((ev.payload ->> 'observed_at')::timestamptz, ev.created_at::timestamptz);
  gone   jsonb := coalesce(ev.payload -> 'state', '{}');
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(ev.tenant_id::text || '/' || ev.entity_type || '/' || ev.entity_id, 11));
  SELECT * INTO cur FROM ves.entity_state s WHERE s.tenant_id = ev.tenant_id AND s.entity_type = ev.entity_type
    AND s.entity_id = ev.entity_id FOR UPDATE;
  IF NOT FOUND THEN
    outcome := 'stored';
    RETURN;
  END IF;
  IF cur.deleted OR NOT lww
     OR ves._resolution_effect(NULL, 'last_write_wins', NULL, NULL, policy, cur.last_source, cur.last_observed_at,
                               cur.state, src, at, gone) = 'accept_remote' THEN
    UPDATE ves.entity_state s SET deleted = true, version = ves._stream_version(ev.tenant_id, ev.entity_type, ev.entity_id),
      last_source = CASE WHEN cur.deleted THEN s.last_source ELSE src END,
      last_observed_at = CASE WHEN cur.deleted THEN s.last_observed_at ELSE at END, updated_at = now()
    WHERE s.tenant_id = ev.tenant_id AND s.entity_type = ev.entity_type AND s.entity_id = ev.entity_id;
    outcome := 'applied';
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
    WHEN ev.entity_type = 'sync.conflict' THEN 'conflict'
    WHEN ev.entity_type LIKE 'sync.%' THEN 'other'
    WHEN ev.event_type IN (ev.entity_type || '.created', ev.entity_type || '.updated')
         AND jsonb_typeof(ev.payload -> 'state') = 'object' AND ev.payload ? 'source' THEN 'state'
    WHEN ev.event_type = ev.entity_type || '.deleted' AND ev.payload ? 'source' THEN 'delete'
    ELSE 'other' END;

  IF kind = 'state' THEN
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
  ELSIF kind = 'delete' THEN
    SELECT * INTO outcome, cid FROM ves._apply_ingested_delete(ev);
  ELSIF kind = 'conflict' THEN
    SELECT * INTO outcome, cid FROM ves._apply_ingested_conflict(ev);
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
REVOKE ALL ON FUNCTION ves._apply_ingested_conflict(ves.events),
  ves._apply_ingested_delete(ves.events), ves._apply_ingested_stock(ves.events), ves._apply_ingested(uuid),
  ves._stream_version(uuid, text, text), ves._state_change(uuid, uuid, text, text, jsonb, bigint, text, timestamptz, ves.events),
  ves._set_order_state(uuid, uuid, text, text, jsonb, bigint, record),
  ves._order_change(uuid, uuid, text, text, jsonb, text, timestamptz, ves.events)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves._apply_ingested(uuid) TO ves_admin, ves_worker;
ALTER TABLE ves.applied_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ves.applied_events FOR SELECT USING (ves.tenant_visible(tenant_id));
GRANT SELECT ON ves.applied_events TO ves_admin;
