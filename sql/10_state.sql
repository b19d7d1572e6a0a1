-- Entity state: upsert outcomes, every conflict type, every strategy and
-- business rule, resolve_conflict, idempotency records. Times are given
-- explicitly (observed_at) so the windows decide the same way on every run.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000000c01'''
\set s '''00000000-0000-0000-0000-000000000d01'''
\set T0 '''2026-01-01 10:00:00+00'''

CREATE FUNCTION st(tenant uuid, id text, etype text DEFAULT 'product') RETURNS text LANGUAGE sql AS $$
  SELECT coalesce((SELECT s.state::text || ' v' || s.version || CASE WHEN s.deleted THEN ' deleted' ELSE '' END
                   FROM ves.entity_state s WHERE s.tenant_id = tenant AND s.entity_type = etype AND s.entity_id = id),
                  'none')
$$;
CREATE FUNCTION up(tenant uuid, id text, state jsonb, base bigint, source text, secs int, etype text DEFAULT 'product')
  RETURNS text LANGUAGE plpgsql AS $$
DECLARE r ves.upsert_result; c text;
BEGIN
  r := ves.upsert(tenant, '00000000-0000-0000-0000-000000000d01', etype, id, state, base, source,
                  observed_at => '2026-01-01 10:00:00+00'::timestamptz + make_interval(secs => secs));
  SELECT ' ' || x.conflict_type || '/' || x.rule || CASE WHEN x.fields <> '{}' THEN ' fields=' || x.fields::text ELSE '' END
    INTO c FROM ves.conflicts x WHERE x.conflict_id = r.conflict_id;
  RETURN r.outcome || ' v' || r.version || coalesce(c, '') || ' -> ' || st(tenant, id, etype);
END $$;

-- Defaults.
SELECT ves.get_conflict_policy(:t);
SELECT ves.set_conflict_policy(:t, 'product', '{"review_window_ms": 0}') ->> 'review_window_ms' AS review_ms;
SELECT regress_try($q$SELECT ves.set_conflict_policy('00000000-0000-0000-0000-000000000c01', 'product', '{"strategy": "coin_flip"}')$q$);
SELECT regress_try($q$SELECT ves.set_conflict_policy('00000000-0000-0000-0000-000000000c01', 'product', '{"colour": 1}')$q$);
SELECT regress_try($q$SELECT ves.set_conflict_policy('00000000-0000-0000-0000-000000000c01', 'product', '{"review_window_ms": -1}')$q$);

-- Applied: new entity, right base version, and a blind write by the last writer.
SELECT up(:t, 'p1', '{"title": "Mug", "price": 12.5, "color": "red"}', NULL, 'manual', 0);
SELECT up(:t, 'p1', '{"title": "Mug", "price": 13, "color": "red"}', 1, 'manual', 100);
SELECT up(:t, 'p1', '{"title": "Mug", "price": 13, "color": "blue"}', NULL, 'manual', 200);
-- The same state again changes nothing and appends nothing.
SELECT up(:t, 'p1', '{"title": "Mug", "price": 13, "color": "blue"}', 3, 'manual', 300);
SELECT count(*) AS product_events FROM ves.events WHERE tenant_id = :t AND entity_type = 'product';
SELECT event_type, payload -> 'state' AS state, entity_version FROM ves.events
WHERE tenant_id = :t AND entity_id = 'p1' ORDER BY position;

-- version_mismatch, merge (default strategy): one-sided changes merge...
SELECT up(:t, 'p1', '{"title": "Mug XL", "price": 12.5, "color": "red"}', 1, 'manual', 400);
-- ...the same field changed differently opens a conflict for review.
SELECT up(:t, 'p1', '{"title": "Mug", "price": 15, "color": "red"}', 1, 'manual', 500);
SELECT conflict_type, rule, fields, local_state, remote_state, base_state, proposed_state
FROM ves.open_conflicts WHERE tenant_id = :t;
-- The open conflict was announced: an event on its own stream and a NOTIFY.
SELECT e.event_type, e.entity_type, e.payload ->> 'conflict_type' AS type, e.payload -> 'fields' AS fields
FROM ves.events e JOIN ves.conflicts c ON e.event_id = c.event_id WHERE c.status = 'open' AND c.tenant_id = :t;

-- resolve_conflict: bad calls, then accept_remote applies the remote side's
-- changes (price 15) on top of the entity as it is now.
-- (conflict ids are random: shown as <id>)
SELECT regress_try(format('SELECT ves.resolve_conflict(%L, %L)', conflict_id, 'manual')) AS manual,
       regexp_replace(regress_try(format('SELECT ves.resolve_conflict(%L, %L)', conflict_id, 'merge')),
                      '[0-9a-f-]{36}', '<id>') AS merge_without_state,
       regress_try(format('SELECT ves.resolve_conflict(%L, %L, %L)', conflict_id, 'accept_local', '{}')) AS local_with_state
FROM ves.open_conflicts WHERE tenant_id = :t \gx
SELECT regress_try($q$SELECT ves.resolve_conflict('00000000-0000-0000-0000-00000000dead', 'accept_local')$q$);
SELECT r.outcome, r.version, st(:t, 'p1') FROM ves.open_conflicts c, ves.resolve_conflict(c.conflict_id, 'accept_remote') r
WHERE c.tenant_id = :t;
SELECT regexp_replace(regress_try(format('SELECT ves.resolve_conflict(%L, %L)', conflict_id, 'accept_local')),
                      '[0-9a-f-]{36}', '<id>') AS twice
FROM ves.conflicts WHERE tenant_id = :t AND strategy = 'accept_remote';
SELECT e.event_type, e.metadata ->> 'resolution' AS resolution FROM ves.events e
WHERE e.tenant_id = :t AND e.metadata ? 'resolution' ORDER BY position;
SELECT count(*) AS resolved_events FROM ves.events WHERE tenant_id = :t AND event_type = 'sync.conflict_resolved';

-- merge resolution with a merged state; accept_local keeps the entity as is.
SELECT up(:t, 'p1', '{"title": "Mug", "price": 16, "color": "red"}', 1, 'manual', 600);
SELECT r.outcome, st(:t, 'p1') FROM ves.open_conflicts c,
  ves.resolve_conflict(c.conflict_id, 'merge', '{"title": "Mug XL", "price": 15.5, "color": "red"}') r WHERE c.tenant_id = :t;
SELECT up(:t, 'p1', '{"title": "Mug", "price": 17, "color": "red"}', 1, 'manual', 700);
SELECT r.outcome, st(:t, 'p1') FROM ves.open_conflicts c, ves.resolve_conflict(c.conflict_id, 'accept_local') r
WHERE c.tenant_id = :t;

-- Strategies on a field changed on both sides (stale base 1: price 12.5).
SELECT ves.set_conflict_policy(:t, 'product', '{"strategy": "accept_local"}') ->> 'strategy';
SELECT up(:t, 'p1', '{"title": "Mug", "price": 20, "color": "green"}', 1, 'manual', 800);
SELECT ves.set_conflict_policy(:t, 'product', '{"strategy": "accept_remote"}') ->> 'strategy';
SELECT up(:t, 'p1', '{"title": "Mug", "price": 21, "color": "red"}', 1, 'manual', 900);
SELECT ves.set_conflict_policy(:t, 'product', '{"strategy": "last_write_wins"}') ->> 'strategy';
-- (two sources of equal rank, so that source priority does not decide first)
SELECT up(:t, 'p1', '{"title": "Mug", "price": 22, "color": "red"}', 8, 'erp', 950);
-- observed before the entity's last change: the local value stays...
SELECT up(:t, 'p1', '{"title": "Mug", "price": 23, "color": "red"}', 1, 'pos', 920);
-- ...observed after it: the remote value wins.
SELECT up(:t, 'p1', '{"title": "Mug", "price": 24, "color": "red"}', 1, 'pos', 1000);
SELECT ves.set_conflict_policy(:t, 'product', '{"strategy": "manual"}') ->> 'strategy';
-- manual sends even a change that would merge cleanly to review.
SELECT up(:t, 'p1', '{"title": "Mug", "price": 12.5, "color": "red", "size": "L"}', 1, 'manual', 1100);
SELECT r.outcome FROM ves.open_conflicts c, ves.resolve_conflict(c.conflict_id, 'merge') r WHERE c.tenant_id = :t;
SELECT st(:t, 'p1');
SELECT ves.set_conflict_policy(:t, 'product', '{"strategy": "merge"}') ->> 'strategy';

-- Review window: conflicting changes closer than 30 s go to review even
-- where a rule would have decided.
SELECT ves.set_conflict_policy(:t, 'product', '{"review_window_ms": 30000, "strategy": "last_write_wins"}') ->> 'review_window_ms';
SELECT up(:t, 'p1', '{"title": "Mug", "price": 30, "color": "red"}', 1, 'manual', 1110);
SELECT count(*) AS open_now FROM ves.open_conflicts WHERE tenant_id = :t;
SELECT r.outcome, st(:t, 'p1') FROM ves.open_conflicts c, ves.resolve_conflict(c.conflict_id, 'last_write_wins') r
WHERE c.tenant_id = :t;
SELECT st(:t, 'p1');
SELECT ves.set_conflict_policy(:t, 'product', '{"review_window_ms": 0, "strategy": "merge"}') ->> 'review_window_ms';

-- Platforms. A change with no base is merged against what that source last
-- saw; a platform that has never written here saw nothing ({}).
-- External platform beats a manual edit (source priority), fields it does
-- not differ on stay; cross_platform_mismatch is recorded as resolved.
SELECT up(:t, 'p2', '{"title": "Cap", "price": 9, "stock_note": "x"}', NULL, 'manual', 0);
SELECT up(:t, 'p2', '{"title": "Cap", "price": 11}', NULL, 'shopify', 100);
-- The platform reports again without a change on our side: plain apply.
SELECT up(:t, 'p2', '{"title": "Cap", "price": 12}', NULL, 'shopify', 200);
-- We change a field locally; the platform, not having seen it, reports its
-- old value for that field and a new value for another: both kept.
SELECT up(:t, 'p2', '{"title": "Cap!", "price": 12}', NULL, 'manual', 300);
SELECT up(:t, 'p2', '{"title": "Cap", "price": 13}', NULL, 'shopify', 400);
-- Two platforms disagree: the higher-ranked one (shopify before amazon) wins.
SELECT up(:t, 'p2', '{"title": "Cap!", "price": 14}', NULL, 'amazon', 500);
SELECT up(:t, 'p2', '{"title": "Cap!", "price": 15}', NULL, 'shopify', 600);
SELECT up(:t, 'p2', '{"title": "Cap!", "price": 16}', NULL, 'amazon', 700);
-- Per tenant priority list: amazon first now.
SELECT ves.set_conflict_policy(:t, 'product', '{"source_priority": ["amazon", "shopify"]}') -> 'source_priority';
SELECT up(:t, 'p2', '{"title": "Cap!", "price": 17}', NULL, 'amazon', 800);
-- An older observation from the same source arriving late is stale.
SELECT up(:t, 'p2', '{"title": "Cap!", "price": 1}', NULL, 'amazon', 750);

-- concurrent_edit: a person blind-writing a field within 5 s of a platform's change.
SELECT ves.set_conflict_policy(:t, 'note', '{"review_window_ms": 0}') ->> 'strategy';
SELECT up(:t, 'n1', '{"text": "a"}', NULL, 'manual', 0, 'note');
SELECT up(:t, 'n1', '{"text": "b"}', NULL, 'shopify', 10, 'note');
SELECT up(:t, 'n1', '{"text": "c"}', NULL, 'manual', 12, 'note');
-- the same, 60 s later: the person's newer edit simply applies.
SELECT up(:t, 'n1', '{"text": "d"}', NULL, 'manual', 80, 'note');

-- Stock reductions win over increases (a stock field, numbers on both sides).
SELECT up(:t, 'p3', '{"on_hand": 10, "title": "Tee"}', NULL, 'manual', 0);
SELECT up(:t, 'p3', '{"on_hand": 8, "title": "Tee"}', 1, 'manual', 100);
SELECT up(:t, 'p3', '{"on_hand": 12, "title": "Tee"}', 1, 'shopify', 200);
SELECT up(:t, 'p3', '{"on_hand": 5, "title": "Tee"}', 1, 'manual', 300);
-- off: the increase from the higher-ranked source wins instead.
SELECT ves.set_conflict_policy(:t, 'product', '{"stock_reductions_win": false}') ->> 'stock_reductions_win';
SELECT up(:t, 'p3', '{"on_hand": 40, "title": "Tee"}', 1, 'shopify', 400);
SELECT ves.set_conflict_policy(:t, 'product', '{"stock_reductions_win": true}') ->> 'stock_reductions_win';

-- deleted_reference: the entity itself deleted, or one it references.
SELECT regress_try($q$SELECT ves.delete_entity('00000000-0000-0000-0000-000000000c01', '00000000-0000-0000-0000-000000000d01', 'product', 'p3', base_version => 99)$q$);
SELECT regress_try($q$SELECT ves.delete_entity('00000000-0000-0000-0000-000000000c01', '00000000-0000-0000-0000-000000000d01', 'product', 'nope')$q$);
SELECT r.outcome, st(:t, 'p3') FROM ves.delete_entity(:t, :s, 'product', 'p3') r;
SELECT ves.get_state(:t, 'product', 'p3') AS deleted_state;
SELECT up(:t, 'p3', '{"on_hand": 1, "title": "Tee"}', NULL, 'manual', 500);
SELECT ves.set_conflict_policy(:t, 'listing', '{"references": {"product_id": "product"}, "review_window_ms": 0}') -> 'references';
SELECT up(:t, 'l1', '{"product_id": "p2", "channel": "tiktok"}', NULL, 'manual', 0, 'listing');
SELECT up(:t, 'l2', '{"product_id": "p3", "channel": "tiktok"}', NULL, 'manual', 0, 'listing');
SELECT detail FROM ves.open_conflicts WHERE tenant_id = :t AND entity_id = 'l2';
-- accept_remote resurrects the deleted product.
SELECT r.outcome, r.version, st(:t, 'p3') FROM ves.open_conflicts c, ves.resolve_conflict(c.conflict_id, 'accept_remote') r
WHERE c.tenant_id = :t AND c.entity_id = 'p3';
-- and the listing that pointed at it can now be created.
SELECT r.outcome, r.version, st(:t, 'l2', 'listing') FROM ves.open_conflicts c,
  ves.resolve_conflict(c.conflict_id, 'accept_remote') r WHERE c.tenant_id = :t AND c.entity_id = 'l2';
-- The resolution stamped the fields it set with the change's source and time.
SELECT jsonb_pretty(field_stamps) FROM ves.entity_state WHERE tenant_id = :t AND entity_id = 'l2';
SELECT count(*) AS still_open FROM ves.open_conflicts WHERE tenant_id = :t;

-- Every stored conflict keeps both sides, the base, the rule and the outcome.
SELECT entity_id, conflict_type, status, rule, strategy, fields FROM ves.conflicts WHERE tenant_id = :t
ORDER BY detected_at, conflict_id;

-- Idempotency records: a repeat returns the first response, a different
-- request under the key fails, another tenant may use the same key.
SELECT * FROM ves.upsert(:t, :s, 'product', 'p9', '{"a": 1}', idempotency_key => 'req-1') \gset first_
SELECT outcome, version = :first_version AS same_version, original_outcome, event_id = :'first_event_id' AS same_event
FROM ves.upsert(:t, :s, 'product', 'p9', '{"a": 1}', idempotency_key => 'req-1');
SELECT regress_try($q$SELECT ves.upsert('00000000-0000-0000-0000-000000000c01', '00000000-0000-0000-0000-000000000d01', 'product', 'p9', '{"a": 2}', idempotency_key => 'req-1')$q$);
SELECT outcome FROM ves.upsert('00000000-0000-0000-0000-000000000c02', :s, 'product', 'p9', '{"a": 1}', idempotency_key => 'req-1');
SELECT count(*) AS records, min(expires_at - created_at) AS ttl FROM ves.idempotency_records WHERE idempotency_key = 'req-1';
-- Records live in day partitions that expire whole.
SELECT count(*) >= 1 AS day_partitions FROM pg_inherits WHERE inhparent = 'ves.idempotency_records'::regclass;
SELECT ves.expire_idempotency_records(now()) AS dropped_now;
SELECT ves.expire_idempotency_records(now() + interval '3 days') >= 1 AS dropped_later;
SELECT count(*) AS records_after FROM ves.idempotency_records WHERE idempotency_key = 'req-1';
SELECT ves.ensure_idempotency_partitions() >= 1 AS recreated;
-- After expiry the key is free again.
SELECT outcome FROM ves.upsert(:t, :s, 'product', 'p9', '{"a": 3}', idempotency_key => 'req-1');

-- Bad input: nothing written.
SELECT regress_try($q$SELECT ves.upsert('00000000-0000-0000-0000-000000000c01', '00000000-0000-0000-0000-000000000d01', 'product', 'p1', '[1]')$q$);
SELECT regress_try($q$SELECT ves.upsert('00000000-0000-0000-0000-000000000c01', '00000000-0000-0000-0000-000000000d01', 'product', NULL, '{}')$q$);
SELECT regress_try($q$SELECT ves.upsert('00000000-0000-0000-0000-000000000c01', '00000000-0000-0000-0000-000000000d01', '', 'x', '{}')$q$);
SELECT regress_try($q$SELECT ves.upsert('00000000-0000-0000-0000-000000000c01', '00000000-0000-0000-0000-000000000d01', 'product', 'x', '{}', base_version => -1)$q$);
SELECT regress_try($q$SELECT ves.upsert('00000000-0000-0000-0000-000000000c01', '00000000-0000-0000-0000-000000000d01', 'product', 'x', '{}', idempotency_key => '')$q$);
SELECT regress_try($q$SELECT ves.upsert('00000000-0000-0000-0000-000000000c01', '00000000-0000-0000-0000-000000000d01', 'product', 'x', '{}', base_version => 2)$q$);
SELECT regress_try($q$SELECT ves.upsert('00000000-0000-0000-0000-000000000c01', '00000000-0000-0000-0000-000000000d01', 'product', 'p1', '{}', base_version => 99)$q$);
SELECT count(*) AS no_x FROM ves.entity_state WHERE entity_id = 'x';

-- Tenants: a session bound to another tenant may not write or read here.
SET ves.tenant_id = '00000000-0000-0000-0000-000000000c02';
SELECT regress_try($q$SELECT ves.upsert('00000000-0000-0000-0000-000000000c01', '00000000-0000-0000-0000-000000000d01', 'product', 'p1', '{}')$q$);
SELECT regress_try($q$SELECT ves.get_state('00000000-0000-0000-0000-000000000c01', 'product', 'p1')$q$);
RESET ves.tenant_id;

-- Every conflict record travels whole: its sync.conflict_detected event
-- carries the record as it was detected, under the names other nodes read
-- (all of it for the records nobody resolved since; the rest for all).
SELECT count(*) AS records, count(*) FILTER (WHERE e.payload ->> 'status' = 'open') AS opened,
       count(*) FILTER (WHERE c.detail <> '{}') AS with_detail,
       bool_and(e.payload - ARRAY['status', 'strategy', 'resolved', 'resolved_at', 'resolved_by']
                = jsonb_build_object(
         'conflict_id', c.conflict_id, 'conflict_type', c.conflict_type, 'rule', c.rule,
         'entity_type', c.entity_type, 'entity_id', c.entity_id,
         'fields', to_jsonb(c.fields), 'base_version', c.base_version, 'local_version', c.local_version,
         'local', c.local_state, 'remote', c.remote_state, 'base', c.base_state, 'proposed', c.proposed_state,
         'local_source', c.local_source, 'remote_source', c.remote_source,
         'local_observed_at', c.local_observed_at, 'remote_observed_at', c.remote_observed_at,
         'detail', c.detail, 'detected_at', c.detected_at)) AS payload_is_record,
       bool_and(e.payload -> 'status' = to_jsonb(c.status)
                AND e.payload -> 'strategy' = coalesce(to_jsonb(c.strategy), 'null')
                AND e.payload -> 'resolved' = coalesce(c.resolved_state, 'null')
                AND e.payload -> 'resolved_at' = coalesce(to_jsonb(c.resolved_at), 'null')
                AND e.payload -> 'resolved_by' = coalesce(to_jsonb(c.resolved_by), 'null'))
         FILTER (WHERE c.resolution_event_id IS NULL) AS outcome_is_record,
       bool_and(e.event_type = 'sync.conflict_detected' AND e.entity_type = 'sync.conflict'
                AND e.entity_id = c.conflict_id::text AND e.entity_version = 1) AS on_its_own_stream
FROM ves.conflicts c JOIN ves.events e ON e.event_id = c.event_id;
