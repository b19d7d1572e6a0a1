-- One line per object of schema ves as a fresh install or an upgrade leaves
-- it, for test/t/031_upgrade.pl to compare. Column positions count for views
-- and composite types (SELECT * and row types see them), not for tables,
-- where an upgrade can only add columns at the end.
SELECT line FROM (
  SELECT 'function ' || p.oid::regprocedure || ' -> ' || pg_get_function_result(p.oid)
         || ' lang=' || l.lanname || ' vol=' || p.provolatile::text || ' definer=' || p.prosecdef
         || ' strict=' || p.proisstrict || ' leakproof=' || p.proleakproof || ' parallel=' || p.proparallel::text
         || ' config=' || coalesce(array_to_string(p.proconfig, ';'), '')
         || ' acl=' || coalesce(p.proacl::text, '') || ' args=' || pg_get_function_arguments(p.oid)
         || ' body=' || md5(coalesce(p.prosrc, '') || coalesce(p.probin, '')) AS line
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
  WHERE p.pronamespace = 'ves'::regnamespace
  UNION ALL
  SELECT 'relation ' || c.relname || ' kind=' || c.relkind::text || ' options=' || coalesce(c.reloptions::text, '')
         || ' acl=' || coalesce(c.relacl::text, '') || ' rls=' || c.relrowsecurity || ' force=' || c.relforcerowsecurity
         || ' partition=' || c.relispartition || coalesce(' bound=' || pg_get_expr(c.relpartbound, c.oid), '')
  FROM pg_class c WHERE c.relnamespace = 'ves'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'c', 'f')
  UNION ALL
  SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || CASE WHEN c.relkind IN ('v', 'c') THEN ' #' || a.attnum ELSE '' END
         || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
         || ' identity=' || a.attidentity::text || ' acl=' || coalesce(a.attacl::text, '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE c.relnamespace = 'ves'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'c', 'f')
    AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'constraint ' || c.conrelid::regclass || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid)
  FROM pg_constraint c WHERE c.connamespace = 'ves'::regnamespace
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'ves'::regnamespace
  UNION ALL
  SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid)
  FROM pg_class c WHERE c.relnamespace = 'ves'::regnamespace AND c.relkind IN ('v', 'm')
  UNION ALL
  SELECT 'policy ' || p.tablename || ' ' || p.policyname || ' ' || p.cmd || ' ' || coalesce(p.qual, '') || ' ' || coalesce(p.with_check, '')
  FROM pg_policies p WHERE p.schemaname = 'ves'
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  WHERE c.relnamespace = 'ves'::regnamespace AND NOT t.tgisinternal
  UNION ALL
  SELECT 'type ' || t.typname || ' ' || t.typtype::text
         || coalesce(' ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '')
  FROM pg_type t WHERE t.typnamespace = 'ves'::regnamespace AND t.typtype IN ('e', 'd')
  UNION ALL
  SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_depend d WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
    AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_ves')
  UNION ALL
  SELECT 'config ' || cfg::regclass || ' ' || coalesce(cond, '')
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(cfg, cond) WHERE e.extname = 'pg_ves'
  UNION ALL
  SELECT 'role ' || r.rolname || ' in ' || coalesce((SELECT string_agg(g.rolname, ',' ORDER BY g.rolname)
         FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), '')
  FROM pg_roles r WHERE r.rolname LIKE 'ves\_%'
  UNION ALL
  SELECT 'schema acl ' || coalesce(n.nspacl::text, '') FROM pg_namespace n WHERE n.nspname = 'ves'
  UNION ALL
  SELECT 'data ' || x FROM (
    SELECT 'sync_settings ' || settings::text AS x FROM ves.sync_settings
    UNION ALL SELECT 'partition_config ' || row(p.*)::text FROM ves.partition_config p) data
) described ORDER BY line;
