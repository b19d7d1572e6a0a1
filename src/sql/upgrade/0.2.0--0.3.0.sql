-- pg_ves 0.2.0 -> 0.3.0. Built into pg_ves--0.2.0--0.3.0.sql by build.awk;
-- test/t/031_upgrade.pl checks that a database upgraded through it (and
-- through 0.1.0 -> 0.2.0 -> 0.3.0) has exactly the schema of a fresh 0.3.0
-- install.
\echo Use "ALTER EXTENSION pg_ves UPDATE" to load this file. \quit

-- Destination kinds come from the adapter registry (src/core/platforms/):
-- the CHECK on ves.destinations.kind and ves.create_destination ask C.
-- @create function ves.destination_kinds
-- @create function ves._destination_kind_known
ALTER TABLE ves.destinations DROP CONSTRAINT destinations_kind_check,
  ADD CONSTRAINT destinations_kind_check CHECK (ves._destination_kind_known(kind));
-- @replace function ves.create_destination
REVOKE ALL ON FUNCTION ves.destination_kinds(), ves._destination_kind_known(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves.destination_kinds() TO ves_admin;
GRANT EXECUTE ON FUNCTION ves._destination_kind_known(text) TO ves_worker;
