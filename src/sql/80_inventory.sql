-- Inventory: on hand, reserved and available per (tenant, store, sku,
-- location). Available never goes below zero: reservations are taken by one
-- conditional UPDATE, so two sessions racing for the last unit cannot both
-- win, and a CHECK constraint backs that up. Every change is a signed event
-- on the SKU's stream (entity_type 'inventory', entity_id = sku):
-- inventory.stock_updated, inventory.reserved, inventory.released and, once
-- per crossing of the SKU's threshold, inventory.low_stock_alert.

CREATE TABLE ves.inventory (
  tenant_id           uuid        NOT NULL,
  store_id            uuid        NOT NULL,
  sku                 text        NOT NULL CHECK (octet_length(sku) BETWEEN 1 AND 256),
  location            text        NOT NULL DEFAULT 'default' CHECK (octet_length(location) BETWEEN 1 AND 128),
  on_hand             bigint      NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
  reserved            bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  available           bigint      GENERATED ALWAYS AS (on_hand - reserved) STORED,
  low_stock_threshold bigint      CHECK (low_stock_threshold >= 0),
  low_stock_alerted   boolean     NOT NULL DEFAULT false,
  version             bigint      NOT NULL DEFAULT 0,   -- changes to this row
  last_source         text,
  last_observed_at    timestamptz,
  -- Per platform source: the count it last reported (the base of the next
  -- three-way decision), the row version at which we agreed, its latest observed_at.
  source_seen         jsonb       NOT NULL DEFAULT '{}',
  updated_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, store_id, sku, location),
  CONSTRAINT inventory_never_oversold CHECK (reserved <= on_hand)
) WITH (fillfactor = 70);
SELECT pg_catalog.pg_extension_config_dump('ves.inventory', '');

CREATE TABLE ves.reservations (
  tenant_id      uuid        NOT NULL,
  reservation_id text        NOT NULL CHECK (octet_length(reservation_id) BETWEEN 1 AND 256),
  store_id       uuid        NOT NULL,
  sku            text        NOT NULL,
  location       text        NOT NULL,
  quantity       bigint      NOT NULL CHECK (quantity > 0),
  order_id       text,
  status         text        NOT NULL CHECK (status IN ('held', 'released', 'committed')),
  created_at     timestamptz NOT NULL DEFAULT now(),
  closed_at      timestamptz,
  PRIMARY KEY (tenant_id, reservation_id)
) WITH (fillfactor = 80);
CREATE INDEX reservations_held ON ves.reservations (tenant_id, store_id, sku, location) WHERE status = 'held';
SELECT pg_catalog.pg_extension_config_dump('ves.reservations', '');

CREATE TYPE ves.stock_result AS (
  sku            text,
  location       text,
  on_hand        bigint,
  reserved       bigint,
  available      bigint,
  outcome        text,     -- applied, duplicate, conflict or resolved
  conflict_id    uuid,
  event_id       uuid,
  reservation_id text
);

CREATE FUNCTION ves._stock_result(inv ves.inventory, outcome text, conflict_id uuid, event_id uuid,
                                  reservation_id text DEFAULT NULL) RETURNS ves.stock_result
  LANGUAGE sql IMMUTABLE AS $$
  SELECT (inv.sku, inv.location, inv.on_hand, inv.reserved, inv.on_hand - inv.reserved, outcome, conflict_id,
          event_id, reservation_id)::ves.stock_result
$$;

CREATE FUNCTION ves._check_stock_args(tenant_id uuid, store_id uuid, sku text, location text, source text)
  RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM ves._check_entity(tenant_id, store_id, 'inventory', sku, source);
  IF location IS NULL OR octet_length(location) NOT BETWEEN 1 AND 128 THEN
    RAISE EXCEPTION 'location must be 1 to 128 bytes' USING ERRCODE = 'VE006',
      HINT = 'Leave the default ''default'' when the store has one location.';
  END IF;
END $$;

-- The row, created empty when missing, locked for the rest of the transaction.
CREATE FUNCTION ves._lock_stock(tenant_id uuid, store_id uuid, sku text, location text) RETURNS ves.inventory
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE inv ves.inventory;
BEGIN
  SELECT * INTO inv FROM ves.inventory i WHERE i.tenant_id = _lock_stock.tenant_id AND i.store_id = _lock_stock.store_id
    AND i.sku = _lock_stock.sku AND i.location = _lock_stock.location FOR UPDATE;
  IF FOUND THEN RETURN inv; END IF;
  INSERT INTO ves.inventory (tenant_id, store_id, sku, location) VALUES (tenant_id, store_id, sku, location)
  ON CONFLICT DO NOTHING;
  SELECT * INTO inv FROM ves.inventory i WHERE i.tenant_id = _lock_stock.tenant_id AND i.store_id = _lock_stock.store_id
    AND i.sku = _lock_stock.sku AND i.location = _lock_stock.location FOR UPDATE;
  RETURN inv;
END $$;

-- Appends a stock event for the row as it is now, then raises or re-arms the
-- low-stock alert. Returns the event id.
CREATE FUNCTION ves._stock_event(inv ves.inventory, event_type text, extra jsonb, source text) RETURNS uuid
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE ar ves.append_result;
BEGIN
  SELECT * INTO ar FROM ves.append(inv.tenant_id, inv.store_id, 'inventory', inv.sku, event_type,
    jsonb_build_object('sku', inv.sku, 'location', inv.location, 'on_hand', inv.on_hand, 'reserved', inv.reserved,
                       'available', inv.on_hand - inv.reserved) || extra,
    source => source);
  PERFORM ves._low_stock_check(inv, source);
  RETURN ar.event_id;
END $$;

CREATE FUNCTION ves._low_stock_check(inv ves.inventory, source text) RETURNS void
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE available bigint := inv.on_hand - inv.reserved;
BEGIN
  IF inv.low_stock_threshold IS NULL THEN RETURN; END IF;
  IF available <= inv.low_stock_threshold AND NOT inv.low_stock_alerted THEN
    PERFORM ves.append(inv.tenant_id, inv.store_id, 'inventory', inv.sku, 'inventory.low_stock_alert',
      jsonb_build_object('sku', inv.sku, 'location', inv.location, 'available', available,
                         'threshold', inv.low_stock_threshold, 'on_hand', inv.on_hand, 'reserved', inv.reserved),
      source => source);
    UPDATE ves.inventory i SET low_stock_alerted = true
    WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location);
  ELSIF available > inv.low_stock_threshold AND inv.low_stock_alerted THEN
    UPDATE ves.inventory i SET low_stock_alerted = false
    WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location);
  END IF;
END $$;

-- Stores a new on-hand count for a locked row and returns the row.
CREATE FUNCTION ves._store_on_hand(inv ves.inventory, on_hand bigint, source text, observed_at timestamptz,
                                   seen jsonb) RETURNS ves.inventory
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE out_row ves.inventory;
BEGIN
  UPDATE ves.inventory i SET on_hand = _store_on_hand.on_hand, version = i.version + 1, last_source = source,
    last_observed_at = observed_at, source_seen = coalesce(seen, i.source_seen), updated_at = now()
  WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location)
  RETURNING * INTO out_row;
  RETURN out_row;
END $$;

-- Records the reservation_conflict that ves._decide_stock found for a new
-- on-hand count below what is reserved: resolved (rule reservations_win, the
-- count stops at the reserved quantity) or opened for a person (rule
-- manual). Returns its id.
CREATE FUNCTION ves._reservation_conflict(inv ves.inventory, wanted bigint, conflict_type text, outcome text, rule text,
                                          on_hand bigint, source text, observed_at timestamptz, reason text)
  RETURNS uuid
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE c ves.conflicts;
BEGIN
  c.tenant_id := inv.tenant_id; c.store_id := inv.store_id; c.entity_type := 'inventory'; c.entity_id := inv.sku;
  c.conflict_type := conflict_type;
  c.local_state := jsonb_build_object('on_hand', inv.on_hand, 'reserved', inv.reserved);
  c.remote_state := jsonb_build_object('on_hand', wanted);
  c.base_state := jsonb_build_object('on_hand', inv.on_hand);
  c.local_version := inv.version;
  c.fields := ARRAY['on_hand'];
  c.local_source := inv.last_source; c.remote_source := source;
  c.local_observed_at := inv.last_observed_at; c.remote_observed_at := observed_at;
  c.detail := jsonb_build_object('sku', inv.sku, 'location', inv.location, 'reserved', inv.reserved, 'reason', reason);
  c.detected_at := now();
  c.rule := rule;
  IF outcome = 'resolved' THEN
    c.status := 'resolved';
    c.strategy := rule; c.proposed_state := jsonb_build_object('on_hand', on_hand);
    c.resolved_state := c.proposed_state; c.resolved_at := now(); c.resolved_by := session_user;
    RETURN ves._record_conflict(c);
  END IF;
  c.proposed_state := c.remote_state;
  RETURN ves._open_conflict(c);
END $$;

CREATE FUNCTION ves.adjust_stock(
  tenant_id       uuid,
  store_id        uuid,
  sku             text,
  delta           bigint,
  location        text        DEFAULT 'default',
  reason          text        DEFAULT NULL,
  source          text        DEFAULT 'manual',
  idempotency_key text        DEFAULT NULL,
  observed_at     timestamptz DEFAULT now()
) RETURNS ves.stock_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  request jsonb := jsonb_build_array(store_id, sku, location, delta, reason, source);
  inv ves.inventory;
  wanted bigint;
  sd record;
  res ves.stock_result;
BEGIN
  PERFORM ves._check_stock_args(tenant_id, store_id, sku, location, source);
  IF delta IS NULL OR delta = 0 THEN
    RAISE EXCEPTION 'delta must be a non-zero count' USING ERRCODE = 'VE010',
      HINT = 'Pass +n for stock received, -n for stock removed; ves.set_stock sets an absolute count.';
  END IF;
  res := ves._keyed_begin(tenant_id, idempotency_key, 'adjust_stock', request, res);
  IF res.outcome = 'duplicate' THEN RETURN res; END IF;
  inv := ves._lock_stock(tenant_id, store_id, sku, location);
  wanted := inv.on_hand + delta;
  IF wanted < 0 THEN
    RAISE EXCEPTION 'cannot remove % of "%" at %: only % on hand', -delta, sku, location, inv.on_hand
      USING ERRCODE = 'VE031', DETAIL = format('on_hand=%s reserved=%s', inv.on_hand, inv.reserved),
            HINT = 'Count the stock again and record it with ves.set_stock.';
  END IF;
  -- Below the units reserved: reservations win, or a person decides.
  sd := ves._decide_stock(ves.get_conflict_policy(tenant_id, 'inventory'), inv.on_hand, inv.reserved, wanted);
  res.outcome := sd.outcome;
  IF sd.conflict_type IS NOT NULL THEN
    res.conflict_id := ves._reservation_conflict(inv, wanted, sd.conflict_type, sd.outcome, sd.rule, sd.on_hand, source,
                                                 observed_at, coalesce(reason, 'adjustment'));
  END IF;
  IF sd.outcome <> 'conflict' AND sd.on_hand <> inv.on_hand THEN
    inv := ves._store_on_hand(inv, sd.on_hand, source, observed_at, NULL);
    res.event_id := ves._stock_event(inv, 'inventory.stock_updated',
      jsonb_strip_nulls(jsonb_build_object('delta', delta, 'reason', reason, 'conflict_id', res.conflict_id)), source);
  END IF;
  res := ves._stock_result(inv, res.outcome, res.conflict_id, res.event_id);
  RETURN ves._keyed_end(tenant_id, idempotency_key, 'adjust_stock', request, res);
END $$;

-- An absolute count reported by a platform (or a stock take). Decided like an
-- upsert of {"on_hand": n}: the base is the count this source reported last,
-- so a platform that has not yet seen our sales does not undo them (stock
-- reductions win, source priority, review window), then checked against the
-- reservations.
CREATE FUNCTION ves.set_stock(
  tenant_id       uuid,
  store_id        uuid,
  sku             text,
  quantity        bigint,
  location        text        DEFAULT 'default',
  source          text        DEFAULT 'manual',
  idempotency_key text        DEFAULT NULL,
  observed_at     timestamptz DEFAULT now()
) RETURNS ves.stock_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  request jsonb := jsonb_build_array(store_id, sku, location, quantity, source);
  inv ves.inventory;
  existed boolean;
  policy jsonb;
  seen jsonb;
  base jsonb;
  d jsonb;
  wanted bigint;
  sd record;
  rc_id uuid;
  c ves.conflicts;
  res ves.stock_result;
BEGIN
  PERFORM ves._check_stock_args(tenant_id, store_id, sku, location, source);
  IF quantity IS NULL OR quantity < 0 THEN
    RAISE EXCEPTION 'quantity must be 0 or more' USING ERRCODE = 'VE010',
      HINT = 'Pass the count on hand as the source reports it.';
  END IF;
  IF observed_at IS NULL THEN
    RAISE EXCEPTION 'observed_at must not be NULL' USING ERRCODE = 'VE011', HINT = 'Leave the default now().';
  END IF;
  res := ves._keyed_begin(tenant_id, idempotency_key, 'set_stock', request, res);
  IF res.outcome = 'duplicate' THEN RETURN res; END IF;
  -- One way out, through ves._keyed_end below.
  <<work>>
  BEGIN
    inv := ves._lock_stock(tenant_id, store_id, sku, location);
    existed := inv.last_source IS NOT NULL;
    policy := ves.get_conflict_policy(tenant_id, 'inventory');
    seen := inv.source_seen -> source;
    base := CASE WHEN seen IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('on_hand', seen -> 'on_hand') END;
    d := ves._decide(policy, base, jsonb_build_object('on_hand', inv.on_hand), jsonb_build_object('on_hand', quantity),
                     existed, false, false, NULL, inv.version, (seen ->> 'version')::bigint,
                     (seen ->> 'observed_at')::timestamptz, inv.last_source, inv.last_observed_at, source, observed_at);
    wanted := (d -> 'state' ->> 'on_hand')::bigint;
    res.outcome := d ->> 'outcome';
    IF d ->> 'rule' = 'stale_observation' THEN
      -- Older than what this source already reported: it changes nothing, not
      -- even the base of the source's next report.
      res := ves._stock_result(inv, 'resolved', NULL, NULL);
      EXIT work;
    END IF;
    IF d ->> 'type' IS NOT NULL THEN
      c.tenant_id := tenant_id; c.store_id := store_id; c.entity_type := 'inventory'; c.entity_id := sku;
      c.conflict_type := d ->> 'type'; c.rule := d ->> 'rule';
      c.fields := ARRAY(SELECT jsonb_array_elements_text(d -> 'fields'));
      c.base_version := (seen ->> 'version')::bigint; c.local_version := inv.version;
      c.base_state := base; c.local_state := jsonb_build_object('on_hand', inv.on_hand);
      c.remote_state := jsonb_build_object('on_hand', quantity); c.proposed_state := jsonb_build_object('on_hand', wanted);
      c.local_source := inv.last_source; c.remote_source := source;
      c.local_observed_at := inv.last_observed_at; c.remote_observed_at := observed_at;
      c.detail := jsonb_build_object('sku', sku, 'location', location, 'reserved', inv.reserved);
      c.detected_at := now();
      IF res.outcome = 'conflict' THEN
        res := ves._stock_result(inv, 'conflict', ves._open_conflict(c), NULL);
        EXIT work;
      END IF;
      c.status := 'resolved'; c.strategy := c.rule;
      c.resolved_state := c.proposed_state; c.resolved_at := now(); c.resolved_by := session_user;
      res.conflict_id := ves._record_conflict(c);
    END IF;
    sd := ves._decide_stock(policy, inv.on_hand, inv.reserved, wanted);
    IF sd.conflict_type IS NOT NULL THEN
      rc_id := ves._reservation_conflict(inv, wanted, sd.conflict_type, sd.outcome, sd.rule, sd.on_hand, source,
                                     observed_at, 'set_stock');
      IF sd.outcome = 'conflict' THEN
        res := ves._stock_result(inv, 'conflict', rc_id, NULL);
        EXIT work;
      END IF;
      wanted := sd.on_hand;
      res.outcome := sd.outcome;
      res.conflict_id := rc_id;
    END IF;
    -- What this source reported is the base of its next report; we agree with
    -- it (and skip the merge next time) only when its count is what we store.
    seen := jsonb_build_object('on_hand', quantity,
              'version', CASE WHEN wanted = quantity THEN inv.version + 1 ELSE coalesce((seen ->> 'version')::bigint, 0) END,
              'observed_at', greatest(observed_at, (seen ->> 'observed_at')::timestamptz));
    IF wanted <> inv.on_hand OR NOT existed THEN
      inv := ves._store_on_hand(inv, wanted, source, observed_at, inv.source_seen || jsonb_build_object(source, seen));
      res.event_id := ves._stock_event(inv, 'inventory.stock_updated',
        jsonb_strip_nulls(jsonb_build_object('reported', quantity, 'reason', 'set_stock', 'conflict_id', res.conflict_id)), source);
    ELSE
      UPDATE ves.inventory i SET source_seen = i.source_seen || jsonb_build_object(source,
          seen || jsonb_build_object('version', CASE WHEN wanted = quantity THEN i.version
                                                     ELSE (seen ->> 'version')::bigint END))
      WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location)
      RETURNING * INTO inv;
    END IF;
    res := ves._stock_result(inv, res.outcome, res.conflict_id, res.event_id);
  END work;
  RETURN ves._keyed_end(tenant_id, idempotency_key, 'set_stock', request, res);
END $$;

-- Holds `quantity` units for an order. Refused with VE031 when fewer are
-- available; never oversells. Repeating a reservation id with the same
-- arguments returns the first result (outcome duplicate).
CREATE FUNCTION ves.reserve_stock(
  tenant_id       uuid,
  store_id        uuid,
  sku             text,
  quantity        bigint,
  reservation_id  text DEFAULT NULL,
  location        text DEFAULT 'default',
  order_id        text DEFAULT NULL,
  source          text DEFAULT 'manual',
  idempotency_key text DEFAULT NULL
) RETURNS ves.stock_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  request jsonb := jsonb_build_array(store_id, sku, location, quantity, reservation_id, order_id, source);
  inv ves.inventory;
  r ves.reservations;
  res ves.stock_result;
  rid text := coalesce(reservation_id, gen_random_uuid()::text);
BEGIN
  PERFORM ves._check_stock_args(tenant_id, store_id, sku, location, source);
  IF quantity IS NULL OR quantity <= 0 THEN
    RAISE EXCEPTION 'quantity must be 1 or more' USING ERRCODE = 'VE010', HINT = 'Reserve a positive number of units.';
  END IF;
  IF octet_length(rid) NOT BETWEEN 1 AND 256 THEN
    RAISE EXCEPTION 'reservation_id must be 1 to 256 bytes' USING ERRCODE = 'VE006',
      HINT = 'Use the order line''s id, or leave it NULL to have one generated.';
  END IF;
  res := ves._keyed_begin(tenant_id, idempotency_key, 'reserve_stock', request, res);
  IF res.outcome = 'duplicate' THEN RETURN res; END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended(tenant_id::text || '/reservation/' || rid, 13));
  SELECT * INTO r FROM ves.reservations x WHERE x.tenant_id = reserve_stock.tenant_id AND x.reservation_id = rid;
  IF FOUND THEN
    IF (r.store_id, r.sku, r.location, r.quantity, r.order_id) IS NOT DISTINCT FROM
       (store_id, sku, location, quantity, order_id) THEN
      SELECT * INTO inv FROM ves.inventory i WHERE i.tenant_id = reserve_stock.tenant_id AND i.store_id = r.store_id
        AND i.sku = r.sku AND i.location = r.location;
      RETURN ves._stock_result(inv, 'duplicate', NULL, NULL, rid);
    END IF;
    RAISE EXCEPTION 'reservation "%" already exists for a different request', rid USING ERRCODE = 'VE013',
      DETAIL = format('%s of "%s" at %s, %s', r.quantity, r.sku, r.location, r.status),
      HINT = 'Use a new reservation id.';
  END IF;

  UPDATE ves.inventory i SET reserved = i.reserved + quantity, version = i.version + 1, updated_at = now()
  WHERE i.tenant_id = reserve_stock.tenant_id AND i.store_id = reserve_stock.store_id AND i.sku = reserve_stock.sku
    AND i.location = reserve_stock.location AND i.on_hand - i.reserved >= quantity
  RETURNING * INTO inv;
  IF NOT FOUND THEN
    SELECT * INTO inv FROM ves.inventory i WHERE i.tenant_id = reserve_stock.tenant_id
      AND i.store_id = reserve_stock.store_id AND i.sku = reserve_stock.sku AND i.location = reserve_stock.location;
    RAISE EXCEPTION 'cannot reserve % of "%" at %: only % available', quantity, sku, location,
      coalesce(inv.on_hand - inv.reserved, 0)
      USING ERRCODE = 'VE031',
            DETAIL = format('available=%s on_hand=%s reserved=%s', coalesce(inv.on_hand - inv.reserved, 0),
                            coalesce(inv.on_hand, 0), coalesce(inv.reserved, 0)),
            HINT = 'Reserve fewer units, or back-order; stock is never oversold.';
  END IF;
  INSERT INTO ves.reservations (tenant_id, reservation_id, store_id, sku, location, quantity, order_id, status)
  VALUES (tenant_id, rid, store_id, sku, location, quantity, order_id, 'held');
  res := ves._stock_result(inv, 'applied', NULL,
    ves._stock_event(inv, 'inventory.reserved',
      jsonb_build_object('reservation_id', rid, 'quantity', quantity, 'order_id', order_id), source), rid);
  RETURN ves._keyed_end(tenant_id, idempotency_key, 'reserve_stock', request, res);
END $$;

-- Closes a held reservation: released (the units become available again) or
-- committed (they leave on_hand: the order shipped).
CREATE FUNCTION ves._close_reservation(tenant_id uuid, reservation_id text, new_status text, source text,
                                       reason text) RETURNS ves.stock_result
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r ves.reservations;
  inv ves.inventory;
BEGIN
  IF tenant_id IS NULL OR reservation_id IS NULL THEN
    RAISE EXCEPTION 'tenant_id and reservation_id must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Pass the id that ves.reserve_stock returned.';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  SELECT * INTO r FROM ves.reservations x WHERE x.tenant_id = _close_reservation.tenant_id
    AND x.reservation_id = _close_reservation.reservation_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'reservation "%" does not exist', reservation_id USING ERRCODE = 'VE012',
      HINT = 'Pass the id that ves.reserve_stock returned.';
  END IF;
  IF r.status = new_status THEN
    SELECT * INTO inv FROM ves.inventory i WHERE i.tenant_id = r.tenant_id AND i.store_id = r.store_id
      AND i.sku = r.sku AND i.location = r.location;
    RETURN ves._stock_result(inv, 'duplicate', NULL, NULL, reservation_id);
  END IF;
  IF r.status <> 'held' THEN
    RAISE EXCEPTION 'reservation "%" is already %', reservation_id, r.status USING ERRCODE = 'VE033',
      DETAIL = format('closed at %s', r.closed_at),
      HINT = 'A reservation is released or committed once.';
  END IF;
  UPDATE ves.inventory i SET reserved = i.reserved - r.quantity,
    on_hand = i.on_hand - CASE WHEN new_status = 'committed' THEN r.quantity ELSE 0 END,
    version = i.version + 1, last_source = CASE WHEN new_status = 'committed' THEN source ELSE i.last_source END,
    last_observed_at = CASE WHEN new_status = 'committed' THEN now() ELSE i.last_observed_at END, updated_at = now()
  WHERE i.tenant_id = r.tenant_id AND i.store_id = r.store_id AND i.sku = r.sku AND i.location = r.location
  RETURNING * INTO inv;
  UPDATE ves.reservations x SET status = new_status, closed_at = now()
  WHERE x.tenant_id = r.tenant_id AND x.reservation_id = r.reservation_id;
  RETURN ves._stock_result(inv, 'applied', NULL,
    ves._stock_event(inv, CASE WHEN new_status = 'committed' THEN 'inventory.stock_updated' ELSE 'inventory.released' END,
      jsonb_build_object('reservation_id', r.reservation_id, 'quantity', r.quantity, 'order_id', r.order_id,
                         'reason', coalesce(reason, CASE WHEN new_status = 'committed' THEN 'reservation_committed'
                                                         ELSE 'reservation_released' END))
      || CASE WHEN new_status = 'committed' THEN jsonb_build_object('delta', -r.quantity) ELSE '{}' END,
      source), reservation_id);
END $$;

CREATE FUNCTION ves.release_stock(tenant_id uuid, reservation_id text, reason text DEFAULT NULL,
                                  source text DEFAULT 'manual') RETURNS ves.stock_result
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT ves._close_reservation(tenant_id, reservation_id, 'released', source, reason)
$$;

CREATE FUNCTION ves.commit_reservation(tenant_id uuid, reservation_id text, source text DEFAULT 'manual')
  RETURNS ves.stock_result
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT ves._close_reservation(tenant_id, reservation_id, 'committed', source, NULL)
$$;

-- Sets (or with NULL clears) the low-stock threshold of a SKU at a location.
-- inventory.low_stock_alert is appended when available falls to the
-- threshold or below, once; it re-arms when available rises above it.
CREATE FUNCTION ves.set_low_stock_threshold(tenant_id uuid, store_id uuid, sku text, threshold bigint,
                                            location text DEFAULT 'default') RETURNS ves.stock_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE inv ves.inventory;
BEGIN
  PERFORM ves._check_stock_args(tenant_id, store_id, sku, location, 'manual');
  IF threshold < 0 THEN
    RAISE EXCEPTION 'threshold must be 0 or more' USING ERRCODE = 'VE010', HINT = 'Pass NULL to remove it.';
  END IF;
  inv := ves._lock_stock(tenant_id, store_id, sku, location);
  UPDATE ves.inventory i SET low_stock_threshold = threshold,
    low_stock_alerted = CASE WHEN threshold IS NULL THEN false ELSE i.low_stock_alerted END
  WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location)
  RETURNING * INTO inv;
  PERFORM ves._low_stock_check(inv, 'manual');
  SELECT * INTO inv FROM ves.inventory i
  WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location);
  RETURN ves._stock_result(inv, 'applied', NULL, NULL);
END $$;

CREATE FUNCTION ves.get_stock(tenant_id uuid, store_id uuid, sku text, location text DEFAULT 'default')
  RETURNS ves.stock_result
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE inv ves.inventory;
BEGIN
  PERFORM ves.check_tenant(tenant_id);
  SELECT * INTO inv FROM ves.inventory i WHERE i.tenant_id = get_stock.tenant_id AND i.store_id = get_stock.store_id
    AND i.sku = get_stock.sku AND i.location = get_stock.location;
  IF NOT FOUND THEN
    RETURN (sku, location, 0, 0, 0, NULL, NULL, NULL, NULL)::ves.stock_result;
  END IF;
  RETURN ves._stock_result(inv, NULL, NULL, NULL);
END $$;

-- Resolving a conflict on the counts of ves.inventory (ves.resolve_conflict
-- calls this with what the chosen strategy does). Returns the row's version,
-- the event that changed it (if any) and the state it was resolved to.
CREATE FUNCTION ves._resolve_stock_conflict(c ves.conflicts, chosen text, merged jsonb, OUT version bigint,
                                            OUT event_id uuid, OUT resolved_state jsonb)
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  inv ves.inventory;
  wanted bigint;
BEGIN
  inv := ves._lock_stock(c.tenant_id, c.store_id, c.detail ->> 'sku', c.detail ->> 'location');
  wanted := CASE chosen WHEN 'accept_local' THEN inv.on_hand
                        WHEN 'accept_remote' THEN (c.remote_state ->> 'on_hand')::bigint
                        ELSE (coalesce(merged, c.proposed_state) ->> 'on_hand')::bigint END;
  IF wanted IS NULL OR wanted < 0 THEN
    RAISE EXCEPTION 'the resolved state must carry "on_hand", a count of 0 or more' USING ERRCODE = 'VE004',
      HINT = 'For example merged => ''{"on_hand": 12}''.';
  END IF;
  IF wanted < inv.reserved THEN
    RAISE EXCEPTION 'on_hand % is below the % units reserved for "%"', wanted, inv.reserved, inv.sku
      USING ERRCODE = 'VE031', HINT = 'Release reservations first, or keep at least the reserved count.';
  END IF;
  version := inv.version;
  IF wanted <> inv.on_hand THEN
    inv := ves._store_on_hand(inv, wanted, c.remote_source, now(), NULL);
    event_id := ves._stock_event(inv, 'inventory.stock_updated',
      jsonb_build_object('reason', 'conflict_resolved', 'conflict_id', c.conflict_id), 'manual');
    version := inv.version;
  END IF;
  resolved_state := CASE chosen WHEN 'accept_local' THEN c.local_state WHEN 'accept_remote' THEN c.remote_state
                                ELSE coalesce(merged, c.proposed_state) END;
END $$;
