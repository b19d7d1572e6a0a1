\set SHOW_CONTEXT never
-- What ves.verify_events detects when someone with the table owner's rights
-- changes the log behind pg_ves' back (here through the maintenance path,
-- which is logged; disabling the triggers or detaching a partition would do
-- the same unlogged).
\set t '''00000000-0000-0000-0000-0000000016aa'''
\set s '''00000000-0000-0000-0000-000000001601'''
SELECT count(*) AS appended FROM generate_series(1, 4) g,
  LATERAL ves.append(:t, :s, 'InventoryItem', 'tamper-1', 'inventory.adjusted', jsonb_build_object('delta', g));
SELECT count(*) AS appended FROM generate_series(1, 3) g,
  LATERAL ves.append(:t, :s, 'InventoryItem', 'tamper-2', 'inventory.adjusted', jsonb_build_object('delta', g));
SELECT count(*) AS appended FROM generate_series(1, 2) g,
  LATERAL ves.append(:t, :s, 'InventoryItem', 'tamper-3', 'inventory.adjusted', jsonb_build_object('delta', g));
SELECT count(*) AS failing_before FROM ves.verify_events(tenant_id => :t);

BEGIN;
SELECT ves.begin_maintenance('regression: tamper with the log to show what verification finds');
-- A version deleted from the middle of a stream, the last version of
-- another, and a payload rewritten.
DELETE FROM ves.events WHERE tenant_id = :t AND entity_id = 'tamper-1' AND entity_version = 2;
DELETE FROM ves.events WHERE tenant_id = :t AND entity_id = 'tamper-2' AND entity_version = 3;
UPDATE ves.events SET payload = '{"delta": 100}' WHERE tenant_id = :t AND entity_id = 'tamper-3' AND entity_version = 1;
COMMIT;

SELECT e.entity_id, e.entity_version, v.reason, v.detail
FROM ves.verify_events(tenant_id => :t) v LEFT JOIN ves.events e ON e.event_id = v.event_id
ORDER BY v.event_position NULLS LAST, v.reason;
-- Limited to one entity or a position range, the same holes show.
SELECT reason, detail FROM ves.verify_events(tenant_id => :t, entity_type => 'InventoryItem', entity_id => 'tamper-2');
SELECT reason, detail FROM ves.verify_events(from_position => (SELECT min(position) FROM ves.events WHERE tenant_id = :t AND entity_id = 'tamper-1'),
                                             to_position => (SELECT max(position) FROM ves.events WHERE tenant_id = :t AND entity_id = 'tamper-1'))
WHERE detail LIKE '%tamper-1%';
-- A version stored twice.
BEGIN;
SELECT ves.begin_maintenance('regression: a forged copy of an event');
INSERT INTO ves.events SELECT nextval('ves.position_seq'), tenant_id, store_id, entity_type, entity_id, entity_version,
  '00000000-0000-7000-8000-0000000016ff', event_type, payload, metadata, source, recorded_at, source_agent_id, agent_key_id,
  created_at, payload_plain_hash, agent_signature
FROM ves.events WHERE tenant_id = :t AND entity_id = 'tamper-3' AND entity_version = 2;
COMMIT;
SELECT reason, detail FROM ves.verify_events(tenant_id => :t, entity_id => 'tamper-3') ORDER BY reason;
