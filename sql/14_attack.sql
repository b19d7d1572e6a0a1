\set SHOW_CONTEXT never
-- Privilege escalation through search_path, tried the way an attacker would.
-- Roles holding ves_reader, ves_writer or ves_admin (and the default TEMP
-- privilege) plant shadowing functions, operators, a cast, temporary tables
-- and types, put them first on their search_path and call every function
-- they are granted. Code they planted reports (NOTICE "pwned") whenever it
-- runs as anyone but themselves; the expected output has no such line.
\set t '''00000000-0000-0000-0000-0000000a7a01'''
\set s '''00000000-0000-0000-0000-0000000a7a02'''

-- Every SECURITY DEFINER function pins its search_path.
SELECT p.oid::regprocedure AS unpinned_definer
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'ves' AND p.prosecdef
  AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false);
SELECT count(*) > 40 AS definer_functions_checked
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'ves' AND p.prosecdef;

-- Some data for the calls to find.
SELECT entity_version FROM ves.append(:t, :s, 'InventoryItem', 'SKU-1', 'inventory.adjusted', '{"delta": 1}');
SELECT outcome FROM ves.upsert(:t, :s, 'Product', 'P-1', '{"title": "x"}', NULL, 'manual');
SELECT (ves.create_destination('atk_dest', 'webhook', 'http://127.0.0.1:9/')).name;

CREATE ROLE regress_atk_reader IN ROLE ves_reader;
CREATE ROLE regress_atk_writer IN ROLE ves_writer;
CREATE ROLE regress_atk_admin IN ROLE ves_admin;
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_atk_reader, regress_atk_writer, regress_atk_admin', current_database()); END $$;

-- What each attacker plants, in its own schema and in pg_temp.
CREATE FUNCTION regress_plant() RETURNS void LANGUAGE plpgsql AS $plant$
DECLARE me text := current_user; sch text := 'atk_' || current_user;
BEGIN
  EXECUTE format('CREATE SCHEMA %I', sch);
  EXECUTE format($f$CREATE FUNCTION %I.pwn() RETURNS boolean LANGUAGE plpgsql AS $b$
    BEGIN
      IF current_user::text OPERATOR(pg_catalog.<>) %L THEN RAISE NOTICE 'pwned: code of %s ran as %%', current_user; END IF;
      RETURN true;
    END $b$$f$, sch, me, me);
  -- Built-in names the extension's SQL uses, shadowed for the types it passes.
  EXECUTE format('CREATE FUNCTION %I.now() RETURNS timestamptz LANGUAGE sql AS $b$ SELECT CASE WHEN %I.pwn() THEN pg_catalog.now() END $b$', sch, sch);
  EXECUTE format('CREATE FUNCTION %I.lower(text) RETURNS text LANGUAGE sql AS $b$ SELECT CASE WHEN %I.pwn() THEN pg_catalog.lower($1) END $b$', sch, sch);
  EXECUTE format('CREATE FUNCTION %I.length(bytea) RETURNS int LANGUAGE sql AS $b$ SELECT CASE WHEN %I.pwn() THEN pg_catalog.length($1) END $b$', sch, sch);
  EXECUTE format('CREATE FUNCTION %I.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql AS $b$ SELECT CASE WHEN %I.pwn() THEN pg_catalog.jsonb_typeof($1) END $b$', sch, sch);
  EXECUTE format('CREATE FUNCTION %I.jsonb_build_object(text, jsonb) RETURNS jsonb LANGUAGE sql AS $b$ SELECT CASE WHEN %I.pwn() THEN pg_catalog.jsonb_build_object($1, $2) END $b$', sch, sch);
  EXECUTE format('CREATE FUNCTION %I.uuid_eq(uuid, uuid) RETURNS boolean LANGUAGE sql AS $b$ SELECT %I.pwn() AND pg_catalog.uuid_eq($1, $2) $b$', sch, sch);
  EXECUTE format('CREATE FUNCTION %I.text_eq(text, text) RETURNS boolean LANGUAGE sql AS $b$ SELECT %I.pwn() AND pg_catalog.texteq($1, $2) $b$', sch, sch);
  EXECUTE format('CREATE FUNCTION %I.text_ne(text, text) RETURNS boolean LANGUAGE sql AS $b$ SELECT %I.pwn() AND pg_catalog.textne($1, $2) $b$', sch, sch);
  EXECUTE format('CREATE FUNCTION %I.int8_eq(bigint, bigint) RETURNS boolean LANGUAGE sql AS $b$ SELECT %I.pwn() AND pg_catalog.int8eq($1, $2) $b$', sch, sch);
  EXECUTE format('CREATE OPERATOR %I.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = %I.uuid_eq)', sch, sch);
  EXECUTE format('CREATE OPERATOR %I.= (LEFTARG = text, RIGHTARG = text, FUNCTION = %I.text_eq)', sch, sch);
  EXECUTE format('CREATE OPERATOR %I.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = %I.int8_eq)', sch, sch);
  EXECUTE format('CREATE OPERATOR %I.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = %I.text_ne)', sch, sch);
  -- A type of its own with an implicit cast from text.
  EXECUTE format('CREATE TYPE %I.sku AS (v text)', sch);
  EXECUTE format('CREATE FUNCTION %I.to_sku(text) RETURNS %I.sku LANGUAGE sql AS $b$ SELECT CASE WHEN %I.pwn() THEN ROW($1)::%I.sku END $b$', sch, sch, sch, sch);
  EXECUTE format('CREATE CAST (text AS %I.sku) WITH FUNCTION %I.to_sku(text) AS IMPLICIT', sch, sch);
  -- Temporary relations, types and functions named like pg_ves' own (the
  -- first attacker of this session creates them; the others reuse them).
  CREATE TEMP TABLE IF NOT EXISTS events (position bigint, tenant_id uuid, event_id uuid, payload jsonb);
  CREATE TEMP TABLE IF NOT EXISTS streams (tenant_id uuid, entity_type text, entity_id text, version bigint);
  CREATE TEMP TABLE IF NOT EXISTS outbox (id bigint, tenant_id uuid, status text);
  CREATE TEMP TABLE IF NOT EXISTS destinations (id int, name text, url text);
  CREATE TEMP TABLE IF NOT EXISTS event_ids (tenant_id uuid, event_id uuid, content_hash bytea);
  CREATE TEMP TABLE IF NOT EXISTS sync_settings (settings jsonb);
  BEGIN
    CREATE TYPE pg_temp.agent_key AS (agent_id uuid, key_id int, public_key bytea);
    CREATE TYPE pg_temp.append_result AS (a int);
    EXECUTE format('CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE sql AS $b$ SELECT CASE WHEN %I.pwn() THEN pg_catalog.now() END $b$', sch);
  EXCEPTION WHEN duplicate_object OR duplicate_function THEN NULL;
  END;
  EXECUTE format('SET search_path = %I, pg_catalog, pg_temp, public', sch);
END $plant$;
GRANT EXECUTE ON FUNCTION regress_plant() TO PUBLIC;

-- Calls every pg_ves function the current role may execute, with plausible
-- arguments, and returns how many it called; errors are expected and kept.
CREATE FUNCTION regress_call_everything(t uuid, s uuid) RETURNS int LANGUAGE plpgsql AS $call$
DECLARE f record; args text; n int := 0;
BEGIN
  FOR f IN
    SELECT p.oid, p.proname, p.proargtypes::oid[] AS types
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace ns ON ns.oid = p.pronamespace
    WHERE ns.nspname = 'ves' AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE')
      AND p.proname NOT IN ('debug_raise', 'stop_worker', 'start_worker', 'drop_destination')
    ORDER BY p.proname, p.oid
  LOOP
    SELECT pg_catalog.string_agg(CASE pg_catalog.format_type(ty, NULL)
             WHEN 'uuid' THEN pg_catalog.quote_literal(t) || '::uuid'
             WHEN 'text' THEN '''SKU-1'''
             WHEN 'jsonb' THEN '''{"title": "y", "delta": 1}''::jsonb'
             WHEN 'bigint' THEN '1::bigint'
             WHEN 'integer' THEN '1'
             WHEN 'timestamp with time zone' THEN 'pg_catalog.now()'
             WHEN 'boolean' THEN 'false'
             WHEN 'bytea' THEN '''\x00''::bytea'
             WHEN 'text[]' THEN '''{}''::text[]'
             WHEN 'bytea[]' THEN 'ARRAY[''\x00''::bytea]'
             WHEN 'bigint[]' THEN 'ARRAY[1]::bigint[]'
             WHEN 'interval' THEN '''1 day''::interval'
             WHEN 'regrole' THEN 'current_user::regrole'
             ELSE 'NULL::' || pg_catalog.format_type(ty, NULL) END, ', ' ORDER BY ord)
      INTO args
      FROM unnest(f.types) WITH ORDINALITY AS a(ty, ord);
    BEGIN
      EXECUTE pg_catalog.format('SELECT %s(%s)', f.oid::regproc, coalesce(args, ''));
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    n := n + 1;
  END LOOP;
  RETURN n;
END $call$;
GRANT EXECUTE ON FUNCTION regress_call_everything(uuid, uuid) TO PUBLIC;

-- Each attacker plants, then drives the main entry points by hand and
-- every granted function generically.
SET ROLE regress_atk_reader;
SELECT regress_plant();
SHOW search_path;
SELECT count(*) >= 0 AS read FROM ves.read_entity(:t, 'InventoryItem', 'SKU-1');
SELECT count(*) >= 0 AS read FROM ves.read_all(0, 100);
SELECT ves.verify_event((SELECT event_id FROM ves.read_entity(:t, 'InventoryItem', 'SKU-1') LIMIT 1));
SELECT count(*) AS failing FROM ves.verify_events(tenant_id => :t);
SELECT (ves.export_event((SELECT event_id FROM ves.read_entity(:t, 'InventoryItem', 'SKU-1') LIMIT 1)))->>'entity_id' AS exported;
SELECT count(*) > 0 AS keys FROM ves.agent_keys;
SELECT regress_call_everything(:t, :s) > 10 AS called;
RESET ROLE;
RESET search_path;

SET ROLE regress_atk_writer;
SELECT regress_plant();
SELECT entity_version > 1 AS appended FROM ves.append(:t, :s, 'InventoryItem', 'SKU-1', 'inventory.adjusted', '{"delta": 2}', idempotency_key => 'atk-1');
SELECT duplicate FROM ves.append(:t, :s, 'InventoryItem', 'SKU-1', 'inventory.adjusted', '{"delta": 2}', idempotency_key => 'atk-1');
SELECT count(*) AS batch FROM ves.append_batch(pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('tenant_id', :t, 'store_id', :s, 'entity_type', 'Order', 'entity_id', 'atk-o', 'event_type', 'order.created', 'payload', '{}'::jsonb)));
SELECT outcome FROM ves.upsert(:t, :s, 'Product', 'P-1', '{"title": "z"}', 1, 'manual');
SELECT (ves.adjust_stock(:t, :s, 'SKU-A', 5)).available;
SELECT (ves.reserve_stock(:t, :s, 'SKU-A', 2, 'res-atk')).available;
SELECT regress_call_everything(:t, :s) > 10 AS called;
RESET ROLE;
RESET search_path;

SET ROLE regress_atk_admin;
SELECT regress_plant();
SELECT count(*) >= 0 AS listed FROM ves.list_outbox_events();
SELECT ves.get_sync_settings() ? 'window' AS settings;
SELECT count(*) >= 0 AS pushed FROM ves.push_events('atk_dest', 1);
SELECT (ves.rotate_agent_key(:t, :s)).key_id > 1 AS rotated;
SELECT ves.ensure_partitions() IS NOT NULL AS partitions;
SELECT regress_call_everything(:t, :s) > 10 AS called;
RESET ROLE;
RESET search_path;

-- What the attackers planted never ran as anyone else (the NOTICEs above
-- would show it), and the extension still works for everyone.
SELECT count(*) = 0 AS all_verify FROM ves.verify_events(tenant_id => :t);
-- Nothing pg_ves runs wrote to the planted temporary tables either.
SELECT (SELECT count(*) FROM pg_temp.events) + (SELECT count(*) FROM pg_temp.streams)
     + (SELECT count(*) FROM pg_temp.outbox) + (SELECT count(*) FROM pg_temp.event_ids) AS planted_rows;
SELECT ves.drop_destination('atk_dest');
SET client_min_messages = warning;
DROP SCHEMA atk_regress_atk_reader, atk_regress_atk_writer, atk_regress_atk_admin CASCADE;
RESET client_min_messages;
DO $$ BEGIN EXECUTE format('REVOKE CREATE ON DATABASE %I FROM regress_atk_reader, regress_atk_writer, regress_atk_admin', current_database()); END $$;

-- Every view a pg_ves role may read that shows tenant data filters it by
-- the session's tenant (or runs as the invoker, under row-level security).
SELECT c.oid::regclass AS unfiltered_view
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'ves' AND c.relkind = 'v'
  AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
  AND (has_table_privilege('ves_reader', c.oid, 'SELECT') OR has_table_privilege('ves_admin', c.oid, 'SELECT'))
  AND pg_get_viewdef(c.oid) NOT LIKE '%tenant_visible(%'
  AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false);
