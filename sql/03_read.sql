\set SHOW_CONTEXT never
-- Reads: per entity and by global position.
\set t '''00000000-0000-0000-0000-0000000000e1'''
\set s '''00000000-0000-0000-0000-0000000000f1'''
SELECT count(*) AS appended FROM generate_series(1, 25) g,
  LATERAL ves.append(:t, :s, 'Product', 'P-' || (g % 3), 'product.updated', jsonb_build_object('g', g));

SELECT entity_version, payload FROM ves.read_entity(:t, 'Product', 'P-1');
SELECT entity_version, payload FROM ves.read_entity(:t, 'Product', 'P-1', after_version => 6, max_count => 2);
SELECT count(*) FROM ves.read_entity(:t, 'Product', 'nope');

-- Paging by position visits every event once, in order.
CREATE TEMP TABLE seen (position bigint);
DO $$
DECLARE cursor_pos bigint := 0; page int; last bigint;
BEGIN
  LOOP
    INSERT INTO seen SELECT position FROM ves.read_all(cursor_pos, 7);
    GET DIAGNOSTICS page = ROW_COUNT;
    EXIT WHEN page = 0;
    SELECT max(position) INTO cursor_pos FROM seen;
  END LOOP;
END $$;
SELECT count(*) = (SELECT count(*) FROM ves.events) AS all_seen,
       count(DISTINCT position) = count(*) AS none_twice FROM seen;

-- The fence is one past the newest position when nothing is in flight.
SELECT ves.read_fence() = (SELECT last_value + 1 FROM ves.position_seq) AS fence_at_head;
SELECT count(*) AS holders FROM ves.read_fence_holders;
-- An open transaction that appended holds the fence at its position and shows
-- up as a holder; its own reads stop below it too.
BEGIN;
SELECT position AS held FROM ves.append(:t, :s, 'Product', 'P-9', 'product.updated', '{}') \gset
SELECT ves.read_fence() = :held AS fence_at_own_position;
SELECT holds_from_position = :held AS shows_position, pid = pg_backend_pid() AS is_me, xact_age >= '0'::interval AS has_age
FROM ves.read_fence_holders;
COMMIT;
SELECT count(*) AS holders_after_commit FROM ves.read_fence_holders;

-- read_all needs READ COMMITTED.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM ves.read_all();
ROLLBACK;

-- Filtering by tenant.
SELECT count(*) AS other_tenant FROM ves.read_all(0, 1000, '00000000-0000-0000-0000-00000000dead');
SELECT count(*) = 26 AS this_tenant FROM ves.read_all(0, 1000, :t);
