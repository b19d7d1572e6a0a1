-- The audit log (README "Audit log"): every administrative change with who
-- made it, when and with what, secrets never included. Changes to the
-- tables that administrative calls write are recorded by triggers (so a
-- call recorded here cannot bypass it by another path); the outbox verbs,
-- whose table the worker updates all the time, record themselves through
-- ves._audit. Kept in one file that the upgrade script includes as well.

CREATE TABLE ves.audit_log (
  audit_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at           timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  -- Who: the session's login role and the role it SET ROLE to (inside
  -- pg_ves' functions the current user is always the extension owner).
  session_role name        NOT NULL DEFAULT session_user,
  set_role     text        DEFAULT nullif(pg_catalog.current_setting('role'), 'none'),
  action       text        NOT NULL,
  target       text,       -- the destination, conflict, key or role acted on
  tenant_id    uuid,
  arguments    jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON ves.audit_log (at);
SELECT pg_catalog.pg_extension_config_dump('ves.audit_log', '');
ALTER TABLE ves.audit_log ENABLE ROW LEVEL SECURITY;
-- Administrators see the entries of the tenants they act for, and those of
-- no tenant.
CREATE POLICY tenant_isolation ON ves.audit_log FOR SELECT
  USING (tenant_id IS NULL OR ves.tenant_visible(tenant_id));

CREATE FUNCTION ves._audit(action text, target text, tenant_id uuid, arguments jsonb) RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  INSERT INTO ves.audit_log (action, target, tenant_id, arguments)
  VALUES ($1, $2, $3, coalesce($4, '{}'))
$$;

-- What one row change of an administered table means. Secrets are only ever
-- said to be set, changed or removed.
CREATE FUNCTION ves._audit_change() RETURNS trigger
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  o jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
  n jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
  r jsonb := coalesce(n, o);
  act text;
  tgt text;
  args jsonb := '{}';
  changed jsonb;
BEGIN
  -- A pg_dump script (check_function_bodies off) restores the log itself.
  IF NOT current_setting('check_function_bodies')::boolean THEN
    RETURN NULL;
  END IF;
  -- The keys whose value changed (all of the row for an insert or delete).
  SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') INTO changed
  FROM jsonb_each(coalesce(n, o)) e
  WHERE o IS NULL OR n IS NULL OR (o -> e.key) IS DISTINCT FROM e.value;
  CASE TG_TABLE_NAME
    WHEN 'destinations' THEN
      tgt := r ->> 'name';
      act := CASE TG_OP WHEN 'INSERT' THEN 'create_destination' WHEN 'DELETE' THEN 'drop_destination'
             ELSE CASE WHEN (n ->> 'paused')::boolean AND NOT (o ->> 'paused')::boolean THEN 'pause_destination'
                       WHEN NOT (n ->> 'paused')::boolean AND (o ->> 'paused')::boolean THEN 'resume_destination'
                       ELSE 'alter_destination' END END;
      -- Health written by the worker is not an administrative change.
      args := changed - ARRAY['breaker_state', 'last_success_at', 'last_error', 'last_error_at', 'updated_at',
                              'created_at', 'id'];
      IF TG_OP = 'DELETE' THEN args := '{}'; END IF;
      IF TG_OP = 'UPDATE' THEN args := args || jsonb_build_object('destination', tgt); END IF;
    WHEN 'destination_secrets' THEN
      act := 'set_destination_credentials';
      SELECT d.name INTO tgt FROM ves.destinations d WHERE d.id = (r ->> 'destination_id')::int;
      args := jsonb_strip_nulls(jsonb_build_object(
        'secret', CASE WHEN changed ? 'secret_box' THEN CASE WHEN n ->> 'secret_box' IS NULL THEN 'removed' ELSE 'set' END END,
        'secret_headers', CASE WHEN changed ? 'headers_box' THEN CASE WHEN n ->> 'headers_box' IS NULL THEN 'removed' ELSE 'set' END END));
      IF TG_OP = 'DELETE' THEN RETURN NULL; END IF;  -- dropped with its destination, recorded there
    WHEN 'sync_settings' THEN
      act := 'set_sync_settings';
      args := jsonb_build_object('before', o -> 'settings', 'after', n -> 'settings');
    WHEN 'conflict_policies' THEN
      act := CASE TG_OP WHEN 'DELETE' THEN 'drop_conflict_policy' ELSE 'set_conflict_policy' END;
      tgt := r ->> 'entity_type';
      args := jsonb_build_object('entity_type', r ->> 'entity_type', 'policy', n -> 'policy');
    WHEN 'conflicts' THEN
      act := 'resolve_conflict';
      tgt := r ->> 'conflict_id';
      args := jsonb_build_object('strategy', n -> 'strategy', 'rule', n -> 'rule',
                                 'entity_type', n -> 'entity_type', 'entity_id', n -> 'entity_id');
    WHEN 'agent_key_store' THEN
      act := CASE WHEN TG_OP = 'INSERT' AND (n ->> 'local')::boolean THEN 'create_agent_key'
                  WHEN TG_OP = 'INSERT' THEN 'register_agent_key'
                  WHEN n ->> 'status' = 'revoked' THEN 'revoke_agent_key'
                  WHEN n ->> 'status' = 'rotated' THEN 'rotate_agent_key'
                  ELSE 'change_agent_key' END;
      tgt := (r ->> 'agent_id') || '/' || (r ->> 'key_id');
      args := jsonb_build_object('agent_id', r -> 'agent_id', 'key_id', r -> 'key_id', 'status', r -> 'status');
    WHEN 'tenant_bindings' THEN
      act := CASE TG_OP WHEN 'DELETE' THEN 'unbind_role' ELSE 'bind_role' END;
      tgt := r ->> 'role';
    WHEN 'maintenance_log' THEN
      act := r ->> 'action';
      args := jsonb_build_object('detail', r -> 'detail');
    WHEN 'listings' THEN
      act := CASE TG_OP WHEN 'DELETE' THEN 'unmap_listing' ELSE 'map_listing' END;
      tgt := r ->> 'sku';
      args := jsonb_build_object('destination_id', r -> 'destination_id', 'location', r -> 'location',
                                 'platform_ref', r -> 'platform_ref');
    WHEN 'alert_rule_settings' THEN
      act := CASE TG_OP WHEN 'DELETE' THEN 'drop_alert_rule' ELSE 'set_alert_rule' END;
      tgt := r ->> 'name';
      args := changed - ARRAY['updated_at'] || jsonb_strip_nulls(jsonb_build_object('destination', r -> 'destination'));
    ELSE
      act := lower(TG_OP) || ' ' || TG_TABLE_NAME;
  END CASE;
  INSERT INTO ves.audit_log (action, target, tenant_id, arguments)
  VALUES (act, tgt, CASE WHEN TG_TABLE_NAME = 'destinations' THEN NULL ELSE (r ->> 'tenant_id')::uuid END,
          coalesce(args, '{}'));
  RETURN NULL;
END $$;

CREATE TRIGGER audit AFTER INSERT OR DELETE ON ves.destinations
  FOR EACH ROW EXECUTE FUNCTION ves._audit_change();
-- Not the worker's health updates: only configuration columns.
CREATE TRIGGER audit_update AFTER UPDATE ON ves.destinations FOR EACH ROW
  WHEN ((OLD.name, OLD.kind, OLD.url, OLD.tenant_id, OLD.entity_types, OLD.event_types, OLD.paused,
         OLD.concurrency, OLD.rate_limit, OLD.burst, OLD.timeout_ms, OLD.max_attempts, OLD.backoff_base_ms,
         OLD.backoff_cap_ms, OLD.jitter, OLD.breaker_threshold, OLD.breaker_cooldown_ms, OLD.headers,
         OLD.kind_options)
        IS DISTINCT FROM
        (NEW.name, NEW.kind, NEW.url, NEW.tenant_id, NEW.entity_types, NEW.event_types, NEW.paused,
         NEW.concurrency, NEW.rate_limit, NEW.burst, NEW.timeout_ms, NEW.max_attempts, NEW.backoff_base_ms,
         NEW.backoff_cap_ms, NEW.jitter, NEW.breaker_threshold, NEW.breaker_cooldown_ms, NEW.headers,
         NEW.kind_options))
  EXECUTE FUNCTION ves._audit_change();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON ves.destination_secrets
  FOR EACH ROW EXECUTE FUNCTION ves._audit_change();
CREATE TRIGGER audit AFTER UPDATE ON ves.sync_settings
  FOR EACH ROW WHEN (OLD.settings IS DISTINCT FROM NEW.settings) EXECUTE FUNCTION ves._audit_change();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON ves.conflict_policies
  FOR EACH ROW EXECUTE FUNCTION ves._audit_change();
CREATE TRIGGER audit AFTER UPDATE ON ves.conflicts
  FOR EACH ROW WHEN (OLD.status = 'open' AND NEW.status = 'resolved') EXECUTE FUNCTION ves._audit_change();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OF status ON ves.agent_key_store
  FOR EACH ROW EXECUTE FUNCTION ves._audit_change();
CREATE TRIGGER audit AFTER INSERT OR DELETE ON ves.tenant_bindings
  FOR EACH ROW EXECUTE FUNCTION ves._audit_change();
CREATE TRIGGER audit AFTER INSERT ON ves.maintenance_log
  FOR EACH ROW EXECUTE FUNCTION ves._audit_change();
-- Mappings, not the worker's record of what it pushed.
CREATE TRIGGER audit AFTER INSERT OR DELETE OR UPDATE OF platform_ref ON ves.listings
  FOR EACH ROW EXECUTE FUNCTION ves._audit_change();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON ves.alert_rule_settings
  FOR EACH ROW EXECUTE FUNCTION ves._audit_change();

REVOKE ALL ON FUNCTION ves._audit(text, text, uuid, jsonb), ves._audit_change() FROM PUBLIC;
REVOKE ALL ON ves.audit_log FROM PUBLIC;
GRANT SELECT ON ves.audit_log TO ves_admin;
