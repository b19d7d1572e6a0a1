-- Verifiable events: RFC 8785, VES v1 hashes and signatures, the key registry,
-- verification, export and ingest. Expected values are the public VES v1 vectors
-- (test/vectors/ves_v1.json).
\set SHOW_CONTEXT never

-- RFC 8785 canonical JSON.
SELECT ves.canonical_json('{"b": [1, 2.50, "x"], "a": {"z": null, "é": true, "€": 1e21}}');
SELECT ves.canonical_json('{"n": [0.000001, 1e-7, -0, 100, 123456789012345680000]}');
SELECT ves.canonical_json_text('{"b":1,"a":2}');
SELECT regress_try($q$SELECT ves.canonical_json_text('{"a":1,"a":2}')$q$);
SELECT regress_try($q$SELECT ves.canonical_json('{"big": 1e400}')$q$);
SELECT regress_try($q$SELECT ves.canonical_json_text('{"x": NaN}')$q$);
-- A payload with no canonical form is refused at append, nothing written.
SELECT regress_try($q$SELECT * FROM ves.append('00000000-0000-0000-0000-000000000801', '00000000-0000-0000-0000-000000000802', 'X', 'x', 'x', '{"big": 1e400}')$q$);

SELECT regress_try($q$SELECT * FROM ves.append_batch('[{"tenant_id": "00000000-0000-0000-0000-000000000801", "store_id": "00000000-0000-0000-0000-000000000802", "entity_type": "X", "entity_id": "x", "event_type": "x", "payload": {}}, {"tenant_id": "00000000-0000-0000-0000-000000000801", "store_id": "00000000-0000-0000-0000-000000000802", "entity_type": "X", "entity_id": "y", "event_type": "x", "payload": {"big": 1e400}}]')$q$);
SELECT count(*) AS nothing_written FROM ves.events WHERE tenant_id = '00000000-0000-0000-0000-000000000801';

-- Register the vector agent's public key and ingest the three vector events.
SELECT agent_id, key_id, status, encode(public_key, 'hex') AS public_key FROM ves.register_agent_key('00000000-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 1, decode('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a','hex'));
CREATE TEMP TABLE vectors (i int, envelope jsonb, signing_hash text, leaf_hash text, receipt_hash text, proof text[]);
INSERT INTO vectors VALUES (0, $v${"ves_version": 1, "event_id": "fb47ed76-41c7-4355-8025-9544c6858f8b", "tenant_id": "00000000-0000-0000-0000-000000000001", "store_id": "00000000-0000-0000-0000-000000000002", "source_agent_id": "11111111-1111-1111-1111-111111111111", "agent_key_id": 1, "entity_type": "InventoryItem", "entity_id": "WIDGET-001", "event_type": "inventory.adjusted", "created_at": "2026-11-01T12:00:00.100Z", "payload_kind": 0, "payload": {"delta": 100, "reason": "shipment_receive", "location_bin": "A-12"}, "payload_plain_hash": "0x8ddca36cba5e298a087cadff58906633ef78d185529454290a05771ea5df2944", "payload_cipher_hash": "0x0000000000000000000000000000000000000000000000000000000000000000", "agent_signature": "0x2da98408cb3974e7599cd98aaab942d51ede28e2b77e2dd1c2e7e8029d9e4741b9140cfc6518050fd9f26d20f8f3e6668668024fb82a74e46c45aa659973f60c"}$v$, '0x2bb9f116fd1ecd1e10ca2e786a222b5c5af510e88185f41f5da763899dce5444', '0xe876d187dfc2be54bdbe7901478da46d0607e341a22f091c1605a2dcbaa4d2b3', '0x67220b6bae47e8ef0a6d85d2798dbbcca584eb79dfe69b6fbb9f06ae2c7136be', ARRAY['0x77f61972aaf0bd26969442267148ef8aebf0d95a7afdc8ccb99ca300a3a7b4be','0xff9ad37b122774ef6b16a4c4c488ecae977bcd45bc606297bb28c7d78b8bc77e']);
INSERT INTO vectors VALUES (1, $v${"ves_version": 1, "event_id": "7d14db6a-b1fc-443e-8dc0-80958d878293", "tenant_id": "00000000-0000-0000-0000-000000000001", "store_id": "00000000-0000-0000-0000-000000000002", "source_agent_id": "11111111-1111-1111-1111-111111111111", "agent_key_id": 1, "entity_type": "Order", "entity_id": "ORD-1", "event_type": "order.created", "created_at": "2026-11-02T12:00:01.101Z", "payload_kind": 0, "payload": {"order_id": "ORD-1", "total": "59.97", "items": [{"sku": "MUG-1", "qty": 3}]}, "payload_plain_hash": "0x81fcf0c3008aa5c51253d9b9d44cccd36979a2cdadb7358e71d9d422f9811ae7", "payload_cipher_hash": "0x0000000000000000000000000000000000000000000000000000000000000000", "agent_signature": "0xaa361276d9c1000fbd499c296b6bd3719aa39e355fa3962eb8d9f5883713e5b619218fa3c7ad59c0de5de325e4b6ae026262d27e4c1ccfe1531b7ab48ada1d08"}$v$, '0xce7c3c70634455483b9ad08df5dfde6f2e0368b91f5b46e548d25b3d4d515fe0', '0x77f61972aaf0bd26969442267148ef8aebf0d95a7afdc8ccb99ca300a3a7b4be', '0xa26448d0463e0fd01f15a2f713a573edcd7fc544255f3c452630fd73d1ea316d', ARRAY['0xe876d187dfc2be54bdbe7901478da46d0607e341a22f091c1605a2dcbaa4d2b3','0xff9ad37b122774ef6b16a4c4c488ecae977bcd45bc606297bb28c7d78b8bc77e']);
INSERT INTO vectors VALUES (2, $v${"ves_version": 1, "event_id": "c4ce68e9-f852-4bfa-8bad-b629ef86d996", "tenant_id": "00000000-0000-0000-0000-000000000001", "store_id": "00000000-0000-0000-0000-000000000002", "source_agent_id": "11111111-1111-1111-1111-111111111111", "agent_key_id": 1, "entity_type": "Order", "entity_id": "ORD-1", "event_type": "order.shipped", "created_at": "2026-11-03T12:00:02.102Z", "payload_kind": 0, "payload": {"quantity": 7, "tracking_number": "1Z12345E0205271688", "\u00e9": "accent", "n": 4.5e-09}, "payload_plain_hash": "0x006435052dfc338873ead21fb1d2d58681680dd42536bbf73069156fb1a1d736", "payload_cipher_hash": "0x0000000000000000000000000000000000000000000000000000000000000000", "agent_signature": "0x7d7939e31b5e6686b447c3057e4cd657e1314b6482a964ee3b17b2806e8afa9750030684f5526c2fd341337a0efb5f4f61ccd1b382678ac57a4b9943d28dbc0d"}$v$, '0x04a3dae36816f1fe1e6317504d8486c4d28c6c4c00e9cac04826a9913c41935e', '0xe1d28870b7c7a8050b534368c177859573d1a679f77b6741d9395a5584f23937', '0xfed5edfb3de1627de306eed3d3409c8eeb87ea8d3cd15e8f4e3b612d274c91d7', ARRAY['0xd9dd0e003ba5370a698013c48ed69c6c41d9ebc1236d44b280c52ceacfdad524','0x3ad60cfd458832677d41f24ccd9bc0be9559e3082ba3ef36e3ccd0405fa2363d']);
SELECT v.i, r.duplicate FROM vectors v, LATERAL ves.ingest_event(v.envelope) r ORDER BY v.i;
-- Ingesting again is a duplicate with the original position.
SELECT v.i, r.duplicate, r.position = e.position AS same_position FROM vectors v, LATERAL ves.ingest_event(v.envelope) r JOIN ves.events e ON e.event_id = r.event_id ORDER BY v.i;
-- Stored as signed: verification, signing hashes, export byte for byte.
SELECT v.i, ves.verify_event((v.envelope->>'event_id')::uuid) AS verifies,
       '0x' || encode(ves.signing_hash((v.envelope->>'event_id')::uuid), 'hex') = v.signing_hash AS signing_hash_matches,
       ves.export_event((v.envelope->>'event_id')::uuid) = v.envelope AS export_matches
FROM vectors v ORDER BY v.i;
SELECT encode(ves.payload_hash(v.envelope->'payload'), 'hex') = substr(v.envelope->>'payload_plain_hash', 3) AS payload_hash_matches FROM vectors v ORDER BY v.i;
-- The payload hash reads the jsonb without its text form: each payload here
-- hashes as its RFC 8785 form written out by hand (members in UTF-16 order,
-- shortest numbers, minimal escapes), under the VES_PAYLOAD_PLAIN_V1 domain.
SELECT p.i, ves.payload_hash(p.payload::jsonb)
            = sha256(convert_to('VES_PAYLOAD_PLAIN_V1' || p.canonical, 'UTF8')) AS canonical_hash_matches
FROM (VALUES
  (1, $j${"b": [1.0, 1e21, -0, 0.1, 100, 1.5e-7, 123456789012345678], "a": {"z": null, "y": true, "x": false}}$j$,
      $c${"a":{"x":false,"y":true,"z":null},"b":[1,1e+21,0,0.1,100,1.5e-7,123456789012345680]}$c$),
  (2, $j${"é": "line\nbreak \"q\" \\ tab\t /", "e": "\u0001\u001f\u007f"}$j$,
      '{"e":"\u0001\u001f' || chr(127) || '","é":"line\nbreak \"q\" \\ tab\t /"}'),
  (3, $j${"\ud83d\ude00": 1, "\uffff": 2, "": []}$j$,
      '{"":[],"' || chr(128512) || '":1,"' || chr(65535) || '":2}'),
  (4, $j$[[], {}, [[1]], "x"]$j$, '[[],{},[[1]],"x"]'),
  (5, $j$"a lone string"$j$, '"a lone string"'),
  (6, $j$-12.50$j$, '-12.5')
) AS p(i, payload, canonical) ORDER BY p.i;
-- Leaves and receipts at sequence numbers 0..2, the batch root and every inclusion proof.
CREATE TEMP TABLE leaves AS
SELECT v.i, ves.leaf_hash((v.envelope->>'tenant_id')::uuid, (v.envelope->>'store_id')::uuid, v.i,
                          ves.signing_hash((v.envelope->>'event_id')::uuid),
                          decode(substr(v.envelope->>'agent_signature', 3), 'hex')) AS leaf,
       v.leaf_hash, v.receipt_hash, v.proof, v.envelope
FROM vectors v;
SELECT i, '0x' || encode(leaf, 'hex') = leaf_hash AS leaf_matches,
       '0x' || encode(ves.receipt_hash((envelope->>'tenant_id')::uuid, (envelope->>'store_id')::uuid, (envelope->>'event_id')::uuid, i, ves.signing_hash((envelope->>'event_id')::uuid)), 'hex') = receipt_hash AS receipt_matches
FROM leaves ORDER BY i;
SELECT '0x' || encode(ves.merkle_root(array_agg(leaf ORDER BY i)), 'hex') = '0x07fcb89585bb41800ca4a02150e7be7b577893cc95c1c5c96e3feb4f6147ccac' AS root_matches FROM leaves;
SELECT l.i, (SELECT array_agg('0x' || encode(p, 'hex')) FROM unnest(ves.merkle_proof((SELECT array_agg(leaf ORDER BY i) FROM leaves), l.i)) p) = l.proof AS proof_matches,
       ves.verify_merkle_proof(l.leaf, (SELECT array_agg(decode(substr(p, 3), 'hex')) FROM unnest(l.proof) p), l.i, decode('07fcb89585bb41800ca4a02150e7be7b577893cc95c1c5c96e3feb4f6147ccac', 'hex')) AS proof_verifies,
       ves.verify_merkle_proof(l.leaf, (SELECT array_agg(decode(substr(p, 3), 'hex')) FROM unnest(l.proof) p), l.i + 1, decode('07fcb89585bb41800ca4a02150e7be7b577893cc95c1c5c96e3feb4f6147ccac', 'hex')) AS wrong_index_verifies
FROM leaves l ORDER BY l.i;
SELECT length(ves.stream_id('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002')) AS stream_id_bytes;

-- Refused envelopes: altered payload, altered signature, unknown key, malformed.
SELECT regress_try(format('SELECT * FROM ves.ingest_event(%L)', jsonb_set(envelope, '{payload,delta}', '101') || '{"event_id": "aaaaaaaa-0000-4000-8000-000000000001"}')) FROM vectors WHERE i = 0;
SELECT regress_try(format('SELECT * FROM ves.ingest_event(%L)', jsonb_set(envelope, '{event_type}', '"inventory.stolen"') || '{"event_id": "aaaaaaaa-0000-4000-8000-000000000002"}')) FROM vectors WHERE i = 0;
SELECT regress_try(format('SELECT * FROM ves.ingest_event(%L)', envelope || '{"agent_key_id": 9, "event_id": "aaaaaaaa-0000-4000-8000-000000000003"}')) FROM vectors WHERE i = 0;
SELECT regress_try($q$SELECT * FROM ves.ingest_event('{"ves_version": 2}')$q$);
SELECT regress_try($q$SELECT * FROM ves.ingest_event('[]')$q$);
SELECT count(*) AS vector_tenant_events FROM ves.events WHERE tenant_id = '00000000-0000-0000-0000-000000000001';

-- Local events are signed on append by the (tenant, store)'s agent, created
-- on first use.
\set t '''00000000-0000-0000-0000-000000000901'''
\set s '''00000000-0000-0000-0000-000000000902'''
SELECT count(*) AS agents FROM ves.local_agents WHERE tenant_id = :t;
SELECT position AS p1 FROM ves.append(:t, :s, 'Order', 'sig-1', 'order.created', '{"total": 10.5, "items": ["a", "b"]}') \gset
SELECT count(*) AS agents, bool_and(a.agent_id = k.agent_id) AS same_agent
FROM ves.local_agents a JOIN ves.agent_keys k USING (tenant_id) WHERE a.tenant_id = :t;
SELECT key_id, status, local, length(public_key) FROM ves.agent_keys WHERE tenant_id = :t;
SELECT agent_key_id, created_at ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$' AS rfc3339,
       payload_plain_hash = ves.payload_hash(payload) AS hash_ok, ves.verify_event(event_id)
FROM ves.events WHERE position = :p1;
-- Rotation: later events use key 2; earlier ones still verify.
SELECT key_id FROM ves.rotate_agent_key(:t, :s);
SELECT position AS p2 FROM ves.append(:t, :s, 'Order', 'sig-1', 'order.updated', '{"total": 11}') \gset
SELECT position = :p2 AS second, agent_key_id, ves.verify_event(event_id) FROM ves.events WHERE position IN (:p1, :p2) ORDER BY position;
SELECT key_id, status FROM ves.agent_keys WHERE tenant_id = :t ORDER BY key_id;
SELECT * FROM ves.create_agent_key(:t, :s);
SELECT * FROM ves.rotate_agent_key(:t, '00000000-0000-0000-0000-00000000dead');
-- Revocation: events signed before it stay valid; a revoked local key is
-- replaced on the next append.
SELECT key_id, status, revoked_at IS NOT NULL AS revoked FROM ves.revoke_agent_key(:t, (SELECT agent_id FROM ves.local_agents WHERE tenant_id = :t), 2);
SELECT count(*) AS failing FROM ves.verify_events(tenant_id => :t);
SELECT event_id AS e3 FROM ves.append(:t, :s, 'Order', 'sig-1', 'order.updated', '{"total": 12}') \gset
SELECT agent_key_id, ves.verify_event(event_id) FROM ves.events WHERE event_id = :'e3';
SELECT key_id, status FROM ves.agent_keys WHERE tenant_id = :t ORDER BY key_id;
SELECT * FROM ves.revoke_agent_key(:t, '00000000-0000-0000-0000-00000000dead', 1);

-- Tampering through the maintenance path is named by verification.
SELECT position AS p3 FROM ves.append(:t, :s, 'Order', 'sig-2', 'order.created', '{"total": 1}') \gset
SELECT position AS p4 FROM ves.append(:t, :s, 'Order', 'sig-3', 'order.created', '{"total": 1}') \gset
SELECT position AS p5 FROM ves.append(:t, :s, 'Order', 'sig-4', 'order.created', '{"total": 1}') \gset
SELECT position AS p6 FROM ves.append(:t, :s, 'Order', 'sig-5', 'order.created', '{"total": 1}') \gset
SELECT position AS p7 FROM ves.append(:t, :s, 'Order', 'sig-6', 'order.created', '{"total": 1}') \gset
BEGIN;
SELECT ves.begin_maintenance('regression: tamper with events to test verification');
UPDATE ves.events SET payload = '{"total": 1000}' WHERE position = :p3;
UPDATE ves.events SET event_type = 'order.refunded' WHERE position = :p4;
UPDATE ves.events SET entity_id = 'sig-999' WHERE position = :p5;
UPDATE ves.events SET agent_signature = set_byte(agent_signature, 0, get_byte(agent_signature, 0) # 1) WHERE position = :p6;
UPDATE ves.events SET agent_key_id = 77 WHERE position = :p7;
UPDATE ves.events SET created_at = '2999-01-01T00:00:00.000Z' WHERE position = :p1;
COMMIT;
SELECT event_position - :p1 AS offset, reason FROM ves.verify_events(tenant_id => :t) ORDER BY 1;
SELECT ves.verify_event(event_id) FROM ves.events WHERE position = :p3;
SELECT count(*) AS failing_in_range FROM ves.verify_events(from_position => :p4, to_position => :p5);
SELECT count(*) AS failing_for_entity FROM ves.verify_events(tenant_id => :t, entity_type => 'Order', entity_id => 'sig-2');
SELECT regress_try($q$SELECT * FROM ves.verify_events(from_position => 10, to_position => 5)$q$);
SELECT regress_try($q$SELECT ves.verify_event('00000000-0000-0000-0000-000000000000')$q$);
SELECT count(*) AS running FROM ves.progress;

-- Secrets: no role can read private keys or the server key setting.
CREATE ROLE regress_ves_w IN ROLE ves_writer;
CREATE ROLE regress_ves_a IN ROLE ves_admin;
SET ROLE regress_ves_w;
SELECT regress_try('SELECT * FROM ves.agent_key_secrets');
SELECT regress_try('SHOW ves.server_key_file');
SELECT regress_try($q$SELECT * FROM ves.rotate_agent_key('00000000-0000-0000-0000-000000000901', '00000000-0000-0000-0000-000000000902')$q$);
SELECT count(*) > 0 AS public_keys_visible FROM ves.agent_keys;
RESET ROLE;
SET ROLE regress_ves_a;
SELECT regress_try('SELECT * FROM ves.agent_key_secrets');
SELECT count(*) > 0 AS admin_rotates FROM ves.rotate_agent_key(:t, :s);
RESET ROLE;
DROP ROLE regress_ves_w, regress_ves_a;
