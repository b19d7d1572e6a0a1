-- pg_ves 0.1.0 -> 0.2.0. Built into pg_ves--0.1.0--0.2.0.sql by build.awk;
-- test/t/031_upgrade.pl checks that a database upgraded through it has
-- exactly the schema of a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION pg_ves UPDATE" to load this file. \quit

CREATE FUNCTION ves._require_preload() RETURNS void
  AS 'MODULE_PATHNAME', 'ves_require_preload' LANGUAGE C VOLATILE;
SELECT ves._require_preload();

-- Definer functions written in C pin their search_path.
ALTER FUNCTION ves.create_agent_key(uuid, uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ves.rotate_agent_key(uuid, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ves.append(uuid, uuid, text, text, text, jsonb, bigint, text, jsonb, text, uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ves.append_batch(jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ves.read_fence() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ves._read_fence_holders() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ves.signing_hash(uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ves.verify_event(uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ves.export_event(uuid) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ves.ingest_event(jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION ves.push_events(text, int) SET search_path = pg_catalog, pg_temp;

-- Views over tenant data filter by the session's tenant.
CREATE OR REPLACE VIEW ves.agent_keys AS
SELECT tenant_id, agent_id, key_id, public_key, status, created_at, revoked_at, local
FROM ves.agent_key_store
WHERE ves.tenant_visible(tenant_id);
CREATE OR REPLACE VIEW ves.subscription_status AS
SELECT m.tenant_id, m.subscription, m.member, m.checkpoint,
       m.replay_to IS NOT NULL AS replaying, m.replay_checkpoint, m.replay_to, m.updated_at
FROM ves.subscription_members m
WHERE ves.tenant_visible(m.tenant_id);

-- Event ids are unique across tenants. A database where two tenants already
-- share an id cannot be upgraded until one of them is renamed.
DO $ids$
DECLARE shared bigint;
BEGIN
  SELECT count(*) INTO shared FROM (SELECT event_id FROM ves.event_ids GROUP BY event_id HAVING count(*) > 1) x;
  IF shared > 0 THEN
    RAISE EXCEPTION '% event ids are used by more than one tenant', shared USING ERRCODE = 'VE003',
      HINT = 'List them with SELECT event_id FROM ves.event_ids GROUP BY 1 HAVING count(*) > 1, and re-append one tenant''s events under new ids before upgrading.';
  END IF;
END
$ids$;
ALTER TABLE ves.event_ids DROP CONSTRAINT event_ids_pkey, ADD PRIMARY KEY (event_id);
-- Month partitions look events up by id alone.
CREATE OR REPLACE FUNCTION ves.ensure_partitions(at timestamptz DEFAULT now(), lock_wait interval DEFAULT NULL)
  RETURNS timestamptz
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cfg ves.partition_config;
  month_start timestamptz;
  month_name text;
  part text;
  ddl text[];
  i int;
  b int;
BEGIN
  SELECT * INTO cfg FROM ves.partition_config;
  FOR i IN 0 .. cfg.months_ahead LOOP
    -- Month arithmetic in UTC: on timestamptz it would follow the session's time zone.
    month_start := (date_trunc('month', at AT TIME ZONE 'UTC') + make_interval(months => i)) AT TIME ZONE 'UTC';
    month_name := 'events_' || to_char(month_start AT TIME ZONE 'UTC', '"y"YYYY"m"MM');
    CONTINUE WHEN to_regclass('ves.' || month_name) IS NOT NULL;
    -- Creation is rare; serialise it so concurrent callers do not race. A
    -- table lock (unlike an advisory lock) also refreshes the catalog view,
    -- so the re-check below sees a partition another session just created.
    IF NOT ves._partition_ddl(ARRAY['LOCK TABLE ves.partition_config IN SHARE ROW EXCLUSIVE MODE'], lock_wait) THEN
      RETURN month_start;
    END IF;
    CONTINUE WHEN to_regclass('ves.' || month_name) IS NOT NULL;
    ddl := ARRAY[format('CREATE TABLE ves.%I PARTITION OF ves.events FOR VALUES FROM (%L) TO (%L) PARTITION BY HASH (tenant_id)',
                        month_name, month_start,
                        (date_trunc('month', at AT TIME ZONE 'UTC') + make_interval(months => i + 1)) AT TIME ZONE 'UTC')];
    FOR b IN 0 .. cfg.tenant_buckets - 1 LOOP
      part := month_name || '_t' || b;
      ddl := ddl || ARRAY[
        format('CREATE TABLE ves.%I PARTITION OF ves.%I FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
               part, month_name, cfg.tenant_buckets, b),
        format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON ves.%I FOR EACH STATEMENT EXECUTE FUNCTION ves.refuse_mutation()', part),
        format('ALTER TABLE ves.%I ADD PRIMARY KEY (position, tenant_id)', part),
        format('CREATE INDEX ON ves.%I (tenant_id, entity_type, entity_id, entity_version)', part),
        format('CREATE INDEX ON ves.%I (event_id)', part)];
    END LOOP;
    ddl := ddl || ARRAY[
      format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON ves.%I FOR EACH STATEMENT EXECUTE FUNCTION ves.refuse_mutation()', month_name),
      format('GRANT SELECT ON ves.%I TO ves_reader', month_name)];
    IF NOT ves._partition_ddl(ddl, lock_wait) THEN
      RETURN month_start;
    END IF;
  END LOOP;
  RETURN (date_trunc('month', at AT TIME ZONE 'UTC') + make_interval(months => cfg.months_ahead + 1)) AT TIME ZONE 'UTC';
END $$;
DO $idx$
DECLARE r record;
BEGIN
  FOR r IN
    SELECT i.indrelid::regclass AS part, i.indexrelid::regclass AS idx
    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
    WHERE c.relnamespace = 'ves'::regnamespace AND c.relispartition
      AND pg_catalog.pg_get_indexdef(i.indexrelid) LIKE '%USING btree (tenant_id, event_id)'
  LOOP
    EXECUTE pg_catalog.format('CREATE INDEX ON %s (event_id)', r.part);
    EXECUTE pg_catalog.format('DROP INDEX %s', r.idx);
  END LOOP;
END
$idx$;

-- verify_events reports holes in version streams, with a detail column.
DROP FUNCTION ves.verify_events(uuid, uuid, text, text, bigint, bigint);
CREATE FUNCTION ves.verify_events(
  tenant_id     uuid   DEFAULT NULL,
  store_id      uuid   DEFAULT NULL,
  entity_type   text   DEFAULT NULL,
  entity_id     text   DEFAULT NULL,
  from_position bigint DEFAULT NULL,
  to_position   bigint DEFAULT NULL
) RETURNS TABLE (event_position bigint, event_id uuid, reason text, detail text)
  AS 'MODULE_PATHNAME', 'ves_verify_events' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
GRANT EXECUTE ON FUNCTION ves.verify_events(uuid, uuid, text, text, bigint, bigint) TO ves_reader;

-- Roles bound to tenants.
-- Tenancy bound to roles. A role bound to tenants (or any role that is a
-- member of it) acts only for those tenants, whatever it sets or resets
-- ves.tenant_id to; row-level security and every function key on it.
-- Unbound roles keep choosing their tenant with ves.tenant_id.

CREATE TABLE ves.tenant_bindings (
  role      regrole     NOT NULL,
  tenant_id uuid        NOT NULL,
  bound_at  timestamptz NOT NULL DEFAULT now(),
  bound_by  name        NOT NULL DEFAULT session_user,
  PRIMARY KEY (role, tenant_id)
);
SELECT pg_catalog.pg_extension_config_dump('ves.tenant_bindings', '');

CREATE FUNCTION ves._session_bound() RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_session_bound' LANGUAGE C STABLE;
CREATE FUNCTION ves._bindings_changed() RETURNS void
  AS 'MODULE_PATHNAME', 'ves_bindings_changed' LANGUAGE C VOLATILE;

CREATE VIEW ves.role_bindings AS
SELECT b.role::text AS role_name, b.role, b.tenant_id, b.bound_at, b.bound_by
FROM ves.tenant_bindings b
WHERE ves.tenant_visible(b.tenant_id);

CREATE FUNCTION ves._check_binding_args(role regrole, tenant_id uuid, need_tenant boolean) RETURNS void
  LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF role IS NULL OR (need_tenant AND tenant_id IS NULL) THEN
    RAISE EXCEPTION 'role and tenant_id must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Name the role and the tenant, e.g. ves.bind_role(''shop_a_app'', ''<tenant uuid>'').';
  END IF;
  IF ves._session_bound() THEN
    RAISE EXCEPTION 'a role bound to tenants cannot change tenant bindings' USING ERRCODE = 'VE007',
      HINT = 'Bind and unbind roles as an administrator that is not bound to a tenant.';
  END IF;
END $$;

-- Binds a role to a tenant: its sessions (and those of its members) act for
-- its bound tenants only. A role may be bound to several tenants.
CREATE FUNCTION ves.bind_role(role regrole, tenant_id uuid) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM ves._check_binding_args(role, tenant_id, true);
  IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = role) THEN
    RAISE EXCEPTION 'role % is a superuser and sees every tenant', role USING ERRCODE = 'VE010',
      HINT = 'Bind a role without SUPERUSER; superusers bypass row-level security.';
  END IF;
  INSERT INTO ves.tenant_bindings AS b (role, tenant_id) VALUES (role, tenant_id)
  ON CONFLICT ON CONSTRAINT tenant_bindings_pkey DO NOTHING;
  IF FOUND THEN
    INSERT INTO ves.maintenance_log (action, detail)
    VALUES ('bind_role', pg_catalog.format('%s -> tenant %s', role, tenant_id));
  END IF;
  PERFORM ves._bindings_changed();
END $$;

-- Removes one binding, or every binding of the role when tenant_id is NULL.
-- A role left with no binding is unbound again. Returns how many went.
CREATE FUNCTION ves.unbind_role(role regrole, tenant_id uuid DEFAULT NULL) RETURNS int
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE n int;
BEGIN
  PERFORM ves._check_binding_args(role, tenant_id, false);
  DELETE FROM ves.tenant_bindings b
  WHERE b.role OPERATOR(pg_catalog.=) unbind_role.role
    AND (unbind_role.tenant_id IS NULL OR b.tenant_id OPERATOR(pg_catalog.=) unbind_role.tenant_id);
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN
    RAISE EXCEPTION 'role % has no such tenant binding', role USING ERRCODE = 'VE012',
      HINT = 'List bindings with SELECT * FROM ves.role_bindings.';
  END IF;
  INSERT INTO ves.maintenance_log (action, detail)
  VALUES ('unbind_role', pg_catalog.format('%s -x tenant %s', role, coalesce(tenant_id::text, 'all')));
  PERFORM ves._bindings_changed();
  RETURN n;
END $$;
GRANT EXECUTE ON FUNCTION ves.bind_role(regrole, uuid), ves.unbind_role(regrole, uuid) TO ves_admin;
GRANT SELECT ON ves.role_bindings TO ves_admin;
ALTER TABLE ves.tenant_bindings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ves.tenant_bindings FOR SELECT USING (ves.tenant_visible(tenant_id));

-- Destinations: URLs, headers, secrets and timeouts are checked when written
-- by the validators the worker sends with, and credentials are sealed under
-- the server key. Secrets stored in plain text by 0.1.0 are sealed here.
DROP FUNCTION ves._check_secret(text, text);
CREATE FUNCTION ves._destination_check(kind text, url text, options jsonb,
                                       OUT headers jsonb, OUT secret_box bytea, OUT headers_box bytea)
  AS 'MODULE_PATHNAME', 'ves_destination_check' LANGUAGE C VOLATILE;
CREATE FUNCTION ves._store_destination_secrets(dest int, options jsonb, sealed_secret bytea, sealed_headers bytea)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT (options ? 'secret' OR options ? 'headers') THEN RETURN; END IF;
  INSERT INTO ves.destination_secrets AS s (destination_id, secret_box, headers_box)
  VALUES (dest, sealed_secret, sealed_headers)
  ON CONFLICT (destination_id) DO UPDATE
    SET secret_box = CASE WHEN options ? 'secret' THEN excluded.secret_box ELSE s.secret_box END,
        headers_box = CASE WHEN options ? 'headers' THEN excluded.headers_box ELSE s.headers_box END;
  DELETE FROM ves.destination_secrets s
  WHERE s.destination_id = dest AND s.secret_box IS NULL AND s.headers_box IS NULL;
END $$;
CREATE OR REPLACE FUNCTION ves._destination_options(d ves.destinations, options jsonb) RETURNS ves.destinations
  LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  known text[] := ARRAY['secret', 'tenant_id', 'entity_types', 'event_types', 'concurrency', 'rate_limit',
                        'burst', 'timeout_ms', 'max_attempts', 'backoff_base_ms', 'backoff_cap_ms', 'jitter',
                        'breaker_threshold', 'breaker_cooldown_ms', 'headers'];
  k text;
BEGIN
  IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'VE010',
      HINT = 'Pass options such as ''{"secret": "whsec_...", "rate_limit": 50}''.';
  END IF;
  FOR k IN SELECT jsonb_object_keys(options) LOOP
    IF NOT k = ANY (known) THEN
      RAISE EXCEPTION 'unknown destination option "%"', k USING ERRCODE = 'VE010',
        HINT = 'Known options: ' || array_to_string(known, ', ') || '.';
    END IF;
  END LOOP;
  BEGIN
    d.tenant_id := CASE WHEN options ? 'tenant_id' THEN (options->>'tenant_id')::uuid ELSE d.tenant_id END;
    d.entity_types := CASE WHEN options ? 'entity_types' THEN
      (SELECT array_agg(x) FROM jsonb_array_elements_text(nullif(options->'entity_types', 'null')) x) ELSE d.entity_types END;
    d.event_types := CASE WHEN options ? 'event_types' THEN
      (SELECT array_agg(x) FROM jsonb_array_elements_text(nullif(options->'event_types', 'null')) x) ELSE d.event_types END;
    d.concurrency := coalesce((options->>'concurrency')::int, d.concurrency);
    d.rate_limit := coalesce((options->>'rate_limit')::float8, d.rate_limit);
    d.burst := coalesce((options->>'burst')::int, d.burst);
    d.timeout_ms := coalesce((options->>'timeout_ms')::int, d.timeout_ms);
    d.max_attempts := coalesce((options->>'max_attempts')::int, d.max_attempts);
    d.backoff_base_ms := coalesce((options->>'backoff_base_ms')::int, d.backoff_base_ms);
    d.backoff_cap_ms := coalesce((options->>'backoff_cap_ms')::int, d.backoff_cap_ms);
    d.jitter := coalesce((options->>'jitter')::float8, d.jitter);
    d.breaker_threshold := coalesce((options->>'breaker_threshold')::int, d.breaker_threshold);
    d.breaker_cooldown_ms := coalesce((options->>'breaker_cooldown_ms')::int, d.breaker_cooldown_ms);
    IF d.concurrency NOT BETWEEN 1 AND 1024 THEN RAISE invalid_parameter_value USING MESSAGE = 'concurrency must be between 1 and 1024'; END IF;
    IF d.rate_limit < 0 THEN RAISE invalid_parameter_value USING MESSAGE = 'rate_limit must be 0 (none) or more'; END IF;
    IF d.burst < 1 THEN RAISE invalid_parameter_value USING MESSAGE = 'burst must be 1 or more'; END IF;
    IF d.timeout_ms NOT BETWEEN 100 AND 600000 THEN RAISE invalid_parameter_value USING MESSAGE = 'timeout_ms must be between 100 and ves.max_timeout_ms'; END IF;
    IF d.max_attempts NOT BETWEEN 1 AND 1000 THEN RAISE invalid_parameter_value USING MESSAGE = 'max_attempts must be between 1 and 1000'; END IF;
    IF d.backoff_base_ms < 1 OR d.backoff_cap_ms < 1 THEN RAISE invalid_parameter_value USING MESSAGE = 'backoff_base_ms and backoff_cap_ms must be 1 or more'; END IF;
    IF d.jitter NOT BETWEEN 0 AND 1 THEN RAISE invalid_parameter_value USING MESSAGE = 'jitter must be between 0 and 1'; END IF;
    IF d.breaker_threshold < 0 OR d.breaker_cooldown_ms < 1 THEN RAISE invalid_parameter_value USING MESSAGE = 'breaker_threshold must be 0 (off) or more and breaker_cooldown_ms 1 or more'; END IF;
  EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range OR invalid_parameter_value
                 OR datatype_mismatch THEN
    RAISE EXCEPTION 'invalid destination option: %', SQLERRM USING ERRCODE = 'VE010',
      HINT = 'tenant_id is a UUID, entity_types and event_types are arrays of strings, limits are numbers in range.';
  END;
  RETURN d;
END $$;
CREATE OR REPLACE FUNCTION ves.create_destination(name text, kind text, url text, options jsonb DEFAULT '{}')
  RETURNS ves.destinations
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations;
  c record;
BEGIN
  IF name IS NULL OR kind IS NULL OR url IS NULL THEN
    RAISE EXCEPTION 'name, kind and url must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'ves.create_destination(''shop-webhook'', ''webhook'', ''https://example.com/hook'', ''{}'')';
  END IF;
  IF kind NOT IN ('webhook', 'http') THEN
    RAISE EXCEPTION 'unknown destination kind "%"', kind USING ERRCODE = 'VE010',
      HINT = 'Kinds: webhook (Standard Webhooks), http (plain JSON POST).';
  END IF;
  IF length(name) NOT BETWEEN 1 AND 128 THEN
    RAISE EXCEPTION 'destination name must be 1 to 128 characters' USING ERRCODE = 'VE006',
      HINT = 'Use a short, stable name.';
  END IF;
  IF options IS NULL THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'VE010',
      HINT = 'Pass options such as ''{"secret": "whsec_...", "rate_limit": 50}''.';
  END IF;
  c := ves._destination_check(kind, url, options);
  d.name := name; d.kind := kind; d.url := url;
  d.concurrency := 16; d.rate_limit := 0; d.burst := 10; d.timeout_ms := 10000; d.max_attempts := 10;
  d.backoff_base_ms := 500; d.backoff_cap_ms := 300000; d.jitter := 0.2; d.breaker_threshold := 5;
  d.breaker_cooldown_ms := 30000; d.headers := '{}';
  d := ves._destination_options(d, options);
  d.headers := coalesce(c.headers, d.headers);
  IF EXISTS (SELECT FROM ves.destinations x WHERE x.name = create_destination.name) THEN
    RAISE EXCEPTION 'destination "%" already exists', name USING ERRCODE = 'VE013',
      HINT = 'Use ves.alter_destination to change it.';
  END IF;
  INSERT INTO ves.destinations (name, kind, url, tenant_id, entity_types, event_types, concurrency, rate_limit,
                                burst, timeout_ms, max_attempts, backoff_base_ms, backoff_cap_ms, jitter,
                                breaker_threshold, breaker_cooldown_ms, headers)
  VALUES (d.name, d.kind, d.url, d.tenant_id, d.entity_types, d.event_types, d.concurrency, d.rate_limit,
          d.burst, d.timeout_ms, d.max_attempts, d.backoff_base_ms, d.backoff_cap_ms, d.jitter,
          d.breaker_threshold, d.breaker_cooldown_ms, d.headers)
  RETURNING * INTO d;
  PERFORM ves._store_destination_secrets(d.id, options, c.secret_box, c.headers_box);
  PERFORM ves._destinations_changed();
  RETURN d;
END $$;
CREATE OR REPLACE FUNCTION ves.alter_destination(name text, options jsonb DEFAULT '{}', url text DEFAULT NULL)
  RETURNS ves.destinations
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations := ves._destination(name, true);
  c record;
BEGIN
  IF options IS NULL THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'VE010',
      HINT = 'Pass ''{}'' to change only the url.';
  END IF;
  c := ves._destination_check(d.kind, url, options);
  d := ves._destination_options(d, options);
  d.headers := coalesce(c.headers, d.headers);
  UPDATE ves.destinations x SET url = coalesce(alter_destination.url, x.url), tenant_id = d.tenant_id,
    entity_types = d.entity_types, event_types = d.event_types, concurrency = d.concurrency,
    rate_limit = d.rate_limit, burst = d.burst, timeout_ms = d.timeout_ms, max_attempts = d.max_attempts,
    backoff_base_ms = d.backoff_base_ms, backoff_cap_ms = d.backoff_cap_ms, jitter = d.jitter,
    breaker_threshold = d.breaker_threshold, breaker_cooldown_ms = d.breaker_cooldown_ms,
    headers = d.headers, updated_at = now()
  WHERE x.id = d.id RETURNING * INTO d;
  PERFORM ves._store_destination_secrets(d.id, options, c.secret_box, c.headers_box);
  PERFORM ves._destinations_changed();
  RETURN d;
END $$;
CREATE OR REPLACE FUNCTION ves.set_sync_settings(settings jsonb) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  merged jsonb;
  k text;
  limits jsonb := '{"window": [1, 4096], "claim_batch": [1, 10000], "lease_seconds": [5, 86400],
                    "safety_poll_ms": [100, 600000], "purge_batch": [100, 100000]}';
  iv interval;
BEGIN
  IF settings IS NULL OR jsonb_typeof(settings) <> 'object' THEN
    RAISE EXCEPTION 'settings must be a JSON object' USING ERRCODE = 'VE010',
      HINT = 'For example ''{"window": 128}''.';
  END IF;
  FOR k IN SELECT jsonb_object_keys(settings) LOOP
    IF k IN ('synced_retention', 'order_hold') THEN
      -- A JSON string holding a positive interval of at most ten years.
      BEGIN
        iv := CASE WHEN jsonb_typeof(settings->k) = 'string' THEN (settings->>k)::interval END;
      EXCEPTION WHEN OTHERS THEN
        iv := NULL;
      END;
      IF iv IS NULL OR iv < interval '1 second' OR iv > interval '10 years' THEN
        RAISE EXCEPTION 'sync setting "%" must be an interval between 1 second and 10 years, given as a JSON string', k
          USING ERRCODE = 'VE010', HINT = format('For example {"%s": "1 day"}.', k);
      END IF;
    ELSIF limits ? k THEN
      IF jsonb_typeof(settings->k) <> 'number' OR (settings->>k)::numeric <> floor((settings->>k)::numeric)
         OR (settings->>k)::numeric NOT BETWEEN (limits->k->>0)::numeric AND (limits->k->>1)::numeric THEN
        RAISE EXCEPTION 'sync setting "%" must be a whole number between % and %', k, limits->k->>0, limits->k->>1
          USING ERRCODE = 'VE010',
          HINT = format('Give %s as a JSON number from %s to %s, e.g. {"%s": %s}.', k, limits->k->>0, limits->k->>1,
                        k, limits->k->>0);
      END IF;
    ELSE
      RAISE EXCEPTION 'unknown sync setting "%"', k USING ERRCODE = 'VE010',
        HINT = 'Settings: window, claim_batch, lease_seconds, safety_poll_ms, synced_retention, purge_batch, order_hold.';
    END IF;
  END LOOP;
  UPDATE ves.sync_settings s SET settings = s.settings || set_sync_settings.settings RETURNING s.settings INTO merged;
  PERFORM ves._destinations_changed();
  RETURN merged;
END $$;
ALTER TABLE ves.destinations DROP CONSTRAINT destinations_url_check,
  ADD CONSTRAINT destinations_url_check CHECK (url ~* '^https?://');
ALTER TABLE ves.destination_secrets ADD COLUMN secret_box bytea, ADD COLUMN headers_box bytea;
UPDATE ves.destination_secrets s
SET secret_box = (ves._destination_check(d.kind, NULL, pg_catalog.jsonb_build_object('secret', s.secret))).secret_box
FROM ves.destinations d WHERE d.id = s.destination_id;
ALTER TABLE ves.destination_secrets DROP COLUMN secret;

-- Leases belong to a worker's lease identity (epoch and generation), not to
-- a PID, so a new worker takes a dead one's rows over at once; claim
-- candidates come per destination from an index the per-entity check cannot
-- use, whatever the statistics say.
ALTER TABLE ves.outbox ALTER COLUMN leased_by TYPE bigint;
DROP INDEX ves.outbox_open_idx;
CREATE INDEX outbox_open_idx ON ves.outbox (destination_id, event_position)
  WHERE status IN ('pending', 'failed') AND next_attempt_at IS NOT NULL;

-- The sync worker may run as a non-superuser role holding ves_worker
-- (ves.worker_role); its credentials come through a definer function.
CREATE FUNCTION ves._worker_secrets() RETURNS TABLE (destination_id int, secret_box bytea, headers_box bytea)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT s.destination_id, s.secret_box, s.headers_box FROM ves.destination_secrets s
$$;
-- The rights of the sync worker when ves.worker_role names a role: grant
-- ves_worker to a LOGIN role (README "The worker's role and lifecycle").
-- Kept in one file that the upgrade scripts include as well.
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ves_worker') THEN
    CREATE ROLE ves_worker NOLOGIN;
  END IF;
END
$roles$;
GRANT USAGE ON SCHEMA ves TO ves_worker;

-- ves_worker: exactly what the sync worker does when ves.worker_role names
-- a role holding it. It reads the settings, the destinations and the events,
-- claims and records outbox rows, records the destinations' health; its
-- partition DDL, purges and expiries and its reading of the credentials go
-- through definer functions that pin their search_path.
-- (A worker statement that writes another column needs it added here.)
GRANT SELECT ON ves.sync_settings, ves.events, ves.destinations, ves.outbox TO ves_worker;
GRANT UPDATE (status, attempts, next_attempt_at, lease_until, leased_by, last_status, last_error, last_response,
              updated_at, synced_at) ON ves.outbox TO ves_worker;
GRANT UPDATE (breaker_state, last_success_at, last_error, last_error_at, paused, paused_reason)
  ON ves.destinations TO ves_worker;
GRANT EXECUTE ON FUNCTION
  ves.tenant_visible(uuid),
  ves._worker_secrets(),
  ves.ensure_partitions(timestamptz, interval),
  ves.ensure_idempotency_partitions(timestamptz, int, interval),
  ves.expire_idempotency_records(timestamptz, interval),
  ves.expire_held_order_events(timestamptz),
  ves.purge_outbox(int)
TO ves_worker;

-- The worker serves every tenant: it reads all events and claims and records
-- every outbox row, whatever ves.tenant_id its role might set.
CREATE POLICY sync_worker ON ves.outbox FOR ALL TO ves_worker USING (true) WITH CHECK (true);
CREATE POLICY sync_worker ON ves.events FOR SELECT TO ves_worker USING (true);

-- Nothing new is granted to PUBLIC. Tables are named one by one: a REVOKE on
-- every table would also give the month partitions explicit privileges, which
-- a fresh install's partitions do not have.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ves FROM PUBLIC;
REVOKE ALL ON ves.tenant_bindings, ves.role_bindings FROM PUBLIC;
