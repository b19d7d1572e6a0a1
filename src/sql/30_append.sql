-- The write path (src/pg/append.cpp).

CREATE TYPE ves.append_result AS (
  event_id       uuid,
  position       bigint,
  entity_version bigint,
  duplicate      boolean
);

CREATE FUNCTION ves.append(
  tenant_id        uuid,
  store_id         uuid,
  entity_type      text,
  entity_id        text,
  event_type       text,
  payload          jsonb,
  expected_version bigint DEFAULT NULL,
  idempotency_key  text   DEFAULT NULL,
  metadata         jsonb  DEFAULT '{}',
  source           text   DEFAULT 'manual',
  id               uuid   DEFAULT NULL
) RETURNS ves.append_result
  AS 'MODULE_PATHNAME', 'ves_append' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION ves.append_batch(events jsonb) RETURNS SETOF ves.append_result
  AS 'MODULE_PATHNAME', 'ves_append_batch' LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION ves.current_tenant() RETURNS uuid
  AS 'MODULE_PATHNAME', 'ves_current_tenant' LANGUAGE C STABLE;
CREATE FUNCTION ves.check_tenant(tenant_id uuid) RETURNS void
  AS 'MODULE_PATHNAME', 'ves_check_tenant' LANGUAGE C STABLE;
CREATE FUNCTION ves.tenant_visible(tenant_id uuid) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_tenant_visible' LANGUAGE C STABLE LEAKPROOF;

CREATE FUNCTION ves.debug_raise(kind text) RETURNS int
  AS 'MODULE_PATHNAME', 'ves_debug_raise' LANGUAGE C VOLATILE;
CREATE FUNCTION ves.debug_live_objects() RETURNS int
  AS 'MODULE_PATHNAME', 'ves_debug_live_objects' LANGUAGE C VOLATILE;
