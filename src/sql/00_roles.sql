-- pg_ves install script. Built by concatenating src/sql/*.sql in name order.
\echo Use "CREATE EXTENSION pg_ves" to load this file. \quit

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
  -- The rights of the sync worker (ves.worker_role): grant it to a LOGIN role.
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ves_worker') THEN
    CREATE ROLE ves_worker NOLOGIN;
  END IF;
END
$roles$;
GRANT ves_reader TO ves_writer;
GRANT ves_writer TO ves_admin;

GRANT USAGE ON SCHEMA ves TO ves_reader;
GRANT USAGE ON SCHEMA ves TO ves_worker;
