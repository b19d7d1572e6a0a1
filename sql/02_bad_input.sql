-- Bad input: each is a clear error with its own SQLSTATE and a hint, and
-- nothing is written.
SELECT last_value AS seq_before FROM ves.position_seq \gset
SELECT count(*) AS streams_before FROM ves.streams \gset

-- NULL required arguments.
SELECT regress_try($q$SELECT * FROM ves.append(NULL, '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', '{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', NULL, 'Order', 'x', 'order.created', '{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', NULL, 'x', 'order.created', '{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', NULL, 'order.created', '{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', NULL, '{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', NULL)$q$);
SELECT regress_try($q$SELECT * FROM ves.append_batch(NULL)$q$);

-- Payloads and metadata must be objects.
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', '[1, 2]')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', '"text"')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', '42')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', 'null')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', '{}', metadata => '[]')$q$);
-- Malformed JSON is refused by jsonb itself.
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', '{"a": }')$q$);

-- Empty, absurd and unprintable identifiers.
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', '', 'x', 'order.created', '{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', '', 'order.created', '{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', '', '{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', repeat('T', 129), 'x', 'order.created', '{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', repeat('x', 257), 'order.created', '{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', '{}', idempotency_key => repeat('k', 300))$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', E'x\ny', 'order.created', '{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', '{}', source => '')$q$);
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', '{}', expected_version => -2)$q$);

-- Payloads over ves.max_payload_size (default 1 MiB).
SHOW ves.max_payload_size;
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', jsonb_build_object('blob', repeat('z', 1100000)))$q$);
SET ves.max_payload_size = '1kB';
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', jsonb_build_object('blob', repeat('z', 2000)))$q$);
RESET ves.max_payload_size;

-- Invalid UUIDs: as arguments the uuid type refuses them (22P02); inside a batch pg_ves does.
SELECT regress_try($q$SELECT * FROM ves.append('not-a-uuid', '00000000-0000-0000-0000-0000000000d1', 'Order', 'x', 'order.created', '{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append_batch('[{"tenant_id": "not-a-uuid", "store_id": "00000000-0000-0000-0000-0000000000d1", "entity_type": "Order", "entity_id": "x", "event_type": "order.created", "payload": {}}]')$q$);
-- A batch refuses what the uuid type refuses (the forms it takes are in 01_append).
SELECT u AS refused_form, regress_try(format($q$SELECT * FROM ves.append_batch('[{"tenant_id": %s, "store_id": "00000000-0000-0000-0000-0000000000d1", "entity_type": "Order", "entity_id": "x", "event_type": "order.created", "payload": {}}]')$q$, to_jsonb(u)))
FROM unnest(ARRAY['00000000-0000-0000-0000-0000000000c7-', '-00000000-0000-0000-0000-0000000000c7',
  '000-00000-0000-0000-0000-0000000000c7', '00000000--0000-0000-0000-0000000000c7',
  '{00000000-0000-0000-0000-0000000000c7', '00000000-0000-0000-0000-0000000000c7}',
  '00000000-0000-0000-0000-0000000000c', '00000000-0000-0000-0000-0000000000c71',
  ' 00000000-0000-0000-0000-0000000000c7', '00000000-0000-0000-0000-0000000000g7']) AS u;

-- Malformed batches.
SELECT regress_try($q$SELECT * FROM ves.append_batch('{}')$q$);
SELECT regress_try($q$SELECT * FROM ves.append_batch('[1]')$q$);
SELECT regress_try($q$SELECT * FROM ves.append_batch('[{"tenant_id": "00000000-0000-0000-0000-0000000000c1"}]')$q$);
SELECT regress_try($q$SELECT * FROM ves.append_batch('[{"tenant_id": "00000000-0000-0000-0000-0000000000c1", "store_id": "00000000-0000-0000-0000-0000000000d1", "entity_type": "Order", "entity_id": "x", "event_type": "order.created", "payload": {}, "colour": "red"}]')$q$);
SELECT regress_try($q$SELECT * FROM ves.append_batch('[{"tenant_id": "00000000-0000-0000-0000-0000000000c1", "store_id": "00000000-0000-0000-0000-0000000000d1", "entity_type": "Order", "entity_id": 7, "event_type": "order.created", "payload": {}}]')$q$);
SELECT regress_try($q$SELECT * FROM ves.append_batch('[{"tenant_id": "00000000-0000-0000-0000-0000000000c1", "store_id": "00000000-0000-0000-0000-0000000000d1", "entity_type": "Order", "entity_id": "x", "event_type": "order.created", "payload": [1]}]')$q$);
SELECT regress_try($q$SELECT * FROM ves.append_batch('[{"tenant_id": "00000000-0000-0000-0000-0000000000c1", "store_id": "00000000-0000-0000-0000-0000000000d1", "entity_type": "Order", "entity_id": "x", "event_type": "order.created", "payload": {}, "expected_version": "one"}]')$q$);

-- Reads.
SELECT regress_try($q$SELECT * FROM ves.read_all(0, -1)$q$);
SELECT regress_try($q$SELECT * FROM ves.read_all(0, 0)$q$);
SELECT regress_try($q$SELECT * FROM ves.read_all(-5, 10)$q$);
SELECT regress_try($q$SELECT * FROM ves.read_all(NULL, 10)$q$);
SELECT regress_try($q$SELECT * FROM ves.read_entity('00000000-0000-0000-0000-0000000000c1', 'Order', 'x', 0, 1000000)$q$);
SELECT regress_try($q$SELECT * FROM ves.read_entity(NULL, 'Order', 'x')$q$);
SELECT regress_try($q$SELECT * FROM ves.read_entity('00000000-0000-0000-0000-0000000000c1', 'Order', 'x', -1)$q$);

-- Nothing was written by any of the above.
SELECT last_value = :seq_before AS no_position_taken FROM ves.position_seq;
SELECT count(*) = :streams_before AS no_stream_written FROM ves.streams;
SELECT count(*) AS no_key_written FROM ves.idempotency_keys WHERE tenant_id = '00000000-0000-0000-0000-0000000000c1';
