-- The write path (src/pg/store/append.cpp).

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
  AS 'MODULE_PATHNAME', 'ves_append' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ves.append_batch(events jsonb) RETURNS SETOF ves.append_result
  AS 'MODULE_PATHNAME', 'ves_append_batch' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
-- The same batch as JSON text (or json, text inside), read one event at a
-- time: PostgreSQL's jsonb input keeps about 14 times the document until the
-- statement ends. An untyped literal or parameter resolves to the text form.
CREATE FUNCTION ves.append_batch(events text) RETURNS SETOF ves.append_result
  AS 'MODULE_PATHNAME', 'ves_append_batch_text' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION ves.append_batch(events json) RETURNS SETOF ves.append_result
  AS 'MODULE_PATHNAME', 'ves_append_batch_text' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ves.debug_raise(kind text) RETURNS int
  AS 'MODULE_PATHNAME', 'ves_debug_raise' LANGUAGE C VOLATILE;
CREATE FUNCTION ves.debug_live_objects() RETURNS int
  AS 'MODULE_PATHNAME', 'ves_debug_live_objects' LANGUAGE C VOLATILE;
