-- Alerts (README "Alerts"): rules over the delivery metrics, evaluated by the
-- sync worker about every 30 seconds (or by ves.evaluate_alerts()), firing
-- and resolved alerts in ves.alerts, and NOTIFY ves_alerts on every
-- transition. Kept in one file that the upgrade script includes as well.

-- Destinations that receive alert transitions as events (option "alerts").
ALTER TABLE ves.destinations ADD COLUMN alerts boolean NOT NULL DEFAULT false;

-- The metrics a rule can watch: per destination, or for the whole database
-- (global). Values are numbers: seconds for latencies and ages, 0..1 for
-- rates, counts otherwise.
CREATE FUNCTION ves.alert_metrics(OUT metric text, OUT scope text, OUT description text)
  RETURNS SETOF record LANGUAGE sql IMMUTABLE AS $$
  VALUES ('inventory_sync_p95', 'destination', 'inventory events, commit -> acknowledged, p95 over the window (s)'),
         ('inventory_sync_p99', 'destination', 'inventory events, commit -> acknowledged, p99 over the window (s)'),
         ('order_sync_p95', 'destination', 'order events, commit -> acknowledged, p95 over the window (s)'),
         ('http_p95', 'destination', 'request round trip, p95 over the window (s)'),
         ('sync_success_rate', 'destination', 'successful attempts over all attempts in the window (0..1)'),
         ('failures', 'destination', 'failed attempts in the window'),
         ('dead', 'destination', 'rows that went dead in the window'),
         ('dead_rows', 'destination', 'rows that are dead in the outbox now'),
         ('queue_depth', 'destination', 'rows not yet delivered now'),
         ('oldest_pending_seconds', 'destination', 'age of the oldest undelivered row now (s)'),
         ('breaker_open', 'destination', '1 while the circuit breaker is open'),
         ('paused_by_worker', 'destination', '1 while the worker keeps the destination paused (credentials refused, endpoint gone)'),
         ('data_consistency', 'destination', 'agreement with the platform at the last full reconciliation (0..1)'),
         ('recovery_seconds', 'destination', 'the last recovery (breaker open or worker start -> backlog drained) ended in the window, or the one under way (s)'),
         ('workers_running', 'global', 'sync workers running for this database'),
         ('open_conflicts', 'global', 'conflicts waiting for a decision'),
         ('conflict_resolution_rate', 'global', 'conflicts detected in the window that are resolved (0..1)'),
         ('data_consistency_score', 'global', 'agreement with the platforms at their last full reconciliations (0..1)'),
         ('security_alerts', 'global', 'security alerts not yet acknowledged (ves.security_alerts)')
$$;

-- The rules pg_ves ships (the seeds' goals). A rule set with
-- ves.set_alert_rule under the same name replaces a default for everything
-- it covers.
CREATE FUNCTION ves._default_alert_rules(OUT name text, OUT metric text, OUT comparison text,
    OUT threshold double precision, OUT window_length interval, OUT for_duration interval,
    OUT severity text, OUT description text)
  RETURNS SETOF record LANGUAGE sql IMMUTABLE AS $$
  VALUES ('high_sync_latency', 'inventory_sync_p95', '>', 5, interval '5 min', interval '0', 'warning',
          'inventory sync p95 above 5 s over 5 minutes'),
         ('high_order_sync_latency', 'order_sync_p95', '>', 30, interval '5 min', interval '0', 'warning',
          'order sync p95 above 30 s over 5 minutes'),
         ('sync_failure', 'sync_success_rate', '<', 0.999, interval '15 min', interval '0', 'critical',
          'success rate below 99.9 % over 15 minutes'),
         ('dead_rows', 'dead_rows', '>', 0, interval '5 min', interval '0', 'critical',
          'outbox rows are dead'),
         ('stale_pending', 'oldest_pending_seconds', '>', 60, interval '5 min', interval '0', 'warning',
          'the oldest undelivered row is older than 60 s'),
         ('breaker_open', 'breaker_open', '>', 0, interval '5 min', interval '5 min', 'warning',
          'circuit breaker open for more than 5 minutes'),
         ('worker_not_running', 'workers_running', '<', 1, interval '5 min', interval '0', 'critical',
          'no sync worker runs for this database'),
         ('low_consistency', 'data_consistency_score', '<', 0.999, interval '1 hour', interval '0', 'warning',
          'data consistency below 99.9 %'),
         ('security_alert', 'security_alerts', '>', 0, interval '5 min', interval '0', 'critical',
          'a security alert was raised'),
         ('destination_paused', 'paused_by_worker', '>', 0, interval '5 min', interval '0', 'critical',
          'the worker paused a destination (credentials refused or endpoint gone)'),
         ('slow_recovery', 'recovery_seconds', '>', 300, interval '15 min', interval '0', 'warning',
          'recovery from an open breaker or a worker restart takes more than 5 minutes')
$$;

-- Rules set by operators: new rules, and defaults changed for the whole
-- database, a tenant's destinations or one destination. The most specific
-- one of a name wins (destination, then tenant, then the whole database).
CREATE TABLE ves.alert_rule_settings (
  name          text             NOT NULL,
  tenant_id     uuid,
  destination   text,
  metric        text             NOT NULL,
  comparison    text             NOT NULL CHECK (comparison IN ('>', '<')),
  threshold     double precision NOT NULL,
  window_length interval         NOT NULL CHECK (window_length > interval '0'),
  for_duration  interval         NOT NULL CHECK (for_duration >= interval '0'),
  severity      text             NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
  enabled       boolean          NOT NULL DEFAULT true,
  description   text             NOT NULL DEFAULT '',
  updated_at    timestamptz      NOT NULL DEFAULT now(),
  CONSTRAINT alert_rule_settings_scope UNIQUE NULLS NOT DISTINCT (name, tenant_id, destination)
);
SELECT pg_catalog.pg_extension_config_dump('ves.alert_rule_settings', '');

-- Every rule in force: the defaults not replaced for the whole database, and
-- every rule set.
CREATE VIEW ves.alert_rules AS
  SELECT d.name, NULL::uuid AS tenant_id, NULL::text AS destination, d.metric, d.comparison, d.threshold,
         d.window_length, d.for_duration, d.severity, true AS enabled, d.description, 'default'::text AS source
  FROM ves._default_alert_rules() d
  WHERE NOT EXISTS (SELECT FROM ves.alert_rule_settings s
                    WHERE s.name = d.name AND s.tenant_id IS NULL AND s.destination IS NULL)
  UNION ALL
  SELECT s.name, s.tenant_id, s.destination, s.metric, s.comparison, s.threshold, s.window_length,
         s.for_duration, s.severity, s.enabled, s.description, 'set'
  FROM ves.alert_rule_settings s
  WHERE s.tenant_id IS NULL OR ves.tenant_visible(s.tenant_id);

-- Alerts: one row per (rule, destination) episode. 'pending' while a rule
-- with a for_duration holds but not yet long enough (no notification),
-- 'firing', then 'resolved' when it no longer holds.
CREATE TABLE ves.alerts (
  alert_id     bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  rule         text             NOT NULL,
  destination  text,            -- NULL for a global metric
  metric       text             NOT NULL,
  status       text             NOT NULL CHECK (status IN ('pending', 'firing', 'resolved')),
  value        double precision,
  threshold    double precision NOT NULL,
  severity     text             NOT NULL,
  labels       jsonb            NOT NULL DEFAULT '{}',
  started_at   timestamptz      NOT NULL DEFAULT now(),  -- the condition first held
  fired_at     timestamptz,
  resolved_at  timestamptz,
  updated_at   timestamptz      NOT NULL DEFAULT now(),
  -- ves.acknowledge_alert: someone is on it (the episode still resolves).
  acknowledged_at timestamptz,
  acknowledged_by text,
  acknowledgement_note text
);
CREATE UNIQUE INDEX alerts_open_idx ON ves.alerts (rule, coalesce(destination, '')) WHERE status <> 'resolved';
SELECT pg_catalog.pg_extension_config_dump('ves.alerts', '');

CREATE FUNCTION ves.set_alert_rule(name text, settings jsonb DEFAULT '{}', destination text DEFAULT NULL,
                                   tenant_id uuid DEFAULT NULL)
  RETURNS SETOF ves.alert_rules
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  base record;
  k text;
  v_metric text; v_comparison text; v_threshold double precision; v_window interval; v_for interval;
  v_severity text; v_enabled boolean; v_description text;
BEGIN
  IF name IS NULL OR settings IS NULL THEN
    RAISE EXCEPTION 'name and settings must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Pass a rule name and a JSON object of the settings to change.';
  END IF;
  IF jsonb_typeof(settings) <> 'object' THEN
    RAISE EXCEPTION 'settings must be a JSON object' USING ERRCODE = 'VE010',
      HINT = 'Keys: metric, comparison, threshold, window, for, severity, enabled, description.';
  END IF;
  FOR k IN SELECT jsonb_object_keys(settings) LOOP
    IF k NOT IN ('metric', 'comparison', 'threshold', 'window', 'for', 'severity', 'enabled', 'description') THEN
      RAISE EXCEPTION 'unknown alert rule setting "%"', k USING ERRCODE = 'VE010',
        HINT = 'Keys: metric, comparison, threshold, window, for, severity, enabled, description.';
    END IF;
  END LOOP;
  IF destination IS NOT NULL AND NOT EXISTS (SELECT FROM ves.destinations d WHERE d.name = set_alert_rule.destination) THEN
    RAISE EXCEPTION 'destination "%" does not exist', destination USING ERRCODE = 'VE012',
      HINT = 'List destinations with SELECT name FROM ves.destinations.';
  END IF;
  -- What the new row starts from: the rule already set at this scope, the
  -- rule of the whole database, or the default.
  SELECT r.metric, r.comparison, r.threshold, r.window_length, r.for_duration, r.severity, r.enabled, r.description
    INTO base
  FROM ves.alert_rules r
  WHERE r.name = set_alert_rule.name
    AND (r.tenant_id IS NULL OR r.tenant_id = set_alert_rule.tenant_id)
    AND (r.destination IS NULL OR r.destination = set_alert_rule.destination)
  ORDER BY (r.destination IS NOT NULL) DESC, (r.tenant_id IS NOT NULL) DESC
  LIMIT 1;
  BEGIN
    v_metric := coalesce(settings->>'metric', base.metric);
    v_comparison := coalesce(settings->>'comparison', base.comparison);
    v_threshold := coalesce((settings->>'threshold')::double precision, base.threshold);
    v_window := coalesce((settings->>'window')::interval, base.window_length, interval '5 min');
    v_for := coalesce((settings->>'for')::interval, base.for_duration, interval '0');
    v_severity := coalesce(settings->>'severity', base.severity, 'warning');
    v_enabled := coalesce((settings->>'enabled')::boolean, base.enabled, true);
    v_description := coalesce(settings->>'description', base.description, '');
  EXCEPTION WHEN invalid_text_representation OR invalid_datetime_format OR datetime_field_overflow
                 OR invalid_parameter_value OR numeric_value_out_of_range THEN
    RAISE EXCEPTION 'invalid alert rule setting: %', SQLERRM USING ERRCODE = 'VE010',
      HINT = 'threshold is a number, window and for are intervals (''5 min''), enabled is a boolean.';
  END;
  IF v_metric IS NULL OR v_comparison IS NULL OR v_threshold IS NULL THEN
    RAISE EXCEPTION 'a new alert rule needs metric, comparison and threshold' USING ERRCODE = 'VE010',
      HINT = 'List the metrics with SELECT * FROM ves.alert_metrics().';
  END IF;
  IF NOT EXISTS (SELECT FROM ves.alert_metrics() m WHERE m.metric = v_metric) THEN
    RAISE EXCEPTION 'unknown alert metric "%"', v_metric USING ERRCODE = 'VE010',
      HINT = 'List the metrics with SELECT * FROM ves.alert_metrics().';
  END IF;
  IF v_comparison NOT IN ('>', '<') OR v_severity NOT IN ('info', 'warning', 'critical')
     OR v_window <= interval '0' OR v_window > interval '30 days' OR v_for < interval '0' THEN
    RAISE EXCEPTION 'invalid alert rule setting' USING ERRCODE = 'VE010',
      HINT = 'comparison is ">" or "<", severity info, warning or critical, window from 1 second to 30 days, for at least 0.';
  END IF;
  INSERT INTO ves.alert_rule_settings AS s (name, tenant_id, destination, metric, comparison, threshold,
                                            window_length, for_duration, severity, enabled, description)
  VALUES (set_alert_rule.name, set_alert_rule.tenant_id, set_alert_rule.destination, v_metric, v_comparison,
          v_threshold, v_window, v_for, v_severity, v_enabled, v_description)
  ON CONFLICT ON CONSTRAINT alert_rule_settings_scope DO UPDATE
    SET metric = excluded.metric, comparison = excluded.comparison, threshold = excluded.threshold,
        window_length = excluded.window_length, for_duration = excluded.for_duration,
        severity = excluded.severity, enabled = excluded.enabled, description = excluded.description,
        updated_at = now();
  RETURN QUERY SELECT * FROM ves.alert_rules r
    WHERE r.name = set_alert_rule.name AND r.tenant_id IS NOT DISTINCT FROM set_alert_rule.tenant_id
      AND r.destination IS NOT DISTINCT FROM set_alert_rule.destination;
END $$;

-- Removes a rule set with ves.set_alert_rule (a default comes back).
CREATE FUNCTION ves.drop_alert_rule(name text, destination text DEFAULT NULL, tenant_id uuid DEFAULT NULL)
  RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  DELETE FROM ves.alert_rule_settings s
  WHERE s.name = drop_alert_rule.name AND s.tenant_id IS NOT DISTINCT FROM drop_alert_rule.tenant_id
    AND s.destination IS NOT DISTINCT FROM drop_alert_rule.destination;
  RETURN FOUND;
END $$;

-- What each metric is now: per destination (destination set) and global
-- (destination NULL), for every window a rule uses.
CREATE FUNCTION ves._alert_observations(windows interval[])
  RETURNS TABLE (window_length interval, destination text, tenant_id uuid, metric text, value double precision)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE security bigint;
BEGIN
  IF pg_catalog.to_regclass('ves.security_alerts') IS NOT NULL THEN
    EXECUTE 'SELECT pg_catalog.count(*) FROM ves.security_alerts WHERE acknowledged_at IS NULL' INTO security;
  END IF;
  RETURN QUERY
  WITH m AS (
    SELECT w.w AS win, s.* FROM unnest(windows) AS w(w), LATERAL ves.sync_metrics(w.w) s
  ), gauges AS (
    SELECT d.name, d.tenant_id AS dest_tenant, (d.breaker_state = 'open')::int::double precision AS breaker,
           (SELECT count(*) FROM ves.outbox o WHERE o.destination_id = d.id AND o.status = 'dead')::double precision AS dead_rows,
           -- The worker pauses with its error as the reason (outbox_sql.cpp
           -- destination_plan); an operator's pause gives its own reason.
           (d.paused AND d.paused_reason IS NOT NULL AND d.paused_reason IS NOT DISTINCT FROM d.last_error)::int::double precision
             AS paused_by_worker
    FROM ves.destinations d
  )
  SELECT m.win, m.destination, g.dest_tenant, v.metric, v.value
  FROM m JOIN gauges g ON g.name = m.destination,
  LATERAL (VALUES ('inventory_sync_p95', m.inventory_sync_p95), ('inventory_sync_p99', m.inventory_sync_p99),
                  ('order_sync_p95', m.order_sync_p95), ('http_p95', m.http_p95),
                  ('sync_success_rate', m.sync_success_rate), ('failures', m.failures::double precision),
                  ('dead', m.dead::double precision), ('dead_rows', g.dead_rows),
                  ('queue_depth', m.queue_depth::double precision),
                  ('oldest_pending_seconds', coalesce(EXTRACT(epoch FROM m.oldest_pending_age)::double precision, 0)),
                  ('breaker_open', g.breaker), ('paused_by_worker', g.paused_by_worker),
                  ('data_consistency', m.data_consistency_score),
                  ('recovery_seconds', EXTRACT(epoch FROM m.recovery_time)::double precision)) AS v(metric, value)
  UNION ALL
  SELECT m.win, NULL, NULL, v.metric, v.value
  FROM m, LATERAL (VALUES
      ('workers_running', (SELECT count(*) FROM pg_catalog.pg_stat_activity a
                           WHERE a.backend_type = 'pg_ves worker' AND a.datname = pg_catalog.current_database())::double precision),
      ('open_conflicts', (SELECT count(*) FROM ves.conflicts c WHERE c.status = 'open')::double precision),
      ('conflict_resolution_rate', m.conflict_resolution_rate),
      ('data_consistency_score', m.data_consistency_score),
      ('security_alerts', security::double precision)) AS v(metric, value)
  WHERE m.destination IS NULL;
END $$;

-- Evaluates every enabled rule once: opens, fires and resolves alerts, and
-- sends NOTIFY ves_alerts (a JSON payload) on each firing and resolution.
-- Returns how many alerts changed state. The sync worker calls it about every
-- 30 seconds; call it from cron where no worker runs.
CREATE FUNCTION ves.evaluate_alerts() RETURNS int
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  changed int := 0;
  a ves.alerts;
  seen text[] := '{}';
  key text;
BEGIN
  PERFORM ves._track_recoveries();
  FOR r IN
    WITH rules AS (
      SELECT x.* FROM ves.alert_rules x
    ), obs AS (
      SELECT * FROM ves._alert_observations((SELECT array_agg(DISTINCT x.window_length) FROM rules x WHERE x.enabled))
    ), candidates AS (
      -- every rule that covers an observation, most specific first
      SELECT DISTINCT ON (x.name, o.destination)
             x.name, x.metric, x.comparison, x.threshold, x.for_duration, x.severity, x.enabled,
             o.destination, o.value, x.tenant_id AS rule_tenant
      FROM rules x
      JOIN obs o ON o.metric = x.metric AND o.window_length = x.window_length
      JOIN ves.alert_metrics() am ON am.metric = x.metric
      WHERE (am.scope = 'global') = (o.destination IS NULL)
        AND (x.destination IS NULL OR x.destination = o.destination)
        AND (x.tenant_id IS NULL OR x.tenant_id = o.tenant_id)
      ORDER BY x.name, o.destination, (x.destination IS NOT NULL) DESC, (x.tenant_id IS NOT NULL) DESC
    )
    SELECT c.*, CASE WHEN c.value IS NULL OR NOT c.enabled THEN false
                     WHEN c.comparison = '>' THEN c.value > c.threshold
                     ELSE c.value < c.threshold END AS holds
    FROM candidates c
  LOOP
    key := r.name || '|' || coalesce(r.destination, '');
    seen := seen || key;
    SELECT * INTO a FROM ves.alerts x
      WHERE x.rule = r.name AND coalesce(x.destination, '') = coalesce(r.destination, '') AND x.status <> 'resolved';
    IF r.holds THEN
      IF a.alert_id IS NULL THEN
        INSERT INTO ves.alerts (rule, destination, metric, status, value, threshold, severity, labels, fired_at)
        VALUES (r.name, r.destination, r.metric, CASE WHEN r.for_duration > interval '0' THEN 'pending' ELSE 'firing' END,
                r.value, r.threshold, r.severity,
                jsonb_strip_nulls(jsonb_build_object('rule', r.name, 'destination', r.destination, 'severity', r.severity,
                                                     'tenant_id', r.rule_tenant)),
                CASE WHEN r.for_duration > interval '0' THEN NULL ELSE now() END)
        RETURNING * INTO a;
        IF a.status = 'firing' THEN
          changed := changed + 1;
          PERFORM ves._notify_alert(a);
        END IF;
      ELSIF a.status = 'pending' AND now() - a.started_at >= r.for_duration THEN
        UPDATE ves.alerts x SET status = 'firing', fired_at = now(), value = r.value, updated_at = now()
          WHERE x.alert_id = a.alert_id RETURNING * INTO a;
        changed := changed + 1;
        PERFORM ves._notify_alert(a);
      ELSE
        UPDATE ves.alerts x SET value = r.value, updated_at = now() WHERE x.alert_id = a.alert_id;
      END IF;
    ELSIF a.alert_id IS NOT NULL THEN
      PERFORM ves._close_alert(a, r.value);
      changed := changed + CASE WHEN a.status = 'firing' THEN 1 ELSE 0 END;
    END IF;
  END LOOP;
  -- Alerts whose rule or destination is gone (or disabled) end too.
  FOR a IN SELECT * FROM ves.alerts x WHERE x.status <> 'resolved'
             AND NOT (x.rule || '|' || coalesce(x.destination, '')) = ANY (seen) LOOP
    PERFORM ves._close_alert(a, NULL);
    changed := changed + CASE WHEN a.status = 'firing' THEN 1 ELSE 0 END;
  END LOOP;
  RETURN changed;
END $$;

-- A pending alert that no longer holds never fired: it goes. A firing one
-- is resolved and announced.
CREATE FUNCTION ves._close_alert(a ves.alerts, last_value double precision) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF a.status = 'pending' THEN
    DELETE FROM ves.alerts x WHERE x.alert_id = a.alert_id;
    RETURN;
  END IF;
  UPDATE ves.alerts x SET status = 'resolved', resolved_at = now(), updated_at = now(),
                          value = coalesce(last_value, x.value)
    WHERE x.alert_id = a.alert_id RETURNING * INTO a;
  PERFORM ves._notify_alert(a);
END $$;

-- Destinations with the option "alerts": true receive every transition as
-- a signed event: alert.firing or alert.resolved on the alert's own stream
-- (entity_type 'sync.alert', entity_id the alert id), in the tenant of the
-- destination the alert is about (the nil UUID for a global alert or an
-- untenanted destination). The append's own fan-out skips 'sync.alert'
-- (src/pg/store/append.cpp): only these rows are queued, never to the
-- destination the alert is about, and within a tenant filter. A failure here
-- is a warning: it must not stop the evaluation (NOTIFY still goes out).
CREATE FUNCTION ves._deliver_alert(a ves.alerts) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  tenant uuid;
  store uuid;
  r ves.append_result;
BEGIN
  IF NOT EXISTS (SELECT FROM ves.destinations d WHERE d.alerts AND d.name IS DISTINCT FROM a.destination) THEN
    RETURN;
  END IF;
  BEGIN
    SELECT d.tenant_id, (d.kind_options ->> 'store_id')::uuid INTO tenant, store
    FROM ves.destinations d WHERE d.name = a.destination;
    tenant := coalesce(tenant, '00000000-0000-0000-0000-000000000000');
    store := coalesce(store, '00000000-0000-0000-0000-000000000000');
    r := ves.append(tenant, store, 'sync.alert', a.alert_id::text, 'alert.' || a.status,
      jsonb_strip_nulls(jsonb_build_object(
        'alert_id', a.alert_id, 'rule', a.rule, 'destination', a.destination, 'metric', a.metric,
        'status', a.status, 'value', a.value, 'threshold', a.threshold, 'severity', a.severity,
        'labels', a.labels, 'started_at', a.started_at, 'fired_at', a.fired_at, 'resolved_at', a.resolved_at,
        'acknowledged_at', a.acknowledged_at, 'acknowledged_by', a.acknowledged_by)),
      source => 'pg_ves');
    INSERT INTO ves.outbox (tenant_id, destination_id, event_position, event_id, entity_type, entity_id)
    SELECT tenant, d.id, r.position, r.event_id, 'sync.alert', a.alert_id::text
    FROM ves.destinations d
    WHERE d.alerts AND d.name IS DISTINCT FROM a.destination AND (d.tenant_id IS NULL OR d.tenant_id = tenant)
    ORDER BY d.id;
    PERFORM ves._wake_worker();
  EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'pg_ves: alert % could not be queued for the destinations taking alerts: %', a.alert_id, SQLERRM;
  END;
END $$;

CREATE FUNCTION ves._notify_alert(a ves.alerts) RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.pg_notify('ves_alerts', pg_catalog.jsonb_build_object(
    'alert_id', a.alert_id, 'rule', a.rule, 'destination', a.destination, 'status', a.status,
    'value', a.value, 'threshold', a.threshold, 'severity', a.severity,
    'acknowledged', a.acknowledged_at IS NOT NULL)::text);
  SELECT ves._deliver_alert(a);
$$;

-- Someone is on it: marks a firing alert acknowledged (who, when, a note)
-- and records it in ves.audit_log. Alerts announce transitions only, so an
-- acknowledged alert says nothing more until it resolves (announced, with
-- "acknowledged": true); if the rule holds again later, that is a new,
-- unacknowledged alert. Acknowledging again keeps the first acknowledgement.
CREATE FUNCTION ves.acknowledge_alert(id bigint, note text DEFAULT NULL) RETURNS ves.alerts
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  a ves.alerts;
  tenant uuid;
BEGIN
  IF id IS NULL THEN
    RAISE EXCEPTION 'id must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Pass an alert id from SELECT alert_id FROM ves.alerts WHERE status = ''firing''.';
  END IF;
  SELECT * INTO a FROM ves.alerts x WHERE x.alert_id = acknowledge_alert.id FOR UPDATE;
  tenant := nullif(a.labels ->> 'tenant_id', '')::uuid;
  IF NOT FOUND OR NOT (tenant IS NULL OR ves.tenant_visible(tenant)) THEN
    RAISE EXCEPTION 'alert % does not exist', id USING ERRCODE = 'VE012',
      HINT = 'List alerts with SELECT * FROM ves.alerts WHERE status = ''firing''.';
  END IF;
  IF a.status <> 'firing' THEN
    RAISE EXCEPTION 'alert % is %, not firing', id, a.status USING ERRCODE = 'VE075',
      HINT = CASE WHEN a.status = 'resolved' THEN 'It is over: nothing to acknowledge.'
                  ELSE 'A pending alert has not fired yet; acknowledge it once it fires.' END;
  END IF;
  IF a.acknowledged_at IS NULL THEN
    UPDATE ves.alerts x SET acknowledged_at = now(), acknowledged_by = session_user::text,
                            acknowledgement_note = note, updated_at = now()
    WHERE x.alert_id = a.alert_id RETURNING * INTO a;
    PERFORM ves._audit('acknowledge_alert', a.rule || coalesce(' on ' || a.destination, ''), tenant,
                       jsonb_strip_nulls(jsonb_build_object('alert_id', a.alert_id, 'note', note)));
  END IF;
  RETURN a;
END $$;

REVOKE ALL ON FUNCTION ves._deliver_alert(ves.alerts), ves.acknowledge_alert(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves.acknowledge_alert(bigint, text) TO ves_admin;
REVOKE ALL ON FUNCTION ves.alert_metrics(), ves._default_alert_rules(),
  ves.set_alert_rule(text, jsonb, text, uuid), ves.drop_alert_rule(text, text, uuid),
  ves._alert_observations(interval[]), ves.evaluate_alerts(), ves._close_alert(ves.alerts, double precision),
  ves._notify_alert(ves.alerts) FROM PUBLIC;
REVOKE ALL ON ves.alert_rule_settings, ves.alerts, ves.alert_rules FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves.alert_metrics(), ves.set_alert_rule(text, jsonb, text, uuid),
  ves.drop_alert_rule(text, text, uuid), ves.evaluate_alerts() TO ves_admin;
GRANT SELECT ON ves.alert_rules, ves.alerts TO ves_admin;
GRANT SELECT ON ves.alerts TO pg_monitor;
-- The view calls the defaults with its reader's rights.
GRANT EXECUTE ON FUNCTION ves._default_alert_rules(), ves.alert_metrics() TO ves_admin;
-- The worker evaluates the rules.
GRANT EXECUTE ON FUNCTION ves.evaluate_alerts() TO ves_worker;
