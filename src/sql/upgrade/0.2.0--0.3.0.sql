-- pg_ves 0.2.0 -> 0.3.0. Built into pg_ves--0.2.0--0.3.0.sql by build.awk;
-- test/t/031_upgrade.pl checks that a database upgraded through it (and
-- through 0.1.0 -> 0.2.0 -> 0.3.0) has exactly the schema of a fresh 0.3.0
-- install.
\echo Use "ALTER EXTENSION pg_ves UPDATE" to load this file. \quit
