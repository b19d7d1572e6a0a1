-- ves.append: versions, idempotency, event ids and batches.
\set t1 '''00000000-0000-0000-0000-0000000000a1'''
\set s1 '''00000000-0000-0000-0000-0000000000b1'''

-- A new entity starts at version 1; NULL expected version appends anywhere.
SELECT position, entity_version, duplicate
FROM ves.append(:t1, :s1, 'InventoryItem', 'SKU-1', 'inventory.adjusted', '{"delta": 10}');
SELECT position, entity_version, duplicate
FROM ves.append(:t1, :s1, 'InventoryItem', 'SKU-1', 'inventory.adjusted', '{"delta": -3}');

-- 0: the stream must not exist.
SELECT position, entity_version FROM ves.append(:t1, :s1, 'InventoryItem', 'SKU-2', 'inventory.adjusted', '{"delta": 1}', 0);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000b1', 'InventoryItem', 'SKU-2', 'inventory.adjusted', '{"delta": 1}', 0)$q$);
-- The current version is in the detail, for clients that retry.
SELECT * FROM ves.append(:t1, :s1, 'InventoryItem', 'SKU-2', 'inventory.adjusted', '{"delta": 1}', 0);
-- -1: the stream must exist.
SELECT position, entity_version FROM ves.append(:t1, :s1, 'InventoryItem', 'SKU-2', 'inventory.adjusted', '{"delta": 2}', -1);
SELECT * FROM ves.append(:t1, :s1, 'InventoryItem', 'SKU-404', 'inventory.adjusted', '{"delta": 2}', -1);
-- n: exactly version n.
SELECT position, entity_version FROM ves.append(:t1, :s1, 'InventoryItem', 'SKU-2', 'inventory.adjusted', '{"delta": 3}', 2);
SELECT * FROM ves.append(:t1, :s1, 'InventoryItem', 'SKU-2', 'inventory.adjusted', '{"delta": 3}', 2);
-- A rejected version took no position: the next append gets the next one.
SELECT position, entity_version FROM ves.append(:t1, :s1, 'InventoryItem', 'SKU-2', 'inventory.adjusted', '{"delta": 4}', 3);
SELECT last_value FROM ves.position_seq;

-- Idempotency keys: same key + same content returns the original result and writes nothing.
CREATE TEMP TABLE first AS
SELECT * FROM ves.append(:t1, :s1, 'Order', 'o-1', 'order.created', '{"total": 12.5}', idempotency_key => 'req-1');
SELECT position, entity_version, duplicate FROM first;
CREATE TEMP TABLE again AS
SELECT * FROM ves.append(:t1, :s1, 'Order', 'o-1', 'order.created', '{"total": 12.5}', idempotency_key => 'req-1');
SELECT a.event_id = f.event_id AS same_event, a.position, a.entity_version, a.duplicate FROM again a, first f;
SELECT count(*) AS order_events FROM ves.events WHERE entity_id = 'o-1';
-- Metadata and source describe the call, not the event: still a duplicate.
SELECT duplicate FROM ves.append(:t1, :s1, 'Order', 'o-1', 'order.created', '{"total": 12.5}',
  idempotency_key => 'req-1', metadata => '{"retry": 2}', source => 'shopify');
-- Same key, different content: refused.
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000b1', 'Order', 'o-1', 'order.created', '{"total": 99}', idempotency_key => 'req-1')$q$);
-- Keys are per tenant.
SELECT position, duplicate FROM ves.append('00000000-0000-0000-0000-0000000000a2', :s1, 'Order', 'o-1', 'order.created', '{"total": 99}', idempotency_key => 'req-1');

-- Event ids: the same id with the same content is a duplicate, with other content an error.
SELECT position, duplicate FROM ves.append(:t1, :s1, 'Order', 'o-2', 'order.created', '{"total": 1}',
  id => '0192f0c4-0000-7000-8000-00000000e1d1');
SELECT position, duplicate FROM ves.append(:t1, :s1, 'Order', 'o-2', 'order.created', '{"total": 1}',
  id => '0192f0c4-0000-7000-8000-00000000e1d1');
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000b1', 'Order', 'o-2', 'order.updated', '{"total": 2}', id => '0192f0c4-0000-7000-8000-00000000e1d1')$q$);
SELECT event_id, entity_version FROM ves.events WHERE event_id = '0192f0c4-0000-7000-8000-00000000e1d1';

-- A generated id given back explicitly is recognised too.
SELECT event_id AS gen_id, position AS gen_pos FROM ves.append(:t1, :s1, 'Order', 'o-4', 'order.created', '{"total": 4}') \gset
SELECT position = :gen_pos AS same_position, duplicate FROM ves.append(:t1, :s1, 'Order', 'o-4', 'order.created', '{"total": 4}', id => :'gen_id');
SELECT split_part(regress_try(format('SELECT * FROM ves.append(%L, %L, %L, %L, %L, %L, id => %L)', :t1, :s1, 'Order', 'o-4', 'order.created', '{"total": 5}', :'gen_id')), ':', 1) AS sqlstate;

-- Generated ids are UUIDv7: version 7, variant 10.
SELECT substr(event_id::text, 15, 1) AS version, substr(event_id::text, 20, 1) IN ('8','9','a','b') AS rfc_variant
FROM ves.append(:t1, :s1, 'Order', 'o-3', 'order.created', '{}');

-- Batches: many entities, in order, all or nothing.
SELECT position, entity_version, duplicate FROM ves.append_batch(jsonb_build_array(
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'b-1', 'event_type', 'order.created', 'payload', '{"n": 1}'::jsonb),
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'b-1', 'event_type', 'order.updated', 'payload', '{"n": 2}'::jsonb, 'expected_version', 1),
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'b-2', 'event_type', 'order.created', 'payload', '{"n": 3}'::jsonb, 'idempotency_key', 'batch-key', 'metadata', '{"via": "batch"}'::jsonb, 'source', 'tiktok')
));
SELECT entity_id, entity_version, event_type, payload, metadata, source FROM ves.events WHERE entity_id LIKE 'b-%' ORDER BY position;
-- The third event fails its expected version: nothing of the batch is written.
SELECT last_value AS before FROM ves.position_seq \gset
SELECT * FROM ves.append_batch(jsonb_build_array(
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'b-3', 'event_type', 'order.created', 'payload', '{}'::jsonb),
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'b-4', 'event_type', 'order.created', 'payload', '{}'::jsonb),
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'b-1', 'event_type', 'order.updated', 'payload', '{}'::jsonb, 'expected_version', 7)
));
SELECT count(*) AS half_written FROM ves.events WHERE entity_id IN ('b-3', 'b-4');
SELECT count(*) AS streams_half_written FROM ves.streams WHERE entity_id IN ('b-3', 'b-4');
-- A batch repeated with its idempotency key returns the original for that event.
SELECT entity_version, duplicate FROM ves.append_batch(jsonb_build_array(
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'b-2', 'event_type', 'order.created', 'payload', '{"n": 3}'::jsonb, 'idempotency_key', 'batch-key')));
SELECT ves.append_batch('[]');
-- A key repeated inside one batch: the same content is one event, returned
-- twice; other content is refused and nothing of the batch is written.
SELECT entity_version, duplicate, position = first_value(position) OVER () AS same_position FROM ves.append_batch(jsonb_build_array(
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'rep-1', 'event_type', 'order.created', 'payload', '{"n": 1}'::jsonb, 'idempotency_key', 'rep-key'),
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'rep-1', 'event_type', 'order.created', 'payload', '{"n": 1}'::jsonb, 'idempotency_key', 'rep-key')));
SELECT * FROM ves.append_batch(jsonb_build_array(
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'rep-2', 'event_type', 'order.created', 'payload', '{"n": 1}'::jsonb, 'idempotency_key', 'rep-key-2'),
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'rep-2', 'event_type', 'order.created', 'payload', '{"n": 2}'::jsonb, 'idempotency_key', 'rep-key-2')));
SELECT count(*) AS rep_2_written FROM ves.events WHERE entity_id = 'rep-2';
-- Many entities, versions continuing from what is stored, positions in batch order.
SELECT r.n, r.entity_version, r.position - min(r.position) OVER () AS offset FROM ves.append_batch(jsonb_build_array(
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'b-2', 'event_type', 'order.updated', 'payload', '{}'::jsonb),
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'b-9', 'event_type', 'order.created', 'payload', '{}'::jsonb),
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'b-2', 'event_type', 'order.updated', 'payload', '{}'::jsonb),
  jsonb_build_object('tenant_id', :t1, 'store_id', :s1, 'entity_type', 'Order', 'entity_id', 'b-1', 'event_type', 'order.updated', 'payload', '{}'::jsonb, 'expected_version', 2)))
  WITH ORDINALITY AS r(event_id, position, entity_version, duplicate, n) ORDER BY r.n;
SELECT entity_id, entity_version FROM ves.events WHERE entity_id IN ('b-1', 'b-2', 'b-9') ORDER BY position DESC LIMIT 4;
SELECT count(*) = 0 AS all_verify FROM ves.verify_events(tenant_id => :t1);
-- A batch takes the UUID forms the uuid type takes (braces, upper case,
-- hyphens after any group of four digits, or none): one tenant here.
SELECT u AS tenant_form, r.entity_version FROM unnest(ARRAY[
    '{00000000-0000-0000-0000-0000000000C7}', '000000000000000000000000000000c7',
    '0000-0000-0000-0000-0000-0000-0000-00c7']) AS u,
  LATERAL ves.append_batch(jsonb_build_array(jsonb_build_object('tenant_id', u,
    'store_id', '00000000-0000-0000-0000-0000000000d1', 'entity_type', 'Order', 'entity_id', 'uuid-forms',
    'event_type', 'order.created', 'payload', '{}'::jsonb))) r ORDER BY r.entity_version;

-- Appends inside a transaction that rolls back leave nothing behind.
BEGIN;
SELECT entity_version FROM ves.append(:t1, :s1, 'Order', 'rolled-back', 'order.created', '{}');
ROLLBACK;
SELECT count(*) FROM ves.streams WHERE entity_id = 'rolled-back';

-- Appending in a transaction that is then prepared is refused (it would pin the read fence).
BEGIN;
SELECT entity_version FROM ves.append(:t1, :s1, 'Order', 'prepared', 'order.created', '{}');
PREPARE TRANSACTION 'pg_ves_regress';
SELECT count(*) AS prepared_left FROM pg_prepared_xacts;
SELECT count(*) FROM ves.streams WHERE entity_id = 'prepared';
