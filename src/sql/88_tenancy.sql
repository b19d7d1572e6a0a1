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
