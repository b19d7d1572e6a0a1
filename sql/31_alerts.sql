-- Alert rules over the delivery metrics: the defaults, rules set per
-- destination, pending -> firing -> resolved, and refused settings. No
-- worker runs here, so ves.evaluate_alerts() is called by hand (and
-- worker_not_running fires). NOTIFY ves_alerts and the worker's own
-- evaluation are checked in test/t/052_alerts.pl.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000003101'''
\set s '''00000000-0000-0000-0000-000000003102'''

SELECT name, metric, comparison, threshold, window_length, for_duration, severity, source
FROM ves.alert_rules ORDER BY name;
SELECT count(*) AS metrics, count(*) FILTER (WHERE scope = 'global') AS global FROM ves.alert_metrics();

-- A destination whose only row goes dead at its first (and last) attempt.
SELECT (ves.create_destination('alerts-dead', 'http', 'http://127.0.0.1:9/dead',
  '{"entity_types": ["alerting"], "max_attempts": 1, "timeout_ms": 2000}')).name;
SELECT count(*) FROM ves.append(:t, :s, 'alerting', 'a-1', 'thing.happened', '{}');
SELECT sent, synced, failed, dead FROM ves.push_events('alerts-dead');

SELECT ves.evaluate_alerts() > 0 AS changed;
SELECT rule, destination, metric, status, value, threshold, severity, labels, fired_at IS NOT NULL AS fired
FROM ves.alerts WHERE destination = 'alerts-dead' OR destination IS NULL ORDER BY rule, destination;
-- Evaluating again changes nothing for these.
SELECT ves.evaluate_alerts() >= 0 AS evaluated;
SELECT count(*) AS open_alerts FROM ves.alerts
WHERE (destination = 'alerts-dead' OR destination IS NULL) AND status = 'firing';

-- The worker evaluates the rules every 30 s in its delivery loop: the
-- closed rows an outbox keeps until they are purged are never read for it.
INSERT INTO ves.outbox (tenant_id, destination_id, event_position, event_id, entity_type, entity_id, status, synced_at)
SELECT :t, d.id, 1000000 + g, gen_random_uuid(), 'alerting', 'closed-' || g, 'synced', now()
FROM ves.destinations d, generate_series(1, 20000) g WHERE d.name = 'alerts-dead';
ANALYZE ves.outbox;
BEGIN;
SELECT seq_scan AS scans_before FROM pg_stat_xact_user_tables WHERE relid = 'ves.outbox'::regclass \gset
SELECT ves.evaluate_alerts() >= 0 AS evaluated;
SELECT seq_scan - :scans_before AS outbox_seq_scans FROM pg_stat_xact_user_tables WHERE relid = 'ves.outbox'::regclass;
SELECT rule, value FROM ves.alerts WHERE destination = 'alerts-dead' AND rule = 'dead_rows';
ROLLBACK;
DELETE FROM ves.outbox WHERE entity_id LIKE 'closed-%';

-- One destination may tolerate a few dead rows: its own rule wins over the
-- default, and its dead_rows alert resolves.
SELECT name, destination, metric, comparison, threshold, source
FROM ves.set_alert_rule('dead_rows', '{"threshold": 5}', 'alerts-dead');
SELECT ves.evaluate_alerts() > 0 AS changed;
SELECT rule, destination, status, resolved_at IS NOT NULL AS resolved FROM ves.alerts
WHERE destination = 'alerts-dead' ORDER BY rule, alert_id;

-- A rule of one's own, held for a while before it fires: pending first.
SELECT name, metric, comparison, threshold, for_duration, severity
FROM ves.set_alert_rule('deep_queue', '{"metric": "queue_depth", "comparison": ">", "threshold": 0,
                                        "for": "1 hour", "severity": "info"}', 'alerts-dead');
SELECT count(*) FROM ves.append(:t, :s, 'alerting', 'a-2', 'thing.happened', '{}');
SELECT ves.evaluate_alerts() >= 0 AS evaluated;
SELECT rule, status, value, fired_at IS NULL AS not_fired FROM ves.alerts WHERE rule = 'deep_queue';
SELECT name, for_duration FROM ves.set_alert_rule('deep_queue', '{"for": "0 s"}', 'alerts-dead');
SELECT ves.evaluate_alerts() > 0 AS changed;
SELECT rule, status, value FROM ves.alerts WHERE rule = 'deep_queue';
-- Dropping the rule ends its alert.
SELECT ves.drop_alert_rule('deep_queue', 'alerts-dead');
SELECT ves.evaluate_alerts() > 0 AS changed;
SELECT rule, status FROM ves.alerts WHERE rule = 'deep_queue';

-- Refused settings write nothing.
SELECT regress_try($q$SELECT ves.set_alert_rule('dead_rows', '{"colour": "red"}')$q$);
SELECT regress_try($q$SELECT ves.set_alert_rule('mine', '{"threshold": 1}')$q$);
SELECT regress_try($q$SELECT ves.set_alert_rule('mine', '{"metric": "happiness", "comparison": ">", "threshold": 1}')$q$);
SELECT regress_try($q$SELECT ves.set_alert_rule('dead_rows', '{"threshold": "lots"}')$q$);
SELECT regress_try($q$SELECT ves.set_alert_rule('dead_rows', '{"window": "-1 min"}')$q$);
SELECT regress_try($q$SELECT ves.set_alert_rule('dead_rows', '{"comparison": ">="}')$q$);
SELECT regress_try($q$SELECT ves.set_alert_rule('dead_rows', '{}', 'no-such-destination')$q$);
SELECT regress_try($q$SELECT ves.set_alert_rule(NULL)$q$);
SELECT name, destination, threshold, source FROM ves.alert_rules WHERE name IN ('dead_rows', 'mine') ORDER BY destination;

-- Who may do what.
SELECT r AS role, has_function_privilege(r, 'ves.set_alert_rule(text, jsonb, text, uuid)', 'EXECUTE') AS set_rule,
       has_function_privilege(r, 'ves.evaluate_alerts()', 'EXECUTE') AS evaluate,
       has_table_privilege(r, 'ves.alerts', 'SELECT') AS read_alerts,
       has_table_privilege(r, 'ves.alert_rules', 'SELECT') AS read_rules
FROM unnest(ARRAY['ves_reader', 'ves_writer', 'ves_admin', 'ves_worker', 'pg_monitor']) r;

SELECT ves.drop_alert_rule('dead_rows', 'alerts-dead');
SELECT ves.drop_destination('alerts-dead');
SELECT ves.evaluate_alerts() >= 0 AS evaluated;
SELECT count(*) AS open_alerts_of_dropped FROM ves.alerts WHERE destination = 'alerts-dead' AND status <> 'resolved';

-- ves.settings: server settings with where they were set, sync settings,
-- and the conflict policy defaults.
-- (Sync settings' values depend on what earlier tests set: only their keys.)
SELECT kind, name, CASE WHEN kind = 'sync' THEN '(a number)' ELSE value END AS value, source FROM ves.settings
WHERE (kind = 'server' AND name IN ('ves.metrics', 'ves.sync_history_retention', 'ves.max_payload_size'))
   OR (kind = 'sync' AND name IN ('window', 'lease_seconds'))
   OR (kind = 'conflict_policy' AND tenant_id IS NULL AND name = 'strategy')
ORDER BY kind, name;
-- An administrator who is not a superuser does not see superuser-only settings.
CREATE ROLE regress_settings_admin IN ROLE ves_admin;
SET ROLE regress_settings_admin;
SELECT count(*) FILTER (WHERE name = 'ves.server_key_command') AS key_command_shown,
       count(*) FILTER (WHERE name = 'ves.metrics') AS metrics_shown
FROM ves.settings WHERE kind = 'server';
RESET ROLE;
DROP ROLE regress_settings_admin;
SELECT has_table_privilege('ves_reader', 'ves.settings', 'SELECT') AS reader, has_table_privilege('ves_admin', 'ves.settings', 'SELECT') AS admin;
