-- The C++/Postgres boundary: every way a C++ function can fail becomes a
-- clean ERROR, destructors run, and the backend keeps serving.
\set VERBOSITY default
SELECT ves.debug_raise('std');
SELECT ves.debug_raise('ves');
SELECT ves.debug_raise('unknown');
-- A Postgres error raised while C++ objects are alive keeps its SQLSTATE.
\set VERBOSITY verbose
SELECT ves.debug_raise('postgres');
\set VERBOSITY default
SELECT ves.debug_raise(NULL);
-- Every C++ object created by the failed calls was destroyed.
SELECT ves.debug_live_objects() AS live_objects;
SELECT ves.debug_raise('none') AS live_during_call;
-- The same backend goes on serving, inside and outside transactions.
SELECT 1 AS still_serving;
BEGIN;
SAVEPOINT s;
SELECT ves.debug_raise('std');
ROLLBACK TO s;
SELECT 2 AS after_savepoint;
COMMIT;

-- Used by the other suites: runs a statement that must fail and shows its
-- SQLSTATE, message and hint (the parts a caller relies on).
CREATE FUNCTION regress_try(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; msg text; hint text;
BEGIN
  EXECUTE statement;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN state || ': ' || msg || CASE WHEN hint <> '' THEN E'\n  hint: ' || hint ELSE '' END;
END $$;

-- The same for a batch: SQLSTATE and message, and the event its context
-- line names ("event 3 of 7 in the batch", or "event 3 of the batch" while
-- a text batch is read).
CREATE FUNCTION regress_try_event(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; msg text; ctx text;
BEGIN
  EXECUTE statement;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, ctx = PG_EXCEPTION_CONTEXT;
  RETURN state || ': ' || msg || coalesce(' (' || substring(ctx from 'event \d+ of (?:\d+ in )?the batch') || ')', '');
END $$;
