-- The audit log: administrative calls recorded with who, what and on what,
-- secrets never written; the worker's health updates not recorded; only
-- administrators read it, each seeing its tenants' entries.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000003201'''
\set t2 '''00000000-0000-0000-0000-000000003202'''
\set s '''00000000-0000-0000-0000-000000003203'''

SELECT coalesce(max(audit_id), 0) AS before FROM ves.audit_log \gset
CREATE ROLE regress_audit_admin IN ROLE ves_admin;
GRANT regress_audit_admin TO current_user;
SET ROLE regress_audit_admin;

SELECT (ves.create_destination('audited', 'webhook', 'http://127.0.0.1:9/audited',
  '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "max_attempts": 1, "timeout_ms": 2000,
    "headers": {"Authorization": {"value": "Bearer hunter2", "secret": true}}}')).name;
SELECT (ves.alter_destination('audited', '{"concurrency": 4}')).name;
SELECT (ves.pause_destination('audited', 'maintenance window')).paused;
SELECT (ves.resume_destination('audited')).paused;
SELECT ves.set_sync_settings('{"claim_batch": 200}') IS NOT NULL AS set;
SELECT ves.set_conflict_policy(:t, 'inventory', '{"strategy": "last_write_wins"}') IS NOT NULL AS set;
SELECT name FROM ves.set_alert_rule('dead_rows', '{"threshold": 3}', 'audited');
SELECT ves.drop_alert_rule('dead_rows', 'audited');
-- A row that goes dead, acknowledged and retried.
SELECT count(*) FROM ves.append(:t, :s, 'audit', 'a-1', 'thing.happened', '{}');
SELECT dead FROM ves.push_events('audited');
SELECT ves.acknowledge_events(ARRAY(SELECT id FROM ves.outbox WHERE destination_id = (SELECT id FROM ves.destinations WHERE name = 'audited')));
SELECT ves.retry_events(ARRAY(SELECT id FROM ves.outbox WHERE destination_id = (SELECT id FROM ves.destinations WHERE name = 'audited')));
SELECT ves.drop_destination('audited');
RESET ROLE;

-- What was recorded, in order, by whom.
-- (The first append's agent key is recorded too; its id is random.)
SELECT action, target, session_role = session_user AS by_session_user, set_role,
       CASE WHEN tenant_id IS NULL THEN '' WHEN tenant_id = :t THEN 't' ELSE 'other' END AS tenant,
       arguments - 'ids' - 'before' - 'after' - 'policy' - 'headers' - 'url' AS arguments
FROM ves.audit_log WHERE audit_id > :before AND action <> 'create_agent_key' ORDER BY audit_id;
SELECT count(*) AS agent_keys_created, bool_and(tenant_id = :t) AS for_the_tenant
FROM ves.audit_log WHERE audit_id > :before AND action = 'create_agent_key';
-- Secrets: the sealed values and the secret header never appear.
SELECT count(*) AS entries_with_secrets FROM ves.audit_log
WHERE arguments::text ~ 'hunter2|whsec_|MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
SELECT arguments -> 'headers' AS recorded_headers FROM ves.audit_log
WHERE audit_id > :before AND action = 'create_destination';
-- The sync settings change says what it was and what it became.
SELECT arguments #> '{before,claim_batch}' AS before, arguments #> '{after,claim_batch}' AS after
FROM ves.audit_log WHERE audit_id > :before AND action = 'set_sync_settings';
SELECT ves.set_sync_settings('{"claim_batch": 256}') IS NOT NULL AS restored;

-- Who may read it: administrators, and then only their tenants' entries.
SELECT has_table_privilege('ves_reader', 'ves.audit_log', 'SELECT') AS reader,
       has_table_privilege('ves_writer', 'ves.audit_log', 'SELECT') AS writer,
       has_table_privilege('ves_admin', 'ves.audit_log', 'SELECT') AS admin,
       has_table_privilege('ves_admin', 'ves.audit_log', 'INSERT') AS admin_writes;
SET ROLE regress_audit_admin;
SET ves.tenant_id = :t2;
SELECT count(*) AS other_tenants_entries_seen FROM ves.audit_log
WHERE audit_id > :before AND tenant_id = :t;
SELECT count(*) > 0 AS untenanted_entries_seen FROM ves.audit_log
WHERE audit_id > :before AND tenant_id IS NULL;
RESET ves.tenant_id;
RESET ROLE;
DROP ROLE regress_audit_admin;
