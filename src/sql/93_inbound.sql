-- Inbound: what commerce platforms tell pg_ves (ves.receive_webhook),
-- reconciliation of their counts (ves.reconcile), and security alerts.
--
-- Every count a platform reports for a mapped listing (a webhook, a read by
-- ves.reconcile, the read after a stale compare-and-set) goes through
-- ves._platform_report, which decides it by the conflict rules as
-- ves.set_stock does and queues the decided count back to the platform when
-- it differs from what the platform has.

-- Webhook deliveries received, per destination, so a replay is a duplicate.
-- The sync worker deletes those older than the sync setting
-- webhook_dedupe_window (7 days: platforms retry for at most a few days).
CREATE TABLE ves.inbound_deliveries (
  destination_id  int         NOT NULL REFERENCES ves.destinations ON DELETE CASCADE,
  delivery_id     text        NOT NULL CHECK (octet_length(delivery_id) BETWEEN 1 AND 512),
  topic           text,
  received_at     timestamptz NOT NULL DEFAULT now(),
  stock_applied   int         NOT NULL DEFAULT 0,
  orders_recorded int         NOT NULL DEFAULT 0,
  ignored         int         NOT NULL DEFAULT 0,
  PRIMARY KEY (destination_id, delivery_id)
);
CREATE INDEX inbound_deliveries_age ON ves.inbound_deliveries (received_at);
SELECT pg_catalog.pg_extension_config_dump('ves.inbound_deliveries', '');

-- Security alerts: forged or tampered webhooks and events. Written by the
-- sync worker from a queue in shared memory (src/pg/sync/alerts.hpp), so
-- an alert survives the error that refuses the forgery.
CREATE TABLE ves.security_alerts (
  id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  alert_uid       uuid        NOT NULL UNIQUE,  -- given when detected; recording twice adds nothing
  kind            text        NOT NULL,         -- webhook_signature, event_signature, event_payload_hash, event_key
  source          text,                         -- the destination's name, or ves.ingest_event
  tenant_id       uuid,
  store_id        uuid,
  sequence_number bigint,
  event_id        uuid,
  reason          text        NOT NULL,
  raw             bytea,                        -- the message as received, its first 8 kB
  raw_truncated   boolean     NOT NULL DEFAULT false,
  reported_by     text,                         -- the session role whose call was refused
  detected_at     timestamptz NOT NULL,
  recorded_at     timestamptz NOT NULL DEFAULT now(),
  acknowledged_at timestamptz,
  acknowledged_by text,
  action          text        CHECK (action IN ('skip', 'retry'))
);
CREATE INDEX security_alerts_open ON ves.security_alerts (detected_at) WHERE acknowledged_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('ves.security_alerts', '');

-- The last full reconciliation of each platform destination.
CREATE TABLE ves.reconcile_runs (
  destination_id    int         PRIMARY KEY REFERENCES ves.destinations ON DELETE CASCADE,
  started_at        timestamptz NOT NULL,
  finished_at       timestamptz NOT NULL,
  checked           int         NOT NULL,
  equal             int         NOT NULL,
  mismatched        int         NOT NULL,
  unread            int         NOT NULL,
  consistency_score float8,                     -- equal / checked; NULL when nothing was checked
  mismatches        jsonb       NOT NULL DEFAULT '[]',
  error             text
);
SELECT pg_catalog.pg_extension_config_dump('ves.reconcile_runs', '');

CREATE VIEW ves.reconcile_status WITH (security_barrier) AS
  SELECT d.name AS destination, d.kind, d.tenant_id, r.started_at, r.finished_at, r.checked, r.equal,
         r.mismatched, r.unread, r.consistency_score, r.mismatches, r.error
  FROM ves.reconcile_runs r JOIN ves.destinations d ON d.id = r.destination_id
  WHERE ves.tenant_visible(d.tenant_id);

-- The source name a platform destination's reports carry in the conflict
-- rules and the event log: its name (ves.set_stock takes at most 64 bytes).
CREATE FUNCTION ves._platform_source(d ves.destinations) RETURNS text
  LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN octet_length(d.name) <= 64 THEN d.name ELSE 'destination:' || d.id END
$$;

-- A count the platform reported for a mapped listing (its sellable count).
-- A report equal to what the platform was known to have changes nothing;
-- otherwise it is recorded as ves.set_stock(on hand = quantity + reserved,
-- source = the destination, idempotency key from report_id) against the
-- platform's last known count as base, so the conflict rules (stock
-- reductions win, review window, source priority) decide. Then the listing
-- records the report, and when the decided available differs from the
-- platform's count the SKU is queued so the worker pushes it. A report
-- observed more than a second before the listing's last push or report is
-- stale: nothing.
CREATE FUNCTION ves._platform_report(destination_id int, sku text, location text, quantity bigint,
                                     observed_at timestamptz, report_id text) RETURNS ves.stock_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations;
  l ves.listings;
  inv ves.inventory;
  src text;
  res ves.stock_result;
BEGIN
  IF quantity IS NULL OR quantity < 0 OR observed_at IS NULL OR report_id IS NULL THEN
    RAISE EXCEPTION 'a platform report needs a quantity of 0 or more, observed_at and report_id'
      USING ERRCODE = 'VE010', HINT = 'Pass what the platform reported.';
  END IF;
  SELECT * INTO d FROM ves.destinations x WHERE x.id = _platform_report.destination_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'destination % does not exist', destination_id USING ERRCODE = 'VE012',
      HINT = 'List destinations with SELECT name FROM ves.destinations.';
  END IF;
  SELECT * INTO l FROM ves.listings x WHERE x.destination_id = d.id AND x.sku = _platform_report.sku
    AND x.location = _platform_report.location FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'SKU "%" at "%" is not mapped to destination "%"', sku, location, d.name
      USING ERRCODE = 'VE012', HINT = 'Map it with ves.map_listing.';
  END IF;
  src := ves._platform_source(d);
  SELECT * INTO inv FROM ves.inventory i WHERE (i.tenant_id, i.store_id, i.sku, i.location)
    = (l.tenant_id, l.store_id, l.sku, l.location);
  -- Platforms stamp their messages to the second, by their own clock: a
  -- second's slack keeps a change made right after our push.
  IF observed_at < greatest(l.reported_at, l.pushed_at) - interval '1 second' THEN
    res := (l.sku, l.location, inv.on_hand, inv.reserved, inv.available, 'stale', NULL, NULL, NULL)::ves.stock_result;
    RETURN res;
  END IF;
  IF l.known_quantity IS NOT DISTINCT FROM quantity THEN
    -- The platform has what we knew it to have: nothing changed there.
    res := (l.sku, l.location, inv.on_hand, inv.reserved, inv.available, 'resolved', NULL, NULL, NULL)::ves.stock_result;
  ELSE
    -- The base of the three-way decision is what the platform had, as far
    -- as we know: its last acknowledged push or report. The order of its
    -- reports was checked above, with the slack their clock needs.
    IF inv.tenant_id IS NOT NULL THEN
      UPDATE ves.inventory i SET source_seen = CASE
          WHEN l.known_quantity IS NULL THEN i.source_seen - src
          ELSE i.source_seen || jsonb_build_object(src, jsonb_build_object(
                 'on_hand', l.known_quantity + i.reserved,
                 'version', coalesce((i.source_seen -> src ->> 'version')::bigint, 0))) END
      WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location);
    END IF;
    BEGIN
      res := ves.set_stock(l.tenant_id, l.store_id, l.sku, quantity + coalesce(inv.reserved, 0), l.location, src,
                           'platform:' || d.id || ':' || md5(report_id), observed_at);
    EXCEPTION WHEN SQLSTATE 'VE002' THEN
      -- The same report again, computed against other reservations.
      res.outcome := 'duplicate';
    END;
    IF res.outcome = 'duplicate' THEN
      SELECT * INTO inv FROM ves.inventory i WHERE (i.tenant_id, i.store_id, i.sku, i.location)
        = (l.tenant_id, l.store_id, l.sku, l.location);
      RETURN (l.sku, l.location, inv.on_hand, inv.reserved, inv.available, 'duplicate', NULL, NULL, NULL)::ves.stock_result;
    END IF;
  END IF;
  SELECT * INTO inv FROM ves.inventory i WHERE (i.tenant_id, i.store_id, i.sku, i.location)
    = (l.tenant_id, l.store_id, l.sku, l.location);
  UPDATE ves.listings x SET reported_quantity = quantity, reported_at = observed_at, known_quantity = quantity,
    state = CASE WHEN coalesce(inv.available, 0) = quantity THEN 'synced' ELSE 'pending' END,
    last_error = CASE WHEN coalesce(inv.available, 0) = quantity THEN NULL ELSE x.last_error END, updated_at = now()
  WHERE x.destination_id = d.id AND x.sku = l.sku AND x.location = l.location;
  -- An open conflict waits for its resolution, whose event queues the count.
  IF coalesce(inv.available, 0) <> quantity AND res.outcome IS DISTINCT FROM 'conflict' THEN
    PERFORM ves._queue_listing(d, l.tenant_id, l.sku);
  END IF;
  RETURN res;
END $$;

-- The platform does not know a mapped item (a read found none): its count
-- is unknown and ours is queued.
CREATE FUNCTION ves._platform_missing(destination_id int, sku text, location text) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE d ves.destinations;
BEGIN
  SELECT * INTO d FROM ves.destinations x WHERE x.id = _platform_missing.destination_id;
  UPDATE ves.listings x SET known_quantity = NULL, state = 'pending', updated_at = now()
  WHERE x.destination_id = d.id AND x.sku = _platform_missing.sku AND x.location = _platform_missing.location;
  IF FOUND THEN
    PERFORM ves._queue_listing(d, d.tenant_id, sku);
  END IF;
END $$;

-- The C half of ves.receive_webhook: verifies (raising VE050 after queuing
-- a security alert) and parses a message with the destination's adapter.
CREATE FUNCTION ves._inbound_message(destination_id int, kind text, name text, tenant_id uuid, store_id uuid,
                                     kind_options jsonb, headers jsonb, body bytea) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ves_inbound_message' LANGUAGE C VOLATILE;

CREATE TYPE ves.webhook_result AS (
  outcome         text,    -- applied or duplicate
  delivery_id     text,    -- the platform's delivery id (sha256:<hex of the body> when it sends none)
  topic           text,
  stock_applied   int,     -- stock reports recorded
  orders_recorded int,     -- order events recorded (or held, per the order state machine)
  ignored         int      -- items not applied: unknown listings, stale reports, statuses pg_ves does not record, refused order events
);

-- A webhook a commerce platform sent to the application, which passes the
-- request's headers (a JSON object) and raw body here. Verified with the
-- destination's secret (constant-time, by its adapter); deduplicated by the
-- platform's delivery id; stock reports go through ves._platform_report,
-- order notices through ves.record_order_event (source = the destination,
-- idempotency by delivery and order). A message that does not verify raises
-- VE050, applies nothing and records a security alert.
CREATE FUNCTION ves.receive_webhook(destination text, headers jsonb, body bytea) RETURNS ves.webhook_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations;
  store uuid;
  msg jsonb;
  r jsonb;
  n bigint;
  l ves.listings;
  sr ves.stock_result;
  et text;
  payload jsonb;
  src text;
  res ves.webhook_result;
BEGIN
  IF destination IS NULL OR headers IS NULL OR body IS NULL THEN
    RAISE EXCEPTION 'destination, headers and body must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Pass the destination''s name, the request''s headers as JSON and its raw body.';
  END IF;
  d := ves._destination(destination);
  IF d.tenant_id IS NOT NULL THEN
    PERFORM ves.check_tenant(d.tenant_id);
  END IF;
  store := (d.kind_options ->> 'store_id')::uuid;
  msg := ves._inbound_message(d.id, d.kind, d.name, d.tenant_id, store, d.kind_options, headers, body);
  res.delivery_id := msg ->> 'delivery_id';
  res.topic := msg ->> 'topic';
  res.stock_applied := 0; res.orders_recorded := 0; res.ignored := 0;
  INSERT INTO ves.inbound_deliveries (destination_id, delivery_id, topic)
  VALUES (d.id, left(res.delivery_id, 512), res.topic) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    res.outcome := 'duplicate';
    RETURN res;
  END IF;
  res.outcome := 'applied';
  src := ves._platform_source(d);
  FOR r, n IN SELECT x.value, x.ordinality FROM jsonb_array_elements(msg -> 'stock') WITH ORDINALITY x LOOP
    SELECT * INTO l FROM ves.listings x WHERE x.destination_id = d.id AND x.platform_key = r ->> 'key';
    IF NOT FOUND OR (r ->> 'quantity')::bigint < 0 THEN
      res.ignored := res.ignored + 1;
      CONTINUE;
    END IF;
    sr := ves._platform_report(d.id, l.sku, l.location, (r ->> 'quantity')::bigint,
            CASE WHEN (r ->> 'observed_at_ms')::bigint > 0
                 THEN to_timestamp((r ->> 'observed_at_ms')::numeric / 1000) ELSE now() END,
            'webhook:' || res.delivery_id || ':' || n);
    IF sr.outcome IN ('stale', 'duplicate') THEN
      res.ignored := res.ignored + 1;
    ELSE
      res.stock_applied := res.stock_applied + 1;
    END IF;
  END LOOP;
  FOR r IN SELECT x.value FROM jsonb_array_elements(msg -> 'orders') x LOOP
    et := r ->> 'event_type';
    IF et IS NULL OR store IS NULL THEN
      res.ignored := res.ignored + 1;
      CONTINUE;
    END IF;
    payload := r -> 'payload';
    BEGIN
      IF NOT EXISTS (SELECT FROM ves.orders o WHERE o.tenant_id = d.tenant_id AND o.order_id = r ->> 'order_id') THEN
        -- A platform speaks of orders it has: the first word pg_ves hears
        -- of one creates it.
        IF et <> 'order.created' THEN
          PERFORM ves.record_order_event(d.tenant_id, store, r ->> 'order_id', 'order.created', payload, src,
            'webhook:' || md5(d.id || ':' || res.delivery_id || ':' || (r ->> 'order_id') || ':created'));
        END IF;
      ELSIF et = 'order.created' THEN
        et := 'order.updated';
      END IF;
      IF et = 'order.shipped' AND payload ->> 'tracking_number' IS NULL THEN
        et := 'order.updated';
      END IF;
      PERFORM ves.record_order_event(d.tenant_id, store, r ->> 'order_id', et, payload, src,
        'webhook:' || md5(d.id || ':' || res.delivery_id || ':' || (r ->> 'order_id')));
      res.orders_recorded := res.orders_recorded + 1;
    EXCEPTION WHEN SQLSTATE 'VE032' OR SQLSTATE 'VE004' THEN
      -- The order's state machine refuses it (e.g. a payment after a cancel).
      res.ignored := res.ignored + 1;
    END;
  END LOOP;
  UPDATE ves.inbound_deliveries x SET stock_applied = res.stock_applied, orders_recorded = res.orders_recorded,
    ignored = res.ignored
  WHERE x.destination_id = d.id AND x.delivery_id = left(res.delivery_id, 512);
  RETURN res;
END $$;

-- Deletes delivery ids older than the sync setting webhook_dedupe_window
-- (run by the sync worker every minute); returns how many.
CREATE FUNCTION ves._purge_inbound_deliveries() RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  keep interval := coalesce((SELECT (s.settings ->> 'webhook_dedupe_window')::interval FROM ves.sync_settings s),
                            interval '7 days');
  n bigint;
BEGIN
  DELETE FROM ves.inbound_deliveries x WHERE x.received_at < now() - keep;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

-- Security alerts ------------------------------------------------------------

CREATE FUNCTION ves._drain_security_alerts() RETURNS int
  AS 'MODULE_PATHNAME', 'ves_drain_security_alerts' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Closes an alert. action: 'skip' (the message stays refused; a pulled
-- stream resumes after the alert's sequence number) or 'retry' (take it
-- again: a pulled stream resumes at the alert's sequence number; a webhook
-- is taken again when the platform resends it).
CREATE FUNCTION ves.acknowledge_security_alert(id bigint, action text DEFAULT 'skip') RETURNS ves.security_alerts
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE a ves.security_alerts;
BEGIN
  IF id IS NULL OR action IS NULL OR action NOT IN ('skip', 'retry') THEN
    RAISE EXCEPTION 'action must be ''skip'' or ''retry''' USING ERRCODE = 'VE010',
      HINT = 'ves.acknowledge_security_alert(id, action => ''skip'').';
  END IF;
  SELECT * INTO a FROM ves.security_alerts x WHERE x.id = acknowledge_security_alert.id FOR UPDATE;
  IF NOT FOUND OR NOT (a.tenant_id IS NULL OR ves.tenant_visible(a.tenant_id)) THEN
    RAISE EXCEPTION 'security alert % does not exist', id USING ERRCODE = 'VE012',
      HINT = 'List open alerts with SELECT * FROM ves.security_alerts WHERE acknowledged_at IS NULL.';
  END IF;
  IF a.acknowledged_at IS NOT NULL THEN
    RAISE EXCEPTION 'security alert % was already acknowledged (%) by %', id, a.action, a.acknowledged_by
      USING ERRCODE = 'VE053', HINT = 'Nothing to do.';
  END IF;
  UPDATE ves.security_alerts x SET acknowledged_at = now(), acknowledged_by = session_user,
    action = acknowledge_security_alert.action
  WHERE x.id = a.id RETURNING * INTO a;
  -- A pulled stream held by this alert (ves.pull_cursors) resumes: 'retry'
  -- reads its sequence number again, 'skip' steps past that one number
  -- without applying it: an operator's decision, kept in ves.audit_log.
  UPDATE ves.pull_cursors c SET stopped_at_sequence = NULL, alert_id = NULL, gap_streak = 0,
    next_sequence = CASE WHEN acknowledge_security_alert.action = 'skip' THEN c.stopped_at_sequence + 1
                         ELSE c.next_sequence END
  WHERE c.alert_id = a.id;
  IF FOUND THEN
    PERFORM ves._audit(CASE a.action WHEN 'skip' THEN 'skip_pulled_event' ELSE 'retry_pulled_event' END,
                       a.source, a.tenant_id,
                       jsonb_build_object('alert_id', a.id, 'kind', a.kind, 'store_id', a.store_id,
                                          'sequence_number', a.sequence_number, 'event_id', a.event_id,
                                          'reason', a.reason));
  END IF;
  RETURN a;
END $$;

-- Reconciliation ---------------------------------------------------------------

CREATE FUNCTION ves._reconcile_read(destination_id int, kind text, url text, kind_options jsonb, timeout_ms int,
                                    stale_only boolean, after_sku text, after_location text,
                                    max_listings int, rate_limit float8, burst int,
                                    concurrency int) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ves_reconcile_read' LANGUAGE C VOLATILE;

-- The sync worker's reconciliations in progress: it reads a run's listings
-- a slice at a time between delivery rounds, so that a long run does not hold
-- up deliveries (ves._reconcile_step). What the finished slices found is
-- kept here until the run ends in ves.reconcile_runs.
CREATE TABLE ves.reconcile_progress (
  destination_id int         PRIMARY KEY REFERENCES ves.destinations ON DELETE CASCADE,
  run            text        NOT NULL,
  stale_only     boolean     NOT NULL,
  started_at     timestamptz NOT NULL,
  after_sku      text,                  -- the last listing read so far (NULL: none yet)
  after_location text,
  checked        int         NOT NULL,
  equal          int         NOT NULL,
  mismatched     int         NOT NULL,
  unread         int         NOT NULL,
  mismatches     jsonb       NOT NULL
);
-- Dumped: a restored database finishes the run it was in (its sync.started
-- was sent) instead of leaving it without a sync.completed.
SELECT pg_catalog.pg_extension_config_dump('ves.reconcile_progress', '');

-- One slice of a reconciliation: reads the platform's counts of the
-- destination's listings after (after_sku, after_location) in (SKU, location)
-- order, at most max_listings of them (NULL: from the first, and all), at
-- the destination's rate_limit, burst and concurrency, unless `reads` holds
-- what was read already (the sync worker reads a slice on its own HTTP
-- engine, between deliveries, in ves._reconcile_read's form), and
-- records each that differs from the SKU's available count as a platform
-- report (ves._platform_report: the rules decide, the decided count is pushed
-- back). `last_*` name the last listing read and `more` whether listings
-- after it were left for another slice. A read that differs from the SKU's
-- count is not used when the listing's last push was acknowledged (or a
-- platform report recorded) after the read was sent: the platform may have
-- answered with its count from before that push, which the rules would
-- take for a change made there. Nor is one of a listing in a batch the
-- platform accepted and has not finished applying (Meta's items_batch).
-- The listing is read again by a later run.
CREATE FUNCTION ves._reconcile_slice(d ves.destinations, stale_only boolean, run text, after_sku text,
                                     after_location text, max_listings int, reads jsonb,
                                     OUT checked int, OUT equal int, OUT mismatched int, OUT unread int,
                                     OUT mismatches jsonb, OUT error text, OUT last_sku text,
                                     OUT last_location text, OUT more boolean)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  got jsonb;
  r jsonb;
  l record;
  sr ves.stock_result;
  found_mismatches jsonb[] := '{}';  -- appended in place; one jsonb at the end
BEGIN
  got := coalesce(reads, ves._reconcile_read(d.id, d.kind, d.url, d.kind_options, d.timeout_ms,
                                             coalesce(stale_only, false), after_sku, after_location,
                                             max_listings, d.rate_limit, d.burst, d.concurrency));
  checked := 0; equal := 0; mismatched := 0;
  unread := (got ->> 'unread')::int;
  error := got ->> 'error';
  last_sku := got #>> '{last,sku}';
  last_location := got #>> '{last,location}';
  more := coalesce((got ->> 'more')::boolean, false);
  -- In one order (SKU, location), whatever order the platform answered in, so
  -- that two runs over the same SKUs (two platforms) take their row locks in
  -- the same order and never deadlock.
  FOR r IN SELECT x.value FROM jsonb_array_elements(got -> 'reads') x
           ORDER BY x.value ->> 'sku', x.value ->> 'location' LOOP
    SELECT li.sku, li.location, li.known_quantity, coalesce(i.available, 0) AS available,
           greatest(li.pushed_at, li.reported_at) AS last_known_at,
           EXISTS (SELECT FROM ves.outbox o WHERE o.destination_id = li.destination_id AND o.tenant_id = li.tenant_id
                     AND o.entity_type = 'inventory' AND o.entity_id = li.sku
                     AND o.status IN ('pending', 'failed')) AS queued INTO l
    FROM ves.listings li LEFT JOIN ves.inventory i ON (i.tenant_id, i.store_id, i.sku, i.location)
      = (li.tenant_id, li.store_id, li.sku, li.location)
    WHERE li.destination_id = d.id AND li.sku = r ->> 'sku' AND li.location = r ->> 'location';
    CONTINUE WHEN NOT FOUND;  -- unmapped meanwhile
    IF r -> 'quantity' = 'null'::jsonb OR (r ->> 'quantity')::bigint <> l.available THEN
      CONTINUE WHEN r ? 'asked_ms' AND l.last_known_at >= pg_catalog.to_timestamp((r ->> 'asked_ms')::float8 / 1000);
      CONTINUE WHEN EXISTS (SELECT FROM ves.platform_batches b
                            WHERE b.status = 'pending' AND b.destination_id = d.id
                              AND b.items @> jsonb_build_array(jsonb_build_object('sku', l.sku, 'location', l.location)));
    END IF;
    checked := checked + 1;
    IF r -> 'quantity' = 'null'::jsonb THEN
      mismatched := mismatched + 1;
      found_mismatches := found_mismatches || jsonb_build_object('sku', l.sku, 'location', l.location,
        'platform', NULL, 'available', l.available, 'decided', l.available);
      PERFORM ves._platform_missing(d.id, l.sku, l.location);
    ELSIF (r ->> 'quantity')::bigint = l.available THEN
      equal := equal + 1;
      UPDATE ves.listings x SET reported_quantity = l.available, reported_at = now(), known_quantity = l.available,
        state = 'synced', last_error = NULL, updated_at = now()
      WHERE x.destination_id = d.id AND x.sku = l.sku AND x.location = l.location;
    ELSIF (r ->> 'quantity')::bigint = l.known_quantity AND l.queued THEN
      -- The platform has the count we last gave it, and our newer count is
      -- queued for it: nothing changed there, and the queued push levels
      -- it. (A report through the rules would decide 'resolved' and queue
      -- the SKU once more.)
      mismatched := mismatched + 1;
      UPDATE ves.listings x SET reported_quantity = l.known_quantity, reported_at = now(), updated_at = now()
      WHERE x.destination_id = d.id AND x.sku = l.sku AND x.location = l.location;
      found_mismatches := found_mismatches || jsonb_build_object('sku', l.sku, 'location', l.location,
        'platform', l.known_quantity, 'available', l.available, 'decided', l.available, 'outcome', 'queued');
    ELSE
      mismatched := mismatched + 1;
      sr := ves._platform_report(d.id, l.sku, l.location, (r ->> 'quantity')::bigint, now(),
                                 'reconcile:' || run || ':' || l.sku || ':' || l.location);
      found_mismatches := found_mismatches || jsonb_build_object('sku', l.sku, 'location', l.location,
        'platform', (r ->> 'quantity')::bigint, 'available', l.available, 'decided', sr.available,
        'outcome', sr.outcome);
    END IF;
  END LOOP;
  mismatches := pg_catalog.to_jsonb(found_mismatches);
END $$;

-- The end of a full run: its figures go to ves.reconcile_runs (the last run
-- of each destination) and its sync.completed event is queued. Returns the
-- consistency score (equal / checked; NULL when nothing was checked).
CREATE FUNCTION ves._reconcile_finish(d ves.destinations, run text, started timestamptz, checked int, equal int,
                                      mismatched int, unread int, mismatches jsonb, error text) RETURNS float8
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  score float8 := CASE WHEN checked > 0 THEN equal::float8 / checked END;
BEGIN
  INSERT INTO ves.reconcile_runs AS x (destination_id, started_at, finished_at, checked, equal, mismatched, unread,
                                       consistency_score, mismatches, error)
  VALUES (d.id, started, clock_timestamp(), checked, equal, mismatched, unread, score, mismatches, error)
  ON CONFLICT (destination_id) DO UPDATE SET started_at = excluded.started_at, finished_at = excluded.finished_at,
    checked = excluded.checked, equal = excluded.equal, mismatched = excluded.mismatched, unread = excluded.unread,
    consistency_score = excluded.consistency_score, mismatches = excluded.mismatches, error = excluded.error;
  PERFORM ves._sync_event('sync.completed', jsonb_strip_nulls(jsonb_build_object('destination', d.name,
    'run', run, 'kind', 'reconcile', 'checked', checked, 'equal', equal, 'mismatched', mismatched,
    'unread', unread, 'consistency_score', score, 'error', error)),
    d.tenant_id, (d.kind_options ->> 'store_id')::uuid);
  RETURN score;
END $$;

-- The checks every reconciliation starts with: the destination as
-- ves._destination finds it (locked), the caller's right to its tenant, a
-- platform kind.
CREATE FUNCTION ves._reconcile_destination(destination text) RETURNS ves.destinations
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations;
BEGIN
  IF destination IS NULL THEN
    RAISE EXCEPTION 'destination must not be NULL' USING ERRCODE = 'VE011', HINT = 'Pass a destination''s name.';
  END IF;
  d := ves._destination(destination);
  IF d.tenant_id IS NOT NULL THEN
    PERFORM ves.check_tenant(d.tenant_id);
  END IF;
  IF NOT ves._destination_kind_platform(d.kind) THEN
    RAISE EXCEPTION 'destination "%" is of kind %, which has no listings to reconcile', destination, d.kind
      USING ERRCODE = 'VE054', HINT = 'Reconcile a commerce platform destination (shopify, tiktok_shop, amazon_sp, meta_catalog).';
  END IF;
  RETURN d;
END $$;

-- Reads the platform's counts of the destination's listings (stale_only:
-- only those in state 'stale'), records each that differs from the SKU's
-- available count as a platform report (ves._platform_report: the rules
-- decide, the decided count is pushed back) and returns the figures; a full
-- run's are kept in ves.reconcile_runs (ves.reconcile_status). Listings the
-- platform could not be asked about count as unread, with the error.
CREATE FUNCTION ves.reconcile(destination text, stale_only boolean DEFAULT false,
                              OUT checked int, OUT equal int, OUT mismatched int, OUT unread int,
                              OUT consistency_score float8, OUT mismatches jsonb, OUT error text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations := ves._reconcile_destination(destination);
  started timestamptz := clock_timestamp();
  run text := gen_random_uuid()::text;
  s record;
BEGIN
  -- A full run is announced on the destination's sync stream (98_sync_events.sql).
  IF NOT coalesce(stale_only, false) THEN
    PERFORM ves._sync_event('sync.started', jsonb_build_object('destination', d.name, 'run', run,
      'kind', 'reconcile'), d.tenant_id, (d.kind_options ->> 'store_id')::uuid);
  END IF;
  s := ves._reconcile_slice(d, coalesce(stale_only, false), run, NULL, NULL, NULL, NULL);
  checked := s.checked; equal := s.equal; mismatched := s.mismatched; unread := s.unread;
  mismatches := s.mismatches; error := s.error;
  IF coalesce(stale_only, false) THEN
    consistency_score := CASE WHEN checked > 0 THEN equal::float8 / checked END;
  ELSE
    consistency_score := ves._reconcile_finish(d, run, started, checked, equal, mismatched, unread, mismatches,
                                               error);
  END IF;
END $$;

-- Where the sync worker's next slice of a destination's reconciliation
-- starts, and what it reads with: the destination's platform, options and
-- limits, whether the run reads only stale listings (a run under way keeps
-- its own) and the last listing it read (NULL: none yet). The worker reads
-- the slice on its own HTTP engine between deliveries and hands what it read
-- to ves._reconcile_step.
CREATE FUNCTION ves._reconcile_place(destination text, stale_only boolean,
                                     OUT destination_id int, OUT kind text, OUT url text, OUT kind_options jsonb,
                                     OUT timeout_ms int, OUT rate_limit float8, OUT burst int,
                                     OUT concurrency int, OUT run_stale_only boolean, OUT after_sku text,
                                     OUT after_location text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations := ves._reconcile_destination(destination);
BEGIN
  destination_id := d.id; kind := d.kind; url := d.url; kind_options := d.kind_options;
  timeout_ms := d.timeout_ms; rate_limit := d.rate_limit; burst := d.burst; concurrency := d.concurrency;
  SELECT p.stale_only, p.after_sku, p.after_location INTO run_stale_only, after_sku, after_location
  FROM ves.reconcile_progress p WHERE p.destination_id = d.id;
  IF NOT FOUND THEN
    run_stale_only := coalesce(stale_only, false);
  END IF;
END $$;

-- The sync worker's reconciliation of one destination, a slice per call,
-- with `reads` what the worker read of the slice from the place
-- ves._reconcile_place gave (ves._reconcile_read's form, with "after": the
-- listing the slice started after, null for the first): the first call of a
-- run starts it (a full run announces itself as ves.reconcile does), each
-- call records the next slice, and the call that reads the last one (or
-- meets an error, which ends the run as ves.reconcile's would) finishes it.
-- Returns 'more', 'done' or 'failed' (ended with an error or listings left
-- unread). The run's place is kept in ves.reconcile_progress, so a
-- restarted worker goes on where the last one stopped; a slice read from
-- another place than the run's (it moved meanwhile) records nothing.
CREATE FUNCTION ves._reconcile_step(destination text, stale_only boolean, reads jsonb) RETURNS text
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations := ves._reconcile_destination(destination);
  p ves.reconcile_progress;
  s record;
  resumed boolean;
BEGIN
  IF reads IS NULL OR jsonb_typeof(reads) <> 'object' OR jsonb_typeof(reads -> 'reads') <> 'array' THEN
    RAISE EXCEPTION 'reads must be an object with the reads of a slice'
      USING ERRCODE = 'VE010', HINT = 'Only the sync worker steps a reconciliation, with what it read.';
  END IF;
  IF EXISTS (SELECT FROM jsonb_array_elements(reads -> 'reads') x
             WHERE jsonb_typeof(x.value) <> 'object'
                OR (x.value ? 'asked_ms' AND jsonb_typeof(x.value -> 'asked_ms') <> 'number')) THEN
    RAISE EXCEPTION 'every read must be an object, and its asked_ms a number'
      USING ERRCODE = 'VE010', HINT = 'asked_ms is the Unix time in milliseconds before the read was sent.';
  END IF;
  SELECT * INTO p FROM ves.reconcile_progress x WHERE x.destination_id = d.id FOR UPDATE;
  resumed := FOUND;
  IF (reads #>> '{after,sku}') IS DISTINCT FROM p.after_sku
     OR (reads #>> '{after,location}') IS DISTINCT FROM p.after_location THEN
    RETURN 'more';
  END IF;
  IF NOT resumed THEN
    p := ROW(d.id, gen_random_uuid()::text, coalesce(stale_only, false), clock_timestamp(), NULL, NULL, 0, 0, 0,
             0, '[]'::jsonb)::ves.reconcile_progress;
    IF NOT p.stale_only THEN
      PERFORM ves._sync_event('sync.started', jsonb_build_object('destination', d.name, 'run', p.run,
        'kind', 'reconcile'), d.tenant_id, (d.kind_options ->> 'store_id')::uuid);
    END IF;
    INSERT INTO ves.reconcile_progress SELECT p.*;
  END IF;
  s := ves._reconcile_slice(d, p.stale_only, p.run, p.after_sku, p.after_location, NULL, reads);
  -- A slice of a run under way that read nothing (the destination's rate
  -- was spent before its first read): the run's place stays as it is,
  -- nothing is written, and the commit need not wait for a WAL flush.
  IF resumed AND s.more AND s.error IS NULL AND s.checked = 0 AND s.unread = 0
     AND s.last_sku IS NOT DISTINCT FROM p.after_sku AND s.last_location IS NOT DISTINCT FROM p.after_location THEN
    RETURN 'more';
  END IF;
  -- The run's place is durable once the step returns, also in the worker's
  -- own sessions, which commit asynchronously: a crash loses no slice the
  -- platform was already asked about.
  PERFORM pg_catalog.set_config('synchronous_commit', 'on', true);
  p.checked := p.checked + s.checked; p.equal := p.equal + s.equal; p.mismatched := p.mismatched + s.mismatched;
  p.unread := p.unread + s.unread; p.mismatches := p.mismatches || s.mismatches;
  IF s.more AND s.error IS NULL THEN
    UPDATE ves.reconcile_progress x SET after_sku = s.last_sku, after_location = s.last_location,
      checked = p.checked, equal = p.equal, mismatched = p.mismatched, unread = p.unread, mismatches = p.mismatches
    WHERE x.destination_id = d.id;
    RETURN 'more';
  END IF;
  DELETE FROM ves.reconcile_progress x WHERE x.destination_id = d.id;
  IF NOT p.stale_only THEN
    PERFORM ves._reconcile_finish(d, p.run, p.started_at, p.checked, p.equal, p.mismatched, p.unread,
                                  p.mismatches, s.error);
  END IF;
  RETURN CASE WHEN s.error IS NULL THEN 'done' ELSE 'failed' END;
END $$;

-- What the sync worker reconciles now: every platform destination with
-- listings whose last full run is older than the sync setting
-- reconcile_interval (0 = never), and at once the stale listings of any;
-- first a run it has begun (ves.reconcile_progress), whichever it was.
-- Before its first full run a destination counts from its first mapped
-- listing: the mapping pushes every count, and a read right behind those
-- pushes would find the platform a push behind on every listing.
CREATE FUNCTION ves._reconcile_due() RETURNS TABLE (name text, stale_only boolean)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH s AS (SELECT coalesce((SELECT (x.settings ->> 'reconcile_interval')::interval FROM ves.sync_settings x),
                              interval '15 minutes') AS every),
  c AS (SELECT d.id, d.name, s.every > interval '0' AND coalesce(r.finished_at,
               (SELECT min(l.created_at) FROM ves.listings l WHERE l.destination_id = d.id)) < now() - s.every AS full_due
        FROM ves.destinations d CROSS JOIN s LEFT JOIN ves.reconcile_runs r ON r.destination_id = d.id
        WHERE NOT d.paused AND ves._destination_kind_platform(d.kind)
          AND EXISTS (SELECT FROM ves.listings l WHERE l.destination_id = d.id))
  SELECT c.name, coalesce(p.stale_only, NOT c.full_due)
  FROM c LEFT JOIN ves.reconcile_progress p ON p.destination_id = c.id
  WHERE p.destination_id IS NOT NULL OR c.full_due
     OR EXISTS (SELECT FROM ves.listings l WHERE l.destination_id = c.id AND l.state = 'stale')
  ORDER BY c.id
$$;

-- Rights ---------------------------------------------------------------------

REVOKE ALL ON ves.inbound_deliveries, ves.security_alerts, ves.reconcile_runs, ves.reconcile_status,
  ves.reconcile_progress FROM PUBLIC;
REVOKE ALL ON FUNCTION ves._platform_source(ves.destinations),
  ves._platform_report(int, text, text, bigint, timestamptz, text), ves._platform_missing(int, text, text),
  ves._inbound_message(int, text, text, uuid, uuid, jsonb, jsonb, bytea), ves.receive_webhook(text, jsonb, bytea),
  ves._purge_inbound_deliveries(), ves._drain_security_alerts(), ves.acknowledge_security_alert(bigint, text),
  ves._reconcile_read(int, text, text, jsonb, int, boolean, text, text, int, float8, int, int),
  ves.reconcile(text, boolean),
  ves._reconcile_due(), ves._reconcile_slice(ves.destinations, boolean, text, text, text, int, jsonb),
  ves._reconcile_finish(ves.destinations, text, timestamptz, int, int, int, int, jsonb, text),
  ves._reconcile_destination(text), ves._reconcile_place(text, boolean), ves._reconcile_step(text, boolean, jsonb)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves.receive_webhook(text, jsonb, bytea) TO ves_writer;
GRANT EXECUTE ON FUNCTION ves.acknowledge_security_alert(bigint, text), ves.reconcile(text, boolean),
  ves._drain_security_alerts() TO ves_admin;
GRANT SELECT ON ves.inbound_deliveries TO ves_admin;
ALTER TABLE ves.security_alerts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ves.security_alerts FOR SELECT USING (ves.tenant_visible(tenant_id));
GRANT SELECT ON ves.security_alerts, ves.reconcile_status TO ves_reader;
GRANT SELECT ON ves.reconcile_runs TO ves_admin;
GRANT EXECUTE ON FUNCTION ves._drain_security_alerts(), ves._purge_inbound_deliveries(), ves._reconcile_due(),
  ves.reconcile(text, boolean), ves._reconcile_place(text, boolean), ves._reconcile_step(text, boolean, jsonb)
  TO ves_worker;

-- The inbound sync settings, shown by ves.get_sync_settings.
UPDATE ves.sync_settings s
  SET settings = '{"reconcile_interval": "15 minutes", "webhook_dedupe_window": "7 days"}'::jsonb || s.settings;
