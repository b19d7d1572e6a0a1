\set SHOW_CONTEXT never
-- Applying events from other nodes (ves._apply_ingested). "Node B" is played
-- by a transaction that makes its changes under its own agent, exports them
-- and rolls back; this database ("node A") then makes its own changes to the
-- same entities, ingests B's envelopes and applies them.
\set t '''00000000-0000-0000-0000-0000000025aa'''
\set s '''00000000-0000-0000-0000-000000002501'''
\set b '''bbbbbbbb-0000-4000-8000-0000000025bb'''

-- Node B.
BEGIN;
SELECT ves.create_agent_key(:t, :s, :b) IS NOT NULL AS agent_b;
SELECT ves.set_conflict_policy(:t, '*', '{"strategy": "last_write_wins", "review_window_ms": 0}') IS NOT NULL AS lww;
SELECT outcome FROM ves.upsert(:t, :s, 'thing', 'e1', '{"title": "B", "price": 2}', observed_at => '2026-01-01 00:00:10+00');
SELECT outcome FROM ves.upsert(:t, :s, 'thing', 'e2', '{"size": "L"}', source => 'shopify', observed_at => '2026-01-01 00:00:01+00');
SELECT outcome FROM ves.upsert(:t, :s, 'thing', 'e3', '{"n": 2}', observed_at => '2026-01-01 00:00:30+00');
SELECT outcome FROM ves.upsert(:t, :s, 'thing', 'e4', '{"gone": true}', observed_at => '2026-01-01 00:00:01+00');
SELECT outcome FROM ves.delete_entity(:t, :s, 'thing', 'e4', observed_at => '2026-01-01 00:00:40+00');
SELECT on_hand, reserved FROM ves.set_stock(:t, :s, 'sku-1', 10);
SELECT on_hand, reserved FROM ves.adjust_stock(:t, :s, 'sku-1', -3);
SELECT on_hand, reserved FROM ves.reserve_stock(:t, :s, 'sku-1', 2, 'r-b', order_id => 'o-b');
SELECT status FROM ves.record_order_event(:t, :s, 'o-b', 'order.created', '{"total": 5}');
SELECT status FROM ves.record_order_event(:t, :s, 'o-b', 'order.shipped', '{"tracking_number": "1Z"}');
-- Under the default merge strategy: two platforms within the review window.
SELECT ves.set_conflict_policy(:t, 'gadget', '{"strategy": "merge", "review_window_ms": 30000}') ->> 'strategy' AS strategy;
SELECT outcome FROM ves.upsert(:t, :s, 'gadget', 'g1', '{"v": 1}', source => 'amazon', observed_at => '2026-01-01 00:00:10+00');
-- Conflicts B records travel with its events: a change that loses on B (to a
-- source that outranks it) and so changes nothing there, a conflict B opens for a person and resolves, and one
-- it leaves open.
SELECT outcome FROM ves.upsert(:t, :s, 'thing', 'e6', '{"w": 2}', source => 'shopify', observed_at => '2026-01-01 00:00:20+00');
SELECT outcome, event_id IS NULL AS no_event
FROM ves.upsert(:t, :s, 'thing', 'e6', '{"w": 1}', observed_at => '2026-01-01 00:00:30+00');
SELECT outcome FROM ves.upsert(:t, :s, 'gadget', 'g2', '{"v": 1}', source => 'amazon', observed_at => '2026-01-01 00:00:10+00');
SELECT outcome, conflict_id AS b_g2 FROM ves.upsert(:t, :s, 'gadget', 'g2', '{"v": 2}', source => 'shopify',
                                                     observed_at => '2026-01-01 00:00:11+00') \gset
SELECT outcome FROM ves.resolve_conflict(:'b_g2', 'accept_remote');
SELECT outcome FROM ves.upsert(:t, :s, 'gadget', 'g3', '{"v": 1}', source => 'amazon', observed_at => '2026-01-01 00:00:10+00');
SELECT outcome FROM ves.upsert(:t, :s, 'gadget', 'g3', '{"v": 2}', source => 'shopify', observed_at => '2026-01-01 00:00:11+00');
SELECT jsonb_object_agg(conflict_id, jsonb_build_array(entity_id, status)) AS b_conflicts FROM ves.conflicts WHERE tenant_id = :t \gset
-- A conflict event whose record cannot be read (an older node's, a broken one).
SELECT entity_version FROM ves.append(:t, :s, 'sync.conflict', '00000000-0000-4000-8000-0000000025cc',
  'sync.conflict_detected', '{"conflict_id": "00000000-0000-4000-8000-0000000025cc", "status": "maybe"}');
-- An application's own event, and a state event whose observed_at cannot be read.
SELECT entity_version FROM ves.append(:t, :s, 'note', 'n1', 'note.added', '{"text": "hello"}');
SELECT entity_version FROM ves.append(:t, :s, 'thing', 'e5', 'thing.created',
  '{"state": {"a": 1}, "source": "pos", "observed_at": "soon"}');
SELECT encode(public_key, 'hex') AS b_key FROM ves.agent_keys WHERE agent_id = :b \gset
SELECT jsonb_agg(ves.export_event(event_id) ORDER BY position) AS b_events FROM ves.events WHERE tenant_id = :t \gset
SELECT jsonb_array_length(:'b_events') AS exported;
ROLLBACK;
-- A fresh session: nothing of B's agent stays cached.
\c

-- Node A, concurrently with B.
SELECT ves.set_conflict_policy(:t, '*', '{"strategy": "last_write_wins", "review_window_ms": 0}') IS NOT NULL AS lww;
SELECT outcome FROM ves.upsert(:t, :s, 'thing', 'e1', '{"title": "A", "price": 1, "color": "red"}', observed_at => '2026-01-01 00:00:05+00');
SELECT outcome FROM ves.upsert(:t, :s, 'thing', 'e2', '{"size": "M"}', observed_at => '2026-01-01 00:00:02+00');
SELECT outcome FROM ves.upsert(:t, :s, 'thing', 'e3', '{"n": 1}', source => 'amazon', observed_at => '2026-01-01 00:00:20+00');
SELECT outcome FROM ves.upsert(:t, :s, 'thing', 'e4', '{"gone": false}', observed_at => '2026-01-01 00:00:50+00');
SELECT ves.set_conflict_policy(:t, 'gadget', '{"strategy": "merge", "review_window_ms": 30000}') ->> 'strategy' AS strategy;
SELECT outcome FROM ves.upsert(:t, :s, 'gadget', 'g1', '{"v": 2}', source => 'shopify', observed_at => '2026-01-01 00:00:00+00');
SELECT on_hand, reserved FROM ves.adjust_stock(:t, :s, 'sku-1', 4);

-- B's public key is registered, as for any remote agent.
SELECT agent_id = :b AS registered FROM ves.register_agent_key(:t, :b, 1, decode(:'b_key', 'hex'));

-- Pull: store as signed, then apply, in one transaction per event.
CREATE FUNCTION pg_temp.pull(envelope jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r ves.ingest_result;
BEGIN
  r := ves.ingest_event(envelope);
  PERFORM ves._apply_ingested(r.event_id);
  RETURN (SELECT a.outcome FROM ves.applied_events a WHERE a.event_id = r.event_id);
END $$;
-- B's order events arrive shipped first: held until the order exists.
SELECT e ->> 'event_type' AS event_type,
       CASE WHEN e ->> 'event_type' LIKE 'sync.conflict_%' THEN '<conflict id>' ELSE e ->> 'entity_id' END AS entity_id,
       pg_temp.pull(e) AS outcome
FROM jsonb_array_elements(:'b_events') WITH ORDINALITY AS x(e, i)
WHERE e ->> 'entity_id' <> 'e5'
ORDER BY e ->> 'event_type' = 'order.created', i;
-- The unreadable one is refused (and, as the pull's transaction rolls back, not stored).
SELECT regexp_replace(regress_try(format('SELECT pg_temp.pull(%L)', e)), '[0-9a-f-]{36}', '<id>') AS unreadable
FROM jsonb_array_elements(:'b_events') e WHERE e ->> 'entity_id' = 'e5';

-- Entity state: B's e1 (later) and e2 (shopify outranks manual) win as a
-- whole, so nothing is appended; A's e3 (amazon) wins over B's, so A says so
-- in a restatement; e4: A's change is later than B's delete.
SELECT entity_id, state, deleted, version = ves._stream_version(tenant_id, entity_type, entity_id) AS version_in_step
FROM ves.entity_state WHERE tenant_id = :t AND entity_type = 'thing' ORDER BY entity_id;
SELECT x.entity_id, x.entity_version, x.event_type, x.payload -> 'state' AS state, x.source_agent_id <> :b AS by_a,
       o.event_type AS restates, o.payload -> 'state' AS b_said
FROM ves.events x JOIN ves.events o ON o.event_id = (x.payload ->> 'applied_from')::uuid
WHERE x.tenant_id = :t ORDER BY x.entity_id, x.entity_version;

-- Conflicts: a node records the changes that lose where it decides them: B's
-- e3 and B's e4 change lost on arrival here. A's e1 and e2 lost to B's
-- later changes: B records that when A's changes reach it, and B's delete of
-- e4 lost to A's later change, which B records too; those records come here
-- as B's events, as the ones below did.
SELECT entity_id, conflict_type, rule, status, fields, remote_source, remote_state, local_state
FROM ves.conflicts WHERE tenant_id = :t AND entity_type = 'thing' AND entity_id <> 'e6'
ORDER BY entity_id, remote_observed_at;

-- B's conflict records are held here exactly as B recorded them: the same
-- ids, sides and outcome, linked to B's signed sync.conflict_detected event;
-- the one B resolved is resolved here by its sync.conflict_resolved.
SELECT c.entity_id, c.conflict_type, c.rule, c.status, c.strategy, c.fields, c.remote_source, c.remote_state,
       c.resolved_state, e.source_agent_id = :b AS recorded_by_b,
       jsonb_build_array(c.entity_id, c.status) = :'b_conflicts'::jsonb -> c.conflict_id::text AS as_on_b,
       c.resolution_event_id IS NOT NULL AS resolution_event
FROM ves.conflicts c JOIN ves.events e ON e.event_id = c.event_id
WHERE c.tenant_id = :t AND c.entity_id IN ('e6', 'g2', 'g3') ORDER BY c.entity_id;
SELECT count(*) AS b_records_here FROM ves.conflicts c
WHERE c.conflict_id::text IN (SELECT jsonb_object_keys(:'b_conflicts'::jsonb));
-- The unreadable one is stored only: no record, nothing half-written.
SELECT a.outcome, (SELECT count(*) FROM ves.conflicts c WHERE c.conflict_id = '00000000-0000-4000-8000-0000000025cc') AS records
FROM ves.applied_events a JOIN ves.events e USING (event_id)
WHERE e.entity_id = '00000000-0000-4000-8000-0000000025cc';
-- They are resolved where they were recorded, not here.
SELECT regexp_replace(regress_try(format('SELECT ves.resolve_conflict(%L, ''accept_local'')', conflict_id)),
                      '[0-9a-f-]{36}', '<id>', 'g') AS resolve_here
FROM ves.conflicts WHERE tenant_id = :t AND entity_id = 'g3';

-- Under merge, B's gadget change meets A's within the review window: a
-- conflict opened for a person, the state left as it is, nothing restated.
SELECT s.state, s.version = ves._stream_version(s.tenant_id, s.entity_type, s.entity_id) AS version_in_step,
       c.conflict_type, c.rule, c.status, c.remote_source, c.remote_state,
       (SELECT count(*) FROM ves.events e WHERE e.tenant_id = :t AND e.entity_id = 'g1') AS events
FROM ves.entity_state s JOIN ves.conflicts c USING (tenant_id, entity_type, entity_id)
WHERE s.tenant_id = :t AND s.entity_type = 'gadget';

-- Inventory: B's count of 10 anchors, B's -3 and A's +4 come after it; B's
-- reservation is held here too.
SELECT sku, on_hand, reserved, available FROM ves.inventory WHERE tenant_id = :t;
SELECT reservation_id, quantity, order_id, status FROM ves.reservations WHERE tenant_id = :t;

-- Orders: the held shipment went through once the order existed.
SELECT order_id, status, tracking_number, data, version = ves._stream_version(tenant_id, 'order', order_id) AS version_in_step
FROM ves.orders WHERE tenant_id = :t;
SELECT event_type, status, event_id IS NOT NULL AS stored FROM ves.held_order_events WHERE tenant_id = :t;

-- Idempotent: applying every event again changes nothing.
SELECT count(*) AS events, (SELECT count(*) FROM ves.applied_events WHERE tenant_id = :t) AS applied,
       (SELECT count(*) FROM ves.conflicts WHERE tenant_id = :t) AS conflicts
FROM ves.events WHERE tenant_id = :t;
SELECT count(*) AS again FROM ves.events e, LATERAL ves._apply_ingested(e.event_id) WHERE e.tenant_id = :t;
SELECT count(*) AS events, (SELECT count(*) FROM ves.applied_events WHERE tenant_id = :t) AS applied,
       (SELECT count(*) FROM ves.conflicts WHERE tenant_id = :t) AS conflicts,
       (SELECT jsonb_agg(state ORDER BY entity_id) FROM ves.entity_state WHERE tenant_id = :t) AS states,
       (SELECT on_hand FROM ves.inventory WHERE tenant_id = :t) AS on_hand
FROM ves.events WHERE tenant_id = :t;
-- Ingesting the same envelope again is a duplicate and applies nothing new.
SELECT pg_temp.pull(e) AS first_outcome FROM jsonb_array_elements(:'b_events') e WHERE e ->> 'entity_id' = 'e1';

-- Events of this database's own agents were never in ves.applied_events.
SELECT count(*) AS own_applied FROM ves.applied_events a JOIN ves.events e USING (event_id)
WHERE e.source_agent_id IN (SELECT k.agent_id FROM ves.agent_key_store k WHERE k.local);

-- Errors.
SELECT regress_try($q$SELECT ves._apply_ingested('00000000-0000-7000-8000-00000000dead')$q$);
SELECT regress_try($q$SELECT ves._apply_ingested(NULL)$q$);
-- An event of this database's own, even one whose agent is no longer the
-- store's local agent (forgotten behind pg_ves' back): never applied.
\set s2 '''00000000-0000-0000-0000-000000002502'''
SELECT event_id AS s2_event FROM ves.append(:t, :s2, 'note', 'n2', 'note.added', '{}') \gset
DELETE FROM ves.local_agents WHERE tenant_id = :t AND store_id = :s2;
SELECT ves._apply_ingested(:'s2_event');
SELECT count(*) AS applied_own FROM ves.applied_events WHERE event_id = :'s2_event';

-- Only administrators and the sync worker may apply.
SELECT r AS role, has_function_privilege(r, 'ves._apply_ingested(uuid)', 'EXECUTE') AS can_apply
FROM unnest(ARRAY['ves_reader', 'ves_writer', 'ves_admin', 'ves_worker']) r;
SELECT prosecdef, proconfig FROM pg_proc WHERE oid = 'ves._apply_ingested(uuid)'::regprocedure;
CREATE ROLE regress_apply_admin IN ROLE ves_admin;
CREATE ROLE regress_apply_writer IN ROLE ves_writer;
SET ves.tenant_id = '00000000-0000-0000-0000-0000000025aa';
SET ROLE regress_apply_admin;
SELECT count(*) AS admin_applies FROM ves.events e, LATERAL ves._apply_ingested(e.event_id)
WHERE e.tenant_id = :t AND e.source = 'ves';
SET ROLE regress_apply_writer;
SELECT regress_try($q$SELECT ves._apply_ingested('00000000-0000-7000-8000-00000000dead')$q$) AS writer;
RESET ROLE;
RESET ves.tenant_id;
DROP ROLE regress_apply_admin, regress_apply_writer;

-- Every event verifies, B's as signed and A's own.
SELECT count(*) AS failing FROM ves.verify_events(tenant_id => :t);

-- A revoked key: what it signed before the revocation still verifies, but an
-- event a sequencer took in after it is refused whatever date it claims
-- (whoever holds a revoked key can sign any date).
SELECT revoked_at IS NOT NULL AS revoked FROM ves.revoke_agent_key(:t, :b, 1);
SELECT e ->> 'created_at' < (SELECT to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                             FROM ves.agent_keys WHERE agent_id = :b) AS dated_before,
       (ves.ingest_event(e)).duplicate AS still_taken
FROM jsonb_array_elements(:'b_events') e WHERE e ->> 'entity_id' = 'e1';
SELECT regexp_replace(regress_try(format('SELECT * FROM ves.ingest_event(%L)', e || jsonb_build_object('sequenced_at',
         to_char(clock_timestamp() AT TIME ZONE 'UTC' + interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))),
       '[0-9]{4}-[0-9T:.-]+Z', '<time>', 'g') AS sequenced_after
FROM jsonb_array_elements(:'b_events') e WHERE e ->> 'entity_id' = 'e1';
