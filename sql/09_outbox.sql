-- The outbox: destinations, fan-out on append, operator functions. No worker
-- runs in this cluster (ves.databases is empty); delivery is driven with
-- ves.push_events against a closed port, so every outcome is deterministic.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000000a01'''
\set t2 '''00000000-0000-0000-0000-000000000a02'''
\set s '''00000000-0000-0000-0000-000000000b01'''

-- Destinations and their validation.
SELECT name, kind, url, concurrency, rate_limit, max_attempts, timeout_ms, paused
FROM ves.create_destination('orders-hook', 'webhook', 'http://127.0.0.1:9/hook',
  '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "entity_types": ["Order"], "max_attempts": 2,
    "backoff_base_ms": 1, "backoff_cap_ms": 1, "jitter": 0, "timeout_ms": 2000}');
SELECT name, tenant_id, event_types FROM ves.create_destination('t2-http', 'http', 'http://127.0.0.1:9/t2',
  jsonb_build_object('tenant_id', :t2, 'event_types', jsonb_build_array('stock.set')));
SELECT regress_try($q$SELECT ves.create_destination('orders-hook', 'webhook', 'http://x/y')$q$);
SELECT regress_try($q$SELECT ves.create_destination('x', 'carrier-pigeon', 'http://x/y')$q$);
SELECT regress_try($q$SELECT ves.create_destination('x', 'webhook', 'ftp://x/y')$q$);
SELECT regress_try($q$SELECT ves.create_destination('x', 'webhook', 'http://x/y', '{"secret": "hunter2"}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('x', 'webhook', 'http://x/y', '{"colour": "red"}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('x', 'webhook', 'http://x/y', '{"rate_limit": "fast"}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('x', 'webhook', 'http://x/y', '{"concurrency": 0}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('x', 'webhook', 'http://x/y', '{"jitter": 2}')$q$);
SELECT regress_try($q$SELECT ves.create_destination(NULL, 'webhook', 'http://x/y')$q$);
SELECT regress_try($q$SELECT ves.alter_destination('nope', '{}')$q$);
SELECT count(*) AS destinations FROM ves.destinations;
-- Secrets are kept apart and readable by no role.
SELECT count(*) AS secrets FROM ves.destination_secrets;
SELECT has_table_privilege('ves_admin', 'ves.destination_secrets', 'SELECT') AS admin_reads_secrets;

-- Fan-out: one outbox row per matching destination, in the appending transaction.
SELECT position AS p1 FROM ves.append(:t, :s, 'Order', 'o-1', 'order.created', '{"n": 1}') \gset
SELECT count(*) FROM ves.append(:t, :s, 'Order', 'o-1', 'order.paid', '{"n": 2}');
SELECT count(*) FROM ves.append(:t, :s, 'Customer', 'c-1', 'customer.created', '{}');
SELECT count(*) FROM ves.append(:t2, :s, 'Sku', 'k-1', 'stock.set', '{"qty": 5}');
SELECT count(*) FROM ves.append(:t2, :s, 'Sku', 'k-1', 'stock.reserved', '{"qty": 1}');
SELECT d.name, o.entity_id, o.event_position - :p1 AS pos, o.status, o.attempts
FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id ORDER BY o.event_position, d.name;
BEGIN;
SELECT count(*) FROM ves.append(:t, :s, 'Order', 'o-rollback', 'order.created', '{}');
ROLLBACK;
SELECT count(*) AS rolled_back_rows FROM ves.outbox WHERE entity_id = 'o-rollback';

SELECT destination, kind, paused, pending, syncing, synced, failed, dead, breaker FROM ves.get_sync_status();

-- Delivery from this backend: the port is closed, so each attempt is a
-- transport error; with max_attempts 2 the first row fails, then dies.
-- Per-entity order: o-1's second row is not tried while the first is open.
SELECT * FROM ves.push_events('orders-hook');
SELECT o.entity_id, o.event_position - :p1 AS pos, o.status, o.attempts, o.last_error IS NOT NULL AS has_error
FROM ves.outbox o WHERE o.destination_id = (SELECT id FROM ves.destinations WHERE name = 'orders-hook') ORDER BY o.event_position;
SELECT pg_sleep(0.05);
SELECT * FROM ves.push_events('orders-hook');
SELECT o.event_position - :p1 AS pos, o.status, o.attempts, o.last_error ~ 'after 2 attempts' AS dead_letter_reason
FROM ves.outbox o WHERE o.destination_id = (SELECT id FROM ves.destinations WHERE name = 'orders-hook') ORDER BY o.event_position;
-- The head died, so the entity's next row is now free to go (and fails once).
SELECT pg_sleep(0.05);
SELECT * FROM ves.push_events('orders-hook');
SELECT destination, pending, failed, dead, last_error IS NOT NULL AS has_error, breaker FROM ves.get_sync_status() WHERE destination = 'orders-hook';

-- Operators: list, get, retry, acknowledge.
SELECT entity_id, status FROM ves.list_outbox_events(status => 'dead');
SELECT count(*) FROM ves.list_outbox_events(destination => 't2-http');
SELECT status, attempts FROM ves.get_outbox_event((SELECT min(id) FROM ves.outbox));
SELECT regress_try($q$SELECT ves.get_outbox_event(-1)$q$);
SELECT regress_try($q$SELECT * FROM ves.list_outbox_events(status => 'lost')$q$);
SELECT ves.retry_events(ARRAY(SELECT id FROM ves.outbox WHERE status = 'dead')) AS retried;
SELECT status, attempts FROM ves.outbox WHERE entity_id = 'o-1' ORDER BY event_position;
SELECT ves.acknowledge_events(ARRAY(SELECT id FROM ves.outbox WHERE entity_id = 'o-1')) AS acknowledged_only_failed_or_dead;
UPDATE ves.outbox SET status = 'dead' WHERE entity_id = 'o-1';
SELECT ves.acknowledge_events(ARRAY(SELECT id FROM ves.outbox WHERE entity_id = 'o-1')) AS acknowledged;
SELECT regress_try('SELECT ves.retry_events(NULL)');

-- Pause and resume; altering; a paused destination still queues rows.
SELECT paused, paused_reason FROM ves.pause_destination('t2-http', 'maintenance window');
SELECT count(*) FROM ves.append(:t2, :s, 'Sku', 'k-2', 'stock.set', '{"qty": 1}');
SELECT * FROM ves.push_events('t2-http');
SELECT count(*) AS queued_while_paused FROM ves.outbox WHERE entity_id = 'k-2';
SELECT paused FROM ves.resume_destination('t2-http');
SELECT rate_limit, burst, url FROM ves.alter_destination('t2-http', '{"rate_limit": 5, "burst": 2}', url => 'http://127.0.0.1:9/v2');
SELECT regress_try($q$SELECT ves.alter_destination('t2-http', '{}', url => 'not a url')$q$);

-- Settings.
SELECT ves.get_sync_settings();
SELECT ves.set_sync_settings('{"window": 128, "synced_retention": "2 hours"}') ->> 'window' AS window;
SELECT regress_try($q$SELECT ves.set_sync_settings('{"window": 0}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"window": 1.5}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"turbo": true}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"synced_retention": "soon"}')$q$);

-- Purging removes synced and acknowledged rows past the retention, in batches.
UPDATE ves.outbox SET updated_at = now() - interval '3 hours' WHERE entity_id = 'o-1';
SELECT ves.purge_outbox(1) AS purged_one_batch;
SELECT ves.purge_outbox() AS purged_rest;
SELECT count(*) AS acknowledged_left FROM ves.outbox WHERE status = 'acknowledged';

-- Retention never drops a month with undelivered outbox rows.
SELECT ves.partition_pinned(partition) AS pinned FROM ves.event_partitions
WHERE month_start <= now() AND month_end > now();

-- A batch larger than one bulk statement (pg_ves inserts 1,000 events at a
-- time): positions follow the batch, versions continue per SKU, a repeat
-- inside the batch is written once, and each stock.set gets its outbox row.
SELECT count(*) AS batch_events, count(*) FILTER (WHERE duplicate) AS repeats,
       bool_and(entity_version = (r.n - 1) / 500 + 1 OR duplicate) AS versions_follow_the_batch
FROM ves.append_batch((SELECT jsonb_agg(jsonb_build_object(
    'tenant_id', :t2, 'store_id', :s, 'entity_type', 'Sku', 'entity_id', 'chunk-' || (g % 500),
    'event_type', CASE WHEN g % 7 = 0 THEN 'stock.reserved' ELSE 'stock.set' END,
    'payload', jsonb_build_object('qty', g), 'idempotency_key', 'chunk-' || g) ORDER BY g)
  || jsonb_build_array(jsonb_build_object(
    'tenant_id', :t2, 'store_id', :s, 'entity_type', 'Sku', 'entity_id', 'chunk-' || (1500 % 500),
    'event_type', 'stock.set', 'payload', jsonb_build_object('qty', 1500), 'idempotency_key', 'chunk-1500'))
  FROM generate_series(0, 2499) g)) WITH ORDINALITY AS r(event_id, position, entity_version, duplicate, n);
SELECT count(*) AS chunk_events, count(DISTINCT position) AS positions,
       bool_and(payload->>'qty' = ((rank - 1)::text)) AS in_batch_order
FROM (SELECT position, payload, rank() OVER (ORDER BY position) FROM ves.events
      WHERE tenant_id = :t2 AND entity_id LIKE 'chunk-%') e;
SELECT count(*) AS chunk_rows, bool_and(e.event_type = 'stock.set') AS only_stock_set,
       count(*) = (SELECT count(*) FROM ves.events WHERE tenant_id = :t2 AND entity_id LIKE 'chunk-%' AND event_type = 'stock.set') AS one_per_event
FROM ves.outbox o JOIN ves.events e ON e.tenant_id = o.tenant_id AND e.position = o.event_position
WHERE o.tenant_id = :t2 AND o.entity_id LIKE 'chunk-%';
SELECT count(*) = 0 AS chunk_batch_verifies FROM ves.verify_events(tenant_id => :t2);
-- Expected versions in a batch of several chunks: one entity's events, spread
-- over the batch, each expecting the version the one before gave it.
SELECT count(*) AS checked_events,
       array_agg(r.entity_version ORDER BY r.n) FILTER (WHERE r.n % 100 = 1) AS checked_versions
FROM ves.append_batch((SELECT jsonb_agg(CASE WHEN g % 100 = 0
    THEN jsonb_build_object('tenant_id', :t2, 'store_id', :s, 'entity_type', 'Sku', 'entity_id', 'checked-1',
      'event_type', 'stock.set', 'payload', jsonb_build_object('qty', g), 'expected_version', g / 100)
    ELSE jsonb_build_object('tenant_id', :t2, 'store_id', :s, 'entity_type', 'Sku', 'entity_id', 'free-' || g,
      'event_type', 'stock.set', 'payload', jsonb_build_object('qty', g)) END ORDER BY g)
  FROM generate_series(0, 2399) g)) WITH ORDINALITY AS r(event_id, position, entity_version, duplicate, n);
SELECT regress_try($q$SELECT count(*) FROM ves.append_batch((SELECT jsonb_agg(jsonb_build_object(
    'tenant_id', '00000000-0000-0000-0000-000000000a02', 'store_id', '00000000-0000-0000-0000-000000000b01',
    'entity_type', 'Sku', 'entity_id', 'late-' || g, 'event_type', 'stock.set', 'payload', jsonb_build_object('qty', g),
    'expected_version', CASE WHEN g = 1500 THEN 3 END) ORDER BY g) FROM generate_series(0, 1999) g))$q$);
SELECT count(*) AS late_written FROM ves.streams WHERE entity_id LIKE 'late-%';

-- Dropping a destination drops its rows.
SELECT ves.drop_destination('t2-http');
SELECT count(*) AS t2_rows FROM ves.outbox WHERE tenant_id = :t2;
SELECT regress_try($q$SELECT ves.drop_destination('t2-http')$q$);
SELECT ves.drop_destination('orders-hook');

-- Workers: none configured here.
SHOW ves.databases;
SELECT count(*) AS workers FROM ves.worker_status WHERE pid IS NOT NULL;
