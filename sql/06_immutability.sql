\set SHOW_CONTEXT never
-- Events are immutable, for everyone, except through the logged maintenance path.
\set t '''00000000-0000-0000-0000-000000000501'''
\set s '''00000000-0000-0000-0000-000000000601'''
SELECT position AS p FROM ves.append(:t, :s, 'Order', 'imm-1', 'order.created', '{"total": 1}') \gset
-- The error names the partition, which depends on the month the test runs
-- in: refused() runs a statement and shows its error with the month masked.
CREATE FUNCTION pg_temp.refused(statement text) RETURNS TABLE (sqlstate text, message text, hint text)
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE statement;
  RETURN QUERY SELECT NULL::text, 'not refused'::text, NULL::text;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
  RETURN QUERY SELECT SQLSTATE::text, regexp_replace(SQLERRM, 'y[0-9]{4}m[0-9]{2}', 'yYYYYmMM', 'g'), hint;
END $$;

SELECT * FROM pg_temp.refused(format('UPDATE ves.events SET payload = ''{"total": 1000}'' WHERE position = %s', :p));
SELECT * FROM pg_temp.refused(format('DELETE FROM ves.events WHERE position = %s', :p));
TRUNCATE ves.events;
-- Straight at a partition, too.
SELECT format('ves.events_%s_t0', to_char(now() AT TIME ZONE 'UTC', '"y"YYYY"m"MM')) AS leaf \gset
SELECT * FROM pg_temp.refused('TRUNCATE ' || :'leaf');
-- Setting a flag is not a way in.
SET ves.maintenance = on;
SELECT payload FROM ves.events WHERE position = :p;

-- The maintenance path needs a reason, lasts one transaction and is logged.
BEGIN;
SELECT ves.begin_maintenance('');
ROLLBACK;
BEGIN;
SELECT ves.begin_maintenance('regression: repair a test event');
UPDATE ves.events SET payload = '{"total": 2}' WHERE position = :p;
COMMIT;
SELECT payload FROM ves.events WHERE position = :p;
SELECT * FROM pg_temp.refused(format('UPDATE ves.events SET payload = ''{"total": 3}'' WHERE position = %s', :p));
SELECT action, detail FROM ves.maintenance_log ORDER BY id;

-- Partitions: months ahead exist, each split by tenant.
SELECT count(*) >= 3 AS months_ahead FROM ves.event_partitions;
SELECT count(*) AS tenant_buckets FROM pg_inherits WHERE inhparent = (SELECT min(partition::text)::regclass FROM ves.event_partitions);
SELECT ves.ensure_partitions(now() + interval '6 months') > now() + interval '6 months' AS extended;
SELECT count(*) >= 6 AS more_months FROM ves.event_partitions;

-- Retention drops whole months past ves.retention_months, unless a
-- subscription has not acknowledged their events.
SHOW ves.retention_months;
SELECT ves.ensure_partitions('2020-01-15') AT TIME ZONE 'UTC' AS covered_until;
SELECT partition, dropped, reason FROM ves.drop_expired_partitions() WHERE partition LIKE '%2020%' ORDER BY 1;
SELECT count(*) AS gone FROM ves.event_partitions WHERE partition::text LIKE '%2020%';
-- A month holding an unacknowledged event stays.
BEGIN;
SELECT ves.begin_maintenance('regression: backdate an event to test retention');
SELECT ves.ensure_partitions('2021-03-10') AT TIME ZONE 'UTC' AS covered_until;
INSERT INTO ves.events (position, tenant_id, store_id, entity_type, entity_id, entity_version, event_id, event_type, payload, recorded_at,
                        source_agent_id, agent_key_id, created_at, payload_plain_hash, agent_signature)
VALUES (nextval('ves.position_seq'), :t, :s, 'Order', 'old', 1, '00000000-0000-7000-8000-000000000001', 'order.created', '{}', '2021-03-10',
        '00000000-0000-0000-0000-000000000000', 1, '2021-03-10T00:00:00.000Z', ves.payload_hash('{}'), decode(repeat('00', 64), 'hex'));
INSERT INTO ves.event_ids VALUES (:t, '00000000-0000-7000-8000-000000000001', '\x00');
COMMIT;
-- Positions taken outside ves.append are invisible to the read fence until
-- the next append moves it.
SELECT entity_version FROM ves.append(:t, :s, 'Order', 'imm-2', 'order.created', '{}');
SELECT name FROM ves.create_subscription(:t, 'audit');
SELECT partition, dropped, reason FROM ves.drop_expired_partitions() WHERE partition LIKE '%2021%' ORDER BY 1;
SELECT ves.ack(:t, 'audit', 0, (SELECT max(position) FROM ves.events WHERE tenant_id = :t)) > 0 AS acked;
SELECT partition, dropped, reason FROM ves.drop_expired_partitions() WHERE partition LIKE '%2021%' ORDER BY 1;
SELECT count(*) AS old_event_ids_left FROM ves.event_ids WHERE event_id = '00000000-0000-7000-8000-000000000001';
SELECT action FROM ves.maintenance_log WHERE action = 'drop_partition' LIMIT 1;
