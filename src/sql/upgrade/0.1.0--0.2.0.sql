-- pg_ves 0.1.0 -> 0.2.0. Built into pg_ves--0.1.0--0.2.0.sql by build.awk;
-- test/t/031_upgrade.pl checks that a database upgraded through it has
-- exactly the schema of a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION pg_ves UPDATE" to load this file. \quit

-- @create function ves._require_preload
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
-- @replace view ves.agent_keys
-- @replace view ves.subscription_status

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
-- @replace function ves.ensure_partitions
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
-- @create function ves.verify_events
GRANT EXECUTE ON FUNCTION ves.verify_events(uuid, uuid, text, text, bigint, bigint) TO ves_reader;

-- Roles bound to tenants.
-- @include src/sql/88_tenancy.sql
GRANT EXECUTE ON FUNCTION ves.bind_role(regrole, uuid), ves.unbind_role(regrole, uuid) TO ves_admin;
GRANT SELECT ON ves.role_bindings TO ves_admin;
ALTER TABLE ves.tenant_bindings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ves.tenant_bindings FOR SELECT USING (ves.tenant_visible(tenant_id));

-- Destinations: URLs, headers, secrets and timeouts are checked when written
-- by the validators the worker sends with, and credentials are sealed under
-- the server key. Secrets stored in plain text by 0.1.0 are sealed here.
DROP FUNCTION ves._check_secret(text, text);
-- @create function ves._destination_check
-- @create function ves._store_destination_secrets
-- @replace function ves._destination_options
-- @replace function ves.create_destination
-- @replace function ves.alter_destination
-- @replace function ves.set_sync_settings
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
-- @create function ves._worker_secrets
-- @include src/sql/92_worker.sql

-- Nothing new is granted to PUBLIC. Tables are named one by one: a REVOKE on
-- every table would also give the month partitions explicit privileges, which
-- a fresh install's partitions do not have.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ves FROM PUBLIC;
REVOKE ALL ON ves.tenant_bindings, ves.role_bindings FROM PUBLIC;
