-- Conflict rules are decided once, in src/core/state, and served to SQL from
-- C: the names SQL stores or accepts, what ves.resolve_conflict's
-- last_write_wins picks (the order automatic resolution uses), the
-- reservation rule, and the one wrapper of keyed calls.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000000c17'''
\set s '''00000000-0000-0000-0000-000000000d17'''

-- The vocabularies, as core names them.
SELECT kind, string_agg(name, ', ' ORDER BY ord) AS names
FROM ves.conflict_vocabulary() WITH ORDINALITY AS v(kind, name, ord) GROUP BY kind ORDER BY min(ord);

-- The one list SQL still spells out, the CHECK constraint on
-- ves.conflicts.conflict_type, is exactly core's list of conflict types.
SELECT (SELECT array_agg(m[1] ORDER BY m[1])
        FROM regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g') AS m)
       = (SELECT array_agg(name ORDER BY name) FROM ves.conflict_vocabulary() WHERE kind = 'conflict_type')
       AS check_lists_core_types
FROM pg_constraint c
WHERE c.conrelid = 'ves.conflicts'::regclass AND pg_get_constraintdef(c.oid) LIKE '%conflict_type%';

-- Every strategy core names is a policy set_conflict_policy takes; anything
-- else is refused (VE010).
SELECT v.name, ves.set_conflict_policy(:t, 'strategy_check', jsonb_build_object('strategy', v.name)) ->> 'strategy' AS stored
FROM ves.conflict_vocabulary() v WHERE v.kind = 'strategy';
SELECT regress_try($q$SELECT ves.set_conflict_policy('00000000-0000-0000-0000-000000000c17', 'strategy_check', '{"strategy": "newest"}')$q$);

-- resolve_conflict takes exactly the resolution names: each gets past the
-- strategy check (to "does not exist", VE012); the other strategy (manual),
-- an unknown one and NULL are refused with VE010 / VE011 and a hint that
-- lists the resolutions.
SELECT v.name, split_part(regress_try(format('SELECT ves.resolve_conflict(%L, %L)',
                                             '00000000-0000-0000-0000-00000000dead', v.name)), ':', 1) AS sqlstate
FROM ves.conflict_vocabulary() v WHERE v.kind IN ('resolution', 'strategy') ORDER BY v.kind, v.name;
SELECT regress_try($q$SELECT ves.resolve_conflict('00000000-0000-0000-0000-00000000dead', 'newest')$q$);
SELECT regress_try($q$SELECT ves.resolve_conflict('00000000-0000-0000-0000-00000000dead', NULL)$q$);
SELECT regress_try($q$SELECT ves.resolve_conflict('00000000-0000-0000-0000-00000000dead', 'accept_remote', '{}')$q$);

-- last_write_wins, by hand and automatically, orders the two changes the
-- same way: the higher-ranked source first (platforms before 'manual'),
-- then the later observation, then the greater source name, then the
-- greater state. Each case: v1 by `first`, v2 by `second` against v1, then
-- a change by `third` against the stale v1, `gap` seconds after v2.
CREATE FUNCTION lww_case(tenant uuid, store uuid, id text, first text, second text, third text, gap int)
  RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := '2026-03-01 10:00:00+00';
  r ves.upsert_result;
BEGIN
  PERFORM ves.upsert(tenant, store, 'lww', id, '{"price": 1}', NULL, first, observed_at => t0);
  PERFORM ves.upsert(tenant, store, 'lww', id, '{"price": 2}', 1, second, observed_at => t0 + interval '60 s');
  r := ves.upsert(tenant, store, 'lww', id, '{"price": 3}', 1, third, observed_at => t0 + interval '60 s' + make_interval(secs => gap));
  IF r.outcome = 'conflict' THEN
    PERFORM ves.resolve_conflict(r.conflict_id, 'last_write_wins');
  END IF;
  RETURN r.outcome || ' -> price ' || (ves.get_state(tenant, 'lww', id) ->> 'price');
END $$;
-- By hand: the review window (30 s) sends each to review first.
SELECT ves.set_conflict_policy(:t, 'lww', '{"strategy": "merge", "review_window_ms": 30000}') ->> 'strategy';
SELECT lww_case(:t, :s, 'platform-then-person', 'manual', 'shopify', 'manual', 10) AS "shopify, then a later manual",
       lww_case(:t, :s, 'person-then-platform', 'manual', 'manual', 'shopify', -10) AS "manual, then an earlier shopify",
       lww_case(:t, :s, 'later', 'manual', 'erp', 'pos', 10) AS "erp, then a later pos",
       lww_case(:t, :s, 'tie', 'manual', 'erp', 'erp', 0) AS "erp, then erp at the same time";
-- Automatically: the same winners.
SELECT ves.set_conflict_policy(:t, 'lww', '{"strategy": "last_write_wins", "review_window_ms": 0}') ->> 'strategy';
SELECT lww_case(:t, :s, 'a-platform-then-person', 'manual', 'shopify', 'manual', 10) AS "shopify, then a later manual",
       lww_case(:t, :s, 'a-person-then-platform', 'manual', 'manual', 'shopify', -10) AS "manual, then an earlier shopify",
       lww_case(:t, :s, 'a-later', 'manual', 'erp', 'pos', 10) AS "erp, then a later pos",
       lww_case(:t, :s, 'a-tie', 'manual', 'erp', 'erp', 0) AS "erp, then erp at the same time";
-- Without source priority the later observation decides.
SELECT ves.set_conflict_policy(:t, 'lww', '{"strategy": "merge", "review_window_ms": 30000, "source_priority": [], "external_sources_win": false}') ->> 'strategy';
SELECT lww_case(:t, :s, 'np-platform-then-person', 'manual', 'shopify', 'manual', 10) AS "shopify, then a later manual",
       lww_case(:t, :s, 'np-person-then-platform', 'manual', 'manual', 'shopify', -10) AS "manual, then an earlier shopify";

-- Reservations win over adjustments, by the tenant's inventory policy.
CREATE FUNCTION stock_outcome(r ves.stock_result) RETURNS text LANGUAGE plpgsql AS $$
DECLARE c ves.conflicts;
BEGIN
  SELECT * INTO c FROM ves.conflicts x WHERE x.conflict_id = r.conflict_id;
  RETURN r.outcome || ': on_hand=' || r.on_hand || ' reserved=' || r.reserved
         || coalesce(' (' || c.conflict_type || ', rule ' || c.rule || ', ' || c.status || ')', '');
END $$;
SELECT (ves.set_stock(:t, :s, 'CUP', 10)).on_hand;
SELECT (ves.reserve_stock(:t, :s, 'CUP', 6, 'r-cup')).reserved;
SELECT stock_outcome(ves.adjust_stock(:t, :s, 'CUP', -8));
SELECT ves.set_conflict_policy(:t, 'inventory', '{"reservations_win": false}') ->> 'reservations_win';
SELECT stock_outcome(ves.adjust_stock(:t, :s, 'CUP', -3));
SELECT stock_outcome(ves.set_stock(:t, :s, 'CUP', 2));

-- Every rule and strategy any conflict so far was recorded with (in every
-- suite of this run) is one core names.
SELECT count(*) > 10 AS some_conflicts, count(*) FILTER (WHERE rule NOT IN (SELECT name FROM ves.conflict_vocabulary() WHERE kind = 'rule')
                                    OR strategy NOT IN (SELECT name FROM ves.conflict_vocabulary() WHERE kind IN ('rule', 'resolution'))
                                    OR conflict_type NOT IN (SELECT name FROM ves.conflict_vocabulary() WHERE kind = 'conflict_type'))
       AS unknown_names
FROM ves.conflicts;

-- Keyed calls: a repeat returns the first result, outcome 'duplicate'
-- (for upserts original_outcome says what the first call did), and a
-- different request under the same key is refused (VE002).
CREATE FUNCTION keyed_twice(call text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE a jsonb; b jsonb;
BEGIN
  EXECUTE 'SELECT to_jsonb(r) FROM ' || call || ' r' INTO a;
  EXECUTE 'SELECT to_jsonb(r) FROM ' || call || ' r' INTO b;
  RETURN (a ->> 'outcome') || ' then ' || (b ->> 'outcome')
         || CASE WHEN a - 'outcome' - 'original_outcome' = b - 'outcome' - 'original_outcome' THEN ', same result'
                 ELSE ', different: ' || a::text || ' / ' || b::text END
         || coalesce(', original_outcome ' || (b ->> 'original_outcome'), '');
END $$;
SELECT keyed_twice(format('ves.upsert(%L, %L, %L, %L, %L, idempotency_key => %L)', :t, :s, 'k', 'k1', '{"a": 1}', 'k-up')) AS upsert,
       keyed_twice(format('ves.delete_entity(%L, %L, %L, %L, idempotency_key => %L)', :t, :s, 'k', 'k1', 'k-del')) AS delete_entity;
SELECT keyed_twice(format('ves.adjust_stock(%L, %L, %L, 5, idempotency_key => %L)', :t, :s, 'BOWL', 'k-adj')) AS adjust_stock,
       keyed_twice(format('ves.set_stock(%L, %L, %L, 9, idempotency_key => %L)', :t, :s, 'BOWL', 'k-set')) AS set_stock,
       keyed_twice(format('ves.reserve_stock(%L, %L, %L, 2, idempotency_key => %L)', :t, :s, 'BOWL', 'k-res')) AS reserve_stock;
SELECT keyed_twice(format('ves.record_order_event(%L, %L, %L, %L, idempotency_key => %L)', :t, :s, 'o-17', 'order.created', 'k-ord')) AS record_order_event;
SELECT regress_try(format('SELECT ves.adjust_stock(%L, %L, %L, 6, idempotency_key => %L)', :t, :s, 'BOWL', 'k-adj')) AS reused_key;
