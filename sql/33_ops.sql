-- Operations: alert acknowledgement, alerts delivered to destinations with
-- "alerts": true, sync.* events on a sync stream (and no loops of them),
-- the destination_paused rule, data consistency and recovery time in
-- ves.sync_metrics. No worker runs here: ves.push_events sends and
-- ves.evaluate_alerts() is called by hand. The worker and the mock sink
-- are in test/t/053_ops.pl.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000003301'''
\set s '''00000000-0000-0000-0000-000000003302'''

-- The option is checked like the other common ones.
SELECT regress_try($q$SELECT ves.create_destination('ops-bad', 'webhook', 'http://127.0.0.1:9/x', '{"alerts": "yes"}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('ops-bad', 'shopify', 'https://example.com/k',
  '{"access_token": "shpat_x", "tenant_id": "00000000-0000-0000-0000-000000003301",
    "store_id": "00000000-0000-0000-0000-000000003302", "alerts": true}')$q$);
SELECT count(*) AS none FROM ves.destinations WHERE name = 'ops-bad';

-- ops-dead: its rows die at the first attempt; it takes the sync stream too
-- and alerts, but never hears about itself. ops-watch: takes both, is
-- unreachable as well (so its own rows die: that must start no chain).
SELECT name, alerts, entity_types FROM ves.create_destination('ops-dead', 'http', 'http://127.0.0.1:9/dead',
  '{"tenant_id": "00000000-0000-0000-0000-000000003301", "entity_types": ["opsing", "sync"],
    "max_attempts": 1, "timeout_ms": 2000, "alerts": true}');
SELECT name, alerts, entity_types FROM ves.create_destination('ops-watch', 'webhook', 'http://127.0.0.1:9/watch',
  '{"tenant_id": "00000000-0000-0000-0000-000000003301", "entity_types": ["sync"], "max_attempts": 1,
    "timeout_ms": 2000, "alerts": true}');
SELECT (ves.alter_destination('ops-watch', '{"alerts": false}')).alerts AS off,
       (ves.alter_destination('ops-watch', '{"alerts": true}')).alerts AS on_again;
-- A destination that takes everything gets neither stream.
SELECT (ves.create_destination('ops-all', 'http', 'http://127.0.0.1:9/all',
  '{"tenant_id": "00000000-0000-0000-0000-000000003301"}')).name;

-- A row goes dead: sync.failed on ops-dead's sync stream, not on the
-- entity's; queued for ops-watch only.
SELECT count(*) FROM ves.append(:t, :s, 'opsing', 'o-1', 'thing.happened', '{}');
SELECT sent, synced, failed, dead FROM ves.push_events('ops-dead');
SELECT entity_type, entity_id, event_type, source, payload ->> 'destination' AS destination,
       payload ->> 'entity_type' AS about_type, payload ->> 'entity_id' AS about_id,
       (payload ->> 'attempts')::int AS attempts, payload ? 'last_error' AS has_error,
       payload ? 'outbox_id' AND payload ? 'event_id' AS ids
FROM ves.events WHERE tenant_id = :t AND entity_type IN ('sync', 'opsing') ORDER BY position;
SELECT d.name, o.entity_type, o.entity_id, o.status FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
WHERE o.tenant_id = :t AND o.entity_type = 'sync' ORDER BY d.name;
SELECT count(*) AS verified FROM ves.events e
WHERE e.tenant_id = :t AND e.entity_type = 'sync' AND ves.verify_event(e.event_id);

-- The dead_rows alert fires: alert.firing on the alert's own stream,
-- queued for ops-watch (not for ops-dead, which it is about, nor ops-all).
SELECT ves.evaluate_alerts() > 0 AS changed;
SELECT alert_id AS dead_alert FROM ves.alerts WHERE rule = 'dead_rows' AND destination = 'ops-dead' AND status = 'firing' \gset
SELECT e.entity_type, e.entity_id = :'dead_alert' AS own_stream, e.event_type, e.payload ->> 'rule' AS rule,
       e.payload ->> 'destination' AS destination, e.payload ->> 'status' AS status
FROM ves.events e WHERE e.tenant_id = :t AND e.entity_type = 'sync.alert' ORDER BY e.position;
SELECT d.name, o.entity_type, o.status FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
WHERE o.tenant_id = :t AND o.entity_type = 'sync.alert' ORDER BY d.name;

-- ops-watch is unreachable: its sync.failed and alert rows die, and no
-- sync.failed is appended about them (no loop).
SELECT count(*) AS sync_events_before FROM ves.events WHERE entity_type = 'sync' \gset
SELECT sent, dead FROM ves.push_events('ops-watch');
SELECT count(*) - :sync_events_before AS new_sync_events FROM ves.events WHERE entity_type = 'sync';
SELECT d.name, o.entity_type, o.status FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
WHERE o.tenant_id = :t AND o.entity_type IN ('sync', 'sync.alert') ORDER BY d.name, o.entity_type;

-- Acknowledgement: who and when, in ves.alerts and the audit log; again
-- keeps the first; nothing is announced until the alert resolves.
SELECT coalesce(max(audit_id), 0) AS audit_before FROM ves.audit_log \gset
SELECT rule, status, acknowledged_at IS NOT NULL AS acknowledged, acknowledged_by = session_user AS by_me,
       acknowledgement_note FROM ves.acknowledge_alert(:dead_alert, 'looking at the endpoint');
SELECT acknowledgement_note FROM ves.acknowledge_alert(:dead_alert, 'again');
SELECT action, target, arguments - 'alert_id' AS arguments, (arguments ->> 'alert_id')::bigint = :dead_alert AS alert
FROM ves.audit_log WHERE audit_id > :audit_before ORDER BY audit_id;
SELECT ves.evaluate_alerts() >= 0 AS evaluated;
SELECT count(*) AS alert_events FROM ves.events WHERE tenant_id = :t AND entity_type = 'sync.alert' AND entity_id = :'dead_alert';
SELECT regress_try($q$SELECT ves.acknowledge_alert(-1)$q$);
SELECT regress_try($q$SELECT ves.acknowledge_alert(NULL)$q$);

-- The dead rows are closed: the alert resolves (announced, acknowledged)
-- and can no longer be acknowledged.
SELECT ves.acknowledge_events(ARRAY(SELECT o.id FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
                                    WHERE d.name IN ('ops-dead', 'ops-watch') AND o.status = 'dead')) AS closed;
SELECT ves.evaluate_alerts() > 0 AS changed;
SELECT status, acknowledged_at IS NOT NULL AS acknowledged FROM ves.alerts WHERE alert_id = :dead_alert;
SELECT e.event_type, e.payload ->> 'status' AS status, e.payload ? 'acknowledged_at' AS acknowledged
FROM ves.events e WHERE e.tenant_id = :t AND e.entity_type = 'sync.alert' AND e.entity_id = :'dead_alert'
ORDER BY e.position;
SELECT regexp_replace(regress_try(format('SELECT ves.acknowledge_alert(%s)', :dead_alert)), 'alert \d+', 'alert N');

-- destination_paused: a pause by the worker (its error as the reason)
-- fires; an operator's pause does not.
SELECT name, metric, comparison, threshold, severity FROM ves.alert_rules
WHERE name IN ('destination_paused', 'slow_recovery', 'low_consistency') ORDER BY name;
SELECT (ves.pause_destination('ops-all', 'maintenance')).paused;
SELECT ves.evaluate_alerts() >= 0 AS evaluated;
SELECT count(*) AS operator_pause_alerts FROM ves.alerts WHERE rule = 'destination_paused' AND destination = 'ops-all';
SELECT (ves.resume_destination('ops-all')).paused;
UPDATE ves.destinations SET paused = true, paused_reason = 'credentials refused (HTTP 401)',
  last_error = 'credentials refused (HTTP 401)', last_error_at = now() WHERE name = 'ops-all';
SELECT ves.evaluate_alerts() > 0 AS changed;
SELECT rule, destination, status, value FROM ves.alerts WHERE rule = 'destination_paused' AND destination = 'ops-all';
SELECT (ves.resume_destination('ops-all')).paused;
SELECT ves.evaluate_alerts() > 0 AS changed;
SELECT rule, status FROM ves.alerts WHERE rule = 'destination_paused' AND destination = 'ops-all';

-- Consistency from the last full reconciliation, per destination and in
-- total (equal over checked of every last run).
INSERT INTO ves.reconcile_runs (destination_id, started_at, finished_at, checked, equal, mismatched, unread, consistency_score)
SELECT id, now(), now(), 4, 3, 1, 0, 0.75 FROM ves.destinations WHERE name = 'ops-dead';
INSERT INTO ves.reconcile_runs (destination_id, started_at, finished_at, checked, equal, mismatched, unread, consistency_score)
SELECT id, now(), now(), 6, 6, 0, 0, 1 FROM ves.destinations WHERE name = 'ops-watch';
SELECT destination, data_consistency_score FROM ves.sync_metrics('5 min')
WHERE destination IN ('ops-dead', 'ops-watch', 'ops-all') OR destination IS NULL ORDER BY destination NULLS LAST;
SELECT line FROM regexp_split_to_table(ves.prometheus_metrics(), E'\n') line
WHERE line LIKE 'pgves_data_consistency_score{destination="ops-%' ORDER BY line;
SELECT ves.evaluate_alerts() >= 0 AS evaluated;
SELECT rule, status, round(value::numeric, 2) AS value FROM ves.alerts
WHERE rule = 'low_consistency' AND status = 'firing';
DELETE FROM ves.reconcile_runs WHERE destination_id IN (SELECT id FROM ves.destinations WHERE name LIKE 'ops-%');

-- Recovery: the breaker opened two minutes ago with a row waiting; the
-- recovery runs until that row is delivered.
SELECT count(*) FROM ves.append(:t, :s, 'opsing', 'o-2', 'thing.happened', '{}');
UPDATE ves.destinations SET breaker_state = 'open', last_error_at = now() - interval '2 min' WHERE name = 'ops-all';
SELECT ves.evaluate_alerts() >= 0 AS evaluated;
SELECT r.cause, r.drained_at IS NULL AS under_way FROM ves.recoveries r JOIN ves.destinations d ON d.id = r.destination_id
WHERE d.name = 'ops-all';
SELECT recovery_time >= interval '2 min' AS two_minutes_so_far FROM ves.sync_metrics('5 min') WHERE destination = 'ops-all';
UPDATE ves.destinations SET breaker_state = 'closed' WHERE name = 'ops-all';
SELECT ves.evaluate_alerts() >= 0 AS evaluated;
SELECT r.drained_at IS NULL AS under_way FROM ves.recoveries r JOIN ves.destinations d ON d.id = r.destination_id
WHERE d.name = 'ops-all';
UPDATE ves.outbox o SET status = 'synced', synced_at = now() FROM ves.destinations d
WHERE d.id = o.destination_id AND d.name = 'ops-all' AND o.status = 'pending';
SELECT ves.evaluate_alerts() >= 0 AS evaluated;
SELECT r.cause, r.drained_at IS NOT NULL AS drained, r.drained_at - r.started_at BETWEEN interval '2 min' AND interval '3 min' AS took
FROM ves.recoveries r JOIN ves.destinations d ON d.id = r.destination_id WHERE d.name = 'ops-all';
SELECT d.destination, d.recovery_time BETWEEN interval '2 min' AND interval '3 min' AS last_recovery
FROM ves.sync_metrics('5 min') d WHERE d.destination = 'ops-all';
SELECT recovery_time >= interval '2 min' AS total_recovery FROM ves.sync_metrics('5 min') WHERE destination IS NULL;
SELECT split_part(line, ' ', 2)::float8 BETWEEN 120 AND 180 AS exposed
FROM regexp_split_to_table(ves.prometheus_metrics(), E'\n') line WHERE line LIKE 'pgves_recovery_seconds{destination="ops-all"%';

-- Cross-platform sync: a SKU's change counts once every platform it is
-- mapped to has the count, on the destination whose acknowledgement
-- completed it (here the listings are updated the way the worker records
-- an acknowledged push).
SELECT (ves.create_destination('ops-shop-' || x, 'shopify', 'https://ops-' || x || '.myshopify.com',
  jsonb_build_object('tenant_id', :t, 'store_id', :s, 'access_token', 'shpat_ops',
                     'location_id', 'gid://shopify/Location/7'))).name
FROM unnest(ARRAY['a', 'b']) x;
SELECT count(*) AS mapped FROM unnest(ARRAY['a', 'b']) WITH ORDINALITY u(x, n),
  LATERAL ves.map_listing('ops-shop-' || x, 'OPS-1', jsonb_build_object('inventory_item_id', 'gid://shopify/InventoryItem/33' || n));
SELECT ves.reset_sync_metrics();
SELECT outcome, available FROM ves.set_stock(:t, :s, 'OPS-1', 8);
UPDATE ves.listings l SET known_quantity = 8, state = 'synced' FROM ves.destinations d
WHERE d.id = l.destination_id AND d.name = 'ops-shop-a';
SELECT destination, cross_platform_sync_p95 IS NOT NULL AS sampled FROM ves.sync_metrics('5 min')
WHERE destination LIKE 'ops-shop-%' OR destination IS NULL ORDER BY destination NULLS LAST;
UPDATE ves.listings l SET known_quantity = 8, state = 'synced' FROM ves.destinations d
WHERE d.id = l.destination_id AND d.name = 'ops-shop-b';
SELECT destination, cross_platform_sync_p95 IS NOT NULL AS sampled, cross_platform_sync_p95 < 10 AS within_seconds
FROM ves.sync_metrics('5 min') WHERE destination LIKE 'ops-shop-%' OR destination IS NULL ORDER BY destination NULLS LAST;
SELECT line FROM regexp_split_to_table(ves.prometheus_metrics(), E'\n') line
WHERE line LIKE 'pgves_cross_platform_sync_seconds_count{destination="ops-shop-%' ORDER BY line;
-- Nothing new agrees: no sample (the live counters hold exactly one).
UPDATE ves.listings l SET state = 'synced' FROM ves.destinations d
WHERE d.id = l.destination_id AND d.name LIKE 'ops-shop-%';
SELECT sum(c.counters[1 + k]) AS cross_platform_samples
FROM ves._sync_metrics_live(false) c,
     generate_series(array_length(c.counters, 1) - 23, array_length(c.counters, 1) - 2) k;

-- The internal entry point other runs call; refused arguments.
SELECT event_id AS started FROM ves._sync_event('sync.started', '{"destination": "ops-all", "kind": "pull"}', :t, :s) \gset
SELECT e.entity_type, e.entity_id, e.event_type, e.payload, e.store_id = :s AS store FROM ves.events e WHERE e.event_id = :'started';
SELECT d.name FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id WHERE o.event_id = :'started' ORDER BY d.name;
SELECT regress_try($q$SELECT ves._sync_event('started', '{"destination": "ops-all"}', NULL, NULL)$q$);
SELECT regress_try($q$SELECT ves._sync_event('sync.started', '{}', NULL, NULL)$q$);
-- Appending to the sync stream through ves.append queues nothing.
SELECT event_id AS direct FROM ves.append(:t, :s, 'sync', 'ops-all', 'sync.started', '{}') \gset
SELECT count(*) AS queued FROM ves.outbox o WHERE o.event_id = :'direct';

SELECT ves.drop_destination(name) FROM ves.destinations WHERE name LIKE 'ops-%' ORDER BY name;
