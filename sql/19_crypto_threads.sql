-- Batches signed and ranges verified on threads (ves.crypto_threads): the
-- events verify one by one, verification on threads reports exactly what the
-- backend's own thread reports, and a batch with a bad event raises the same
-- error for the same event whatever the number of threads.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000001901'''
\set s '''00000000-0000-0000-0000-000000001902'''

-- 300 events of 30 entities, payloads with nested values, numbers, non-ASCII
-- text and keys out of order, appended on 4 threads.
CREATE TEMP TABLE batch AS
SELECT jsonb_agg(jsonb_build_object(
         'tenant_id', :t, 'store_id', :s, 'entity_type', 'InventoryItem',
         'entity_id', 'SKU-' || (g % 30), 'event_type', 'inventory.adjusted',
         'payload', jsonb_build_object('z', g, 'delta', (g % 7) - 3, 'note', 'ü€ ' || g,
                                       'nested', jsonb_build_object('b', ARRAY[g, g * 0.5], 'a', 1e20 + g)))
         ORDER BY g) AS events
FROM generate_series(1, 300) g;
SET ves.crypto_threads = 4;
CREATE TEMP TABLE appended AS
SELECT row_number() OVER () AS n, r.* FROM batch, LATERAL ves.append_batch(batch.events) r;
SELECT count(*) AS events, count(DISTINCT event_id) AS ids, bool_and(NOT duplicate) AS all_new,
       bool_and(position > 0) AS positions FROM appended;
-- Positions follow the batch order; each entity's versions run 1..10 in it.
SELECT bool_and(a.position < b.position) AS positions_in_batch_order
FROM appended a JOIN appended b ON b.n = a.n + 1;
SELECT count(*) AS entities, min(v) AS min_last_version, max(v) AS max_last_version
FROM (SELECT e.entity_id, max(e.entity_version) AS v FROM ves.events e
      WHERE e.tenant_id = :t GROUP BY 1) x;
-- Every event verifies by itself (ves.verify_event runs on the backend's own
-- thread), its stored payload hash is the one SQL computes from its payload,
-- and its export is signed over the same bytes.
SELECT count(*) FILTER (WHERE ves.verify_event(a.event_id)) AS verify_one_by_one,
       count(*) FILTER (WHERE e.payload_plain_hash = ves.payload_hash(e.payload)) AS payload_hashes_equal,
       count(*) FILTER (WHERE ves.export_event(a.event_id)->>'agent_signature' = '0x' || encode(e.agent_signature, 'hex')) AS exports_equal
FROM appended a JOIN ves.events e ON e.event_id = a.event_id;
-- Range verification finds nothing, on threads and without them.
SELECT count(*) AS failing_on_threads FROM ves.verify_events(tenant_id => :t);
SET ves.crypto_threads = 1;
SELECT count(*) AS failing_serial FROM ves.verify_events(tenant_id => :t);

-- The same batch appended on the backend's own thread stores the same
-- payload hashes (the signatures differ only by event id and time).
CREATE TEMP TABLE appended_serial AS
SELECT row_number() OVER () AS n, r.* FROM batch,
  LATERAL ves.append_batch(replace(batch.events::text, 'SKU-', 'SERIAL-')::jsonb) r;
SELECT count(*) AS same_payload_hashes
FROM appended a JOIN ves.events e ON e.event_id = a.event_id
JOIN appended_serial b ON b.n = a.n JOIN ves.events f ON f.event_id = b.event_id
WHERE e.payload_plain_hash = f.payload_plain_hash AND e.source_agent_id = f.source_agent_id
  AND f.entity_version = e.entity_version;

-- Tampered events: the threads report exactly what the serial check reports,
-- in the same order.
BEGIN;
SELECT ves.begin_maintenance('regression: tamper with events verified on threads');
UPDATE ves.events SET payload = '{"z": 0}' WHERE event_id = (SELECT event_id FROM appended WHERE n = 17);
UPDATE ves.events SET agent_signature = set_byte(agent_signature, 5, get_byte(agent_signature, 5) # 1)
WHERE event_id = (SELECT event_id FROM appended WHERE n = 150);
UPDATE ves.events SET agent_key_id = 99 WHERE event_id = (SELECT event_id FROM appended WHERE n = 299);
UPDATE ves.events SET payload = '{"z": 1e300, "y": [1, 2]}' WHERE event_id = (SELECT event_id FROM appended WHERE n = 220);
COMMIT;
SET ves.crypto_threads = 1;
CREATE TEMP TABLE serial_result AS
SELECT row_number() OVER () AS k, v.* FROM ves.verify_events(tenant_id => :t) v;
SET ves.crypto_threads = 3;
CREATE TEMP TABLE threaded_result AS
SELECT row_number() OVER () AS k, v.* FROM ves.verify_events(tenant_id => :t) v;
SELECT a.n, v.reason FROM threaded_result v JOIN appended a ON a.event_id = v.event_id ORDER BY v.k;
SELECT (SELECT count(*) FROM serial_result) AS serial_rows,
       (SELECT count(*) FROM (SELECT * FROM serial_result EXCEPT SELECT * FROM threaded_result) d) AS only_serial,
       (SELECT count(*) FROM (SELECT * FROM threaded_result EXCEPT SELECT * FROM serial_result) d) AS only_threaded;
-- A sub-range with 16 threads, more than its events.
SET ves.crypto_threads = 16;
SELECT a.n, v.reason FROM ves.verify_events(tenant_id => :t,
  from_position => (SELECT position FROM appended WHERE n = 100),
  to_position => (SELECT position FROM appended WHERE n = 200)) v
JOIN appended a ON a.event_id = v.event_id;

-- A batch with bad events: the error of the first bad one, the same with and
-- without threads, and nothing written.
CREATE FUNCTION crypto_threads_batch(bad_at int[], bad jsonb[]) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_agg(CASE WHEN g = ANY (bad_at) THEN bad[array_position(bad_at, g)]
                        ELSE jsonb_build_object('tenant_id', '00000000-0000-0000-0000-000000001903',
                               'store_id', '00000000-0000-0000-0000-000000001902',
                               'entity_type', 'Order', 'entity_id', 'o-' || g,
                               'event_type', 'order.created', 'payload', jsonb_build_object('n', g)) END
                   ORDER BY g)
  FROM generate_series(1, 200) g
$$;
CREATE TEMP TABLE bad_batches (name text, events jsonb);
INSERT INTO bad_batches VALUES
  ('no canonical form at 70, bad identifier at 120',
   crypto_threads_batch(ARRAY[70, 120], ARRAY[
     '{"tenant_id": "00000000-0000-0000-0000-000000001903", "store_id": "00000000-0000-0000-0000-000000001902", "entity_type": "Order", "entity_id": "x", "event_type": "order.created", "payload": {"big": 1e400}}',
     '{"tenant_id": "00000000-0000-0000-0000-000000001903", "store_id": "00000000-0000-0000-0000-000000001902", "entity_type": "", "entity_id": "y", "event_type": "order.created", "payload": {}}']::jsonb[])),
  ('bad identifier at 80, no canonical form at 90',
   crypto_threads_batch(ARRAY[80, 90], ARRAY[
     '{"tenant_id": "00000000-0000-0000-0000-000000001903", "store_id": "00000000-0000-0000-0000-000000001902", "entity_type": "", "entity_id": "y", "event_type": "order.created", "payload": {}}',
     '{"tenant_id": "00000000-0000-0000-0000-000000001903", "store_id": "00000000-0000-0000-0000-000000001902", "entity_type": "Order", "entity_id": "x", "event_type": "order.created", "payload": {"big": -1e400}}']::jsonb[])),
  ('payload not an object at 65 (refused while the batch is read), no canonical form at 64',
   crypto_threads_batch(ARRAY[65, 64], ARRAY[
     '{"tenant_id": "00000000-0000-0000-0000-000000001903", "store_id": "00000000-0000-0000-0000-000000001902", "entity_type": "Order", "entity_id": "x", "event_type": "order.created", "payload": [1]}',
     '{"tenant_id": "00000000-0000-0000-0000-000000001903", "store_id": "00000000-0000-0000-0000-000000001902", "entity_type": "Order", "entity_id": "x", "event_type": "order.created", "payload": {"a": {"b": 1e999}}}']::jsonb[])),
  ('same idempotency key, different content, at 10 and 150; no canonical form at 199',
   crypto_threads_batch(ARRAY[10, 150, 199], ARRAY[
     '{"tenant_id": "00000000-0000-0000-0000-000000001903", "store_id": "00000000-0000-0000-0000-000000001902", "entity_type": "Order", "entity_id": "k", "event_type": "order.created", "payload": {"v": 1}, "idempotency_key": "k-1"}',
     '{"tenant_id": "00000000-0000-0000-0000-000000001903", "store_id": "00000000-0000-0000-0000-000000001902", "entity_type": "Order", "entity_id": "k", "event_type": "order.created", "payload": {"v": 2}, "idempotency_key": "k-1"}',
     '{"tenant_id": "00000000-0000-0000-0000-000000001903", "store_id": "00000000-0000-0000-0000-000000001902", "entity_type": "Order", "entity_id": "x", "event_type": "order.created", "payload": {"big": 1e400}}']::jsonb[]));
SET ves.crypto_threads = 1;
CREATE TEMP TABLE serial_errors AS
SELECT name, regress_try_event(format('SELECT count(*) FROM ves.append_batch(%L)', events)) AS error FROM bad_batches;
SET ves.crypto_threads = 4;
CREATE TEMP TABLE threaded_errors AS
SELECT name, regress_try_event(format('SELECT count(*) FROM ves.append_batch(%L)', events)) AS error FROM bad_batches;
SELECT s.name, s.error, s.error = t.error AS same_on_threads
FROM serial_errors s JOIN threaded_errors t USING (name) ORDER BY s.name;
SELECT count(*) AS nothing_written FROM ves.events WHERE tenant_id = '00000000-0000-0000-0000-000000001903';

-- One batch writing to three stores of two tenants, interleaved, on
-- threads: each event is signed by its own store's key, and every one
-- verifies.
SET ves.crypto_threads = 4;
CREATE TEMP TABLE mixed AS
SELECT row_number() OVER () AS n, r.* FROM ves.append_batch((
  SELECT jsonb_agg(jsonb_build_object(
           'tenant_id', CASE WHEN g % 3 = 2 THEN '00000000-0000-0000-0000-000000001904'
                             ELSE '00000000-0000-0000-0000-000000001905' END,
           'store_id', '00000000-0000-0000-0000-00000000190' || (6 + g % 3),
           'entity_type', 'InventoryItem', 'entity_id', 'MIX-' || (g % 7),
           'event_type', 'inventory.adjusted', 'payload', jsonb_build_object('g', g))
         ORDER BY g)
  FROM generate_series(1, 240) g)) r;
SELECT e.store_id, count(*) AS events, count(DISTINCT (e.source_agent_id, e.agent_key_id)) AS signers,
       count(*) FILTER (WHERE ves.verify_event(m.event_id)) AS verified
FROM mixed m JOIN ves.events e ON e.event_id = m.event_id GROUP BY 1 ORDER BY 1;
SELECT count(DISTINCT e.source_agent_id) AS agents_of_three_stores
FROM mixed m JOIN ves.events e ON e.event_id = m.event_id;
SELECT count(*) AS failing FROM ves.verify_events(tenant_id => '00000000-0000-0000-0000-000000001904')
UNION ALL
SELECT count(*) FROM ves.verify_events(tenant_id => '00000000-0000-0000-0000-000000001905');

-- The setting: 1 to 64 threads.
SELECT regress_try($q$SET ves.crypto_threads = 0$q$);
SELECT regress_try($q$SET ves.crypto_threads = 65$q$);
RESET ves.crypto_threads;
SELECT current_setting('ves.crypto_threads')::int BETWEEN 1 AND 16 AS default_is_the_cores;
DROP FUNCTION crypto_threads_batch(int[], jsonb[]);
