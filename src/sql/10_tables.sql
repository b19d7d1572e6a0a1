-- Event store tables. Every table carries tenant_id and every unique key
-- includes it, so the store can later be distributed by tenant.

-- Positions: the global order of events in this database. CACHE 1 is
-- required: the read fence relies on nextval being increasing across backends.
CREATE SEQUENCE ves.position_seq AS bigint CACHE 1;

-- One row per entity: its current version. The row lock taken when the
-- version is bumped is what orders appends to one entity.
CREATE TABLE ves.streams (
  tenant_id   uuid        NOT NULL,
  entity_type text        NOT NULL,
  entity_id   text        NOT NULL,
  store_id    uuid        NOT NULL,
  version     bigint      NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, entity_type, entity_id)
) WITH (fillfactor = 70);

-- Caller-given event ids, unique across tenants and every month partition
-- (generated ids are UUIDv7 and cannot collide, so they are not listed; a
-- caller-given id is also checked against stored events).
CREATE TABLE ves.event_ids (
  tenant_id    uuid  NOT NULL,
  event_id     uuid  NOT NULL PRIMARY KEY,
  content_hash bytea NOT NULL
);

-- Durable idempotency: a key maps to the event it produced and to the hash
-- of the content it was used with.
CREATE TABLE ves.idempotency_keys (
  tenant_id       uuid        NOT NULL,
  idempotency_key text        NOT NULL,
  event_id        uuid        NOT NULL,
  request_hash    bytea       NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, idempotency_key)
);

-- The events: range partitions per month, each hash-partitioned by tenant.
CREATE TABLE ves.events (
  position       bigint      NOT NULL,
  tenant_id      uuid        NOT NULL,
  store_id       uuid        NOT NULL,
  entity_type    text        NOT NULL,
  entity_id      text        NOT NULL,
  entity_version bigint      NOT NULL,
  event_id       uuid        NOT NULL,
  event_type     text        NOT NULL,
  payload        jsonb       NOT NULL,
  metadata       jsonb       NOT NULL DEFAULT '{}',
  source         text        NOT NULL DEFAULT 'manual',
  recorded_at    timestamptz NOT NULL DEFAULT now(),
  -- VES v1 signature (payload_kind 0, so the cipher hash is 32 zero bytes).
  source_agent_id    uuid   NOT NULL,
  agent_key_id       int    NOT NULL,
  created_at         text   NOT NULL,  -- the exact RFC 3339 string that was signed
  payload_plain_hash bytea  NOT NULL,
  agent_signature    bytea  NOT NULL
) PARTITION BY RANGE (recorded_at);
-- Keys and indexes live on each leaf partition (see ves.ensure_partitions),
-- not on this parent: a parent index would be re-created on every partition
-- pg_restore attaches and collide with the partition's own, dumped index.
-- Positions are unique because they come from one sequence.

-- How many hash partitions by tenant each month has.
CREATE TABLE ves.partition_config (
  singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  tenant_buckets int     NOT NULL DEFAULT 4 CHECK (tenant_buckets BETWEEN 1 AND 64),
  months_ahead   int     NOT NULL DEFAULT 2 CHECK (months_ahead BETWEEN 1 AND 24)
);
INSERT INTO ves.partition_config DEFAULT VALUES;
-- pg_dump keeps a changed configuration (the default row is not dumped: a
-- restore's CREATE EXTENSION makes it). Restoring the dumped row into the
-- database CREATE EXTENSION just filled replaces the row there instead of
-- failing on the singleton key.
CREATE FUNCTION ves._restore_partition_config() RETURNS trigger
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  DELETE FROM ves.partition_config;
  RETURN NEW;
END $$;
CREATE TRIGGER restore BEFORE INSERT ON ves.partition_config
  FOR EACH ROW EXECUTE FUNCTION ves._restore_partition_config();
SELECT pg_catalog.pg_extension_config_dump('ves.partition_config',
  'WHERE (tenant_buckets, months_ahead) IS DISTINCT FROM (4, 2)');
REVOKE ALL ON FUNCTION ves._restore_partition_config() FROM PUBLIC;

-- Every use of the maintenance path and every retention drop, for auditors.
CREATE TABLE ves.maintenance_log (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT now(),
  role_name  name        NOT NULL DEFAULT session_user,
  action     text        NOT NULL,
  detail     text
);

SELECT pg_catalog.pg_extension_config_dump('ves.streams', '');
SELECT pg_catalog.pg_extension_config_dump('ves.event_ids', '');
SELECT pg_catalog.pg_extension_config_dump('ves.idempotency_keys', '');
SELECT pg_catalog.pg_extension_config_dump('ves.maintenance_log', '');
SELECT pg_catalog.pg_extension_config_dump('ves.position_seq', '');
