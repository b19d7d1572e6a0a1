\set SHOW_CONTEXT never
-- Subscriptions: checkpoints, consumer groups, replay and the NOTIFY wake-up.
\set t '''00000000-0000-0000-0000-000000000101'''
\set s '''00000000-0000-0000-0000-000000000201'''
SELECT last_value AS base FROM ves.position_seq \gset

SELECT name, members FROM ves.create_subscription(:t, 'billing', entity_types => '{Order}');
SELECT * FROM ves.create_subscription(:t, 'billing');
SELECT name, members FROM ves.create_subscription(:t, 'pickers', members => 3);

SELECT count(*) FROM generate_series(1, 12) g,
  LATERAL ves.append(:t, :s, CASE WHEN g % 4 = 0 THEN 'Customer' ELSE 'Order' END,
                     'E-' || (g % 5), 'changed', jsonb_build_object('g', g));

-- A poll returns matching events after the checkpoint and does not move it.
SELECT position - :base AS pos, entity_type, payload->>'g' AS g FROM ves.poll(:t, 'billing', max_count => 4);
SELECT position - :base AS pos FROM ves.poll(:t, 'billing', max_count => 2);
-- Ack moves it; the next poll continues after it; acks never go back.
SELECT ves.ack(:t, 'billing', 0, :base + 5) - :base AS checkpoint;
SELECT position - :base AS pos FROM ves.poll(:t, 'billing', max_count => 3);
SELECT ves.ack(:t, 'billing', 0, :base + 2) - :base AS checkpoint_not_moved_back;
-- Acking what has not been delivered is refused.
SELECT split_part(regress_try(format('SELECT ves.ack(%L, %L, 0, %s)', :t, 'billing', :base + 1000)), ':', 1) AS sqlstate;

-- A consumer group: every event goes to exactly one member, and all events of
-- an entity go to the same member, in order.
CREATE TEMP TABLE got AS
SELECT m AS member, e.* FROM generate_series(0, 2) m, LATERAL ves.poll(:t, 'pickers', m, 100) e;
SELECT count(*) AS delivered, count(DISTINCT position) AS distinct_positions FROM got;
SELECT count(*) AS entities_split FROM (SELECT entity_type, entity_id FROM got GROUP BY 1, 2 HAVING count(DISTINCT member) > 1) x;
SELECT count(*) = 12 AS every_event FROM got;
SELECT ves.poll(:t, 'pickers', 3);

-- Replay re-delivers a range before live events resume.
SELECT ves.ack(:t, 'billing', 0, :base + 12) - :base AS caught_up;
SELECT count(*) AS nothing_new FROM ves.poll(:t, 'billing');
SELECT ves.replay(:t, 'billing', :base + 2, :base + 6);
SELECT replaying, replay_checkpoint - :base AS from_pos, replay_to - :base AS to_pos FROM ves.subscription_status WHERE subscription = 'billing';
SELECT position - :base AS replayed FROM ves.poll(:t, 'billing');
SELECT ves.ack(:t, 'billing', 0, :base + 6) - :base AS checkpoint;
SELECT replaying FROM ves.subscription_status WHERE subscription = 'billing';
SELECT count(*) AS live_again FROM ves.poll(:t, 'billing');


-- Errors.
SELECT * FROM ves.poll(:t, 'nope');
SELECT * FROM ves.poll(:t, 'billing', max_count => 0);
SELECT * FROM ves.create_subscription(:t, '', members => 1);
SELECT * FROM ves.create_subscription(:t, 'x', members => 0);
SELECT ves.replay(:t, 'billing', 10, 5);
SELECT ves.drop_subscription(:t, 'pickers');
SELECT count(*) AS members_left FROM ves.subscription_members WHERE subscription = 'pickers';
