\set SHOW_CONTEXT never
-- Snapshots: the latest state per entity.
\set t '''00000000-0000-0000-0000-000000000301'''
\set s '''00000000-0000-0000-0000-000000000401'''
SELECT count(*) FROM generate_series(1, 5) g,
  LATERAL ves.append(:t, :s, 'Cart', 'c-1', 'cart.changed', jsonb_build_object('items', g));

SELECT * FROM ves.load_snapshot(:t, 'Cart', 'c-1');
SELECT ves.save_snapshot(:t, 'Cart', 'c-1', 3, '{"items": 3}');
SELECT version, state FROM ves.load_snapshot(:t, 'Cart', 'c-1');
-- An older snapshot never replaces a newer one.
SELECT ves.save_snapshot(:t, 'Cart', 'c-1', 2, '{"items": 2}');
SELECT ves.save_snapshot(:t, 'Cart', 'c-1', 5, '{"items": 5}');
SELECT version, state FROM ves.load_snapshot(:t, 'Cart', 'c-1');
-- Replaying from the snapshot: only events after it.
SELECT count(*) AS after_snapshot FROM ves.read_entity(:t, 'Cart', 'c-1', (SELECT version FROM ves.load_snapshot(:t, 'Cart', 'c-1')));

-- Errors.
SELECT ves.save_snapshot(:t, 'Cart', 'c-1', 6, '{}');
SELECT ves.save_snapshot(:t, 'Cart', 'nope', 1, '{}');
SELECT ves.save_snapshot(:t, 'Cart', 'c-1', 4, '[1]');
SELECT ves.save_snapshot(:t, 'Cart', 'c-1', NULL, '{}');
