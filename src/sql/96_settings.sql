-- One view of what configures pg_ves (README "Settings"): its server settings
-- (ves.* GUCs, with where each was set), the sync settings and the conflict
-- policies (the defaults and each tenant's). Kept in one file that the
-- upgrade script includes as well.

-- The sync settings and the conflict policies the caller may see, one row
-- per key.
CREATE FUNCTION ves._settings(OUT kind text, OUT name text, OUT tenant_id uuid, OUT entity_type text,
                              OUT value text, OUT source text, OUT description text)
  RETURNS SETOF record
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT 'sync', e.key, NULL::uuid, NULL::text, e.value::text, 'ves.set_sync_settings',
         'a key of ves.sync_settings (ves.get_sync_settings())'
  FROM ves.sync_settings s, LATERAL jsonb_each(s.settings) e
  UNION ALL
  SELECT 'conflict_policy', e.key, NULL, '*', e.value::text, 'default',
         'the conflict policy of a tenant and entity type that set none'
  FROM jsonb_each(ves._conflict_policy('{}') || '{"references": {}}') e
  UNION ALL
  SELECT 'conflict_policy', e.key, p.tenant_id, p.entity_type, e.value::text, 'ves.set_conflict_policy',
         'a key of the tenant''s conflict policy for the entity type (''*'': every type without its own)'
  FROM ves.conflict_policies p, LATERAL jsonb_each(p.policy) e
  WHERE ves.tenant_visible(p.tenant_id)
  ORDER BY 1, 3 NULLS FIRST, 4, 2
$$;

-- pg_settings is read with the caller's rights, so settings only superusers
-- may read (ves.server_key_command, ...) are not shown to others.
CREATE VIEW ves.settings AS
  SELECT 'server'::text AS kind, s.name::text AS name, NULL::uuid AS tenant_id, NULL::text AS entity_type,
         s.setting || coalesce(' ' || s.unit, '') AS value,
         s.source || CASE WHEN s.sourcefile IS NOT NULL THEN ' (' || s.sourcefile || ':' || s.sourceline || ')'
                          ELSE '' END AS source,
         s.short_desc AS description
  FROM pg_catalog.pg_settings s
  WHERE s.name LIKE 'ves.%'
  UNION ALL
  SELECT x.kind, x.name, x.tenant_id, x.entity_type, x.value, x.source, x.description FROM ves._settings() x
  WHERE x.tenant_id IS NULL OR ves.tenant_visible(x.tenant_id);

REVOKE ALL ON FUNCTION ves._settings() FROM PUBLIC;
REVOKE ALL ON ves.settings FROM PUBLIC;
GRANT SELECT ON ves.settings TO ves_admin;
-- The view calls it with its reader's rights.
GRANT EXECUTE ON FUNCTION ves._settings() TO ves_admin;
