-- Inbound webhooks, security alerts and reconciliation, as far as they can be
-- exercised without a platform: unknown and non-platform destinations, the
-- roles that may call what, forged events raising alerts that outlive the
-- refusing call, acknowledging alerts, and the inbound sync settings.
-- Platform webhooks and reconciliation against the mock platforms are in
-- test/t/026_inbound_reconcile.pl. No worker runs here: alerts are recorded
-- with ves._drain_security_alerts(), as the worker does.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000000001'''

CREATE ROLE regress_inb_app IN ROLE ves_writer;
CREATE ROLE regress_inb_reader IN ROLE ves_reader;
CREATE ROLE regress_inb_admin IN ROLE ves_admin;
CREATE ROLE regress_inb_nobody;

-- Webhooks: arguments, unknown destinations, kinds that receive none.
SELECT regress_try($q$SELECT * FROM ves.receive_webhook('nowhere', '{}', '\x7b7d')$q$);
SELECT regress_try($q$SELECT * FROM ves.receive_webhook(NULL, '{}', '\x7b7d')$q$);
SELECT regress_try($q$SELECT * FROM ves.receive_webhook('nowhere', '{}', NULL)$q$);
SELECT name FROM ves.create_destination('inb-hook', 'webhook', 'https://example.com/hook',
  '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}');
SELECT regress_try($q$SELECT * FROM ves.receive_webhook('inb-hook', '{"webhook-id": "m1"}', '\x7b7d')$q$);
SELECT regress_try($q$SELECT * FROM ves.receive_webhook('inb-hook', '{"webhook-id": 1}', '\x7b7d')$q$);
SELECT regress_try($q$SELECT * FROM ves.reconcile('inb-hook')$q$);
SELECT regress_try($q$SELECT * FROM ves.reconcile('nowhere')$q$);

-- Who may call: the application (ves_writer) receives webhooks; readers and
-- others may not, nor may they touch the internals or acknowledge alerts.
SET ROLE regress_inb_app;
SELECT regress_try($q$SELECT * FROM ves.receive_webhook('inb-hook', '{}', '\x7b7d')$q$);
SELECT regress_try($q$SELECT ves._drain_security_alerts()$q$);
SELECT regress_try($q$SELECT * FROM ves.acknowledge_security_alert(1)$q$);
SELECT regress_try($q$SELECT * FROM ves.reconcile('inb-hook')$q$);
SELECT regress_try($q$SELECT ves._inbound_message(1, 'shopify', 'x', NULL, NULL, '{}', '{}', '\x')$q$);
SELECT regress_try($q$SELECT * FROM ves._platform_report(1, 'sku', 'default', 1, now(), 'r')$q$);
SELECT regress_try($q$SELECT count(*) FROM ves.inbound_deliveries$q$);
RESET ROLE;
SET ROLE regress_inb_reader;
SELECT regress_try($q$SELECT * FROM ves.receive_webhook('inb-hook', '{}', '\x7b7d')$q$);
RESET ROLE;
SET ROLE regress_inb_nobody;
SELECT regress_try($q$SELECT * FROM ves.receive_webhook('inb-hook', '{}', '\x7b7d')$q$);
SELECT regress_try($q$SELECT count(*) FROM ves.security_alerts$q$);
RESET ROLE;

-- Forged events: refused by ves.ingest_event (the error rolls its
-- transaction back), yet each leaves a security alert behind.
SELECT ves._drain_security_alerts() >= 0 AS earlier_alerts_recorded;
CREATE TEMP TABLE forged AS SELECT $v${"ves_version": 1, "event_id": "fb47ed76-41c7-4355-8025-9544c6858f8b", "tenant_id": "00000000-0000-0000-0000-000000000001", "store_id": "00000000-0000-0000-0000-000000000002", "source_agent_id": "11111111-1111-1111-1111-111111111111", "agent_key_id": 1, "entity_type": "InventoryItem", "entity_id": "WIDGET-001", "event_type": "inventory.adjusted", "created_at": "2026-11-01T12:00:00.100Z", "payload_kind": 0, "payload": {"delta": 100, "reason": "shipment_receive", "location_bin": "A-12"}, "payload_plain_hash": "0x8ddca36cba5e298a087cadff58906633ef78d185529454290a05771ea5df2944", "payload_cipher_hash": "0x0000000000000000000000000000000000000000000000000000000000000000", "agent_signature": "0x2da98408cb3974e7599cd98aaab942d51ede28e2b77e2dd1c2e7e8029d9e4741b9140cfc6518050fd9f26d20f8f3e6668668024fb82a74e46c45aa659973f60c"}$v$::jsonb AS envelope;
-- The payload changed, its hash not: payload hash mismatch.
SELECT regress_try(format('SELECT * FROM ves.ingest_event(%L)', jsonb_set(envelope, '{payload,delta}', '9999')
  || '{"event_id": "aaaaaaaa-0000-4000-8000-0000000002a1"}')) FROM forged;
-- The payload and its hash changed, the signature not: bad signature.
SELECT regress_try(format('SELECT * FROM ves.ingest_event(%L)', jsonb_set(jsonb_set(envelope, '{payload,delta}', '9999'),
  '{payload_plain_hash}', to_jsonb('0x' || encode(ves.payload_hash(jsonb_set(envelope->'payload', '{delta}', '9999')), 'hex')))
  || '{"event_id": "aaaaaaaa-0000-4000-8000-0000000002a2"}')) FROM forged;
-- Nothing was stored, and nothing is recorded until the queue is drained
-- (by the worker, or here by hand).
SELECT count(*) AS stored FROM ves.events WHERE event_id IN ('aaaaaaaa-0000-4000-8000-0000000002a1', 'aaaaaaaa-0000-4000-8000-0000000002a2');
SELECT count(*) AS recorded_before_drain FROM ves.security_alerts WHERE event_id IN ('aaaaaaaa-0000-4000-8000-0000000002a1', 'aaaaaaaa-0000-4000-8000-0000000002a2');
-- A drain in a transaction that rolls back leaves them queued.
BEGIN;
SELECT ves._drain_security_alerts() AS drained;
ROLLBACK;
SELECT ves._drain_security_alerts() AS drained;
SELECT ves._drain_security_alerts() AS drained_again;
SELECT kind, source, tenant_id, store_id, event_id, reason, raw_truncated, reported_by = current_user AS by_me,
       convert_from(raw, 'UTF8')::jsonb ->> 'event_id' AS raw_event_id, acknowledged_at IS NULL AS open
FROM ves.security_alerts WHERE event_id IN ('aaaaaaaa-0000-4000-8000-0000000002a1', 'aaaaaaaa-0000-4000-8000-0000000002a2')
ORDER BY event_id;
UN
-- Readers see their tenant's alerts; only administrators acknowledge.
SET ves.tenant_id = '00000000-0000-0000-0000-000000000001';
SET ROLE regress_inb_reader;
SELECT count(*) AS readable FROM ves.security_alerts WHERE event_id IN ('aaaaaaaa-0000-4000-8000-0000000002a1', 'aaaaaaaa-0000-4000-8000-0000000002a2');
SELECT regress_try(format('SELECT * FROM ves.acknowledge_security_alert(%s)', min(id))) FROM ves.security_alerts;
RESET ROLE;
SET ves.tenant_id = '00000000-0000-0000-0000-000000000009';
SET ROLE regress_inb_reader;
SELECT count(*) AS other_tenant_sees FROM ves.security_alerts WHERE event_id IN ('aaaaaaaa-0000-4000-8000-0000000002a1', 'aaaaaaaa-0000-4000-8000-0000000002a2');
RESET ROLE;
RESET ves.tenant_id;
SET ROLE regress_inb_admin;
SELECT id IS NOT NULL AS acknowledged, action, acknowledged_by = session_user AS by_me, acknowledged_at IS NOT NULL AS at
FROM ves.acknowledge_security_alert((SELECT id FROM ves.security_alerts WHERE event_id = 'aaaaaaaa-0000-4000-8000-0000000002a1'), action => 'skip');
SELECT regexp_replace(regress_try(format('SELECT * FROM ves.acknowledge_security_alert(%s, ''skip'')', id)), 'alert \d+ (.*) by \w+', 'alert N \1 by me') FROM ves.security_alerts WHERE event_id = 'aaaaaaaa-0000-4000-8000-0000000002a1';
SELECT regress_try(format('SELECT * FROM ves.acknowledge_security_alert(%s, ''ignore'')', id)) FROM ves.security_alerts WHERE event_id = 'aaaaaaaa-0000-4000-8000-0000000002a2';
SELECT regress_try('SELECT * FROM ves.acknowledge_security_alert(999999)');
SELECT action FROM ves.acknowledge_security_alert((SELECT id FROM ves.security_alerts WHERE event_id = 'aaaaaaaa-0000-4000-8000-0000000002a2'), 'retry');
RESET ROLE;

-- Sync settings: the periodic reconciliation (0 = off) and how long
-- delivery ids are kept against replays.
SELECT s->'reconcile_interval' AS reconcile_interval, s->'webhook_dedupe_window' AS webhook_dedupe_window
FROM ves.get_sync_settings() s;
SELECT ves.set_sync_settings('{"reconcile_interval": "0"}')->'reconcile_interval';
SELECT ves.set_sync_settings('{"reconcile_interval": "5 minutes", "webhook_dedupe_window": "2 days"}')
  - ARRAY['window', 'claim_batch', 'lease_seconds', 'safety_poll_ms', 'synced_retention', 'purge_batch', 'order_hold'];
SELECT regress_try($q$SELECT ves.set_sync_settings('{"reconcile_interval": "soon"}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"webhook_dedupe_window": "0"}')$q$);
SELECT ves.set_sync_settings('{"reconcile_interval": "15 minutes", "webhook_dedupe_window": "7 days"}') IS NOT NULL AS restored;
-- No platform destination has listings: nothing is due.
SELECT count(*) AS due FROM ves._reconcile_due();
-- A platform destination's first full run comes one reconcile_interval
-- after its first listing was mapped (the mapping pushes every count);
-- a stale listing is due at once, alone.
SELECT name FROM ves.create_destination('inb-due', 'shopify', 'http://127.0.0.1:9',
  '{"tenant_id": "aaaaaaaa-0000-4000-8000-000000000001", "store_id": "aaaaaaaa-0000-4000-8000-0000000000ff",
    "access_token": "shpat_regress", "location_id": "gid://shopify/Location/1"}');
SELECT count(*) AS mapped FROM ves.map_listing('inb-due', 'SKU-DUE', '{"inventory_item_id": "gid://shopify/InventoryItem/9"}');
SELECT count(*) AS due_at_once FROM ves._reconcile_due();
SELECT ves.set_sync_settings('{"reconcile_interval": "1 second"}') IS NOT NULL AS one_second;
SELECT pg_sleep(1.2);
SELECT * FROM ves._reconcile_due() WHERE name = 'inb-due';
SELECT ves.set_sync_settings('{"reconcile_interval": "15 minutes"}') IS NOT NULL AS restored;
UPDATE ves.listings SET state = 'stale' WHERE sku = 'SKU-DUE';
SELECT * FROM ves._reconcile_due() WHERE name = 'inb-due';
-- The worker asks about once a second: with its last full run recent,
-- 2,000 more synced listings cost no read of theirs (whether scanned or
-- fetched through an index), and the stale one is still found.
INSERT INTO ves.listings (destination_id, tenant_id, store_id, sku, location, platform_ref, platform_key, state)
SELECT d.id, d.tenant_id, (d.kind_options ->> 'store_id')::uuid, 'SKU-MANY-' || g, 'default', '{}', 'many-' || g, 'synced'
FROM ves.destinations d, generate_series(1, 2000) g WHERE d.name = 'inb-due';
INSERT INTO ves.reconcile_runs (destination_id, started_at, finished_at, checked, equal, mismatched, unread, consistency_score)
SELECT id, now(), now(), 1, 1, 0, 0, 1 FROM ves.destinations WHERE name = 'inb-due';
ANALYZE ves.listings;
BEGIN;
SELECT seq_tup_read + idx_tup_fetch AS read_before
FROM pg_stat_xact_user_tables WHERE relid = 'ves.listings'::regclass \gset
SELECT * FROM ves._reconcile_due() WHERE name = 'inb-due';
SELECT seq_tup_read + idx_tup_fetch - :read_before < 10 AS few_read
FROM pg_stat_xact_user_tables WHERE relid = 'ves.listings'::regclass;
ROLLBACK;
-- A run the worker has begun (ves.reconcile_progress) is due until it ends,
-- whatever the interval, and keeps its kind (full here, though the last full
-- run is recent and nothing is stale).
BEGIN;
UPDATE ves.listings SET state = 'synced' WHERE sku = 'SKU-DUE';
INSERT INTO ves.reconcile_progress (destination_id, run, stale_only, started_at, after_sku, after_location,
                                    checked, equal, mismatched, unread, mismatches)
SELECT id, 'regress-run', false, now(), 'SKU-MANY-1', 'default', 1, 1, 0, 0, '[]' FROM ves.destinations WHERE name = 'inb-due';
SELECT * FROM ves._reconcile_due() WHERE name = 'inb-due';
ROLLBACK;
-- The worker's step: only for platform destinations, with the reads of a
-- slice; nothing of a refused step is left behind.
SELECT regress_try($q$SELECT ves._reconcile_step('inb-hook', false, '{"reads": []}')$q$);
SELECT regress_try($q$SELECT ves._reconcile_step('inb-due', false, NULL)$q$);
SELECT regress_try($q$SELECT ves._reconcile_step('inb-due', false, '{"reads": {}}')$q$);
SELECT regress_try($q$SELECT ves._reconcile_step(NULL, false, '{"reads": []}')$q$);
SELECT regress_try($q$SELECT ves._reconcile_step('inb-due', false,
  '{"reads": [{"sku": "SKU-MANY-1", "location": "default", "quantity": 1, "asked_ms": "soon"}]}')$q$);
SELECT regress_try($q$SELECT ves._reconcile_step('inb-due', false, '{"reads": [1]}')$q$);
SELECT count(*) AS nothing_written FROM ves.reconcile_progress;
SELECT regress_try($q$SELECT * FROM ves._reconcile_place('inb-hook', false)$q$);
SELECT count(*) AS nothing_in_progress FROM ves.reconcile_progress;
-- Where the worker's first slice starts: the destination's limits, from the
-- first listing; a run under way keeps its own place and listings.
SELECT kind, timeout_ms, run_stale_only, after_sku, after_location FROM ves._reconcile_place('inb-due', true);
BEGIN;
INSERT INTO ves.reconcile_progress (destination_id, run, stale_only, started_at, after_sku, after_location,
                                    checked, equal, mismatched, unread, mismatches)
SELECT id, 'regress-run', false, now(), 'SKU-MANY-1', 'default', 1, 1, 0, 0, '[]' FROM ves.destinations WHERE name = 'inb-due';
SELECT run_stale_only, after_sku, after_location FROM ves._reconcile_place('inb-due', true);
-- A slice read from another place than the run's records nothing.
SELECT ves._reconcile_step('inb-due', false, '{"reads": [{"sku": "SKU-MANY-2", "location": "default", "quantity": 1}],
  "unread": 0, "error": null, "last": {"sku": "SKU-MANY-2", "location": "default"}, "more": true,
  "after": null}') AS stale_slice;
SELECT after_sku, checked FROM ves.reconcile_progress;
ROLLBACK;
-- A read that differs from the SKU's count is not used when the listing's
-- last push was acknowledged after the read was sent (the platform may have
-- answered with its count from before that push); the same read sent after
-- the push is a platform report.
BEGIN;
UPDATE ves.listings l SET pushed_at = now(), known_quantity = 0, state = 'synced'
FROM ves.destinations d WHERE d.id = l.destination_id AND d.name = 'inb-due' AND l.sku IN ('SKU-MANY-1', 'SKU-MANY-3');
SELECT ves._reconcile_step('inb-due', false, jsonb_build_object(
  'reads', jsonb_build_array(
    jsonb_build_object('sku', 'SKU-MANY-1', 'location', 'default', 'quantity', 3,
                       'asked_ms', (extract(epoch FROM now()) * 1000)::bigint - 10000),
    jsonb_build_object('sku', 'SKU-MANY-2', 'location', 'default', 'quantity', 0,
                       'asked_ms', (extract(epoch FROM now()) * 1000)::bigint - 10000)),
  'unread', 0, 'error', NULL, 'last', jsonb_build_object('sku', 'SKU-MANY-2', 'location', 'default'),
  'more', true, 'after', NULL)) AS read_before_the_push;
-- Nor is a differing read of a listing in a batch the platform accepted and
-- has not finished applying.
INSERT INTO ves.platform_batches (destination_id, tenant_id, handle, items)
SELECT id, tenant_id, 'regress-handle', '[{"sku": "SKU-MANY-4", "location": "default", "key": "k4"}]'
FROM ves.destinations WHERE name = 'inb-due';
SELECT ves._reconcile_step('inb-due', false, jsonb_build_object(
  'reads', jsonb_build_array(
    jsonb_build_object('sku', 'SKU-MANY-3', 'location', 'default', 'quantity', 3,
                       'asked_ms', (extract(epoch FROM now()) * 1000)::bigint + 1000),
    jsonb_build_object('sku', 'SKU-MANY-4', 'location', 'default', 'quantity', 4,
                       'asked_ms', (extract(epoch FROM now()) * 1000)::bigint + 1000)),
  'unread', 0, 'error', NULL, 'last', jsonb_build_object('sku', 'SKU-MANY-4', 'location', 'default'),
  'more', true, 'after', jsonb_build_object('sku', 'SKU-MANY-2', 'location', 'default'))) AS read_after_the_push;
SELECT after_sku, checked, equal, mismatched, jsonb_array_length(mismatches) AS mismatches FROM ves.reconcile_progress;
SELECT sku, on_hand FROM ves.inventory WHERE sku IN ('SKU-MANY-1', 'SKU-MANY-3', 'SKU-MANY-4') ORDER BY sku;
ROLLBACK;
-- Nobody but the worker's role may step a run, and nobody may call the
-- pieces of a run or read its progress directly.
SET ROLE regress_inb_admin;
SELECT regress_try($q$SELECT ves._reconcile_step('inb-due', false, '{"reads": []}')$q$);
SELECT regress_try($q$SELECT * FROM ves._reconcile_place('inb-due', false)$q$);
SELECT regress_try($q$SELECT ves._reconcile_finish(d, 'r', now(), 0, 0, 0, 0, '[]', NULL) FROM ves.destinations d$q$);
SELECT regress_try($q$SELECT * FROM ves.reconcile_progress$q$);
RESET ROLE;
SET ROLE regress_inb_reader;
SELECT regress_try($q$SELECT ves._reconcile_slice(NULL::ves.destinations, false, 'r', NULL, NULL, 1, NULL)$q$);
SELECT regress_try($q$SELECT ves._reconcile_read(1, 'shopify', 'http://127.0.0.1:9', '{}', 1000, false, NULL, NULL, 1, 0, 10, 16)$q$);
RESET ROLE;
SELECT has_function_privilege('ves_worker', 'ves._reconcile_step(text, boolean, jsonb)', 'EXECUTE') AS worker_may_step,
       has_function_privilege('ves_worker', 'ves._reconcile_place(text, boolean)', 'EXECUTE') AS worker_may_place;
SELECT ves.drop_destination('inb-due');

SELECT ves.drop_destination('inb-hook');
-- The alerts this file raised are handled: later files start with none open.
SELECT ves._drain_security_alerts() >= 0 AS drained_last;
SELECT count(ves.acknowledge_security_alert(id, 'skip')) > 0 AS acknowledged
FROM ves.security_alerts WHERE acknowledged_at IS NULL;
DROP ROLE regress_inb_app, regress_inb_reader, regress_inb_admin, regress_inb_nobody;

-- Every table of the extension that holds rows is dumped with the database
-- (pg_extension_config_dump): pg_dump would otherwise lose them. The two
-- listed are partitioned parents without rows of their own: their
-- partitions are ordinary tables, which pg_dump keeps as such.
SELECT c.relname AS not_dumped
FROM pg_class c
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'pg_ves'
WHERE c.relkind IN ('r', 'p') AND c.oid <> ALL (x.extconfig)
ORDER BY 1;
