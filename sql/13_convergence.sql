-- Convergence: two replicas that receive the same changes in different
-- orders end in the same state under the deterministic strategy
-- (last_write_wins), with and without source priority. Changes are whole
-- states from several sources, naming no base version (replicas do not share
-- versions), with fields added, changed and removed at random.
\set SHOW_CONTEXT never

CREATE FUNCTION converge(rounds int, policy jsonb, seed float8)
  RETURNS TABLE (rounds_run int, diverged int, changes int, lost_to_newer int) LANGUAGE plpgsql AS $$
DECLARE
  store uuid := '00000000-0000-0000-0000-0000000000f3';
  sources text[] := ARRAY['shopify', 'amazon', 'tiktok', 'manual', 'pos'];
  fields text[] := ARRAY['a', 'b', 'c', 'on_hand'];
  ta uuid; tb uuid;
  n int; st jsonb; ch jsonb[]; perm int[];
  i int; j int; k int; tmp int;
BEGIN
  PERFORM setseed(seed);
  rounds_run := 0; diverged := 0; changes := 0; lost_to_newer := 0;
  FOR r IN 1 .. rounds LOOP
    ta := gen_random_uuid(); tb := gen_random_uuid();
    PERFORM ves.set_conflict_policy(ta, '*', policy);
    PERFORM ves.set_conflict_policy(tb, '*', policy);
    n := 2 + floor(random() * 6)::int;
    ch := '{}';
    FOR i IN 1 .. n LOOP
      st := '{}';
      FOR k IN 1 .. 4 LOOP
        IF random() < 0.6 THEN st := st || jsonb_build_object(fields[k], floor(random() * 4)::int); END IF;
      END LOOP;
      ch := ch || jsonb_build_object('entity', 'e' || (1 + floor(random() * 2)::int), 'state', st,
                                     'source', sources[1 + floor(random() * 5)::int],
                                     'at', 1000 + floor(random() * 50)::int);
    END LOOP;
    -- replica A in generated order, replica B in a random permutation
    perm := ARRAY(SELECT g FROM generate_series(1, n) g);
    FOR i IN REVERSE n .. 2 LOOP
      j := 1 + floor(random() * i)::int; tmp := perm[i]; perm[i] := perm[j]; perm[j] := tmp;
    END LOOP;
    FOR i IN 1 .. n LOOP
      PERFORM ves.upsert(ta, store, 'thing', ch[i] ->> 'entity', ch[i] -> 'state', NULL, ch[i] ->> 'source',
                         observed_at => '2026-01-01 00:00:00+00'::timestamptz + make_interval(secs => (ch[i] ->> 'at')::int));
      PERFORM ves.upsert(tb, store, 'thing', ch[perm[i]] ->> 'entity', ch[perm[i]] -> 'state', NULL,
                         ch[perm[i]] ->> 'source',
                         observed_at => '2026-01-01 00:00:00+00'::timestamptz + make_interval(secs => (ch[perm[i]] ->> 'at')::int));
    END LOOP;
    IF EXISTS (
      SELECT 1 FROM (SELECT entity_id, state FROM ves.entity_state WHERE tenant_id = ta) a
      FULL JOIN (SELECT entity_id, state FROM ves.entity_state WHERE tenant_id = tb) b USING (entity_id)
      WHERE a.state IS DISTINCT FROM b.state) THEN
      diverged := diverged + 1;
      RAISE NOTICE 'diverged: changes % order %', ch, perm;
    END IF;
    rounds_run := rounds_run + 1;
    changes := changes + n;
    lost_to_newer := lost_to_newer + (SELECT count(*) FROM ves.conflicts WHERE tenant_id IN (ta, tb));
  END LOOP;
  RETURN NEXT;
END $$;

-- Source priority on (the default list; platforms outrank manual edits).
SELECT rounds_run, diverged, changes > 800 AS many_changes, lost_to_newer > 100 AS many_conflicts
FROM converge(300, '{"strategy": "last_write_wins", "review_window_ms": 0}', 0.25);
-- Source priority off: the latest observation wins, whoever made it.
SELECT rounds_run, diverged, changes > 800 AS many_changes, lost_to_newer > 100 AS many_conflicts
FROM converge(300, '{"strategy": "last_write_wins", "review_window_ms": 0, "source_priority": [], "external_sources_win": false}', 0.5);
-- Every change that applied is a signed event; the two replicas' logs differ
-- in order but each verifies.
SELECT bool_and(ves.verify_event(event_id)) AS all_verify FROM ves.events WHERE entity_type = 'thing';
