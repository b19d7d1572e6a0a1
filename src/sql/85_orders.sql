-- Orders follow their state machine (src/core/state/order_state.cpp): order.created,
-- order.updated, order.shipped (with a tracking number), order.delivered,
-- order.cancelled, payment.* and return.*. An event the order can never
-- accept is refused (VE032; VE004 for a shipment without tracking number).
-- An event that arrives before its prerequisite is held when it comes from a
-- platform (any source but 'manual') and applied, in arrival order, as soon
-- as the order reaches the state it needs; from 'manual' it is refused, as a
-- person can send the earlier event first.

CREATE FUNCTION ves._order_transition(status text, payment_status text, return_status text, event_type text,
                                      payload jsonb,
                                      OUT verdict text, OUT next_status text, OUT next_payment_status text,
                                      OUT next_return_status text, OUT reason text, OUT bad_payload boolean)
  AS 'MODULE_PATHNAME', 'ves_order_transition' LANGUAGE C IMMUTABLE;

CREATE TABLE ves.orders (
  tenant_id       uuid        NOT NULL,
  store_id        uuid        NOT NULL,
  order_id        text        NOT NULL CHECK (octet_length(order_id) BETWEEN 1 AND 256),
  status          text        NOT NULL,
  payment_status  text        NOT NULL DEFAULT 'none',
  return_status   text        NOT NULL DEFAULT 'none',
  tracking_number text,
  data            jsonb       NOT NULL DEFAULT '{}',  -- order.created / order.updated payloads merged
  version         bigint      NOT NULL,               -- the order stream's version
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, order_id)
) WITH (fillfactor = 80);
SELECT pg_catalog.pg_extension_config_dump('ves.orders', '');

CREATE TABLE ves.held_order_events (
  hold_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id       uuid        NOT NULL,
  store_id        uuid        NOT NULL,
  order_id        text        NOT NULL,
  event_type      text        NOT NULL,
  payload         jsonb       NOT NULL,
  source          text        NOT NULL,
  observed_at     timestamptz NOT NULL,
  status          text        NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'applied', 'rejected', 'expired')),
  reason          text        NOT NULL,   -- why it was held, then why it was rejected
  held_at         timestamptz NOT NULL DEFAULT now(),
  closed_at       timestamptz,
  event_id        uuid                    -- the event once applied
);
CREATE INDEX held_order_events_open ON ves.held_order_events (tenant_id, order_id, hold_id) WHERE status = 'held';
CREATE INDEX held_order_events_age ON ves.held_order_events (held_at) WHERE status = 'held';
SELECT pg_catalog.pg_extension_config_dump('ves.held_order_events', '');

CREATE TYPE ves.order_result AS (
  outcome        text,    -- applied, held or duplicate
  status         text,
  payment_status text,
  return_status  text,
  version        bigint,
  event_id       uuid,
  released       int      -- held events this one let through
);

-- Stores an order's new state after an accepted event at stream version `version`.
CREATE FUNCTION ves._set_order_state(tenant_id uuid, store_id uuid, order_id text, event_type text, payload jsonb,
                                     version bigint, t record) RETURNS void
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO ves.orders AS o (tenant_id, store_id, order_id, status, payment_status, return_status, tracking_number,
                               data, version)
  VALUES (tenant_id, store_id, order_id, t.next_status, t.next_payment_status, t.next_return_status,
          payload ->> 'tracking_number', CASE WHEN event_type = 'order.created' THEN payload ELSE '{}' END,
          version)
  ON CONFLICT ON CONSTRAINT orders_pkey DO UPDATE SET
    status = excluded.status, payment_status = excluded.payment_status, return_status = excluded.return_status,
    tracking_number = coalesce(excluded.tracking_number, o.tracking_number),
    data = CASE WHEN event_type IN ('order.created', 'order.updated') THEN o.data || payload ELSE o.data END,
    version = excluded.version, updated_at = now();
END $$;

-- Applies one accepted event: append it, store the order's new state.
CREATE FUNCTION ves._apply_order_event(tenant_id uuid, store_id uuid, order_id text, event_type text, payload jsonb,
                                       source text, observed_at timestamptz, t record) RETURNS ves.append_result
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE ar ves.append_result;
BEGIN
  SELECT * INTO ar FROM ves.append(tenant_id, store_id, 'order', order_id, event_type, payload,
    metadata => jsonb_build_object('observed_at', observed_at), source => source);
  PERFORM ves._set_order_state(tenant_id, store_id, order_id, event_type, payload, ar.entity_version, t);
  RETURN ar;
END $$;

-- The state machine step shared by ves.record_order_event (arguments
-- checked) and ves._apply_ingested (`ingested`: an event from another node,
-- already stored on the order's stream, so it is not appended again; one the
-- order can never accept is left stored and unapplied, outcome 'rejected',
-- rather than refused). A held event from another node keeps its event id.
CREATE FUNCTION ves._order_change(tenant_id uuid, store_id uuid, order_id text, event_type text, payload jsonb,
                                  source text, observed_at timestamptz, ingested ves.events DEFAULT NULL)
  RETURNS ves.order_result
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o ves.orders;
  t record;
  ar ves.append_result;
  h ves.held_order_events;
  progress boolean;
  res ves.order_result;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(tenant_id::text || '/order/' || order_id, 17));
  SELECT * INTO o FROM ves.orders x WHERE x.tenant_id = _order_change.tenant_id
    AND x.order_id = _order_change.order_id FOR UPDATE;
  t := ves._order_transition(coalesce(o.status, 'none'), coalesce(o.payment_status, 'none'),
                             coalesce(o.return_status, 'none'), event_type, payload);
  IF t.verdict = 'reject' AND ingested.event_id IS NOT NULL THEN
    RETURN ('rejected', coalesce(o.status, 'none'), coalesce(o.payment_status, 'none'),
            coalesce(o.return_status, 'none'), coalesce(o.version, 0), ingested.event_id, 0)::ves.order_result;
  END IF;
  IF t.verdict = 'reject' OR (t.verdict = 'hold' AND source = 'manual') THEN
    IF t.bad_payload THEN
      RAISE EXCEPTION '%', t.reason USING ERRCODE = 'VE004',
        HINT = 'Send order.shipped with {"tracking_number": "..."} in its payload.';
    END IF;
    RAISE EXCEPTION '% refused for order "%": %', event_type, order_id, t.reason USING ERRCODE = 'VE032',
      DETAIL = format('status=%s payment_status=%s return_status=%s', coalesce(o.status, 'none'),
                      coalesce(o.payment_status, 'none'), coalesce(o.return_status, 'none')),
      HINT = CASE WHEN t.verdict = 'hold' THEN 'Record the earlier event first; events from platforms are held until then.'
                  ELSE 'The order''s state machine does not allow this event now.' END;
  END IF;

  IF t.verdict = 'hold' THEN
    INSERT INTO ves.held_order_events (tenant_id, store_id, order_id, event_type, payload, source, observed_at, reason,
                                       event_id)
    VALUES (tenant_id, store_id, order_id, event_type, payload, source, observed_at, t.reason, ingested.event_id);
    res := ('held', coalesce(o.status, 'none'), coalesce(o.payment_status, 'none'), coalesce(o.return_status, 'none'),
            coalesce(o.version, 0), NULL, 0)::ves.order_result;
  ELSE
    IF ingested.event_id IS NULL THEN
      ar := ves._apply_order_event(tenant_id, store_id, order_id, event_type, payload, source, observed_at, t);
    ELSE
      ar.event_id := ingested.event_id;
      PERFORM ves._set_order_state(tenant_id, store_id, order_id, event_type, payload,
                                   ves._stream_version(tenant_id, 'order', order_id), t);
    END IF;
    res.outcome := 'applied';
    res.event_id := ar.event_id;
    res.released := 0;
    -- Held events that this one lets through, in the order they arrived.
    LOOP
      progress := false;
      FOR h IN SELECT * FROM ves.held_order_events x WHERE x.tenant_id = _order_change.tenant_id
                 AND x.order_id = _order_change.order_id AND x.status = 'held' ORDER BY x.hold_id LOOP
        SELECT * INTO o FROM ves.orders x WHERE x.tenant_id = _order_change.tenant_id
          AND x.order_id = _order_change.order_id;
        t := ves._order_transition(o.status, o.payment_status, o.return_status, h.event_type, h.payload);
        CONTINUE WHEN t.verdict = 'hold';
        IF t.verdict = 'apply' AND h.event_id IS NOT NULL THEN
          -- Held from another node: already on the stream.
          ar.event_id := h.event_id;
          PERFORM ves._set_order_state(h.tenant_id, h.store_id, h.order_id, h.event_type, h.payload,
                                       ves._stream_version(h.tenant_id, 'order', h.order_id), t);
          UPDATE ves.held_order_events x SET status = 'applied', closed_at = now() WHERE x.hold_id = h.hold_id;
          res.released := res.released + 1;
        ELSIF t.verdict = 'apply' THEN
          ar := ves._apply_order_event(h.tenant_id, h.store_id, h.order_id, h.event_type, h.payload, h.source,
                                       h.observed_at, t);
          UPDATE ves.held_order_events x SET status = 'applied', closed_at = now(), event_id = ar.event_id
          WHERE x.hold_id = h.hold_id;
          res.released := res.released + 1;
        ELSE
          UPDATE ves.held_order_events x SET status = 'rejected', closed_at = now(), reason = t.reason
          WHERE x.hold_id = h.hold_id;
        END IF;
        progress := true;
      END LOOP;
      EXIT WHEN NOT progress;
    END LOOP;
    SELECT * INTO o FROM ves.orders x WHERE x.tenant_id = _order_change.tenant_id
      AND x.order_id = _order_change.order_id;
    res.status := o.status; res.payment_status := o.payment_status; res.return_status := o.return_status;
    res.version := o.version;
  END IF;
  RETURN res;
END $$;

CREATE FUNCTION ves.record_order_event(
  tenant_id       uuid,
  store_id        uuid,
  order_id        text,
  event_type      text,
  payload         jsonb       DEFAULT '{}',
  source          text        DEFAULT 'manual',
  idempotency_key text        DEFAULT NULL,
  observed_at     timestamptz DEFAULT now()
) RETURNS ves.order_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  request jsonb := jsonb_build_array(store_id, order_id, event_type, payload, source);
  res ves.order_result;
BEGIN
  PERFORM ves._check_entity(tenant_id, store_id, 'order', order_id, source);
  IF event_type IS NULL THEN
    RAISE EXCEPTION 'event_type must not be NULL' USING ERRCODE = 'VE011', HINT = 'For example ''order.shipped''.';
  END IF;
  IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
    RAISE EXCEPTION 'payload must be a JSON object' USING ERRCODE = 'VE004', HINT = 'Pass ''{}'' when there is nothing to say.';
  END IF;
  res := ves._keyed_begin(tenant_id, idempotency_key, 'record_order_event', request, res);
  IF res.outcome = 'duplicate' THEN RETURN res; END IF;
  res := ves._order_change(tenant_id, store_id, order_id, event_type, payload, source, observed_at);
  RETURN ves._keyed_end(tenant_id, idempotency_key, 'record_order_event', request, res);
END $$;

-- Closes held events whose prerequisite has not come within the sync
-- setting order_hold (7 days by default): status 'expired', never applied.
-- The sync worker runs it; returns how many it closed.
CREATE FUNCTION ves.expire_held_order_events(at timestamptz DEFAULT now()) RETURNS int
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  hold text := coalesce((SELECT settings ->> 'order_hold' FROM ves.sync_settings), '7 days');
  n int;
BEGIN
  UPDATE ves.held_order_events h SET status = 'expired', closed_at = at,
    reason = h.reason || format('; expired after %s', hold)
  WHERE h.status = 'held' AND h.held_at < at - hold::interval;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

CREATE FUNCTION ves.get_order(tenant_id uuid, order_id text) RETURNS ves.orders
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE o ves.orders;
BEGIN
  PERFORM ves.check_tenant(tenant_id);
  SELECT * INTO o FROM ves.orders x WHERE x.tenant_id = get_order.tenant_id AND x.order_id = get_order.order_id;
  RETURN o;
END $$;
