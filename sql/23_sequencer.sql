-- pg_ves as the VES sequencer: ves.sequence_events answers as StateSet's
-- ingest endpoint (test/mock/README.md), numbers gaplessly per stream,
-- signs receipts; pulls, batch commitments and proofs; tenancy.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-00000000a001'''
\set s '''00000000-0000-0000-0000-00000000a002'''
\set t2 '''00000000-0000-0000-0000-00000000b001'''
CREATE FUNCTION seq_try(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; msg text; hint text;
BEGIN
  EXECUTE statement;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN state || ': ' || msg || CASE WHEN hint <> '' THEN E'\n  hint: ' || hint ELSE '' END;
END $$;

-- Events signed by this database's local agent, exported as VES v1 envelopes.
CREATE TEMP TABLE ev (i int PRIMARY KEY, id uuid, envelope jsonb);
INSERT INTO ev (i, id)
SELECT n, (ves.append(:t, :s, 'Order', CASE WHEN n <= 3 THEN 'o1' ELSE 'o' || n END,
                      'order.noted', jsonb_build_object('n', n))).event_id
FROM generate_series(1, 12) n;
UPDATE ev SET envelope = ves.export_event(id);
SELECT count(DISTINCT envelope->>'source_agent_id') AS one_agent FROM ev;
CREATE TEMP TABLE agent AS SELECT (envelope->>'source_agent_id')::uuid AS id FROM ev WHERE i = 1;
CREATE FUNCTION seq_push(VARIADIC items jsonb[]) RETURNS jsonb LANGUAGE sql AS $$
  SELECT ves.sequence_events((SELECT id FROM agent), to_jsonb(items))
$$;
CREATE FUNCTION e(n int) RETURNS jsonb LANGUAGE sql AS $$ SELECT envelope FROM ev WHERE i = n $$;
CREATE TEMP TABLE answers (step text, answer jsonb);

-- Two events: numbers 1 and 2, one receipt each, no rejections key.
INSERT INTO answers SELECT 'first', seq_push(e(1), e(2));
SELECT answer - 'receipts' - 'batchId' AS answer, jsonb_array_length(answer->'receipts') AS receipts,
       answer->'batchId' IS NOT NULL AS has_batch_id
FROM answers WHERE step = 'first';
SELECT r->>'eventId' = e(n::int)->>'event_id' AS for_event, (r->>'sequenceNumber')::int AS seq,
       r->>'signatureAlg' AS alg, r->>'receiptSignatureScheme' AS scheme, r->>'sequencerKeyVersion' AS key_version,
       r->>'sequencerId' = (SELECT sequencer_id::text FROM ves.sequencer_identity()) AS our_sequencer,
       r->>'sequencedAt' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$' AS rfc3339,
       r->>'receiptHash' = encode(ves.receipt_hash(:t, :s, (r->>'eventId')::uuid, (r->>'sequenceNumber')::bigint,
                                                   ves.signing_hash((r->>'eventId')::uuid)), 'hex') AS receipt_hash_ok,
       ves.verify_ed25519((SELECT public_key FROM ves.sequencer_identity()), decode(r->>'receiptHash', 'hex'),
                          decode(r->>'sequencerSignature', 'hex')) AS signature_ok,
       ves.verify_ed25519((SELECT public_key FROM ves.sequencer_identity()), decode(r->>'receiptHash', 'hex'),
                          decode(repeat('00', 64), 'hex')) AS zero_signature_ok
FROM answers, jsonb_array_elements(answer->'receipts') WITH ORDINALITY x(r, n) WHERE step = 'first' ORDER BY n;

-- The identity: one key, stable, 32 bytes, readable by readers.
SELECT length(public_key) AS key_bytes, key_version FROM ves.sequencer_identity();
SELECT count(*) AS keys FROM ves.sequencer_key;

-- A replay with identical content returns the original receipts; nothing
-- is counted as accepted or rejected and the head stays.
INSERT INTO answers SELECT 'replay', seq_push(e(2), e(1));
SELECT answer - 'receipts' - 'batchId' AS answer,
       answer->'receipts'->0 = (SELECT answer->'receipts'->1 FROM answers WHERE step = 'first') AS first_same,
       answer->'receipts'->1 = (SELECT answer->'receipts'->0 FROM answers WHERE step = 'first') AS second_same
FROM answers WHERE step = 'replay';

-- The ingest body form; base_version against the sequencer's own count per
-- entity (o1 has 2 accepted events; o4 none).
SELECT answer - 'batchId' - 'receipts' - 'rejections' AS answer,
       jsonb_path_query_array(answer, '$.rejections[*].reason') AS reasons,
       jsonb_path_query_array(answer, '$.rejections[*].message') AS messages
FROM (SELECT ves.sequence_events((SELECT id FROM agent),
  jsonb_build_object('agentId', (SELECT id FROM agent),
                     'events', jsonb_build_array(e(3) || '{"base_version": 2}', e(4) || '{"base_version": 5}'))) AS answer) x;
-- An event without base_version is never version-checked but counts.
SELECT seq_push(e(4) || '{"base_version": 0}', e(5)) - 'batchId' - 'receipts' AS answer;

-- Every per-event rejection, in the server's order and words. Each case
-- is a fresh event id but the signature case, which alters e(6)'s payload
-- and recomputes its hash.
CREATE TEMP TABLE cases (k int, label text, envelope jsonb);
INSERT INTO cases VALUES
  (1, 'version', e(6) || '{"ves_version": 2, "event_id": "00000000-0000-0000-0000-0000000e0001"}'),
  (2, 'encrypted', (e(6) - 'payload') || '{"payload_kind": 1, "payload_encrypted": {"ciphertext": "x"}, "event_id": "00000000-0000-0000-0000-0000000e0002"}'),
  (3, 'cipher hash', e(6) || jsonb_build_object('payload_cipher_hash', '0x' || repeat('1', 64), 'event_id', '00000000-0000-0000-0000-0000000e0003')),
  (4, 'created_at', e(6) || '{"created_at": "yesterday", "event_id": "00000000-0000-0000-0000-0000000e0004"}'),
  (5, 'payload altered', e(6) || '{"payload": {"n": 666}, "event_id": "00000000-0000-0000-0000-0000000e0005"}'),
  (6, 'unknown key', e(6) || '{"agent_key_id": 99, "event_id": "00000000-0000-0000-0000-0000000e0006"}'),
  (7, 'payload rehashed', e(6) || jsonb_build_object('payload', '{"n": 666}'::jsonb,
                                  'payload_plain_hash', '0x' || encode(ves.payload_hash('{"n": 666}'), 'hex'))),
  (8, 'scheme', e(7) || '{"agent_signature_scheme": 7}'),
  (9, 'same id, other content', e(1) || '{"base_version": 0}'),
  (10, 'twice in one batch', e(8)),
  (11, 'twice in one batch', e(8));
SELECT c.label, r->>'reason' AS reason, regexp_replace(r->>'message', '[0-9a-f-]{36}', '<id>') AS message
FROM (SELECT seq_push(VARIADIC ARRAY(SELECT envelope FROM cases ORDER BY k)) AS a) x,
     jsonb_array_elements(a->'rejections') WITH ORDINALITY y(r, n),
     LATERAL (SELECT min(label) AS label FROM cases c WHERE c.envelope->>'event_id' = r->>'event_id') c
ORDER BY n;
SELECT ves.sequencer_head(:t, :s) AS head_after_rejections;

-- Refused envelopes raise security alerts with source ves.sequence_events
-- (recorded by the sync worker, or by draining the queue here).
DO $$
BEGIN
  FOR i IN 1..100 LOOP
    PERFORM ves._drain_security_alerts();
    EXIT WHEN (SELECT count(*) FROM ves.security_alerts WHERE source = 'ves.sequence_events') >= 4;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT kind, reason, event_id = (e(6)->>'event_id')::uuid AS forged_e6, tenant_id = :t AS tenant_ok
FROM ves.security_alerts WHERE source = 'ves.sequence_events' ORDER BY kind, reason;

-- command_id: once per stream; a second use in one batch or later is refused.
SELECT jsonb_path_query_array(a, '$.rejections[*].message') AS rejections, a->'eventsAccepted' AS accepted
FROM (SELECT seq_push(e(9) || '{"command_id": "00000000-0000-0000-0000-0000000c0001"}',
                      e(10) || '{"command_id": "00000000-0000-0000-0000-0000000c0001"}') AS a) x;
SELECT jsonb_path_query_array(a, '$.rejections[*].message') AS rejections, a->'eventsAccepted' AS accepted
FROM (SELECT seq_push(e(10) || '{"command_id": "00000000-0000-0000-0000-0000000c0001"}') AS a) x;

-- Whole-request refusals.
SELECT seq_try($q$SELECT ves.sequence_events((SELECT id FROM agent), '[]')$q$);
SELECT regexp_replace(seq_try($q$SELECT ves.sequence_events((SELECT id FROM agent), '{"agentId": "00000000-0000-0000-0000-000000000009", "events": []}')$q$), 'argument [0-9a-f-]{36}', 'argument <agent>');
SELECT seq_try($q$SELECT ves.sequence_events((SELECT id FROM agent), '"x"')$q$);
SELECT seq_try($q$SELECT ves.sequence_events((SELECT id FROM agent), jsonb_build_array(e(10) - 'event_id'))$q$);
SELECT seq_try($q$SELECT ves.sequence_events((SELECT id FROM agent), jsonb_build_array(e(10) || '{"agent_signature": "0x12"}'))$q$);
SELECT seq_try($q$SELECT seq_push(e(10), e(11) || '{"store_id": "00000000-0000-0000-0000-00000000a003"}')$q$);
SELECT seq_try($q$SELECT ves.sequence_events('00000000-0000-0000-0000-000000000009', jsonb_build_array(e(10)))$q$);
SELECT regexp_replace(seq_try($q$SELECT seq_push(e(10) || jsonb_build_object('entity_type', repeat('x', 129)))$q$), '[0-9a-f-]{36}', '<id>');
SELECT regexp_replace(seq_try($q$SELECT seq_push(e(10) - 'payload')$q$), '[0-9a-f-]{36}', '<id>');
SELECT seq_try($q$SELECT ves.sequence_events((SELECT id FROM agent), (SELECT jsonb_agg(e(10)) FROM generate_series(1, 1001)))$q$);
SELECT seq_try($q$SELECT ves.sequence_events(NULL, '[]')$q$);
SELECT ves.sequencer_head(:t, :s) AS head_unchanged;

-- A rolled-back batch leaves no hole.
BEGIN;
SELECT seq_push(e(10))->'sequenceStart' AS would_be;
ROLLBACK;
SELECT seq_push(e(10))->'sequenceStart' AS got;
SELECT array_agg(sequence_number ORDER BY sequence_number) = array(SELECT generate_series(1, ves.sequencer_head(:t, :s)))
       AS gapless FROM ves.sequencer_events WHERE tenant_id = :t AND store_id = :s;

-- Pull: the mock's item layout, from inclusive, head.
SELECT p->'count' AS count, p->'head' AS head,
       (SELECT array_agg((i->'envelope'->>'sequence_number')::int) FROM jsonb_array_elements(p->'events') i) AS numbers
FROM (SELECT ves.sequenced_events(:t, :s, 2, 3) AS p) x;
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(i) k) AS item_keys,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(i->'envelope') k) AS envelope_keys,
       i->'sequenced_at' = i->'envelope'->'sequenced_at' AS same_time,
       i->>'sequenced_at' ~ 'Z$' AS zulu,
       i->'receipt' = (SELECT answer->'receipts'->0 FROM answers WHERE step = 'first') AS receipt_as_ingested,
       (i->'envelope') - 'sequence_number'::text - 'sequenced_at'::text - 'agent_signature_scheme'::text = e(1) AS envelope_as_signed,
       encode(ves.payload_hash(i->'envelope'->'payload'), 'hex') = substr(i->'envelope'->>'payload_plain_hash', 3) AS payload_verifies
FROM (SELECT ves.sequenced_events(:t, :s, 0, 1)->'events'->0 AS i) x;
SELECT ves.sequenced_events(:t, :s, 1, 1000)->'events'->3->'envelope'->'base_version' AS served_base_version;
SELECT ves.sequenced_events(:t, :s, 100) AS past_head;
SELECT seq_try($q$SELECT ves.sequenced_events('00000000-0000-0000-0000-00000000a001', '00000000-0000-0000-0000-00000000a002', 1, 0)$q$);
SELECT seq_try($q$SELECT ves.sequenced_events('00000000-0000-0000-0000-00000000a001', '00000000-0000-0000-0000-00000000a002', 1, 1001)$q$);

-- Batch commitments: contiguous, chained, signed; proofs verify.
CREATE TEMP TABLE commits AS SELECT * FROM ves.commit_sequencer_batch(:t, :s, 4);
INSERT INTO commits SELECT * FROM ves.commit_sequencer_batch(:t, :s);
SELECT count(*) AS nothing_new FROM ves.commit_sequencer_batch(:t, :s);
SELECT start_sequence, end_sequence, leaf_count,
       previous_root = coalesce(lag(merkle_root) OVER (ORDER BY start_sequence), decode(repeat('00', 32), 'hex')) AS chained,
       merkle_root = ves.merkle_root((SELECT array_agg(leaf_hash ORDER BY sequence_number) FROM ves.sequencer_events e
                                      WHERE e.tenant_id = c.tenant_id AND e.store_id = c.store_id
                                        AND e.sequence_number BETWEEN c.start_sequence AND c.end_sequence)) AS root_ok,
       ves.verify_ed25519((SELECT public_key FROM ves.sequencer_identity()),
                          ves.sequencer_commitment_hash(tenant_id, store_id, start_sequence, end_sequence, merkle_root, previous_root),
                          signature) AS signed
FROM commits c ORDER BY start_sequence;
SELECT count(*) AS events, count(*) FILTER (WHERE ves.verify_merkle_proof(
         decode(p->>'leaf_hash', 'hex'),
         ARRAY(SELECT decode(h, 'hex') FROM jsonb_array_elements_text(p->'proof_path') h),
         (p->>'leaf_index')::bigint, decode(p->>'merkle_root', 'hex'))
         AND decode(p->>'leaf_hash', 'hex') = e.leaf_hash) AS proofs_verify
FROM ves.sequencer_events e, LATERAL ves.sequencer_proof(e.tenant_id, e.store_id, e.sequence_number) p
WHERE e.tenant_id = :t AND e.store_id = :s;
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(p) k) AS proof_keys, p->'directions' AS directions
FROM ves.sequencer_proof(:t, :s, 2) p;
SELECT tenant_id = :t AS ours, head, committed_through, last_sequenced_at IS NOT NULL AS has_time FROM ves.sequencer_status();
SELECT seq_push(e(11))->'sequenceStart' AS next;
-- ves.get_sync_status() shows the stream after the destinations: kind
-- 'sequencer', no destination, the head and the commitments' reach of
-- ves.sequencer_status(); no outbox counts on it.
SELECT g.kind, g.destination IS NULL AS no_destination, g.tenant_id = :t AS ours, g.store_id = :s AS our_store,
       g.sequencer_head, g.sequencer_head = ves.sequencer_head(:t, :s) AS is_head, g.committed_through,
       g.committed_through = q.committed_through AS as_status, g.pending IS NULL AND g.synced IS NULL AS no_counts
FROM ves.get_sync_status() g JOIN ves.sequencer_status() q USING (tenant_id, store_id)
WHERE g.kind = 'sequencer';
SELECT regexp_replace(seq_try($q$SELECT ves.sequencer_proof('00000000-0000-0000-0000-00000000a001', '00000000-0000-0000-0000-00000000a002', 11)$q$), '\d+ of', 'N of');
SELECT head - committed_through AS uncommitted FROM ves.sequencer_status();
SELECT ves._commit_sequencer_batches() AS committed_batches;
SELECT head - committed_through AS uncommitted FROM ves.sequencer_status();
SELECT sequencer_head, committed_through FROM ves.get_sync_status() WHERE kind = 'sequencer';

-- Tenancy: readers of another tenant see nothing and may not pull; a writer
-- scoped to another tenant may not sequence into this one.
CREATE ROLE regress_seq_reader IN ROLE ves_reader;
CREATE ROLE regress_seq_writer IN ROLE ves_writer;
GRANT SELECT ON agent, ev TO regress_seq_writer;
GRANT EXECUTE ON FUNCTION seq_push(jsonb[]), e(int) TO regress_seq_writer;
SET ROLE regress_seq_reader;
SET ves.tenant_id = :t2;
SELECT count(*) AS foreign_events FROM ves.sequencer_events;
SELECT count(*) AS foreign_streams FROM ves.sequencer_streams;
SELECT count(*) AS foreign_commitments FROM ves.sequencer_commitments;
SELECT count(*) AS foreign_status FROM ves.sequencer_status();
SELECT seq_try($q$SELECT ves.sequenced_events('00000000-0000-0000-0000-00000000a001', '00000000-0000-0000-0000-00000000a002')$q$) LIKE 'VE007%' AS pull_denied;
SET ves.tenant_id = :t;
SELECT count(*) > 0 AS own_events FROM ves.sequencer_events;
SELECT seq_try($q$SELECT ves.sequence_events('00000000-0000-0000-0000-000000000009', '[]')$q$) LIKE '42501%' AS reader_cannot_sequence;
RESET ves.tenant_id;
RESET ROLE;
SET ROLE regress_seq_writer;
SET ves.tenant_id = :t2;
SELECT seq_try($q$SELECT seq_push(e(12))$q$) LIKE 'VE007%' AS writer_denied;
SET ves.tenant_id = :t;
SELECT seq_push(e(12))->'eventsAccepted' AS writer_accepted;
RESET ves.tenant_id;
RESET ROLE;
-- Nothing of the sequencer is readable by PUBLIC, the key by no role.
SELECT has_table_privilege('ves_admin', 'ves.sequencer_key', 'SELECT') AS admin_reads_key,
       has_function_privilege('ves_admin', 'ves._sequencer_sign_commitment(uuid, uuid, bigint, bigint, bytea, bytea)', 'EXECUTE') AS admin_signs;
DROP ROLE regress_seq_reader;
REVOKE ALL ON agent, ev FROM regress_seq_writer;
REVOKE ALL ON FUNCTION seq_push(jsonb[]), e(int) FROM regress_seq_writer;
DROP ROLE regress_seq_writer;
-- The alerts raised here are dealt with (other tests count open alerts).
SELECT count(ves.acknowledge_security_alert(id, 'skip')) > 0 AS acknowledged
FROM ves.security_alerts WHERE source = 'ves.sequence_events' AND acknowledged_at IS NULL;
-- A hole in a stream (its table altered behind the sequencer's back) is never
-- committed over: VE056, and no commitment is written; once the event is
-- back, the range is committed.
UPDATE ves.sequencer_events SET sequence_number = sequence_number + 1000000
WHERE tenant_id = :t AND store_id = :s AND sequence_number = ves.sequencer_head(:t, :s);
SELECT count(*) AS commitments_before FROM ves.sequencer_commitments WHERE tenant_id = :t AND store_id = :s;
SELECT seq_try(format('SELECT * FROM ves.commit_sequencer_batch(%L, %L)', :t, :s)) LIKE 'VE056:%' AS hole_refused;
SELECT count(*) AS commitments_after FROM ves.sequencer_commitments WHERE tenant_id = :t AND store_id = :s;
UPDATE ves.sequencer_events SET sequence_number = sequence_number - 1000000
WHERE tenant_id = :t AND store_id = :s AND sequence_number > 1000000;
SELECT end_sequence = ves.sequencer_head(:t, :s) AS committed_once_whole
FROM ves.commit_sequencer_batch(:t, :s);
-- Following up platform batches takes a positive batch count.
SELECT seq_try($q$SELECT ves.follow_up_batches(0)$q$) LIKE 'VE010:%' AS bad_max_batches;
-- The worker's pieces of it: one answer per batch, and only for the worker.
SELECT seq_try($q$SELECT ves._follow_up_record('{1,2}', '[{"finished": false}]')$q$) LIKE 'VE010:%'
  AS answers_must_match_batches;
SELECT seq_try($q$SELECT ves._follow_up_record(NULL, '[]')$q$) LIKE 'VE010:%' AS batches_needed;
SELECT count(*) AS nothing_due FROM ves._follow_ups_due(20);
SELECT has_function_privilege('ves_admin', 'ves._follow_ups_due(int)', 'EXECUTE') AS admin_may_list_due,
       has_function_privilege('ves_admin', 'ves._follow_up_record(bigint[], jsonb)', 'EXECUTE') AS admin_may_record,
       has_function_privilege('ves_worker', 'ves._follow_ups_due(int)', 'EXECUTE') AS worker_may_list_due,
       has_function_privilege('ves_worker', 'ves._follow_up_record(bigint[], jsonb)', 'EXECUTE') AS worker_may_record;
-- ves.get_sync_status() keeps to the caller's tenants: with a second
-- tenant's stream (rolled back at the end), an admin bound to that tenant
-- and a session scoped to the first each see their own stream only.
BEGIN;
SELECT (ves.append(:t2, :s, 'Order', 'o-t2', 'order.noted', '{}')).event_id AS t2_event \gset
SELECT ves.sequence_events((x.env->>'source_agent_id')::uuid, jsonb_build_array(x.env))->'eventsAccepted'
         AS second_tenant_accepted
FROM (SELECT ves.export_event(:'t2_event') AS env) x;
SELECT tenant_id = :t AS first, tenant_id = :t2 AS second, sequencer_head
FROM ves.get_sync_status() WHERE kind = 'sequencer';
CREATE ROLE regress_seq_admin IN ROLE ves_admin;
SELECT ves.bind_role('regress_seq_admin', :t2);
SET ROLE regress_seq_admin;
SELECT tenant_id = :t2 AS bound_sees_own, sequencer_head FROM ves.get_sync_status() WHERE kind = 'sequencer';
RESET ROLE;
SET ves.tenant_id = :t;
SELECT tenant_id = :t AS scoped_sees_own, sequencer_head FROM ves.get_sync_status() WHERE kind = 'sequencer';
RESET ves.tenant_id;
-- Destination rows carry no stream.
SELECT count(*) FROM ves.create_destination('regress-seq-hook', 'webhook', 'https://example.com/hooks/seq', '{}');
SELECT count(*) AS destination_rows, bool_and(tenant_id IS NULL AND store_id IS NULL AND sequencer_head IS NULL
                                              AND committed_through IS NULL) AS no_stream_columns
FROM ves.get_sync_status() WHERE destination = 'regress-seq-hook';
ROLLBACK;
SELECT count(*) AS streams_after_rollback FROM ves.get_sync_status() WHERE kind = 'sequencer';
