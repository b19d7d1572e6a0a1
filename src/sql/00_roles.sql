-- pg_ves install script. Built by concatenating src/sql/*.sql in name order.
\echo Use "CREATE EXTENSION pg_ves" to load this file. \quit

-- pg_ves keeps the read fence, key epochs and its workers in shared memory,
-- which exists only when the server preloads it: refuse to install otherwise.
CREATE FUNCTION ves._require_preload() RETURNS void
  AS 'MODULE_PATHNAME', 'ves_require_preload' LANGUAGE C VOLATILE;
SELECT ves._require_preload();

-- The session's tenant scope (src/pg/base/tenant.cpp, README "Tenancy"), used by
-- every function, view and row-level security policy over tenant data.
CREATE FUNCTION ves.current_tenant() RETURNS uuid
  AS 'MODULE_PATHNAME', 'ves_current_tenant' LANGUAGE C STABLE;
CREATE FUNCTION ves.check_tenant(tenant_id uuid) RETURNS void
  AS 'MODULE_PATHNAME', 'ves_check_tenant' LANGUAGE C STABLE;
CREATE FUNCTION ves.tenant_visible(tenant_id uuid) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_tenant_visible' LANGUAGE C STABLE LEAKPROOF;

-- Roles are cluster-wide and outlive the extension; create them once.
-- ves_admin ⊃ ves_writer ⊃ ves_reader.
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ves_reader') THEN
    CREATE ROLE ves_reader NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ves_writer') THEN
    CREATE ROLE ves_writer NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ves_admin') THEN
    CREATE ROLE ves_admin NOLOGIN;
  END IF;
END
$roles$;
GRANT ves_reader TO ves_writer;
GRANT ves_writer TO ves_admin;

GRANT USAGE ON SCHEMA ves TO ves_reader;
