-- pg_ves install script. Built by concatenating src/sql/*.sql in name order.
\echo Use "CREATE EXTENSION pg_ves" to load this file. \quit

-- pg_ves keeps the read fence, key epochs and its workers in shared memory,
-- which exists only when the server preloads it: refuse to install otherwise.
CREATE FUNCTION ves._require_preload() RETURNS void
  AS 'MODULE_PATHNAME', 'ves_require_preload' LANGUAGE C VOLATILE;
SELECT ves._require_preload();

-- The session's tenant scope (src/pg/tenant.cpp, README "Tenancy"), used by
-- every function, view and row-level security policy over tenant data.
CREATE FUNCTION ves.current_tenant() RETURNS uuid
  AS 'MODULE_PATHNAME', 'ves_current_tenant' LANGUAGE C STABLE;
CREATE FUNCTION ves.check_tenant(tenant_id uuid) RETURNS void
  AS 'MODULE_PATHNAME', 'ves_check_tenant' LANGUAGE C STABLE;
CREATE FUNCTION ves.tenant_visible(tenant_id uuid) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_tenant_visible' LANGUAGE C STABLE LEAKPROOF;

-- Roles are cluster-wide and outlive the extension; create them once.
-- ves_admin ⊃ ves_writer ⊃ ves_reader.
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ves_reader') THEN
    CREATE ROLE ves_reader NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ves_writer') THEN
    CREATE ROLE ves_writer NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ves_admin') THEN
    CREATE ROLE ves_admin NOLOGIN;
  END IF;
END
$roles$;
GRANT ves_reader TO ves_writer;
GRANT ves_writer TO ves_admin;

GRANT USAGE ON SCHEMA ves TO ves_reader;
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
-- Agent keys (VES v1 §9): who signed an event, with which key.
-- Local agents sign this database's events; remote agents' public keys are
-- registered to verify events ingested from elsewhere.

CREATE TABLE ves.agent_key_store (
  tenant_id  uuid        NOT NULL,
  agent_id   uuid        NOT NULL,
  key_id     int         NOT NULL CHECK (key_id > 0),
  public_key bytea       NOT NULL CHECK (length(public_key) = 32),
  local      boolean     NOT NULL DEFAULT false,
  status     text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'rotated', 'revoked')),
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  PRIMARY KEY (tenant_id, agent_id, key_id)
);

-- Private keys of local agents, sealed with crypto_secretbox under the server
-- key (nonce || box). No role is granted anything on this table.
CREATE TABLE ves.agent_key_secrets (
  tenant_id  uuid  NOT NULL,
  agent_id   uuid  NOT NULL,
  key_id     int   NOT NULL,
  secret_box bytea NOT NULL,
  PRIMARY KEY (tenant_id, agent_id, key_id),
  FOREIGN KEY (tenant_id, agent_id, key_id) REFERENCES ves.agent_key_store ON DELETE CASCADE
);

-- The local agent that signs each (tenant, store)'s events.
CREATE TABLE ves.local_agents (
  tenant_id  uuid        NOT NULL,
  store_id   uuid        NOT NULL,
  agent_id   uuid        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, store_id)
);

SELECT pg_catalog.pg_extension_config_dump('ves.agent_key_store', '');
SELECT pg_catalog.pg_extension_config_dump('ves.agent_key_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('ves.local_agents', '');

CREATE VIEW ves.agent_keys AS
SELECT tenant_id, agent_id, key_id, public_key, status, created_at, revoked_at, local
FROM ves.agent_key_store
WHERE ves.tenant_visible(tenant_id);

CREATE TYPE ves.agent_key AS (agent_id uuid, key_id int, public_key bytea);

-- Creates the local agent and its first key for (tenant, store). Appending
-- does this by itself on first use; call it to choose the agent id.
CREATE FUNCTION ves.create_agent_key(tenant_id uuid, store_id uuid, agent_id uuid DEFAULT NULL)
  RETURNS ves.agent_key
  AS 'MODULE_PATHNAME', 'ves_create_agent_key' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- A new key id for the local agent of (tenant, store); the old key stays
-- valid for verifying the events it signed (status 'rotated').
CREATE FUNCTION ves.rotate_agent_key(tenant_id uuid, store_id uuid)
  RETURNS ves.agent_key
  AS 'MODULE_PATHNAME', 'ves_rotate_agent_key' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ves._keys_changed() RETURNS void
  AS 'MODULE_PATHNAME', 'ves_keys_changed' LANGUAGE C VOLATILE;

-- Registers a remote agent's public key, for verifying its events.
CREATE FUNCTION ves.register_agent_key(tenant_id uuid, agent_id uuid, key_id int, public_key bytea)
  RETURNS ves.agent_keys
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE k ves.agent_keys;
BEGIN
  IF tenant_id IS NULL OR agent_id IS NULL OR key_id IS NULL OR public_key IS NULL THEN
    RAISE EXCEPTION 'tenant_id, agent_id, key_id and public_key must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Pass the agent''s tenant, id, key id and 32-byte Ed25519 public key.';
  END IF;
  IF key_id < 1 THEN
    RAISE EXCEPTION 'key_id must be 1 or more' USING ERRCODE = 'VE010', HINT = 'Key ids start at 1.';
  END IF;
  IF length(public_key) <> 32 THEN
    RAISE EXCEPTION 'public_key must be 32 bytes, not %', length(public_key) USING ERRCODE = 'VE010',
      HINT = 'Pass the raw Ed25519 public key, e.g. decode(''<64 hex digits>'', ''hex'').';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  INSERT INTO ves.agent_key_store AS s (tenant_id, agent_id, key_id, public_key)
  VALUES (tenant_id, agent_id, key_id, public_key)
  ON CONFLICT ON CONSTRAINT agent_key_store_pkey DO NOTHING;
  SELECT * INTO k FROM ves.agent_keys x
  WHERE x.tenant_id = register_agent_key.tenant_id AND x.agent_id = register_agent_key.agent_id
    AND x.key_id = register_agent_key.key_id;
  IF k.public_key <> public_key THEN
    RAISE EXCEPTION 'agent % already has a different key %', agent_id, key_id USING ERRCODE = 'VE013',
      HINT = 'A key id names one key forever; register the new key under a new key id.';
  END IF;
  RETURN k;
END $$;

-- Revokes a key from now on: events it signed before remain valid, events
-- dated later are refused. A revoked local key is replaced on the next append.
CREATE FUNCTION ves.revoke_agent_key(tenant_id uuid, agent_id uuid, key_id int)
  RETURNS ves.agent_keys
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE k ves.agent_keys;
BEGIN
  IF tenant_id IS NULL OR agent_id IS NULL OR key_id IS NULL THEN
    RAISE EXCEPTION 'tenant_id, agent_id and key_id must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Name the key to revoke.';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  UPDATE ves.agent_key_store s SET status = 'revoked', revoked_at = coalesce(s.revoked_at, now())
  WHERE s.tenant_id = revoke_agent_key.tenant_id AND s.agent_id = revoke_agent_key.agent_id
    AND s.key_id = revoke_agent_key.key_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'agent % has no key %', agent_id, key_id USING ERRCODE = 'VE012',
      HINT = 'List keys with SELECT * FROM ves.agent_keys.';
  END IF;
  PERFORM ves._keys_changed();
  SELECT * INTO k FROM ves.agent_keys x
  WHERE x.tenant_id = revoke_agent_key.tenant_id AND x.agent_id = revoke_agent_key.agent_id
    AND x.key_id = revoke_agent_key.key_id;
  RETURN k;
END $$;
-- Month partitions, immutability and the maintenance path.

CREATE FUNCTION ves.in_maintenance() RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_in_maintenance' LANGUAGE C VOLATILE;

-- Opens the maintenance path for the rest of the current transaction: the
-- only way to UPDATE, DELETE or TRUNCATE events. Every use is logged.
CREATE FUNCTION ves.begin_maintenance(reason text) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF reason IS NULL OR length(btrim(reason)) = 0 THEN
    RAISE EXCEPTION 'a maintenance reason is required' USING ERRCODE = 'VE011',
      HINT = 'Say why events are being changed; the reason is kept in ves.maintenance_log.';
  END IF;
  INSERT INTO ves.maintenance_log (action, detail) VALUES ('begin_maintenance', reason);
  PERFORM ves._enable_maintenance();
END $$;

CREATE FUNCTION ves._enable_maintenance() RETURNS void
  AS 'MODULE_PATHNAME', 'ves_enable_maintenance' LANGUAGE C VOLATILE;

CREATE FUNCTION ves.refuse_mutation() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF ves.in_maintenance() THEN
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END IF;
  RAISE EXCEPTION 'events are immutable: % on % is refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'VE008',
          HINT = 'Append a compensating event instead. Repairs go through ves.begin_maintenance(reason).';
END $$;

CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON ves.events
  FOR EACH ROW EXECUTE FUNCTION ves.refuse_mutation();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON ves.events
  FOR EACH STATEMENT EXECUTE FUNCTION ves.refuse_mutation();

-- Runs partition DDL, waiting at most `lock_wait` for its locks (NULL: as
-- long as lock_timeout allows). Creating or dropping a partition locks the
-- parent table exclusively, and every statement that arrives on the table
-- while the DDL waits queues behind it; so routine maintenance gives up
-- quickly and the next round tries again. Returns whether the DDL ran (all
-- of it, or nothing); locks it took are kept to the end of the transaction.
CREATE FUNCTION ves._partition_ddl(statements text[], lock_wait interval) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  previous text := current_setting('lock_timeout');
  stmt text;
BEGIN
  IF lock_wait IS NOT NULL THEN
    PERFORM set_config('lock_timeout', (extract(epoch FROM lock_wait) * 1000)::bigint::text, true);
  END IF;
  FOREACH stmt IN ARRAY statements LOOP
    EXECUTE stmt;
  END LOOP;
  PERFORM set_config('lock_timeout', previous, true);
  RETURN true;
EXCEPTION WHEN lock_not_available THEN
  -- Without lock_wait the timeout was the caller's own: it is their error.
  IF lock_wait IS NULL THEN RAISE; END IF;
  RETURN false;  -- the subtransaction's rollback also restores lock_timeout
END $$;

-- Makes sure the month partitions for `at` and the configured months ahead
-- exist; returns the end of the range known to exist, which the append path
-- caches so it asks again only when time passes it.
--
-- Creating a partition takes an exclusive lock on ves.events, and every
-- append arriving while that waits queues behind it. With `lock_wait` (the
-- sync worker passes 100 ms) a month whose lock is not granted in time is
-- left for a later round, and the range returned ends before it; without it
-- (an append that finds its own month missing) the creation waits like any
-- other statement.
CREATE FUNCTION ves.ensure_partitions(at timestamptz DEFAULT now(), lock_wait interval DEFAULT NULL)
  RETURNS timestamptz
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cfg ves.partition_config;
  month_start timestamptz;
  month_name text;
  part text;
  ddl text[];
  i int;
  b int;
BEGIN
  SELECT * INTO cfg FROM ves.partition_config;
  FOR i IN 0 .. cfg.months_ahead LOOP
    -- Month arithmetic in UTC: on timestamptz it would follow the session's time zone.
    month_start := (date_trunc('month', at AT TIME ZONE 'UTC') + make_interval(months => i)) AT TIME ZONE 'UTC';
    month_name := 'events_' || to_char(month_start AT TIME ZONE 'UTC', '"y"YYYY"m"MM');
    CONTINUE WHEN to_regclass('ves.' || month_name) IS NOT NULL;
    -- Creation is rare; serialise it so concurrent callers do not race. A
    -- table lock (unlike an advisory lock) also refreshes the catalog view,
    -- so the re-check below sees a partition another session just created.
    IF NOT ves._partition_ddl(ARRAY['LOCK TABLE ves.partition_config IN SHARE ROW EXCLUSIVE MODE'], lock_wait) THEN
      RETURN month_start;
    END IF;
    CONTINUE WHEN to_regclass('ves.' || month_name) IS NOT NULL;
    ddl := ARRAY[format('CREATE TABLE ves.%I PARTITION OF ves.events FOR VALUES FROM (%L) TO (%L) PARTITION BY HASH (tenant_id)',
                        month_name, month_start,
                        (date_trunc('month', at AT TIME ZONE 'UTC') + make_interval(months => i + 1)) AT TIME ZONE 'UTC')];
    FOR b IN 0 .. cfg.tenant_buckets - 1 LOOP
      part := month_name || '_t' || b;
      ddl := ddl || ARRAY[
        format('CREATE TABLE ves.%I PARTITION OF ves.%I FOR VALUES WITH (MODULUS %s, REMAINDER %s)',
               part, month_name, cfg.tenant_buckets, b),
        format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON ves.%I FOR EACH STATEMENT EXECUTE FUNCTION ves.refuse_mutation()', part),
        format('ALTER TABLE ves.%I ADD PRIMARY KEY (position, tenant_id)', part),
        format('CREATE INDEX ON ves.%I (tenant_id, entity_type, entity_id, entity_version)', part),
        format('CREATE INDEX ON ves.%I (event_id)', part)];
    END LOOP;
    ddl := ddl || ARRAY[
      format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON ves.%I FOR EACH STATEMENT EXECUTE FUNCTION ves.refuse_mutation()', month_name),
      format('GRANT SELECT ON ves.%I TO ves_reader', month_name)];
    IF NOT ves._partition_ddl(ddl, lock_wait) THEN
      RETURN month_start;
    END IF;
  END LOOP;
  RETURN (date_trunc('month', at AT TIME ZONE 'UTC') + make_interval(months => cfg.months_ahead + 1)) AT TIME ZONE 'UTC';
END $$;

-- The month partitions of ves.events with their bounds.
CREATE VIEW ves.event_partitions AS
SELECT c.oid::regclass AS partition,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz AS month_start,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS month_end
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'ves.events'::regclass;
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
  AS 'MODULE_PATHNAME', 'ves_append' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ves.append_batch(events jsonb) RETURNS SETOF ves.append_result
  AS 'MODULE_PATHNAME', 'ves_append_batch' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ves.debug_raise(kind text) RETURNS int
  AS 'MODULE_PATHNAME', 'ves_debug_raise' LANGUAGE C VOLATILE;
CREATE FUNCTION ves.debug_live_objects() RETURNS int
  AS 'MODULE_PATHNAME', 'ves_debug_live_objects' LANGUAGE C VOLATILE;
-- Reads: per entity, and by global position behind the read fence.

-- Both run as the owner: the first call after a restart reads the position
-- sequence, which callers have no privilege on.
CREATE FUNCTION ves.read_fence() RETURNS bigint
  AS 'MODULE_PATHNAME', 'ves_read_fence' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ves._read_fence_holders(OUT pid int, OUT lower_bound bigint, OUT xact_start timestamptz)
  RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'ves_read_fence_holders' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Who holds ves.read_all back: open transactions that appended and the
-- lowest position they may still commit.
CREATE VIEW ves.read_fence_holders AS
SELECT h.pid,
       h.lower_bound AS holds_from_position,
       h.xact_start,
       now() - h.xact_start AS xact_age,
       a.usename,
       a.application_name,
       a.state,
       a.query
FROM ves._read_fence_holders() h
LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = h.pid;

CREATE FUNCTION ves._check_max_count(max_count int) RETURNS void
  LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF max_count IS NULL OR max_count < 1 OR max_count > 100000 THEN
    RAISE EXCEPTION 'max_count must be between 1 and 100000, not %', coalesce(max_count::text, 'NULL')
      USING ERRCODE = 'VE010', HINT = 'Read in pages of at most 100000 events.';
  END IF;
END $$;

CREATE FUNCTION ves.read_entity(
  tenant_id     uuid,
  entity_type   text,
  entity_id     text,
  after_version bigint DEFAULT 0,
  max_count     int    DEFAULT 1000
) RETURNS SETOF ves.events
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF tenant_id IS NULL OR entity_type IS NULL OR entity_id IS NULL THEN
    RAISE EXCEPTION 'tenant_id, entity_type and entity_id must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Name the entity to read.';
  END IF;
  IF after_version IS NULL OR after_version < 0 THEN
    RAISE EXCEPTION 'after_version must be 0 or more' USING ERRCODE = 'VE010',
      HINT = 'Pass 0 to read from the first event.';
  END IF;
  PERFORM ves._check_max_count(max_count);
  PERFORM ves.check_tenant(read_entity.tenant_id);
  RETURN QUERY
    SELECT * FROM ves.events e
    WHERE e.tenant_id = read_entity.tenant_id
      AND e.entity_type = read_entity.entity_type
      AND e.entity_id = read_entity.entity_id
      AND e.entity_version > after_version
    ORDER BY e.entity_version
    LIMIT max_count;
END $$;

-- Gap-safe global read: events after `after_position` and below the read
-- fence, in position order. Pass back the last position you received.
CREATE FUNCTION ves.read_all(
  after_position bigint DEFAULT 0,
  max_count      int    DEFAULT 1000,
  tenant_id      uuid   DEFAULT NULL
) RETURNS SETOF ves.events
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  fence bigint;
  tenant uuid := ves.current_tenant();
BEGIN
  IF after_position IS NULL OR after_position < 0 THEN
    RAISE EXCEPTION 'after_position must be 0 or more' USING ERRCODE = 'VE010',
      HINT = 'Pass 0 to read from the beginning, then the last position you received.';
  END IF;
  PERFORM ves._check_max_count(max_count);
  IF read_all.tenant_id IS NOT NULL THEN
    PERFORM ves.check_tenant(read_all.tenant_id);
    tenant := read_all.tenant_id;
  END IF;
  -- The fence must be computed before the query's snapshot is taken; a
  -- separate statement in a VOLATILE function guarantees that under READ
  -- COMMITTED (ves.read_fence refuses the other isolation levels).
  fence := ves.read_fence();
  RETURN QUERY
    SELECT * FROM ves.events e
    WHERE e.position > after_position AND e.position < fence
      AND (tenant IS NULL OR e.tenant_id = tenant)
    ORDER BY e.position
    LIMIT max_count;
END $$;
-- Verifiable events: canonical JSON, VES v1 hashes, verification, envelopes.

CREATE FUNCTION ves.canonical_json(value jsonb) RETURNS text
  AS 'MODULE_PATHNAME', 'ves_canonical_json' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ves.canonical_json_text(json_text text) RETURNS text
  AS 'MODULE_PATHNAME', 'ves_canonical_json_text' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ves.payload_hash(payload jsonb) RETURNS bytea
  AS 'MODULE_PATHNAME', 'ves_payload_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ves.signing_hash(event_id uuid) RETURNS bytea
  AS 'MODULE_PATHNAME', 'ves_signing_hash' LANGUAGE C STABLE STRICT
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION ves.leaf_hash(tenant_id uuid, store_id uuid, sequence_number bigint,
                              signing_hash bytea, agent_signature bytea) RETURNS bytea
  AS 'MODULE_PATHNAME', 'ves_leaf_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ves.receipt_hash(tenant_id uuid, store_id uuid, event_id uuid, sequence_number bigint,
                                 signing_hash bytea) RETURNS bytea
  AS 'MODULE_PATHNAME', 'ves_receipt_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ves.stream_id(tenant_id uuid, store_id uuid) RETURNS bytea
  AS 'MODULE_PATHNAME', 'ves_stream_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ves.merkle_root(leaves bytea[]) RETURNS bytea
  AS 'MODULE_PATHNAME', 'ves_merkle_root' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ves.merkle_proof(leaves bytea[], leaf_index int) RETURNS bytea[]
  AS 'MODULE_PATHNAME', 'ves_merkle_proof' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ves.verify_merkle_proof(leaf bytea, proof bytea[], leaf_index bigint, root bytea) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_verify_merkle_proof' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION ves.verify_event(event_id uuid) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_verify_event' LANGUAGE C STABLE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- The events in a range that fail verification, with the reason:
-- payload_hash_mismatch, payload_not_canonicalizable, bad_signature,
-- unknown_key or revoked_key; and the holes in entities' version streams:
-- missing_version (an event deleted; event_position and event_id name the
-- event after the hole, or are NULL when the stream's last versions are gone)
-- and duplicate_version, with a detail. Progress shows in ves.progress.
CREATE FUNCTION ves.verify_events(
  tenant_id     uuid   DEFAULT NULL,
  store_id      uuid   DEFAULT NULL,
  entity_type   text   DEFAULT NULL,
  entity_id     text   DEFAULT NULL,
  from_position bigint DEFAULT NULL,
  to_position   bigint DEFAULT NULL
) RETURNS TABLE (event_position bigint, event_id uuid, reason text, detail text)
  AS 'MODULE_PATHNAME', 'ves_verify_events' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ves._progress(OUT pid int, OUT command text, OUT done bigint, OUT total bigint,
                              OUT failed bigint, OUT started_at timestamptz)
  RETURNS SETOF record AS 'MODULE_PATHNAME', 'ves_progress' LANGUAGE C VOLATILE;

-- Long pg_ves commands in progress: done/total count positions scanned.
CREATE VIEW ves.progress AS
SELECT p.pid, p.command, p.done, p.total,
       CASE WHEN p.total > 0 THEN round(100.0 * p.done / p.total, 1) END AS percent,
       p.failed, p.started_at, now() - p.started_at AS elapsed
FROM ves._progress() p;

CREATE FUNCTION ves.export_event(event_id uuid) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ves_export_event' LANGUAGE C STABLE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE TYPE ves.ingest_result AS (event_id uuid, position bigint, duplicate boolean);
CREATE FUNCTION ves.ingest_event(envelope jsonb) RETURNS ves.ingest_result
  AS 'MODULE_PATHNAME', 'ves_ingest_event' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
-- Subscriptions: server-side checkpoints, consumer groups and replay.
--
-- A subscription belongs to a tenant and may filter by entity and event
-- types. It has `members` consumers; each entity is always served by the same
-- member (hash of entity_type/entity_id), so per-entity order holds across the
-- group. A member polls, processes, then acks the last position it handled.
-- Polls are gap-safe like ves.read_all. Appends send NOTIFY ves_events.

CREATE TABLE ves.subscriptions (
  tenant_id    uuid        NOT NULL,
  name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
  entity_types text[],
  event_types  text[],
  members      int         NOT NULL CHECK (members BETWEEN 1 AND 1024),
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name)
);

CREATE TABLE ves.subscription_members (
  tenant_id         uuid        NOT NULL,
  subscription      text        NOT NULL,
  member            int         NOT NULL,
  checkpoint        bigint      NOT NULL DEFAULT 0,
  -- An active replay re-delivers (replay_checkpoint, replay_to] before live events.
  replay_to         bigint,
  replay_checkpoint bigint,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, subscription, member),
  FOREIGN KEY (tenant_id, subscription) REFERENCES ves.subscriptions ON DELETE CASCADE
) WITH (fillfactor = 50);

SELECT pg_catalog.pg_extension_config_dump('ves.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('ves.subscription_members', '');

-- The member that serves an entity.
CREATE FUNCTION ves.member_for(entity_type text, entity_id text, members int) RETURNS int
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (abs(hashtextextended(entity_type || '/' || entity_id, 0)) % members)::int
$$;

CREATE FUNCTION ves._subscription(tenant_id uuid, name text) RETURNS ves.subscriptions
  LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE s ves.subscriptions;
BEGIN
  IF tenant_id IS NULL OR name IS NULL THEN
    RAISE EXCEPTION 'tenant_id and subscription name must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Name the subscription and its tenant.';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  SELECT * INTO s FROM ves.subscriptions x WHERE x.tenant_id = _subscription.tenant_id AND x.name = _subscription.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'subscription "%" does not exist for tenant %', name, tenant_id USING ERRCODE = 'VE012',
      HINT = 'Create it with ves.create_subscription.';
  END IF;
  RETURN s;
END $$;

CREATE FUNCTION ves._member(s ves.subscriptions, member int, lock boolean) RETURNS ves.subscription_members
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE m ves.subscription_members;
BEGIN
  IF member IS NULL OR member < 0 OR member >= s.members THEN
    RAISE EXCEPTION 'member % does not exist: subscription "%" has members 0 to %', coalesce(member::text, 'NULL'), s.name, s.members - 1
      USING ERRCODE = 'VE010', HINT = 'Pass a member number below the subscription''s member count.';
  END IF;
  IF lock THEN
    SELECT * INTO m FROM ves.subscription_members x
    WHERE x.tenant_id = s.tenant_id AND x.subscription = s.name AND x.member = _member.member FOR UPDATE;
  ELSE
    SELECT * INTO m FROM ves.subscription_members x
    WHERE x.tenant_id = s.tenant_id AND x.subscription = s.name AND x.member = _member.member;
  END IF;
  RETURN m;
END $$;

CREATE FUNCTION ves.create_subscription(
  tenant_id      uuid,
  name           text,
  entity_types   text[] DEFAULT NULL,
  event_types    text[] DEFAULT NULL,
  members        int    DEFAULT 1,
  start_position bigint DEFAULT 0
) RETURNS ves.subscriptions
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE s ves.subscriptions;
BEGIN
  IF tenant_id IS NULL OR name IS NULL THEN
    RAISE EXCEPTION 'tenant_id and name must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Name the subscription and its tenant.';
  END IF;
  IF length(name) = 0 OR length(name) > 128 THEN
    RAISE EXCEPTION 'subscription name must be 1 to 128 characters' USING ERRCODE = 'VE006',
      HINT = 'Use a short, stable name such as the consumer''s.';
  END IF;
  IF members IS NULL OR members < 1 OR members > 1024 THEN
    RAISE EXCEPTION 'members must be between 1 and 1024' USING ERRCODE = 'VE010',
      HINT = 'One member per consumer process of the group.';
  END IF;
  IF start_position IS NULL OR start_position < 0 THEN
    RAISE EXCEPTION 'start_position must be 0 or more' USING ERRCODE = 'VE010',
      HINT = 'Pass 0 to start from the first event.';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  INSERT INTO ves.subscriptions AS x (tenant_id, name, entity_types, event_types, members)
  VALUES (tenant_id, name, entity_types, event_types, members)
  ON CONFLICT DO NOTHING
  RETURNING * INTO s;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'subscription "%" already exists for tenant %', name, tenant_id USING ERRCODE = 'VE013',
      HINT = 'Drop it first, or pick another name.';
  END IF;
  INSERT INTO ves.subscription_members (tenant_id, subscription, member, checkpoint)
  SELECT tenant_id, name, g, start_position FROM generate_series(0, members - 1) g;
  RETURN s;
END $$;

CREATE FUNCTION ves.drop_subscription(tenant_id uuid, name text) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE s ves.subscriptions := ves._subscription(tenant_id, name);
BEGIN
  DELETE FROM ves.subscriptions x WHERE x.tenant_id = s.tenant_id AND x.name = s.name;
END $$;

-- Events for one member after its checkpoint (or in its replay range),
-- below the read fence, in position order. Does not move the checkpoint.
CREATE FUNCTION ves.poll(
  tenant_id    uuid,
  subscription text,
  member       int DEFAULT 0,
  max_count    int DEFAULT 100
) RETURNS SETOF ves.events
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s ves.subscriptions := ves._subscription(tenant_id, subscription);
  m ves.subscription_members;
  fence bigint;
  low bigint;
  high bigint;
BEGIN
  PERFORM ves._check_max_count(max_count);
  m := ves._member(s, member, false);
  fence := ves.read_fence();
  IF m.replay_to IS NOT NULL THEN
    low := m.replay_checkpoint;
    high := least(m.replay_to + 1, fence);
  ELSE
    low := m.checkpoint;
    high := fence;
  END IF;
  RETURN QUERY
    SELECT * FROM ves.events e
    WHERE e.tenant_id = s.tenant_id
      AND e.position > low AND e.position < high
      AND (s.entity_types IS NULL OR e.entity_type = ANY (s.entity_types))
      AND (s.event_types IS NULL OR e.event_type = ANY (s.event_types))
      AND (s.members = 1 OR ves.member_for(e.entity_type, e.entity_id, s.members) = m.member)
    ORDER BY e.position
    LIMIT max_count;
END $$;

-- Records that the member handled everything up to `position`. Acks never
-- move a checkpoint back, and never past the read fence.
CREATE FUNCTION ves.ack(
  tenant_id    uuid,
  subscription text,
  member       int,
  up_to        bigint
) RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s ves.subscriptions := ves._subscription(tenant_id, subscription);
  m ves.subscription_members;
  fence bigint;
BEGIN
  IF up_to IS NULL OR up_to < 0 THEN
    RAISE EXCEPTION 'up_to must be 0 or more (the position of the last event handled)' USING ERRCODE = 'VE010',
      HINT = 'Ack the position of the last event you processed.';
  END IF;
  m := ves._member(s, member, true);
  fence := ves.read_fence();
  IF up_to >= fence THEN
    RAISE EXCEPTION 'position % has not been delivered yet (read fence is %)', up_to, fence
      USING ERRCODE = 'VE010', HINT = 'Ack only positions that ves.poll returned.';
  END IF;
  IF m.replay_to IS NOT NULL AND up_to <= m.replay_to THEN
    IF up_to >= m.replay_to THEN
      UPDATE ves.subscription_members x SET replay_to = NULL, replay_checkpoint = NULL, updated_at = now()
      WHERE x.tenant_id = s.tenant_id AND x.subscription = s.name AND x.member = m.member;
    ELSIF up_to > m.replay_checkpoint THEN
      UPDATE ves.subscription_members x SET replay_checkpoint = up_to, updated_at = now()
      WHERE x.tenant_id = s.tenant_id AND x.subscription = s.name AND x.member = m.member;
    END IF;
    RETURN m.checkpoint;
  END IF;
  UPDATE ves.subscription_members x
  SET checkpoint = greatest(x.checkpoint, up_to), replay_to = NULL, replay_checkpoint = NULL, updated_at = now()
  WHERE x.tenant_id = s.tenant_id AND x.subscription = s.name AND x.member = m.member
  RETURNING x.checkpoint INTO m.checkpoint;
  RETURN m.checkpoint;
END $$;

-- Re-delivers events in [from_position, to_position] to every member before
-- it resumes live delivery. to_position defaults to what was acked already.
CREATE FUNCTION ves.replay(
  tenant_id     uuid,
  subscription  text,
  from_position bigint,
  to_position   bigint DEFAULT NULL
) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE s ves.subscriptions := ves._subscription(tenant_id, subscription);
BEGIN
  IF from_position IS NULL OR from_position < 1 OR (to_position IS NOT NULL AND to_position < from_position) THEN
    RAISE EXCEPTION 'replay range [%, %] is not valid', from_position, to_position USING ERRCODE = 'VE010',
      HINT = 'from_position is 1 or more and not after to_position.';
  END IF;
  UPDATE ves.subscription_members x
  SET replay_to = coalesce(to_position, x.checkpoint), replay_checkpoint = from_position - 1, updated_at = now()
  WHERE x.tenant_id = s.tenant_id AND x.subscription = s.name
    AND coalesce(to_position, x.checkpoint) >= from_position;
END $$;

-- Subscription progress for operators.
CREATE VIEW ves.subscription_status AS
SELECT m.tenant_id, m.subscription, m.member, m.checkpoint,
       m.replay_to IS NOT NULL AS replaying, m.replay_checkpoint, m.replay_to, m.updated_at
FROM ves.subscription_members m
WHERE ves.tenant_visible(m.tenant_id);
-- The outbox: one row per (event, destination), written in the appending
-- transaction, drained by the sync worker (src/pg/worker.cpp) over HTTP.
--
-- Statuses: pending -> synced; failed (a retry is scheduled at
-- next_attempt_at); dead (dead-lettered after the last attempt, a permanent
-- 4xx or a 410); acknowledged (an operator closed a failed or dead row).
-- A pending or failed row that a worker has claimed is shown as 'syncing':
-- the claim is its lease (lease_until, leased_by), not a stored status, so
-- claiming touches no indexed column and is a HOT update. leased_by is the
-- holder's lease identity; a worker takes over at once the rows of a holder
-- that is no longer alive (killed, or from before a server restart), and
-- waits for lease_until only while the holder lives.
-- Per (destination, entity) a row is only sent once every earlier row of
-- that entity is synced, dead or acknowledged.

CREATE TABLE ves.destinations (
  id                  int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name                text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
  kind                text        NOT NULL CHECK (kind IN ('webhook', 'http')),
  -- Checked with libcurl's URL parser when written (ves._destination_check).
  url                 text        NOT NULL CHECK (url ~* '^https?://'),
  -- Filter: NULL means everything.
  tenant_id           uuid,
  entity_types        text[],
  event_types         text[],
  paused              boolean     NOT NULL DEFAULT false,
  paused_reason       text,
  concurrency         int         NOT NULL DEFAULT 16 CHECK (concurrency BETWEEN 1 AND 1024),
  rate_limit          float8      NOT NULL DEFAULT 0 CHECK (rate_limit >= 0),   -- per second, 0 = none
  burst               int         NOT NULL DEFAULT 10 CHECK (burst >= 1),
  timeout_ms          int         NOT NULL DEFAULT 10000 CHECK (timeout_ms BETWEEN 100 AND 600000),
  max_attempts        int         NOT NULL DEFAULT 10 CHECK (max_attempts BETWEEN 1 AND 1000),
  backoff_base_ms     int         NOT NULL DEFAULT 500 CHECK (backoff_base_ms >= 1),
  backoff_cap_ms      int         NOT NULL DEFAULT 300000 CHECK (backoff_cap_ms >= 1),
  jitter              float8      NOT NULL DEFAULT 0.2 CHECK (jitter BETWEEN 0 AND 1),
  breaker_threshold   int         NOT NULL DEFAULT 5 CHECK (breaker_threshold >= 0),
  breaker_cooldown_ms int         NOT NULL DEFAULT 30000 CHECK (breaker_cooldown_ms >= 1),
  -- Extra request headers: name -> value, or for a secret header
  -- {"secret": true, "value": "[redacted]"} (its value is sealed in
  -- ves.destination_secrets).
  headers             jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(headers) = 'object'),
  -- Written by the worker, for ves.get_sync_status.
  breaker_state       text        NOT NULL DEFAULT 'closed',
  last_success_at     timestamptz,
  last_error          text,
  last_error_at       timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Credentials, sealed with crypto_secretbox under the server key
-- (ves.server_key_file, nonce || box, as agent private keys): the webhook
-- secret and a JSON object of the secret headers' values. Readable by the
-- extension owner only, and even then only as sealed bytes; the worker opens
-- them when it loads destinations.
CREATE TABLE ves.destination_secrets (
  destination_id int   PRIMARY KEY REFERENCES ves.destinations ON DELETE CASCADE,
  secret_box     bytea,
  headers_box    bytea
);

CREATE TABLE ves.outbox (
  id              bigint      GENERATED ALWAYS AS IDENTITY,
  tenant_id       uuid        NOT NULL,
  destination_id  int         NOT NULL REFERENCES ves.destinations ON DELETE CASCADE,
  event_position  bigint      NOT NULL,
  event_id        uuid        NOT NULL,
  -- The event's partition key, so the worker reads events from their
  -- partition only.
  event_recorded_at timestamptz NOT NULL DEFAULT now(),
  entity_type     text        NOT NULL,
  entity_id       text        NOT NULL,
  status          text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'synced', 'failed', 'dead', 'acknowledged')),
  attempts        int         NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  lease_until     timestamptz,
  leased_by       bigint,     -- lease identity of the holder (not a pid), see worker::lease_owner
  last_status     int,
  last_error      text,
  last_response   text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  synced_at       timestamptz,
  PRIMARY KEY (tenant_id, id)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);

-- Few indexes, on purpose: every delivery updates its row twice.
-- Claiming: each destination's open rows in position order (every claim is
-- for one destination, within its share of the worker's window). The
-- predicate's second half is always true (the column is NOT NULL), and the
-- claim implies it (next_attempt_at <= now()); the claim's per-entity probe
-- does not, so this index can never serve that probe, whatever the
-- statistics say (src/pg/delivery.cpp, kClaimSql).
CREATE INDEX outbox_open_idx ON ves.outbox (destination_id, event_position)
  WHERE status IN ('pending', 'failed') AND next_attempt_at IS NOT NULL;
-- Ordering: the open rows of one entity at one destination; a claim probes
-- it once per candidate for the entity's previous open row.
CREATE INDEX outbox_entity_idx ON ves.outbox (destination_id, tenant_id, entity_type, entity_id, event_position)
  WHERE status IN ('pending', 'failed');
-- Purging closed rows.
CREATE INDEX outbox_closed_idx ON ves.outbox (updated_at) WHERE status IN ('synced', 'acknowledged');

-- The status an operator sees: claimed open rows are 'syncing'.
CREATE FUNCTION ves._shown_status(status text, lease_until timestamptz) RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN status IN ('pending', 'failed') AND lease_until > now() THEN 'syncing' ELSE status END
$$;

-- Worker and admin settings, one JSON document (ves.get_sync_settings).
CREATE TABLE ves.sync_settings (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  settings  jsonb   NOT NULL
);
INSERT INTO ves.sync_settings (settings) VALUES ('{
  "window": 64,
  "claim_batch": 256,
  "lease_seconds": 60,
  "safety_poll_ms": 5000,
  "synced_retention": "1 day",
  "purge_batch": 5000,
  "order_hold": "7 days"
}');

SELECT pg_catalog.pg_extension_config_dump('ves.destinations', '');
SELECT pg_catalog.pg_extension_config_dump('ves.destination_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('ves.outbox', '');

-- Destinations ------------------------------------------------------------

CREATE FUNCTION ves._destination_options(d ves.destinations, options jsonb) RETURNS ves.destinations
  LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  known text[] := ARRAY['secret', 'tenant_id', 'entity_types', 'event_types', 'concurrency', 'rate_limit',
                        'burst', 'timeout_ms', 'max_attempts', 'backoff_base_ms', 'backoff_cap_ms', 'jitter',
                        'breaker_threshold', 'breaker_cooldown_ms', 'headers'];
  k text;
BEGIN
  IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'VE010',
      HINT = 'Pass options such as ''{"secret": "whsec_...", "rate_limit": 50}''.';
  END IF;
  FOR k IN SELECT jsonb_object_keys(options) LOOP
    IF NOT k = ANY (known) THEN
      RAISE EXCEPTION 'unknown destination option "%"', k USING ERRCODE = 'VE010',
        HINT = 'Known options: ' || array_to_string(known, ', ') || '.';
    END IF;
  END LOOP;
  BEGIN
    d.tenant_id := CASE WHEN options ? 'tenant_id' THEN (options->>'tenant_id')::uuid ELSE d.tenant_id END;
    d.entity_types := CASE WHEN options ? 'entity_types' THEN
      (SELECT array_agg(x) FROM jsonb_array_elements_text(nullif(options->'entity_types', 'null')) x) ELSE d.entity_types END;
    d.event_types := CASE WHEN options ? 'event_types' THEN
      (SELECT array_agg(x) FROM jsonb_array_elements_text(nullif(options->'event_types', 'null')) x) ELSE d.event_types END;
    d.concurrency := coalesce((options->>'concurrency')::int, d.concurrency);
    d.rate_limit := coalesce((options->>'rate_limit')::float8, d.rate_limit);
    d.burst := coalesce((options->>'burst')::int, d.burst);
    d.timeout_ms := coalesce((options->>'timeout_ms')::int, d.timeout_ms);
    d.max_attempts := coalesce((options->>'max_attempts')::int, d.max_attempts);
    d.backoff_base_ms := coalesce((options->>'backoff_base_ms')::int, d.backoff_base_ms);
    d.backoff_cap_ms := coalesce((options->>'backoff_cap_ms')::int, d.backoff_cap_ms);
    d.jitter := coalesce((options->>'jitter')::float8, d.jitter);
    d.breaker_threshold := coalesce((options->>'breaker_threshold')::int, d.breaker_threshold);
    d.breaker_cooldown_ms := coalesce((options->>'breaker_cooldown_ms')::int, d.breaker_cooldown_ms);
    IF d.concurrency NOT BETWEEN 1 AND 1024 THEN RAISE invalid_parameter_value USING MESSAGE = 'concurrency must be between 1 and 1024'; END IF;
    IF d.rate_limit < 0 THEN RAISE invalid_parameter_value USING MESSAGE = 'rate_limit must be 0 (none) or more'; END IF;
    IF d.burst < 1 THEN RAISE invalid_parameter_value USING MESSAGE = 'burst must be 1 or more'; END IF;
    IF d.timeout_ms NOT BETWEEN 100 AND 600000 THEN RAISE invalid_parameter_value USING MESSAGE = 'timeout_ms must be between 100 and ves.max_timeout_ms'; END IF;
    IF d.max_attempts NOT BETWEEN 1 AND 1000 THEN RAISE invalid_parameter_value USING MESSAGE = 'max_attempts must be between 1 and 1000'; END IF;
    IF d.backoff_base_ms < 1 OR d.backoff_cap_ms < 1 THEN RAISE invalid_parameter_value USING MESSAGE = 'backoff_base_ms and backoff_cap_ms must be 1 or more'; END IF;
    IF d.jitter NOT BETWEEN 0 AND 1 THEN RAISE invalid_parameter_value USING MESSAGE = 'jitter must be between 0 and 1'; END IF;
    IF d.breaker_threshold < 0 OR d.breaker_cooldown_ms < 1 THEN RAISE invalid_parameter_value USING MESSAGE = 'breaker_threshold must be 0 (off) or more and breaker_cooldown_ms 1 or more'; END IF;
  EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range OR invalid_parameter_value
                 OR datatype_mismatch THEN
    RAISE EXCEPTION 'invalid destination option: %', SQLERRM USING ERRCODE = 'VE010',
      HINT = 'tenant_id is a UUID, entity_types and event_types are arrays of strings, limits are numbers in range.';
  END;
  RETURN d;
END $$;

-- The URL, headers, secret and timeout_ms, checked by the C++ validators the
-- worker sends with; returns the headers to show (secret values redacted) and
-- the sealed secret and secret header values. See src/pg/destination_config.cpp.
CREATE FUNCTION ves._destination_check(kind text, url text, options jsonb,
                                       OUT headers jsonb, OUT secret_box bytea, OUT headers_box bytea)
  AS 'MODULE_PATHNAME', 'ves_destination_check' LANGUAGE C VOLATILE;

-- Writes the sealed credentials of a destination: what options names
-- replaces what is stored ("secret": null removes the secret).
CREATE FUNCTION ves._store_destination_secrets(dest int, options jsonb, sealed_secret bytea, sealed_headers bytea)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT (options ? 'secret' OR options ? 'headers') THEN RETURN; END IF;
  INSERT INTO ves.destination_secrets AS s (destination_id, secret_box, headers_box)
  VALUES (dest, sealed_secret, sealed_headers)
  ON CONFLICT (destination_id) DO UPDATE
    SET secret_box = CASE WHEN options ? 'secret' THEN excluded.secret_box ELSE s.secret_box END,
        headers_box = CASE WHEN options ? 'headers' THEN excluded.headers_box ELSE s.headers_box END;
  DELETE FROM ves.destination_secrets s
  WHERE s.destination_id = dest AND s.secret_box IS NULL AND s.headers_box IS NULL;
END $$;

CREATE FUNCTION ves.create_destination(name text, kind text, url text, options jsonb DEFAULT '{}')
  RETURNS ves.destinations
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations;
  c record;
BEGIN
  IF name IS NULL OR kind IS NULL OR url IS NULL THEN
    RAISE EXCEPTION 'name, kind and url must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'ves.create_destination(''shop-webhook'', ''webhook'', ''https://example.com/hook'', ''{}'')';
  END IF;
  IF kind NOT IN ('webhook', 'http') THEN
    RAISE EXCEPTION 'unknown destination kind "%"', kind USING ERRCODE = 'VE010',
      HINT = 'Kinds: webhook (Standard Webhooks), http (plain JSON POST).';
  END IF;
  IF length(name) NOT BETWEEN 1 AND 128 THEN
    RAISE EXCEPTION 'destination name must be 1 to 128 characters' USING ERRCODE = 'VE006',
      HINT = 'Use a short, stable name.';
  END IF;
  IF options IS NULL THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'VE010',
      HINT = 'Pass options such as ''{"secret": "whsec_...", "rate_limit": 50}''.';
  END IF;
  c := ves._destination_check(kind, url, options);
  d.name := name; d.kind := kind; d.url := url;
  d.concurrency := 16; d.rate_limit := 0; d.burst := 10; d.timeout_ms := 10000; d.max_attempts := 10;
  d.backoff_base_ms := 500; d.backoff_cap_ms := 300000; d.jitter := 0.2; d.breaker_threshold := 5;
  d.breaker_cooldown_ms := 30000; d.headers := '{}';
  d := ves._destination_options(d, options);
  d.headers := coalesce(c.headers, d.headers);
  IF EXISTS (SELECT FROM ves.destinations x WHERE x.name = create_destination.name) THEN
    RAISE EXCEPTION 'destination "%" already exists', name USING ERRCODE = 'VE013',
      HINT = 'Use ves.alter_destination to change it.';
  END IF;
  INSERT INTO ves.destinations (name, kind, url, tenant_id, entity_types, event_types, concurrency, rate_limit,
                                burst, timeout_ms, max_attempts, backoff_base_ms, backoff_cap_ms, jitter,
                                breaker_threshold, breaker_cooldown_ms, headers)
  VALUES (d.name, d.kind, d.url, d.tenant_id, d.entity_types, d.event_types, d.concurrency, d.rate_limit,
          d.burst, d.timeout_ms, d.max_attempts, d.backoff_base_ms, d.backoff_cap_ms, d.jitter,
          d.breaker_threshold, d.breaker_cooldown_ms, d.headers)
  RETURNING * INTO d;
  PERFORM ves._store_destination_secrets(d.id, options, c.secret_box, c.headers_box);
  PERFORM ves._destinations_changed();
  RETURN d;
END $$;

CREATE FUNCTION ves._destination(name text, lock boolean DEFAULT false) RETURNS ves.destinations
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE d ves.destinations;
BEGIN
  IF lock THEN
    SELECT * INTO d FROM ves.destinations x WHERE x.name = _destination.name FOR UPDATE;
  ELSE
    SELECT * INTO d FROM ves.destinations x WHERE x.name = _destination.name;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'destination "%" does not exist', name USING ERRCODE = 'VE012',
      HINT = 'List destinations with SELECT name FROM ves.destinations.';
  END IF;
  RETURN d;
END $$;

CREATE FUNCTION ves.alter_destination(name text, options jsonb DEFAULT '{}', url text DEFAULT NULL)
  RETURNS ves.destinations
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations := ves._destination(name, true);
  c record;
BEGIN
  IF options IS NULL THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'VE010',
      HINT = 'Pass ''{}'' to change only the url.';
  END IF;
  c := ves._destination_check(d.kind, url, options);
  d := ves._destination_options(d, options);
  d.headers := coalesce(c.headers, d.headers);
  UPDATE ves.destinations x SET url = coalesce(alter_destination.url, x.url), tenant_id = d.tenant_id,
    entity_types = d.entity_types, event_types = d.event_types, concurrency = d.concurrency,
    rate_limit = d.rate_limit, burst = d.burst, timeout_ms = d.timeout_ms, max_attempts = d.max_attempts,
    backoff_base_ms = d.backoff_base_ms, backoff_cap_ms = d.backoff_cap_ms, jitter = d.jitter,
    breaker_threshold = d.breaker_threshold, breaker_cooldown_ms = d.breaker_cooldown_ms,
    headers = d.headers, updated_at = now()
  WHERE x.id = d.id RETURNING * INTO d;
  PERFORM ves._store_destination_secrets(d.id, options, c.secret_box, c.headers_box);
  PERFORM ves._destinations_changed();
  RETURN d;
END $$;

CREATE FUNCTION ves.drop_destination(name text) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE d ves.destinations := ves._destination(name, true);
BEGIN
  DELETE FROM ves.destinations x WHERE x.id = d.id;
  PERFORM ves._destinations_changed();
END $$;

CREATE FUNCTION ves.pause_destination(name text, reason text DEFAULT 'paused by an operator') RETURNS ves.destinations
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE d ves.destinations := ves._destination(name, true);
BEGIN
  UPDATE ves.destinations x SET paused = true, paused_reason = reason, updated_at = now()
  WHERE x.id = d.id RETURNING * INTO d;
  PERFORM ves._destinations_changed();
  RETURN d;
END $$;

CREATE FUNCTION ves.resume_destination(name text) RETURNS ves.destinations
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE d ves.destinations := ves._destination(name, true);
BEGIN
  UPDATE ves.destinations x SET paused = false, paused_reason = NULL, breaker_state = 'closed', updated_at = now()
  WHERE x.id = d.id RETURNING * INTO d;
  PERFORM ves._destinations_changed();
  RETURN d;
END $$;

-- Operators ---------------------------------------------------------------

CREATE FUNCTION ves.get_sync_status()
  RETURNS TABLE (destination text, kind text, paused boolean, pending bigint, syncing bigint, synced bigint,
                 failed bigint, dead bigint, oldest_pending_age interval, last_success_at timestamptz,
                 last_error text, breaker text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT d.name, d.kind, d.paused,
         count(*) FILTER (WHERE ves._shown_status(o.status, o.lease_until) = 'pending'),
         count(*) FILTER (WHERE ves._shown_status(o.status, o.lease_until) = 'syncing'),
         count(*) FILTER (WHERE o.status = 'synced'),
         count(*) FILTER (WHERE ves._shown_status(o.status, o.lease_until) = 'failed'),
         count(*) FILTER (WHERE o.status = 'dead'),
         now() - min(o.created_at) FILTER (WHERE o.status IN ('pending', 'failed')),
         d.last_success_at, d.last_error, d.breaker_state
  FROM ves.destinations d
  LEFT JOIN ves.outbox o ON o.destination_id = d.id
   AND (ves.current_tenant() IS NULL OR o.tenant_id = ves.current_tenant())
  GROUP BY d.id
  ORDER BY d.name
$$;

CREATE FUNCTION ves.list_outbox_events(status text DEFAULT NULL, destination text DEFAULT NULL,
                                       max_count int DEFAULT 100)
  RETURNS SETOF ves.outbox
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE dest int;
BEGIN
  PERFORM ves._check_max_count(max_count);
  IF status IS NOT NULL AND status NOT IN ('pending', 'syncing', 'synced', 'failed', 'dead', 'acknowledged') THEN
    RAISE EXCEPTION 'unknown outbox status "%"', status USING ERRCODE = 'VE010',
      HINT = 'Statuses: pending, syncing, synced, failed, dead, acknowledged.';
  END IF;
  IF destination IS NOT NULL THEN dest := (ves._destination(destination)).id; END IF;
  RETURN QUERY SELECT o.id, o.tenant_id, o.destination_id, o.event_position, o.event_id, o.event_recorded_at,
      o.entity_type, o.entity_id, ves._shown_status(o.status, o.lease_until), o.attempts, o.next_attempt_at, o.lease_until,
      o.leased_by, o.last_status, o.last_error, o.last_response, o.created_at, o.updated_at, o.synced_at
    FROM ves.outbox o
    WHERE (list_outbox_events.status IS NULL OR ves._shown_status(o.status, o.lease_until) = list_outbox_events.status)
      AND (dest IS NULL OR o.destination_id = dest)
      AND (ves.current_tenant() IS NULL OR o.tenant_id = ves.current_tenant())
    ORDER BY o.event_position, o.destination_id
    LIMIT max_count;
END $$;

CREATE FUNCTION ves.get_outbox_event(id bigint) RETURNS ves.outbox
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE o ves.outbox;
BEGIN
  SELECT * INTO o FROM ves.outbox x WHERE x.id = get_outbox_event.id
    AND (ves.current_tenant() IS NULL OR x.tenant_id = ves.current_tenant());
  o.status := ves._shown_status(o.status, o.lease_until);
  IF o.id IS NULL THEN
    RAISE EXCEPTION 'outbox row % does not exist', id USING ERRCODE = 'VE012',
      HINT = 'List rows with ves.list_outbox_events().';
  END IF;
  RETURN o;
END $$;

-- Closes failed or dead rows: the entity's later rows may then be sent.
CREATE FUNCTION ves.acknowledge_events(ids bigint[]) RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE n bigint;
BEGIN
  IF ids IS NULL THEN
    RAISE EXCEPTION 'ids must not be NULL' USING ERRCODE = 'VE011', HINT = 'Pass the outbox row ids.';
  END IF;
  UPDATE ves.outbox o SET status = 'acknowledged', updated_at = now(), lease_until = NULL
  WHERE o.id = ANY (ids) AND o.status IN ('failed', 'dead')
    AND (ves.current_tenant() IS NULL OR o.tenant_id = ves.current_tenant());
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM ves._wake_worker();
  RETURN n;
END $$;

-- Sends failed or dead rows again from the first attempt.
CREATE FUNCTION ves.retry_events(ids bigint[]) RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE n bigint;
BEGIN
  IF ids IS NULL THEN
    RAISE EXCEPTION 'ids must not be NULL' USING ERRCODE = 'VE011', HINT = 'Pass the outbox row ids.';
  END IF;
  UPDATE ves.outbox o SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now(),
                          lease_until = NULL
  WHERE o.id = ANY (ids) AND o.status IN ('failed', 'dead', 'acknowledged')
    AND (ves.current_tenant() IS NULL OR o.tenant_id = ves.current_tenant());
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM ves._wake_worker();
  RETURN n;
END $$;

CREATE FUNCTION ves.get_sync_settings() RETURNS jsonb
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT settings FROM ves.sync_settings
$$;

CREATE FUNCTION ves.set_sync_settings(settings jsonb) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  merged jsonb;
  k text;
  limits jsonb := '{"window": [1, 4096], "claim_batch": [1, 10000], "lease_seconds": [5, 86400],
                    "safety_poll_ms": [100, 600000], "purge_batch": [100, 100000]}';
  iv interval;
BEGIN
  IF settings IS NULL OR jsonb_typeof(settings) <> 'object' THEN
    RAISE EXCEPTION 'settings must be a JSON object' USING ERRCODE = 'VE010',
      HINT = 'For example ''{"window": 128}''.';
  END IF;
  FOR k IN SELECT jsonb_object_keys(settings) LOOP
    IF k IN ('synced_retention', 'order_hold') THEN
      -- A JSON string holding a positive interval of at most ten years.
      BEGIN
        iv := CASE WHEN jsonb_typeof(settings->k) = 'string' THEN (settings->>k)::interval END;
      EXCEPTION WHEN OTHERS THEN
        iv := NULL;
      END;
      IF iv IS NULL OR iv < interval '1 second' OR iv > interval '10 years' THEN
        RAISE EXCEPTION 'sync setting "%" must be an interval between 1 second and 10 years, given as a JSON string', k
          USING ERRCODE = 'VE010', HINT = format('For example {"%s": "1 day"}.', k);
      END IF;
    ELSIF limits ? k THEN
      IF jsonb_typeof(settings->k) <> 'number' OR (settings->>k)::numeric <> floor((settings->>k)::numeric)
         OR (settings->>k)::numeric NOT BETWEEN (limits->k->>0)::numeric AND (limits->k->>1)::numeric THEN
        RAISE EXCEPTION 'sync setting "%" must be a whole number between % and %', k, limits->k->>0, limits->k->>1
          USING ERRCODE = 'VE010',
          HINT = format('Give %s as a JSON number from %s to %s, e.g. {"%s": %s}.', k, limits->k->>0, limits->k->>1,
                        k, limits->k->>0);
      END IF;
    ELSE
      RAISE EXCEPTION 'unknown sync setting "%"', k USING ERRCODE = 'VE010',
        HINT = 'Settings: window, claim_batch, lease_seconds, safety_poll_ms, synced_retention, purge_batch, order_hold.';
    END IF;
  END LOOP;
  UPDATE ves.sync_settings s SET settings = s.settings || set_sync_settings.settings RETURNING s.settings INTO merged;
  PERFORM ves._destinations_changed();
  RETURN merged;
END $$;

-- Purges synced and acknowledged rows older than synced_retention, in
-- batches so no single delete holds locks or bloats for long. Run by the
-- worker; returns the number of rows removed.
CREATE FUNCTION ves.purge_outbox(max_rows int DEFAULT NULL) RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s jsonb := (SELECT settings FROM ves.sync_settings);
  n bigint;
BEGIN
  DELETE FROM ves.outbox o
  WHERE o.ctid = ANY (ARRAY(
    SELECT x.ctid FROM ves.outbox x
    WHERE x.status IN ('synced', 'acknowledged')
      AND x.updated_at < now() - (s->>'synced_retention')::interval
    LIMIT coalesce(max_rows, (s->>'purge_batch')::int)));
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

-- Workers --------------------------------------------------------------------

-- The destinations' credentials for the sync worker, which may run as a
-- role that cannot read ves.destination_secrets (ves.worker_role).
CREATE FUNCTION ves._worker_secrets() RETURNS TABLE (destination_id int, secret_box bytea, headers_box bytea)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT s.destination_id, s.secret_box, s.headers_box FROM ves.destination_secrets s
$$;

CREATE FUNCTION ves._wake_worker() RETURNS void
  AS 'MODULE_PATHNAME', 'ves_wake_worker' LANGUAGE C VOLATILE;
CREATE FUNCTION ves._destinations_changed() RETURNS void
  AS 'MODULE_PATHNAME', 'ves_destinations_changed' LANGUAGE C VOLATILE;

CREATE FUNCTION ves.push_events(destination text DEFAULT NULL, max_count int DEFAULT 1000,
                                OUT sent bigint, OUT synced bigint, OUT failed bigint, OUT dead bigint)
  AS 'MODULE_PATHNAME', 'ves_push_events' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ves.start_worker(database text DEFAULT NULL) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_start_worker' LANGUAGE C VOLATILE;
CREATE FUNCTION ves.stop_worker(database text DEFAULT NULL) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_stop_worker' LANGUAGE C VOLATILE;
CREATE FUNCTION ves._worker_status(OUT database text, OUT pid int, OUT stopped boolean, OUT started_at timestamptz,
                                   OUT in_flight int, OUT delivered bigint, OUT failed bigint)
  RETURNS SETOF record AS 'MODULE_PATHNAME', 'ves_worker_status' LANGUAGE C VOLATILE;
CREATE VIEW ves.worker_status AS SELECT * FROM ves._worker_status();
-- Snapshots: the latest saved state of an entity at a version, so readers
-- replay only the events after it.

CREATE TABLE ves.snapshots (
  tenant_id   uuid        NOT NULL,
  entity_type text        NOT NULL,
  entity_id   text        NOT NULL,
  version     bigint      NOT NULL CHECK (version > 0),
  state       jsonb       NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, entity_type, entity_id)
);
SELECT pg_catalog.pg_extension_config_dump('ves.snapshots', '');

-- Saves a snapshot unless a newer one is already stored; returns whether it
-- was stored.
CREATE FUNCTION ves.save_snapshot(
  tenant_id   uuid,
  entity_type text,
  entity_id   text,
  version     bigint,
  state       jsonb
) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE current_version bigint;
BEGIN
  IF tenant_id IS NULL OR entity_type IS NULL OR entity_id IS NULL OR version IS NULL OR state IS NULL THEN
    RAISE EXCEPTION 'tenant_id, entity_type, entity_id, version and state must not be NULL'
      USING ERRCODE = 'VE011', HINT = 'Pass the entity, the version the state reflects, and the state.';
  END IF;
  IF jsonb_typeof(state) <> 'object' THEN
    RAISE EXCEPTION 'state must be a JSON object' USING ERRCODE = 'VE004',
      HINT = 'Wrap the value in an object.';
  END IF;
  IF pg_column_size(state) > pg_size_bytes(current_setting('ves.max_payload_size')) THEN
    RAISE EXCEPTION 'state is larger than ves.max_payload_size' USING ERRCODE = 'VE005',
      HINT = 'Keep snapshots below ves.max_payload_size.';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  SELECT s.version INTO current_version FROM ves.streams s
  WHERE s.tenant_id = save_snapshot.tenant_id AND s.entity_type = save_snapshot.entity_type
    AND s.entity_id = save_snapshot.entity_id;
  IF current_version IS NULL OR version < 1 OR version > current_version THEN
    RAISE EXCEPTION 'version % is not a version of %/% (current version is %)', version, entity_type, entity_id, coalesce(current_version, 0)
      USING ERRCODE = 'VE001', HINT = 'Snapshot a version the entity has reached.';
  END IF;
  INSERT INTO ves.snapshots AS x (tenant_id, entity_type, entity_id, version, state)
  VALUES (tenant_id, entity_type, entity_id, version, state)
  ON CONFLICT ON CONSTRAINT snapshots_pkey DO UPDATE
    SET version = excluded.version, state = excluded.state, created_at = now()
    WHERE x.version < excluded.version;
  RETURN FOUND;
END $$;

CREATE FUNCTION ves.load_snapshot(tenant_id uuid, entity_type text, entity_id text,
                                  OUT version bigint, OUT state jsonb, OUT created_at timestamptz)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF tenant_id IS NULL OR entity_type IS NULL OR entity_id IS NULL THEN
    RAISE EXCEPTION 'tenant_id, entity_type and entity_id must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Name the entity.';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  SELECT s.version, s.state, s.created_at INTO version, state, created_at FROM ves.snapshots s
  WHERE s.tenant_id = load_snapshot.tenant_id AND s.entity_type = load_snapshot.entity_type
    AND s.entity_id = load_snapshot.entity_id;
END $$;
-- Retention: whole month partitions are dropped once older than
-- ves.retention_months, never while they hold an event that some
-- subscription of its tenant has not acknowledged or that the outbox has not
-- delivered.

-- True when the partition still holds events someone has not consumed.
-- Open outbox rows (not yet delivered) pin their events too.
CREATE FUNCTION ves.partition_pinned(part regclass) RETURNS boolean
  LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE pinned boolean;
BEGIN
  EXECUTE format(
    'SELECT EXISTS (SELECT 1 FROM ves.subscription_members m
                     WHERE coalesce(m.replay_checkpoint, m.checkpoint) <
                           (SELECT max(e.position) FROM %1$s e WHERE e.tenant_id = m.tenant_id))
         OR EXISTS (SELECT 1 FROM ves.outbox o JOIN %1$s e ON e.position = o.event_position
                     WHERE o.status IN (''pending'', ''failed''))', part)
  INTO pinned;
  RETURN pinned;
END $$;

CREATE FUNCTION ves.drop_expired_partitions(older_than timestamptz DEFAULT NULL)
  RETURNS TABLE (partition text, dropped boolean, reason text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cutoff timestamptz := coalesce(older_than,
    (date_trunc('month', now() AT TIME ZONE 'UTC')
      - make_interval(months => current_setting('ves.retention_months')::int)) AT TIME ZONE 'UTC');
  p record;
BEGIN
  FOR p IN SELECT * FROM ves.event_partitions WHERE month_end <= cutoff ORDER BY month_start LOOP
    partition := p.partition::text;
    IF ves.partition_pinned(p.partition) THEN
      dropped := false;
      reason := 'holds events not yet acknowledged';
      RETURN NEXT;
      CONTINUE;
    END IF;
    EXECUTE format('DELETE FROM ves.idempotency_keys k USING %s e WHERE k.tenant_id = e.tenant_id AND k.event_id = e.event_id', p.partition);
    EXECUTE format('DELETE FROM ves.event_ids i USING %s e WHERE i.tenant_id = e.tenant_id AND i.event_id = e.event_id', p.partition);
    EXECUTE format('DROP TABLE %s', p.partition);
    INSERT INTO ves.maintenance_log (action, detail) VALUES ('drop_partition', partition);
    dropped := true;
    reason := 'older than retention';
    RETURN NEXT;
  END LOOP;
END $$;
-- Entity state, idempotent upsert and conflicts (src/pg/conflict.cpp decides;
-- src/core/conflict.cpp holds the rules).
--
-- ves.entity_state keeps the current state of each entity in step with its
-- event stream: every change that applies is also a signed event
-- (<entity_type>.created / .updated / .deleted, payload {"state": ...}), so
-- the state at any version can be read back from the log, which is what the
-- three-way merge uses as its base.

CREATE FUNCTION ves._decide(policy jsonb, base jsonb, local_state jsonb, remote_state jsonb,
                            entity_exists boolean, deleted boolean, reference_deleted boolean,
                            base_version bigint, current_version bigint, source_version bigint,
                            source_observed_at timestamptz, local_source text, local_observed_at timestamptz,
                            remote_source text, remote_observed_at timestamptz, stamps jsonb DEFAULT NULL)
  RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ves_decide' LANGUAGE C IMMUTABLE;
CREATE FUNCTION ves._apply_changes(current_state jsonb, base jsonb, side jsonb) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ves_apply_changes' LANGUAGE C IMMUTABLE;
CREATE FUNCTION ves._restamp(stamps jsonb, local_state jsonb, result jsonb, source text, observed_at timestamptz,
                             policy jsonb) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ves_restamp' LANGUAGE C IMMUTABLE;
CREATE FUNCTION ves._conflict_policy(policy jsonb) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ves_conflict_policy' LANGUAGE C IMMUTABLE;

-- Builds a state from picks ({"field": "l" | "r"}) and the two original values.
CREATE FUNCTION ves._pick(picks jsonb, l jsonb, r jsonb) RETURNS jsonb
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(pg_catalog.jsonb_object_agg(p.key, CASE WHEN p.value = '"r"' THEN r -> p.key ELSE l -> p.key END),
                  '{}'::jsonb)
  FROM pg_catalog.jsonb_each(picks) AS p
$$;

-- Argument checks shared by the state, inventory and order functions.
CREATE FUNCTION ves._check_entity(tenant_id uuid, store_id uuid, entity_type text, entity_id text, source text)
  RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF tenant_id IS NULL OR store_id IS NULL OR entity_type IS NULL OR entity_id IS NULL OR source IS NULL THEN
    RAISE EXCEPTION 'tenant_id, store_id, entity_type, entity_id and source must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Name the tenant, the store and the entity; source defaults to ''manual''.';
  END IF;
  IF octet_length(entity_type) NOT BETWEEN 1 AND 100 OR octet_length(entity_id) NOT BETWEEN 1 AND 256
     OR octet_length(source) NOT BETWEEN 1 AND 64 THEN
    RAISE EXCEPTION 'entity_type (1 to 100 bytes), entity_id (1 to 256) or source (1 to 64) is empty or too long'
      USING ERRCODE = 'VE006', HINT = 'Use short, printable identifiers.';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
END $$;

-- ---------------------------------------------------------------------------
-- Idempotency records: the cached response of a state, stock or order call
-- made with an idempotency key, kept for ves.idempotency_ttl (default 24 h).
-- Day partitions: the worker drops a day once everything in it has expired,
-- so expiry never leaves dead rows behind.

CREATE TABLE ves.idempotency_records (
  tenant_id       uuid        NOT NULL,
  idempotency_key text        NOT NULL,
  operation       text        NOT NULL,
  request_hash    bytea       NOT NULL,
  response        jsonb       NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL
) PARTITION BY RANGE (created_at);

-- Makes the day partitions for `at` and the next `days_ahead` days; returns
-- how many it made.
CREATE FUNCTION ves.ensure_idempotency_partitions(at timestamptz DEFAULT now(), days_ahead int DEFAULT 3,
                                                  lock_wait interval DEFAULT '100ms')
  RETURNS int LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  day_start timestamptz;
  part text;
  made int := 0;
BEGIN
  FOR i IN 0 .. days_ahead LOOP
    day_start := (date_trunc('day', at AT TIME ZONE 'UTC') + make_interval(days => i)) AT TIME ZONE 'UTC';
    part := 'idempotency_records_' || to_char(day_start AT TIME ZONE 'UTC', '"d"YYYYMMDD');
    CONTINUE WHEN to_regclass('ves.' || part) IS NOT NULL;
    IF ves._partition_ddl(ARRAY[
         'LOCK TABLE ves.partition_config IN SHARE ROW EXCLUSIVE MODE',
         format('CREATE TABLE IF NOT EXISTS ves.%I PARTITION OF ves.idempotency_records FOR VALUES FROM (%L) TO (%L)',
                part, day_start, day_start + interval '1 day'),
         format('CREATE INDEX IF NOT EXISTS %I ON ves.%I (tenant_id, idempotency_key)', part || '_key', part),
         format('ALTER TABLE ves.%I ENABLE ROW LEVEL SECURITY', part)], lock_wait) THEN
      made := made + 1;
    END IF;
  END LOOP;
  RETURN made;
END $$;

-- Drops the day partitions whose every record has expired; returns how many.
CREATE FUNCTION ves.expire_idempotency_records(at timestamptz DEFAULT now(), lock_wait interval DEFAULT '100ms')
  RETURNS int LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p record;
  live boolean;
  dropped int := 0;
BEGIN
  FOR p IN
    SELECT c.oid::regclass AS rel, c.relname,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'ves.idempotency_records'::regclass
  LOOP
    CONTINUE WHEN p.upper_bound + coalesce(current_setting('ves.idempotency_ttl', true), '1d')::interval > at;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE expires_at > %L)', p.rel, at) INTO live;
    CONTINUE WHEN live;
    IF ves._partition_ddl(ARRAY[format('DROP TABLE %s', p.rel)], lock_wait) THEN
      dropped := dropped + 1;
    END IF;
  END LOOP;
  RETURN dropped;
END $$;

CREATE FUNCTION ves._request_hash(operation text, request jsonb) RETURNS bytea
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT pg_catalog.sha256(pg_catalog.convert_to(operation || ':' || request::text, 'UTF8'))
$$;

-- The cached response for a key, NULL when there is none (or no key). Holds
-- a transaction lock on the key, so a call racing the original waits for it
-- and then returns its response. `request` is what the call was asked to do.
CREATE FUNCTION ves._idempotency_begin(tenant_id uuid, idempotency_key text, operation text, request jsonb)
  RETURNS jsonb LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE r ves.idempotency_records;
BEGIN
  IF idempotency_key IS NULL THEN RETURN NULL; END IF;
  IF octet_length(idempotency_key) NOT BETWEEN 1 AND 256 THEN
    RAISE EXCEPTION 'idempotency_key must be 1 to 256 bytes' USING ERRCODE = 'VE006',
      HINT = 'Use a short key that names the request, e.g. the platform''s webhook id.';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended(tenant_id::text || '/' || idempotency_key, 7));
  SELECT * INTO r FROM ves.idempotency_records x
  WHERE x.tenant_id = _idempotency_begin.tenant_id AND x.idempotency_key = _idempotency_begin.idempotency_key
    AND x.expires_at > now()
  ORDER BY x.created_at DESC LIMIT 1;
  IF NOT FOUND THEN RETURN NULL; END IF;
  IF r.operation <> operation OR r.request_hash <> ves._request_hash(operation, request) THEN
    RAISE EXCEPTION 'idempotency key "%" was already used for a different request', idempotency_key
      USING ERRCODE = 'VE002', DETAIL = format('first used for %s at %s', r.operation, r.created_at),
            HINT = 'Use a new key for a new request; repeat a request only with its own key and the same arguments.';
  END IF;
  RETURN r.response;
END $$;

-- Keeps the response of a keyed call (nothing without a key).
CREATE FUNCTION ves._idempotency_finish(tenant_id uuid, idempotency_key text, operation text, request jsonb,
                                        response jsonb) RETURNS void
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  request_hash bytea;
  ttl interval;
BEGIN
  IF idempotency_key IS NULL THEN RETURN; END IF;
  request_hash := ves._request_hash(operation, request);
  ttl := coalesce(current_setting('ves.idempotency_ttl', true), '1d')::interval;
  BEGIN
    INSERT INTO ves.idempotency_records (tenant_id, idempotency_key, operation, request_hash, response, expires_at)
    VALUES (tenant_id, idempotency_key, operation, request_hash, response, now() + ttl);
  EXCEPTION WHEN check_violation THEN
    -- No partition for today (the worker has not run for days): make it,
    -- waiting for the lock like any other statement.
    PERFORM ves.ensure_idempotency_partitions(now(), 1, NULL);
    INSERT INTO ves.idempotency_records (tenant_id, idempotency_key, operation, request_hash, response, expires_at)
    VALUES (tenant_id, idempotency_key, operation, request_hash, response, now() + ttl);
  END;
END $$;

-- ---------------------------------------------------------------------------
-- Policies per tenant and entity type ('*': every type without its own).

CREATE TABLE ves.conflict_policies (
  tenant_id   uuid        NOT NULL,
  entity_type text        NOT NULL,
  policy      jsonb       NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, entity_type)
);
SELECT pg_catalog.pg_extension_config_dump('ves.conflict_policies', '');

-- The policy in force for a tenant and entity type, every key filled in.
CREATE FUNCTION ves.get_conflict_policy(tenant_id uuid, entity_type text DEFAULT '*') RETURNS jsonb
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE p jsonb;
BEGIN
  IF tenant_id IS NULL OR entity_type IS NULL THEN
    RAISE EXCEPTION 'tenant_id and entity_type must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Pass ''*'' for the tenant''s default policy.';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  SELECT x.policy INTO p FROM ves.conflict_policies x
  WHERE x.tenant_id = get_conflict_policy.tenant_id AND x.entity_type IN (get_conflict_policy.entity_type, '*')
  ORDER BY x.entity_type = '*' LIMIT 1;
  RETURN coalesce(p, ves._conflict_policy('{}') || '{"references": {}}');
END $$;

-- Sets the keys given (the others keep their value in force) and returns the
-- whole policy.
CREATE FUNCTION ves.set_conflict_policy(tenant_id uuid, entity_type text, policy jsonb) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE merged jsonb;
BEGIN
  IF policy IS NULL OR jsonb_typeof(policy) <> 'object' THEN
    RAISE EXCEPTION 'policy must be a JSON object' USING ERRCODE = 'VE010',
      HINT = 'For example {"strategy": "last_write_wins", "review_window_ms": 0}.';
  END IF;
  merged := ves.get_conflict_policy(tenant_id, entity_type) || policy;
  merged := ves._conflict_policy(merged - 'references')
            || jsonb_build_object('references', coalesce(merged -> 'references', '{}'));
  PERFORM ves._conflict_policy(jsonb_build_object('references', merged -> 'references'));
  INSERT INTO ves.conflict_policies AS c (tenant_id, entity_type, policy)
  VALUES (tenant_id, entity_type, merged)
  ON CONFLICT ON CONSTRAINT conflict_policies_pkey DO UPDATE SET policy = excluded.policy, updated_at = now();
  RETURN merged;
END $$;

-- ---------------------------------------------------------------------------
-- Current state.

CREATE TABLE ves.entity_state (
  tenant_id        uuid        NOT NULL,
  store_id         uuid        NOT NULL,
  entity_type      text        NOT NULL,
  entity_id        text        NOT NULL,
  state            jsonb       NOT NULL,
  version          bigint      NOT NULL,  -- the stream version of the event that set this state
  deleted          boolean     NOT NULL DEFAULT false,
  last_source      text        NOT NULL,
  last_observed_at timestamptz NOT NULL,
  -- Per source: the state it last reported and its latest observed_at. A
  -- change that names no base version is merged against that state.
  source_seen      jsonb       NOT NULL DEFAULT '{}',
  -- Per field: who set its value (or removed it) and when, {"f": {"at": µs,
  -- "src": source, "gone": true?}}; last_write_wins decides field by field.
  field_stamps     jsonb       NOT NULL DEFAULT '{}',
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, entity_type, entity_id)
) WITH (fillfactor = 80);
SELECT pg_catalog.pg_extension_config_dump('ves.entity_state', '');

CREATE TABLE ves.conflicts (
  conflict_id        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id          uuid        NOT NULL,
  store_id           uuid        NOT NULL,
  entity_type        text        NOT NULL,
  entity_id          text        NOT NULL,
  conflict_type      text        NOT NULL CHECK (conflict_type IN ('version_mismatch', 'concurrent_edit',
                       'deleted_reference', 'cross_platform_mismatch', 'reservation_conflict')),
  status             text        NOT NULL CHECK (status IN ('open', 'resolved')),
  rule               text        NOT NULL,   -- what decided, or sent it to review
  strategy           text,                   -- how it was resolved
  fields             text[]      NOT NULL DEFAULT '{}',
  base_version       bigint,
  local_version      bigint,
  base_state         jsonb,
  local_state        jsonb,
  remote_state       jsonb,
  proposed_state     jsonb,                  -- the fields that merge cleanly, for the reviewer
  resolved_state     jsonb,
  local_source       text,
  remote_source      text        NOT NULL,
  local_observed_at  timestamptz,
  remote_observed_at timestamptz NOT NULL,
  detail             jsonb       NOT NULL DEFAULT '{}',
  detected_at        timestamptz NOT NULL DEFAULT now(),
  resolved_at        timestamptz,
  resolved_by        name,
  event_id           uuid,                   -- sync.conflict_detected
  resolution_event_id uuid                   -- sync.conflict_resolved
);
CREATE INDEX conflicts_open ON ves.conflicts (tenant_id, detected_at) WHERE status = 'open';
CREATE INDEX conflicts_entity ON ves.conflicts (tenant_id, entity_type, entity_id, detected_at);
SELECT pg_catalog.pg_extension_config_dump('ves.conflicts', '');

CREATE VIEW ves.open_conflicts WITH (security_barrier) AS
  SELECT conflict_id, tenant_id, store_id, entity_type, entity_id, conflict_type, rule, fields,
         local_state, remote_state, base_state, proposed_state, local_source, remote_source,
         local_observed_at, remote_observed_at, detail, detected_at, now() - detected_at AS age
  FROM ves.conflicts WHERE status = 'open' AND ves.tenant_visible(tenant_id);

CREATE TYPE ves.upsert_result AS (
  outcome          text,    -- applied, duplicate, conflict or resolved
  version          bigint,  -- the entity's version after the call
  conflict_id      uuid,
  event_id         uuid,    -- the event that changed the state, if any
  original_outcome text     -- for a duplicate, what the first call did; else the outcome
);

-- A repeat of a keyed call: the first call's result, outcome 'duplicate'.
CREATE FUNCTION ves._upsert_duplicate(cached jsonb) RETURNS ves.upsert_result
  LANGUAGE sql IMMUTABLE AS $$
  SELECT ('duplicate', (cached ->> 'version')::bigint, (cached ->> 'conflict_id')::uuid,
          (cached ->> 'event_id')::uuid, cached ->> 'outcome')::ves.upsert_result
$$;

-- The state an entity had at a version, read back from its event stream.
-- (plpgsql, not sql: a sql function with its own search_path is neither
-- inlined nor allowed to keep its plan, and planning over every partition
-- of ves.events costs far more than the lookup.)
CREATE FUNCTION ves._state_at(tenant_id uuid, entity_type text, entity_id text, version bigint) RETURNS jsonb
  LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN coalesce((
    SELECT e.payload -> 'state' FROM ves.events e
    WHERE e.tenant_id = _state_at.tenant_id AND e.entity_type = _state_at.entity_type
      AND e.entity_id = _state_at.entity_id AND e.entity_version <= _state_at.version
      AND e.event_type IN (_state_at.entity_type || '.created', _state_at.entity_type || '.updated',
                           _state_at.entity_type || '.deleted')
    ORDER BY e.entity_version DESC LIMIT 1), '{}');
END $$;

-- Records what a source reported: the base of its next change that names no
-- base version, and its latest observed_at.
CREATE FUNCTION ves._source_seen(seen jsonb, source text, reported jsonb, observed_at timestamptz) RETURNS jsonb
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  prior timestamptz := (seen -> source ->> 'observed_at')::timestamptz;
BEGIN
  RETURN seen || jsonb_build_object(source, jsonb_build_object('state', reported,
    'observed_at', CASE WHEN prior > observed_at THEN prior ELSE observed_at END));
END $$;

-- Opens a conflict for review: the row, a sync.conflict_detected event on
-- the conflict's own stream and a NOTIFY ves_conflicts (payload: the id).
CREATE FUNCTION ves._open_conflict(c ves.conflicts) RETURNS uuid
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE r ves.append_result;
BEGIN
  c.conflict_id := coalesce(c.conflict_id, gen_random_uuid());
  c.status := 'open';
  SELECT * INTO r FROM ves.append(c.tenant_id, c.store_id, 'sync.conflict', c.conflict_id::text,
    'sync.conflict_detected',
    jsonb_build_object('conflict_id', c.conflict_id, 'conflict_type', c.conflict_type, 'rule', c.rule,
                       'entity_type', c.entity_type, 'entity_id', c.entity_id, 'fields', to_jsonb(c.fields),
                       'local', c.local_state, 'remote', c.remote_state, 'base', c.base_state,
                       'remote_source', c.remote_source, 'detail', c.detail),
    expected_version => 0, source => c.remote_source);
  c.event_id := r.event_id;
  INSERT INTO ves.conflicts SELECT c.*;
  PERFORM pg_notify('ves_conflicts', c.conflict_id::text);
  RETURN c.conflict_id;
END $$;

CREATE FUNCTION ves.upsert(
  tenant_id       uuid,
  store_id        uuid,
  entity_type     text,
  entity_id       text,
  state           jsonb,
  base_version    bigint      DEFAULT NULL,
  source          text        DEFAULT 'manual',
  idempotency_key text        DEFAULT NULL,
  observed_at     timestamptz DEFAULT now()
) RETURNS ves.upsert_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  request      jsonb := jsonb_build_array(store_id, entity_type, entity_id, state, base_version, source);
  cached       jsonb;
  policy       jsonb;
  cur          ves.entity_state;
  found_entity boolean;
  ref          record;
  ref_deleted  boolean := false;
  ref_detail   jsonb := '{}';
  base_state   jsonb := '{}';
  d            jsonb;
  new_state    jsonb;
  res          ves.upsert_result;
  ar           ves.append_result;
  c            ves.conflicts;
  etype        text;
BEGIN
  PERFORM ves._check_entity(tenant_id, store_id, entity_type, entity_id, source);
  IF state IS NULL OR jsonb_typeof(state) <> 'object' THEN
    RAISE EXCEPTION 'state must be a JSON object' USING ERRCODE = 'VE004',
      HINT = 'Pass the entity''s whole state, e.g. {"title": "Mug", "price": 12.5}.';
  END IF;
  IF observed_at IS NULL THEN
    RAISE EXCEPTION 'observed_at must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Pass when the source saw this state, or leave the default now().';
  END IF;
  IF base_version IS NOT NULL AND base_version < 0 THEN
    RAISE EXCEPTION 'base_version must be 0 or more' USING ERRCODE = 'VE010',
      HINT = 'Pass the version the state was read at, or NULL.';
  END IF;

  cached := ves._idempotency_begin(tenant_id, idempotency_key, 'upsert', request);
  IF cached IS NOT NULL THEN
    RETURN ves._upsert_duplicate(cached);
  END IF;

  -- One writer per entity at a time; the row lock alone would not cover an
  -- entity that does not exist yet.
  PERFORM pg_advisory_xact_lock(hashtextextended(tenant_id::text || '/' || entity_type || '/' || entity_id, 11));
  SELECT * INTO cur FROM ves.entity_state s
  WHERE s.tenant_id = upsert.tenant_id AND s.entity_type = upsert.entity_type AND s.entity_id = upsert.entity_id
  FOR UPDATE;
  found_entity := FOUND;
  IF base_version > coalesce(cur.version, 0) THEN
    RAISE EXCEPTION 'base_version % of % "%" is ahead of the entity, which is at %', base_version, entity_type,
      entity_id, coalesce(cur.version, 0)
      USING ERRCODE = 'VE001', DETAIL = format('current_version=%s', coalesce(cur.version, 0)),
            HINT = 'Pass the version the state was read at (0 for an entity that does not exist yet), or NULL.';
  END IF;

  SELECT x.policy INTO policy FROM ves.conflict_policies x
  WHERE x.tenant_id = upsert.tenant_id AND x.entity_type IN (upsert.entity_type, '*')
  ORDER BY x.entity_type = '*' LIMIT 1;
  policy := coalesce(policy, '{}');  -- _decide fills in the defaults
  IF policy -> 'references' <> '{}' THEN
    FOR ref IN SELECT r.key AS field, r.value #>> '{}' AS ref_type FROM jsonb_each(policy -> 'references') r
               WHERE jsonb_typeof(upsert.state -> r.key) IN ('string', 'number') LOOP
      IF EXISTS (SELECT 1 FROM ves.entity_state s WHERE s.tenant_id = upsert.tenant_id
                 AND s.entity_type = ref.ref_type AND s.entity_id = upsert.state ->> ref.field AND s.deleted) THEN
        ref_deleted := true;
        ref_detail := ref_detail || jsonb_build_object(ref.field, jsonb_build_object('entity_type', ref.ref_type,
                                                                                     'entity_id', state ->> ref.field));
      END IF;
    END LOOP;
  END IF;

  -- The base: the state at the version the caller names, or else what this
  -- source reported last ({} if it never did), so a platform that has not
  -- seen our changes does not undo them.
  IF found_entity THEN
    base_state := CASE WHEN base_version IS NULL THEN coalesce(cur.source_seen -> source -> 'state', '{}')
                       WHEN base_version = cur.version THEN cur.state
                       WHEN base_version = 0 THEN '{}'::jsonb
                       ELSE ves._state_at(tenant_id, entity_type, entity_id, base_version) END;
  END IF;

  d := ves._decide(policy, base_state, coalesce(cur.state, '{}'), state, found_entity, coalesce(cur.deleted, false),
                   ref_deleted, base_version, coalesce(cur.version, 0),
                   CASE WHEN base_version IS NULL AND base_state = cur.state THEN cur.version ELSE 0 END,
                   (cur.source_seen -> source ->> 'observed_at')::timestamptz,
                   cur.last_source, cur.last_observed_at, source, observed_at, cur.field_stamps);
  new_state := d -> 'state';
  res.outcome := d ->> 'outcome';
  res.version := coalesce(cur.version, 0);

  IF d ->> 'type' IS NOT NULL THEN
    c.tenant_id := tenant_id; c.store_id := store_id; c.entity_type := entity_type; c.entity_id := entity_id;
    c.conflict_type := d ->> 'type'; c.rule := d ->> 'rule';
    c.fields := ARRAY(SELECT jsonb_array_elements_text(d -> 'fields'));
    c.base_version := base_version; c.local_version := cur.version;
    c.base_state := base_state; c.local_state := cur.state; c.remote_state := state;
    c.proposed_state := new_state;
    c.local_source := cur.last_source; c.remote_source := source;
    c.local_observed_at := cur.last_observed_at; c.remote_observed_at := observed_at;
    c.detail := CASE WHEN ref_deleted THEN jsonb_build_object('deleted_references', ref_detail)
                     WHEN cur.deleted THEN '{"entity_deleted": true}'::jsonb ELSE '{}'::jsonb END;
    c.detected_at := now();
  END IF;

  IF res.outcome = 'conflict' THEN
    res.conflict_id := ves._open_conflict(c);
  ELSE
    IF res.outcome = 'resolved' THEN
      c.conflict_id := gen_random_uuid(); c.status := 'resolved';
      c.strategy := d ->> 'rule'; c.resolved_state := new_state; c.resolved_at := now(); c.resolved_by := session_user;
      INSERT INTO ves.conflicts SELECT c.*;
      res.conflict_id := c.conflict_id;
    END IF;
    IF (d ->> 'changed')::boolean OR NOT found_entity THEN
      etype := entity_type || CASE WHEN NOT found_entity OR cur.deleted THEN '.created' ELSE '.updated' END;
      SELECT * INTO ar FROM ves.append(tenant_id, store_id, entity_type, entity_id, etype,
        jsonb_build_object('state', new_state, 'source', source, 'observed_at', observed_at,
                           'base_version', base_version),
        metadata => CASE WHEN res.conflict_id IS NULL THEN '{}'::jsonb
                         ELSE jsonb_build_object('conflict_id', res.conflict_id, 'rule', d ->> 'rule') END,
        source => source);
      res.version := ar.entity_version;
      res.event_id := ar.event_id;
      INSERT INTO ves.entity_state AS s (tenant_id, store_id, entity_type, entity_id, state, version, deleted,
                                         last_source, last_observed_at, source_seen, field_stamps)
      VALUES (tenant_id, store_id, entity_type, entity_id, new_state, ar.entity_version, false, source, observed_at,
              ves._source_seen('{}', source, upsert.state, observed_at), d -> 'stamps')
      ON CONFLICT ON CONSTRAINT entity_state_pkey DO UPDATE
        SET state = excluded.state, version = excluded.version, deleted = false, store_id = excluded.store_id,
            field_stamps = excluded.field_stamps,
            last_source = excluded.last_source, last_observed_at = excluded.last_observed_at,
            source_seen = ves._source_seen(s.source_seen, source, upsert.state, observed_at),
            updated_at = now();
    ELSIF d ->> 'rule' <> 'stale_observation' THEN
      UPDATE ves.entity_state s SET source_seen = ves._source_seen(s.source_seen, source, upsert.state, observed_at),
        field_stamps = d -> 'stamps'
      WHERE s.tenant_id = upsert.tenant_id AND s.entity_type = upsert.entity_type AND s.entity_id = upsert.entity_id;
    END IF;
  END IF;

  res.original_outcome := res.outcome;
  PERFORM ves._idempotency_finish(tenant_id, idempotency_key, 'upsert', request, to_jsonb(res));
  RETURN res;
END $$;

-- Marks an entity deleted (event <entity_type>.deleted). A later upsert of it,
-- or of an entity that references it (policy "references"), is a
-- deleted_reference conflict.
CREATE FUNCTION ves.delete_entity(
  tenant_id       uuid,
  store_id        uuid,
  entity_type     text,
  entity_id       text,
  base_version    bigint      DEFAULT NULL,
  source          text        DEFAULT 'manual',
  idempotency_key text        DEFAULT NULL,
  observed_at     timestamptz DEFAULT now()
) RETURNS ves.upsert_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  request      jsonb := jsonb_build_array(store_id, entity_type, entity_id, base_version, source);
  cached       jsonb;
  cur          ves.entity_state;
  ar           ves.append_result;
  res          ves.upsert_result;
BEGIN
  PERFORM ves._check_entity(tenant_id, store_id, entity_type, entity_id, source);
  cached := ves._idempotency_begin(tenant_id, idempotency_key, 'delete_entity', request);
  IF cached IS NOT NULL THEN
    RETURN ves._upsert_duplicate(cached);
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended(tenant_id::text || '/' || entity_type || '/' || entity_id, 11));
  SELECT * INTO cur FROM ves.entity_state s
  WHERE s.tenant_id = delete_entity.tenant_id AND s.entity_type = delete_entity.entity_type
    AND s.entity_id = delete_entity.entity_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION '% "%" has no state to delete', entity_type, entity_id USING ERRCODE = 'VE012',
      HINT = 'Only entities written with ves.upsert can be deleted with ves.delete_entity.';
  END IF;
  IF base_version IS NOT NULL AND base_version <> cur.version THEN
    RAISE EXCEPTION 'wrong base version for % "%": % was given, the entity is at %', entity_type, entity_id,
      base_version, cur.version USING ERRCODE = 'VE001', DETAIL = format('current_version=%s', cur.version),
      HINT = 'Read the entity again and decide whether it should still be deleted.';
  END IF;
  res.outcome := 'applied';
  IF cur.deleted THEN
    res.version := cur.version;
  ELSE
    SELECT * INTO ar FROM ves.append(tenant_id, store_id, entity_type, entity_id, entity_type || '.deleted',
      jsonb_build_object('state', cur.state, 'deleted', true, 'source', source, 'observed_at', observed_at),
      source => source);
    UPDATE ves.entity_state s SET deleted = true, version = ar.entity_version, last_source = source,
      last_observed_at = observed_at, updated_at = now()
    WHERE s.tenant_id = delete_entity.tenant_id AND s.entity_type = delete_entity.entity_type
      AND s.entity_id = delete_entity.entity_id;
    res.version := ar.entity_version;
    res.event_id := ar.event_id;
  END IF;
  res.original_outcome := res.outcome;
  PERFORM ves._idempotency_finish(tenant_id, idempotency_key, 'delete_entity', request, to_jsonb(res));
  RETURN res;
END $$;

-- The current state of an entity (NULL when it has none or was deleted).
CREATE FUNCTION ves.get_state(tenant_id uuid, entity_type text, entity_id text) RETURNS jsonb
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM ves.check_tenant(tenant_id);
  RETURN (SELECT s.state FROM ves.entity_state s WHERE s.tenant_id = get_state.tenant_id
          AND s.entity_type = get_state.entity_type AND s.entity_id = get_state.entity_id AND NOT s.deleted);
END $$;

-- Resolves an open conflict. accept_local keeps the entity as it is now;
-- accept_remote applies the incoming side's changes (relative to the base)
-- on top of the entity as it is now; last_write_wins does whichever of the
-- two was observed later; merge stores `merged` (a whole state; it may be
-- omitted when no field conflicts). Inventory conflicts are resolved by
-- ves._resolve_stock_conflict. Emits sync.conflict_resolved on the
-- conflict's stream and, when the entity changes, <type>.updated.
CREATE FUNCTION ves.resolve_conflict(conflict_id uuid, strategy text, merged jsonb DEFAULT NULL)
  RETURNS ves.upsert_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c        ves.conflicts;
  cur      ves.entity_state;
  target   jsonb;
  ar       ves.append_result;
  res      ves.upsert_result;
  chosen   text := strategy;
BEGIN
  IF conflict_id IS NULL OR strategy IS NULL THEN
    RAISE EXCEPTION 'conflict_id and strategy must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Strategies: accept_local, accept_remote, merge (with a merged state) or last_write_wins.';
  END IF;
  IF strategy NOT IN ('accept_local', 'accept_remote', 'merge', 'last_write_wins') THEN
    RAISE EXCEPTION 'a conflict cannot be resolved with strategy "%"', strategy USING ERRCODE = 'VE010',
      HINT = 'Strategies: accept_local, accept_remote, merge (with a merged state) or last_write_wins.';
  END IF;
  IF merged IS NOT NULL AND (strategy <> 'merge' OR jsonb_typeof(merged) <> 'object') THEN
    RAISE EXCEPTION 'a merged state is only taken with strategy merge, and must be a JSON object'
      USING ERRCODE = 'VE010', HINT = 'Pass merged => ''{...}'' together with strategy ''merge''.';
  END IF;
  SELECT * INTO c FROM ves.conflicts x WHERE x.conflict_id = resolve_conflict.conflict_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'conflict % does not exist', conflict_id USING ERRCODE = 'VE012',
      HINT = 'See ves.open_conflicts for the conflicts waiting for a decision.';
  END IF;
  PERFORM ves.check_tenant(c.tenant_id);
  IF c.status <> 'open' THEN
    RAISE EXCEPTION 'conflict % is already resolved', conflict_id USING ERRCODE = 'VE030',
      DETAIL = format('resolved with %s by %s at %s', c.strategy, c.resolved_by, c.resolved_at),
      HINT = 'A conflict is resolved once; to change the entity again use ves.upsert.';
  END IF;
  IF strategy = 'merge' AND merged IS NULL AND cardinality(c.fields) > 0 THEN
    RAISE EXCEPTION 'conflict % has fields changed on both sides (%); merge needs the merged state', conflict_id,
      array_to_string(c.fields, ', ') USING ERRCODE = 'VE011',
      HINT = 'Pass merged => the whole state to keep; proposed_state in ves.open_conflicts is a starting point.';
  END IF;
  IF strategy = 'last_write_wins' THEN
    chosen := CASE WHEN c.remote_observed_at > coalesce(c.local_observed_at, '-infinity') THEN 'accept_remote'
                   ELSE 'accept_local' END;
  END IF;

  IF c.entity_type = 'inventory' AND c.detail ? 'sku' THEN
    res := ves._resolve_stock_conflict(c, chosen, merged);
    c.resolved_state := CASE chosen WHEN 'accept_local' THEN c.local_state WHEN 'accept_remote' THEN c.remote_state
                                    ELSE coalesce(merged, c.proposed_state) END;
  ELSE
    PERFORM pg_advisory_xact_lock(hashtextextended(c.tenant_id::text || '/' || c.entity_type || '/' || c.entity_id, 11));
    SELECT * INTO cur FROM ves.entity_state s WHERE s.tenant_id = c.tenant_id AND s.entity_type = c.entity_type
      AND s.entity_id = c.entity_id FOR UPDATE;
    target := CASE chosen
      WHEN 'accept_local' THEN NULL
      WHEN 'merge' THEN coalesce(merged, c.proposed_state)
      ELSE CASE WHEN cur.state IS NULL OR cur.deleted THEN c.remote_state
                ELSE ves._pick(ves._apply_changes(cur.state, c.base_state, c.remote_state), cur.state, c.remote_state)
           END
    END;
    res.version := cur.version;
    IF target IS NOT NULL AND (cur.state IS NULL OR cur.deleted OR target IS DISTINCT FROM cur.state) THEN
      SELECT * INTO ar FROM ves.append(c.tenant_id, c.store_id, c.entity_type, c.entity_id,
        c.entity_type || CASE WHEN cur.state IS NULL OR cur.deleted THEN '.created' ELSE '.updated' END,
        jsonb_build_object('state', target, 'source', c.remote_source, 'observed_at', c.remote_observed_at),
        metadata => jsonb_build_object('conflict_id', c.conflict_id, 'resolution', strategy),
        source => c.remote_source);
      INSERT INTO ves.entity_state AS s (tenant_id, store_id, entity_type, entity_id, state, version, deleted,
                                         last_source, last_observed_at, source_seen, field_stamps)
      VALUES (c.tenant_id, c.store_id, c.entity_type, c.entity_id, target, ar.entity_version, false, c.remote_source,
              c.remote_observed_at, ves._source_seen('{}', c.remote_source, c.remote_state, c.remote_observed_at),
              ves._restamp(cur.field_stamps, CASE WHEN cur.deleted THEN '{}' ELSE cur.state END, target,
                           c.remote_source, c.remote_observed_at, ves.get_conflict_policy(c.tenant_id, c.entity_type)))
      ON CONFLICT ON CONSTRAINT entity_state_pkey DO UPDATE
        SET state = excluded.state, version = excluded.version, deleted = false, updated_at = now(),
            field_stamps = excluded.field_stamps,
            last_source = excluded.last_source, last_observed_at = excluded.last_observed_at,
            source_seen = ves._source_seen(s.source_seen, c.remote_source, c.remote_state, c.remote_observed_at);
      res.version := ar.entity_version;
      res.event_id := ar.event_id;
    END IF;
    c.resolved_state := coalesce(target, cur.state);
  END IF;

  SELECT * INTO ar FROM ves.append(c.tenant_id, c.store_id, 'sync.conflict', c.conflict_id::text,
    'sync.conflict_resolved',
    jsonb_build_object('conflict_id', c.conflict_id, 'strategy', strategy, 'entity_type', c.entity_type,
                       'entity_id', c.entity_id, 'version', res.version, 'resolved_by', session_user),
    source => 'manual');
  UPDATE ves.conflicts x SET status = 'resolved', strategy = resolve_conflict.strategy,
    resolved_state = c.resolved_state, resolved_at = now(),
    resolved_by = session_user, resolution_event_id = ar.event_id
  WHERE x.conflict_id = resolve_conflict.conflict_id;
  res.outcome := 'resolved';
  res.conflict_id := conflict_id;
  res.original_outcome := 'resolved';
  RETURN res;
END $$;
-- Inventory: on hand, reserved and available per (tenant, store, sku,
-- location). Available never goes below zero: reservations are taken by one
-- conditional UPDATE, so two sessions racing for the last unit cannot both
-- win, and a CHECK constraint backs that up. Every change is a signed event
-- on the SKU's stream (entity_type 'inventory', entity_id = sku):
-- inventory.stock_updated, inventory.reserved, inventory.released and, once
-- per crossing of the SKU's threshold, inventory.low_stock_alert.

CREATE TABLE ves.inventory (
  tenant_id           uuid        NOT NULL,
  store_id            uuid        NOT NULL,
  sku                 text        NOT NULL CHECK (octet_length(sku) BETWEEN 1 AND 256),
  location            text        NOT NULL DEFAULT 'default' CHECK (octet_length(location) BETWEEN 1 AND 128),
  on_hand             bigint      NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
  reserved            bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  available           bigint      GENERATED ALWAYS AS (on_hand - reserved) STORED,
  low_stock_threshold bigint      CHECK (low_stock_threshold >= 0),
  low_stock_alerted   boolean     NOT NULL DEFAULT false,
  version             bigint      NOT NULL DEFAULT 0,   -- changes to this row
  last_source         text,
  last_observed_at    timestamptz,
  -- Per platform source: the count it last reported (the base of the next
  -- three-way decision), the row version at which we agreed, its latest observed_at.
  source_seen         jsonb       NOT NULL DEFAULT '{}',
  updated_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, store_id, sku, location),
  CONSTRAINT inventory_never_oversold CHECK (reserved <= on_hand)
) WITH (fillfactor = 70);
SELECT pg_catalog.pg_extension_config_dump('ves.inventory', '');

CREATE TABLE ves.reservations (
  tenant_id      uuid        NOT NULL,
  reservation_id text        NOT NULL CHECK (octet_length(reservation_id) BETWEEN 1 AND 256),
  store_id       uuid        NOT NULL,
  sku            text        NOT NULL,
  location       text        NOT NULL,
  quantity       bigint      NOT NULL CHECK (quantity > 0),
  order_id       text,
  status         text        NOT NULL CHECK (status IN ('held', 'released', 'committed')),
  created_at     timestamptz NOT NULL DEFAULT now(),
  closed_at      timestamptz,
  PRIMARY KEY (tenant_id, reservation_id)
) WITH (fillfactor = 80);
CREATE INDEX reservations_held ON ves.reservations (tenant_id, store_id, sku, location) WHERE status = 'held';
SELECT pg_catalog.pg_extension_config_dump('ves.reservations', '');

CREATE TYPE ves.stock_result AS (
  sku            text,
  location       text,
  on_hand        bigint,
  reserved       bigint,
  available      bigint,
  outcome        text,     -- applied, duplicate, conflict or resolved
  conflict_id    uuid,
  event_id       uuid,
  reservation_id text
);

CREATE FUNCTION ves._stock_result(inv ves.inventory, outcome text, conflict_id uuid, event_id uuid,
                                  reservation_id text DEFAULT NULL) RETURNS ves.stock_result
  LANGUAGE sql IMMUTABLE AS $$
  SELECT (inv.sku, inv.location, inv.on_hand, inv.reserved, inv.on_hand - inv.reserved, outcome, conflict_id,
          event_id, reservation_id)::ves.stock_result
$$;

-- A repeat of a keyed call: the first call's result, outcome 'duplicate'.
CREATE FUNCTION ves._stock_duplicate(cached jsonb) RETURNS ves.stock_result
  LANGUAGE sql IMMUTABLE AS $$
  SELECT (r.sku, r.location, r.on_hand, r.reserved, r.available, 'duplicate', r.conflict_id, r.event_id,
          r.reservation_id)::ves.stock_result
  FROM jsonb_populate_record(NULL::ves.stock_result, cached) r
$$;

CREATE FUNCTION ves._check_stock_args(tenant_id uuid, store_id uuid, sku text, location text, source text)
  RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM ves._check_entity(tenant_id, store_id, 'inventory', sku, source);
  IF location IS NULL OR octet_length(location) NOT BETWEEN 1 AND 128 THEN
    RAISE EXCEPTION 'location must be 1 to 128 bytes' USING ERRCODE = 'VE006',
      HINT = 'Leave the default ''default'' when the store has one location.';
  END IF;
END $$;

-- The row, created empty when missing, locked for the rest of the transaction.
CREATE FUNCTION ves._lock_stock(tenant_id uuid, store_id uuid, sku text, location text) RETURNS ves.inventory
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE inv ves.inventory;
BEGIN
  SELECT * INTO inv FROM ves.inventory i WHERE i.tenant_id = _lock_stock.tenant_id AND i.store_id = _lock_stock.store_id
    AND i.sku = _lock_stock.sku AND i.location = _lock_stock.location FOR UPDATE;
  IF FOUND THEN RETURN inv; END IF;
  INSERT INTO ves.inventory (tenant_id, store_id, sku, location) VALUES (tenant_id, store_id, sku, location)
  ON CONFLICT DO NOTHING;
  SELECT * INTO inv FROM ves.inventory i WHERE i.tenant_id = _lock_stock.tenant_id AND i.store_id = _lock_stock.store_id
    AND i.sku = _lock_stock.sku AND i.location = _lock_stock.location FOR UPDATE;
  RETURN inv;
END $$;

-- Appends a stock event for the row as it is now, then raises or re-arms the
-- low-stock alert. Returns the event id.
CREATE FUNCTION ves._stock_event(inv ves.inventory, event_type text, extra jsonb, source text) RETURNS uuid
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE ar ves.append_result;
BEGIN
  SELECT * INTO ar FROM ves.append(inv.tenant_id, inv.store_id, 'inventory', inv.sku, event_type,
    jsonb_build_object('sku', inv.sku, 'location', inv.location, 'on_hand', inv.on_hand, 'reserved', inv.reserved,
                       'available', inv.on_hand - inv.reserved) || extra,
    source => source);
  PERFORM ves._low_stock_check(inv, source);
  RETURN ar.event_id;
END $$;

CREATE FUNCTION ves._low_stock_check(inv ves.inventory, source text) RETURNS void
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE available bigint := inv.on_hand - inv.reserved;
BEGIN
  IF inv.low_stock_threshold IS NULL THEN RETURN; END IF;
  IF available <= inv.low_stock_threshold AND NOT inv.low_stock_alerted THEN
    PERFORM ves.append(inv.tenant_id, inv.store_id, 'inventory', inv.sku, 'inventory.low_stock_alert',
      jsonb_build_object('sku', inv.sku, 'location', inv.location, 'available', available,
                         'threshold', inv.low_stock_threshold, 'on_hand', inv.on_hand, 'reserved', inv.reserved),
      source => source);
    UPDATE ves.inventory i SET low_stock_alerted = true
    WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location);
  ELSIF available > inv.low_stock_threshold AND inv.low_stock_alerted THEN
    UPDATE ves.inventory i SET low_stock_alerted = false
    WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location);
  END IF;
END $$;

-- Stores a new on-hand count for a locked row and returns the row.
CREATE FUNCTION ves._store_on_hand(inv ves.inventory, on_hand bigint, source text, observed_at timestamptz,
                                   seen jsonb) RETURNS ves.inventory
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE out_row ves.inventory;
BEGIN
  UPDATE ves.inventory i SET on_hand = _store_on_hand.on_hand, version = i.version + 1, last_source = source,
    last_observed_at = observed_at, source_seen = coalesce(seen, i.source_seen), updated_at = now()
  WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location)
  RETURNING * INTO out_row;
  RETURN out_row;
END $$;

-- A new on-hand count below what is reserved: reservations win (the count
-- stops at the reserved quantity and the conflict is recorded as resolved),
-- or, when the tenant's inventory policy says reservations_win = false, the
-- change waits for a person.
CREATE FUNCTION ves._reservation_conflict(inv ves.inventory, wanted bigint, policy jsonb, source text,
                                          observed_at timestamptz, reason text, OUT on_hand bigint, OUT conflict_id uuid,
                                          OUT opened boolean)
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE c ves.conflicts;
BEGIN
  c.tenant_id := inv.tenant_id; c.store_id := inv.store_id; c.entity_type := 'inventory'; c.entity_id := inv.sku;
  c.conflict_type := 'reservation_conflict';
  c.local_state := jsonb_build_object('on_hand', inv.on_hand, 'reserved', inv.reserved);
  c.remote_state := jsonb_build_object('on_hand', wanted);
  c.base_state := jsonb_build_object('on_hand', inv.on_hand);
  c.local_version := inv.version;
  c.fields := ARRAY['on_hand'];
  c.local_source := inv.last_source; c.remote_source := source;
  c.local_observed_at := inv.last_observed_at; c.remote_observed_at := observed_at;
  c.detail := jsonb_build_object('sku', inv.sku, 'location', inv.location, 'reserved', inv.reserved, 'reason', reason);
  c.detected_at := now();
  IF (policy ->> 'reservations_win')::boolean THEN
    c.conflict_id := gen_random_uuid(); c.status := 'resolved'; c.rule := 'reservations_win';
    c.strategy := 'reservations_win'; c.proposed_state := jsonb_build_object('on_hand', inv.reserved);
    c.resolved_state := c.proposed_state; c.resolved_at := now(); c.resolved_by := session_user;
    INSERT INTO ves.conflicts SELECT c.*;
    on_hand := inv.reserved; conflict_id := c.conflict_id; opened := false;
  ELSE
    c.rule := 'manual'; c.proposed_state := c.remote_state;
    conflict_id := ves._open_conflict(c); on_hand := NULL; opened := true;
  END IF;
END $$;

CREATE FUNCTION ves.adjust_stock(
  tenant_id       uuid,
  store_id        uuid,
  sku             text,
  delta           bigint,
  location        text        DEFAULT 'default',
  reason          text        DEFAULT NULL,
  source          text        DEFAULT 'manual',
  idempotency_key text        DEFAULT NULL,
  observed_at     timestamptz DEFAULT now()
) RETURNS ves.stock_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  request jsonb := jsonb_build_array(store_id, sku, location, delta, reason, source);
  cached jsonb;
  inv ves.inventory;
  wanted bigint;
  rc record;
  res ves.stock_result;
BEGIN
  PERFORM ves._check_stock_args(tenant_id, store_id, sku, location, source);
  IF delta IS NULL OR delta = 0 THEN
    RAISE EXCEPTION 'delta must be a non-zero count' USING ERRCODE = 'VE010',
      HINT = 'Pass +n for stock received, -n for stock removed; ves.set_stock sets an absolute count.';
  END IF;
  cached := ves._idempotency_begin(tenant_id, idempotency_key, 'adjust_stock', request);
  IF cached IS NOT NULL THEN
    RETURN ves._stock_duplicate(cached);
  END IF;
  inv := ves._lock_stock(tenant_id, store_id, sku, location);
  wanted := inv.on_hand + delta;
  IF wanted < 0 THEN
    RAISE EXCEPTION 'cannot remove % of "%" at %: only % on hand', -delta, sku, location, inv.on_hand
      USING ERRCODE = 'VE031', DETAIL = format('on_hand=%s reserved=%s', inv.on_hand, inv.reserved),
            HINT = 'Count the stock again and record it with ves.set_stock.';
  END IF;
  res.outcome := 'applied';
  IF wanted < inv.reserved THEN
    rc := ves._reservation_conflict(inv, wanted, ves.get_conflict_policy(tenant_id, 'inventory'), source,
                                    observed_at, coalesce(reason, 'adjustment'));
    res.conflict_id := rc.conflict_id;
    IF rc.opened THEN
      res := ves._stock_result(inv, 'conflict', rc.conflict_id, NULL);
      PERFORM ves._idempotency_finish(tenant_id, idempotency_key, 'adjust_stock', request, to_jsonb(res));
      RETURN res;
    END IF;
    wanted := rc.on_hand;
    res.outcome := 'resolved';
  END IF;
  IF wanted <> inv.on_hand THEN
    inv := ves._store_on_hand(inv, wanted, source, observed_at, NULL);
    res.event_id := ves._stock_event(inv, 'inventory.stock_updated',
      jsonb_strip_nulls(jsonb_build_object('delta', delta, 'reason', reason, 'conflict_id', res.conflict_id)), source);
  END IF;
  res := ves._stock_result(inv, res.outcome, res.conflict_id, res.event_id);
  PERFORM ves._idempotency_finish(tenant_id, idempotency_key, 'adjust_stock', request, to_jsonb(res));
  RETURN res;
END $$;

-- An absolute count reported by a platform (or a stock take). Decided like an
-- upsert of {"on_hand": n}: the base is the count this source reported last,
-- so a platform that has not yet seen our sales does not undo them (stock
-- reductions win, source priority, review window), then checked against the
-- reservations.
CREATE FUNCTION ves.set_stock(
  tenant_id       uuid,
  store_id        uuid,
  sku             text,
  quantity        bigint,
  location        text        DEFAULT 'default',
  source          text        DEFAULT 'manual',
  idempotency_key text        DEFAULT NULL,
  observed_at     timestamptz DEFAULT now()
) RETURNS ves.stock_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  request jsonb := jsonb_build_array(store_id, sku, location, quantity, source);
  cached jsonb;
  inv ves.inventory;
  existed boolean;
  policy jsonb;
  seen jsonb;
  base jsonb;
  d jsonb;
  wanted bigint;
  rc record;
  c ves.conflicts;
  res ves.stock_result;
BEGIN
  PERFORM ves._check_stock_args(tenant_id, store_id, sku, location, source);
  IF quantity IS NULL OR quantity < 0 THEN
    RAISE EXCEPTION 'quantity must be 0 or more' USING ERRCODE = 'VE010',
      HINT = 'Pass the count on hand as the source reports it.';
  END IF;
  IF observed_at IS NULL THEN
    RAISE EXCEPTION 'observed_at must not be NULL' USING ERRCODE = 'VE011', HINT = 'Leave the default now().';
  END IF;
  cached := ves._idempotency_begin(tenant_id, idempotency_key, 'set_stock', request);
  IF cached IS NOT NULL THEN
    RETURN ves._stock_duplicate(cached);
  END IF;
  inv := ves._lock_stock(tenant_id, store_id, sku, location);
  existed := inv.last_source IS NOT NULL;
  policy := ves.get_conflict_policy(tenant_id, 'inventory');
  seen := inv.source_seen -> source;
  base := CASE WHEN seen IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('on_hand', seen -> 'on_hand') END;
  d := ves._decide(policy, base, jsonb_build_object('on_hand', inv.on_hand), jsonb_build_object('on_hand', quantity),
                   existed, false, false, NULL, inv.version, (seen ->> 'version')::bigint,
                   (seen ->> 'observed_at')::timestamptz, inv.last_source, inv.last_observed_at, source, observed_at);
  wanted := (d -> 'state' ->> 'on_hand')::bigint;
  res.outcome := d ->> 'outcome';
  IF d ->> 'rule' = 'stale_observation' THEN
    -- Older than what this source already reported: it changes nothing, not
    -- even the base of the source's next report.
    res := ves._stock_result(inv, 'resolved', NULL, NULL);
    PERFORM ves._idempotency_finish(tenant_id, idempotency_key, 'set_stock', request, to_jsonb(res));
    RETURN res;
  END IF;
  IF d ->> 'type' IS NOT NULL THEN
    c.tenant_id := tenant_id; c.store_id := store_id; c.entity_type := 'inventory'; c.entity_id := sku;
    c.conflict_type := d ->> 'type'; c.rule := d ->> 'rule';
    c.fields := ARRAY(SELECT jsonb_array_elements_text(d -> 'fields'));
    c.base_version := (seen ->> 'version')::bigint; c.local_version := inv.version;
    c.base_state := base; c.local_state := jsonb_build_object('on_hand', inv.on_hand);
    c.remote_state := jsonb_build_object('on_hand', quantity); c.proposed_state := jsonb_build_object('on_hand', wanted);
    c.local_source := inv.last_source; c.remote_source := source;
    c.local_observed_at := inv.last_observed_at; c.remote_observed_at := observed_at;
    c.detail := jsonb_build_object('sku', sku, 'location', location, 'reserved', inv.reserved);
    c.detected_at := now();
    IF res.outcome = 'conflict' THEN
      res := ves._stock_result(inv, 'conflict', ves._open_conflict(c), NULL);
      PERFORM ves._idempotency_finish(tenant_id, idempotency_key, 'set_stock', request, to_jsonb(res));
      RETURN res;
    END IF;
    c.conflict_id := gen_random_uuid(); c.status := 'resolved'; c.strategy := c.rule;
    c.resolved_state := c.proposed_state; c.resolved_at := now(); c.resolved_by := session_user;
    INSERT INTO ves.conflicts SELECT c.*;
    res.conflict_id := c.conflict_id;
  END IF;
  IF wanted < inv.reserved THEN
    rc := ves._reservation_conflict(inv, wanted, policy, source, observed_at, 'set_stock');
    IF rc.opened THEN
      res := ves._stock_result(inv, 'conflict', rc.conflict_id, NULL);
      PERFORM ves._idempotency_finish(tenant_id, idempotency_key, 'set_stock', request, to_jsonb(res));
      RETURN res;
    END IF;
    wanted := rc.on_hand;
    res.outcome := 'resolved';
    res.conflict_id := rc.conflict_id;
  END IF;
  -- What this source reported is the base of its next report; we agree with
  -- it (and skip the merge next time) only when its count is what we store.
  seen := jsonb_build_object('on_hand', quantity,
            'version', CASE WHEN wanted = quantity THEN inv.version + 1 ELSE coalesce((seen ->> 'version')::bigint, 0) END,
            'observed_at', greatest(observed_at, (seen ->> 'observed_at')::timestamptz));
  IF wanted <> inv.on_hand OR NOT existed THEN
    inv := ves._store_on_hand(inv, wanted, source, observed_at, inv.source_seen || jsonb_build_object(source, seen));
    res.event_id := ves._stock_event(inv, 'inventory.stock_updated',
      jsonb_strip_nulls(jsonb_build_object('reported', quantity, 'reason', 'set_stock', 'conflict_id', res.conflict_id)), source);
  ELSE
    UPDATE ves.inventory i SET source_seen = i.source_seen || jsonb_build_object(source,
        seen || jsonb_build_object('version', CASE WHEN wanted = quantity THEN i.version
                                                   ELSE (seen ->> 'version')::bigint END))
    WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location)
    RETURNING * INTO inv;
  END IF;
  res := ves._stock_result(inv, res.outcome, res.conflict_id, res.event_id);
  PERFORM ves._idempotency_finish(tenant_id, idempotency_key, 'set_stock', request, to_jsonb(res));
  RETURN res;
END $$;

-- Holds `quantity` units for an order. Refused with VE031 when fewer are
-- available; never oversells. Repeating a reservation id with the same
-- arguments returns the first result (outcome duplicate).
CREATE FUNCTION ves.reserve_stock(
  tenant_id       uuid,
  store_id        uuid,
  sku             text,
  quantity        bigint,
  reservation_id  text DEFAULT NULL,
  location        text DEFAULT 'default',
  order_id        text DEFAULT NULL,
  source          text DEFAULT 'manual',
  idempotency_key text DEFAULT NULL
) RETURNS ves.stock_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  request jsonb := jsonb_build_array(store_id, sku, location, quantity, reservation_id, order_id, source);
  cached jsonb;
  inv ves.inventory;
  r ves.reservations;
  res ves.stock_result;
  rid text := coalesce(reservation_id, gen_random_uuid()::text);
BEGIN
  PERFORM ves._check_stock_args(tenant_id, store_id, sku, location, source);
  IF quantity IS NULL OR quantity <= 0 THEN
    RAISE EXCEPTION 'quantity must be 1 or more' USING ERRCODE = 'VE010', HINT = 'Reserve a positive number of units.';
  END IF;
  IF octet_length(rid) NOT BETWEEN 1 AND 256 THEN
    RAISE EXCEPTION 'reservation_id must be 1 to 256 bytes' USING ERRCODE = 'VE006',
      HINT = 'Use the order line''s id, or leave it NULL to have one generated.';
  END IF;
  cached := ves._idempotency_begin(tenant_id, idempotency_key, 'reserve_stock', request);
  IF cached IS NOT NULL THEN
    RETURN ves._stock_duplicate(cached);
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended(tenant_id::text || '/reservation/' || rid, 13));
  SELECT * INTO r FROM ves.reservations x WHERE x.tenant_id = reserve_stock.tenant_id AND x.reservation_id = rid;
  IF FOUND THEN
    IF (r.store_id, r.sku, r.location, r.quantity, r.order_id) IS NOT DISTINCT FROM
       (store_id, sku, location, quantity, order_id) THEN
      SELECT * INTO inv FROM ves.inventory i WHERE i.tenant_id = reserve_stock.tenant_id AND i.store_id = r.store_id
        AND i.sku = r.sku AND i.location = r.location;
      RETURN ves._stock_result(inv, 'duplicate', NULL, NULL, rid);
    END IF;
    RAISE EXCEPTION 'reservation "%" already exists for a different request', rid USING ERRCODE = 'VE013',
      DETAIL = format('%s of "%s" at %s, %s', r.quantity, r.sku, r.location, r.status),
      HINT = 'Use a new reservation id.';
  END IF;

  UPDATE ves.inventory i SET reserved = i.reserved + quantity, version = i.version + 1, updated_at = now()
  WHERE i.tenant_id = reserve_stock.tenant_id AND i.store_id = reserve_stock.store_id AND i.sku = reserve_stock.sku
    AND i.location = reserve_stock.location AND i.on_hand - i.reserved >= quantity
  RETURNING * INTO inv;
  IF NOT FOUND THEN
    SELECT * INTO inv FROM ves.inventory i WHERE i.tenant_id = reserve_stock.tenant_id
      AND i.store_id = reserve_stock.store_id AND i.sku = reserve_stock.sku AND i.location = reserve_stock.location;
    RAISE EXCEPTION 'cannot reserve % of "%" at %: only % available', quantity, sku, location,
      coalesce(inv.on_hand - inv.reserved, 0)
      USING ERRCODE = 'VE031',
            DETAIL = format('available=%s on_hand=%s reserved=%s', coalesce(inv.on_hand - inv.reserved, 0),
                            coalesce(inv.on_hand, 0), coalesce(inv.reserved, 0)),
            HINT = 'Reserve fewer units, or back-order; stock is never oversold.';
  END IF;
  INSERT INTO ves.reservations (tenant_id, reservation_id, store_id, sku, location, quantity, order_id, status)
  VALUES (tenant_id, rid, store_id, sku, location, quantity, order_id, 'held');
  res := ves._stock_result(inv, 'applied', NULL,
    ves._stock_event(inv, 'inventory.reserved',
      jsonb_build_object('reservation_id', rid, 'quantity', quantity, 'order_id', order_id), source), rid);
  PERFORM ves._idempotency_finish(tenant_id, idempotency_key, 'reserve_stock', request, to_jsonb(res));
  RETURN res;
END $$;

-- Closes a held reservation: released (the units become available again) or
-- committed (they leave on_hand: the order shipped).
CREATE FUNCTION ves._close_reservation(tenant_id uuid, reservation_id text, new_status text, source text,
                                       reason text) RETURNS ves.stock_result
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r ves.reservations;
  inv ves.inventory;
BEGIN
  IF tenant_id IS NULL OR reservation_id IS NULL THEN
    RAISE EXCEPTION 'tenant_id and reservation_id must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Pass the id that ves.reserve_stock returned.';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  SELECT * INTO r FROM ves.reservations x WHERE x.tenant_id = _close_reservation.tenant_id
    AND x.reservation_id = _close_reservation.reservation_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'reservation "%" does not exist', reservation_id USING ERRCODE = 'VE012',
      HINT = 'Pass the id that ves.reserve_stock returned.';
  END IF;
  IF r.status = new_status THEN
    SELECT * INTO inv FROM ves.inventory i WHERE i.tenant_id = r.tenant_id AND i.store_id = r.store_id
      AND i.sku = r.sku AND i.location = r.location;
    RETURN ves._stock_result(inv, 'duplicate', NULL, NULL, reservation_id);
  END IF;
  IF r.status <> 'held' THEN
    RAISE EXCEPTION 'reservation "%" is already %', reservation_id, r.status USING ERRCODE = 'VE033',
      DETAIL = format('closed at %s', r.closed_at),
      HINT = 'A reservation is released or committed once.';
  END IF;
  UPDATE ves.inventory i SET reserved = i.reserved - r.quantity,
    on_hand = i.on_hand - CASE WHEN new_status = 'committed' THEN r.quantity ELSE 0 END,
    version = i.version + 1, last_source = CASE WHEN new_status = 'committed' THEN source ELSE i.last_source END,
    last_observed_at = CASE WHEN new_status = 'committed' THEN now() ELSE i.last_observed_at END, updated_at = now()
  WHERE i.tenant_id = r.tenant_id AND i.store_id = r.store_id AND i.sku = r.sku AND i.location = r.location
  RETURNING * INTO inv;
  UPDATE ves.reservations x SET status = new_status, closed_at = now()
  WHERE x.tenant_id = r.tenant_id AND x.reservation_id = r.reservation_id;
  RETURN ves._stock_result(inv, 'applied', NULL,
    ves._stock_event(inv, CASE WHEN new_status = 'committed' THEN 'inventory.stock_updated' ELSE 'inventory.released' END,
      jsonb_build_object('reservation_id', r.reservation_id, 'quantity', r.quantity, 'order_id', r.order_id,
                         'reason', coalesce(reason, CASE WHEN new_status = 'committed' THEN 'reservation_committed'
                                                         ELSE 'reservation_released' END))
      || CASE WHEN new_status = 'committed' THEN jsonb_build_object('delta', -r.quantity) ELSE '{}' END,
      source), reservation_id);
END $$;

CREATE FUNCTION ves.release_stock(tenant_id uuid, reservation_id text, reason text DEFAULT NULL,
                                  source text DEFAULT 'manual') RETURNS ves.stock_result
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT ves._close_reservation(tenant_id, reservation_id, 'released', source, reason)
$$;

CREATE FUNCTION ves.commit_reservation(tenant_id uuid, reservation_id text, source text DEFAULT 'manual')
  RETURNS ves.stock_result
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT ves._close_reservation(tenant_id, reservation_id, 'committed', source, NULL)
$$;

-- Sets (or with NULL clears) the low-stock threshold of a SKU at a location.
-- inventory.low_stock_alert is appended when available falls to the
-- threshold or below, once; it re-arms when available rises above it.
CREATE FUNCTION ves.set_low_stock_threshold(tenant_id uuid, store_id uuid, sku text, threshold bigint,
                                            location text DEFAULT 'default') RETURNS ves.stock_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE inv ves.inventory;
BEGIN
  PERFORM ves._check_stock_args(tenant_id, store_id, sku, location, 'manual');
  IF threshold < 0 THEN
    RAISE EXCEPTION 'threshold must be 0 or more' USING ERRCODE = 'VE010', HINT = 'Pass NULL to remove it.';
  END IF;
  inv := ves._lock_stock(tenant_id, store_id, sku, location);
  UPDATE ves.inventory i SET low_stock_threshold = threshold,
    low_stock_alerted = CASE WHEN threshold IS NULL THEN false ELSE i.low_stock_alerted END
  WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location)
  RETURNING * INTO inv;
  PERFORM ves._low_stock_check(inv, 'manual');
  SELECT * INTO inv FROM ves.inventory i
  WHERE (i.tenant_id, i.store_id, i.sku, i.location) = (inv.tenant_id, inv.store_id, inv.sku, inv.location);
  RETURN ves._stock_result(inv, 'applied', NULL, NULL);
END $$;

CREATE FUNCTION ves.get_stock(tenant_id uuid, store_id uuid, sku text, location text DEFAULT 'default')
  RETURNS ves.stock_result
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE inv ves.inventory;
BEGIN
  PERFORM ves.check_tenant(tenant_id);
  SELECT * INTO inv FROM ves.inventory i WHERE i.tenant_id = get_stock.tenant_id AND i.store_id = get_stock.store_id
    AND i.sku = get_stock.sku AND i.location = get_stock.location;
  IF NOT FOUND THEN
    RETURN (sku, location, 0, 0, 0, NULL, NULL, NULL, NULL)::ves.stock_result;
  END IF;
  RETURN ves._stock_result(inv, NULL, NULL, NULL);
END $$;

-- Resolving an inventory conflict (ves.resolve_conflict calls this).
CREATE FUNCTION ves._resolve_stock_conflict(c ves.conflicts, chosen text, merged jsonb) RETURNS ves.upsert_result
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  inv ves.inventory;
  wanted bigint;
  res ves.upsert_result;
BEGIN
  inv := ves._lock_stock(c.tenant_id, c.store_id, c.detail ->> 'sku', c.detail ->> 'location');
  wanted := CASE chosen WHEN 'accept_local' THEN inv.on_hand
                        WHEN 'accept_remote' THEN (c.remote_state ->> 'on_hand')::bigint
                        ELSE (coalesce(merged, c.proposed_state) ->> 'on_hand')::bigint END;
  IF wanted IS NULL OR wanted < 0 THEN
    RAISE EXCEPTION 'the resolved state must carry "on_hand", a count of 0 or more' USING ERRCODE = 'VE004',
      HINT = 'For example merged => ''{"on_hand": 12}''.';
  END IF;
  IF wanted < inv.reserved THEN
    RAISE EXCEPTION 'on_hand % is below the % units reserved for "%"', wanted, inv.reserved, inv.sku
      USING ERRCODE = 'VE031', HINT = 'Release reservations first, or keep at least the reserved count.';
  END IF;
  res.version := inv.version;
  IF wanted <> inv.on_hand THEN
    inv := ves._store_on_hand(inv, wanted, c.remote_source, now(), NULL);
    res.event_id := ves._stock_event(inv, 'inventory.stock_updated',
      jsonb_build_object('reason', 'conflict_resolved', 'conflict_id', c.conflict_id), 'manual');
    res.version := inv.version;
  END IF;
  -- resolved_state of the conflict row is set by the caller from c.
  RETURN res;
END $$;
-- Orders follow their state machine (src/core/order_state.cpp): order.created,
-- order.updated, order.shipped (with a tracking number), order.delivered,
-- order.cancelled, payment.* and return.*. An event the order can never
-- accept is refused (VE032; VE004 for a shipment without tracking number).
-- An event that arrives before its prerequisite is held when it comes from a
-- platform (any source but 'manual') and applied, in arrival order, as soon
-- as the order reaches the state it needs; from 'manual' it is refused, as a
-- person can send the earlier event first.

CREATE FUNCTION ves._order_transition(status text, payment_status text, return_status text, event_type text,
                                      payload jsonb,
                                      OUT verdict text, OUT next_status text, OUT next_payment_status text,
                                      OUT next_return_status text, OUT reason text, OUT bad_payload boolean)
  AS 'MODULE_PATHNAME', 'ves_order_transition' LANGUAGE C IMMUTABLE;

CREATE TABLE ves.orders (
  tenant_id       uuid        NOT NULL,
  store_id        uuid        NOT NULL,
  order_id        text        NOT NULL CHECK (octet_length(order_id) BETWEEN 1 AND 256),
  status          text        NOT NULL,
  payment_status  text        NOT NULL DEFAULT 'none',
  return_status   text        NOT NULL DEFAULT 'none',
  tracking_number text,
  data            jsonb       NOT NULL DEFAULT '{}',  -- order.created / order.updated payloads merged
  version         bigint      NOT NULL,               -- the order stream's version
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, order_id)
) WITH (fillfactor = 80);
SELECT pg_catalog.pg_extension_config_dump('ves.orders', '');

CREATE TABLE ves.held_order_events (
  hold_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id       uuid        NOT NULL,
  store_id        uuid        NOT NULL,
  order_id        text        NOT NULL,
  event_type      text        NOT NULL,
  payload         jsonb       NOT NULL,
  source          text        NOT NULL,
  observed_at     timestamptz NOT NULL,
  status          text        NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'applied', 'rejected', 'expired')),
  reason          text        NOT NULL,   -- why it was held, then why it was rejected
  held_at         timestamptz NOT NULL DEFAULT now(),
  closed_at       timestamptz,
  event_id        uuid                    -- the event once applied
);
CREATE INDEX held_order_events_open ON ves.held_order_events (tenant_id, order_id, hold_id) WHERE status = 'held';
CREATE INDEX held_order_events_age ON ves.held_order_events (held_at) WHERE status = 'held';
SELECT pg_catalog.pg_extension_config_dump('ves.held_order_events', '');

CREATE TYPE ves.order_result AS (
  outcome        text,    -- applied, held or duplicate
  status         text,
  payment_status text,
  return_status  text,
  version        bigint,
  event_id       uuid,
  released       int      -- held events this one let through
);

-- Applies one accepted event: append it, store the order's new state.
CREATE FUNCTION ves._apply_order_event(tenant_id uuid, store_id uuid, order_id text, event_type text, payload jsonb,
                                       source text, observed_at timestamptz, t record) RETURNS ves.append_result
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE ar ves.append_result;
BEGIN
  SELECT * INTO ar FROM ves.append(tenant_id, store_id, 'order', order_id, event_type, payload,
    metadata => jsonb_build_object('observed_at', observed_at), source => source);
  INSERT INTO ves.orders AS o (tenant_id, store_id, order_id, status, payment_status, return_status, tracking_number,
                               data, version)
  VALUES (tenant_id, store_id, order_id, t.next_status, t.next_payment_status, t.next_return_status,
          payload ->> 'tracking_number', CASE WHEN event_type = 'order.created' THEN payload ELSE '{}' END,
          ar.entity_version)
  ON CONFLICT ON CONSTRAINT orders_pkey DO UPDATE SET
    status = excluded.status, payment_status = excluded.payment_status, return_status = excluded.return_status,
    tracking_number = coalesce(excluded.tracking_number, o.tracking_number),
    data = CASE WHEN event_type IN ('order.created', 'order.updated') THEN o.data || payload ELSE o.data END,
    version = excluded.version, updated_at = now();
  RETURN ar;
END $$;

CREATE FUNCTION ves.record_order_event(
  tenant_id       uuid,
  store_id        uuid,
  order_id        text,
  event_type      text,
  payload         jsonb       DEFAULT '{}',
  source          text        DEFAULT 'manual',
  idempotency_key text        DEFAULT NULL,
  observed_at     timestamptz DEFAULT now()
) RETURNS ves.order_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  request jsonb := jsonb_build_array(store_id, order_id, event_type, payload, source);
  cached jsonb;
  o ves.orders;
  t record;
  ar ves.append_result;
  h ves.held_order_events;
  progress boolean;
  res ves.order_result;
BEGIN
  PERFORM ves._check_entity(tenant_id, store_id, 'order', order_id, source);
  IF event_type IS NULL THEN
    RAISE EXCEPTION 'event_type must not be NULL' USING ERRCODE = 'VE011', HINT = 'For example ''order.shipped''.';
  END IF;
  IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
    RAISE EXCEPTION 'payload must be a JSON object' USING ERRCODE = 'VE004', HINT = 'Pass ''{}'' when there is nothing to say.';
  END IF;
  cached := ves._idempotency_begin(tenant_id, idempotency_key, 'record_order_event', request);
  IF cached IS NOT NULL THEN
    res := jsonb_populate_record(NULL::ves.order_result, cached);
    res.outcome := 'duplicate';
    RETURN res;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended(tenant_id::text || '/order/' || order_id, 17));
  SELECT * INTO o FROM ves.orders x WHERE x.tenant_id = record_order_event.tenant_id
    AND x.order_id = record_order_event.order_id FOR UPDATE;
  t := ves._order_transition(coalesce(o.status, 'none'), coalesce(o.payment_status, 'none'),
                             coalesce(o.return_status, 'none'), event_type, payload);
  IF t.verdict = 'reject' OR (t.verdict = 'hold' AND source = 'manual') THEN
    IF t.bad_payload THEN
      RAISE EXCEPTION '%', t.reason USING ERRCODE = 'VE004',
        HINT = 'Send order.shipped with {"tracking_number": "..."} in its payload.';
    END IF;
    RAISE EXCEPTION '% refused for order "%": %', event_type, order_id, t.reason USING ERRCODE = 'VE032',
      DETAIL = format('status=%s payment_status=%s return_status=%s', coalesce(o.status, 'none'),
                      coalesce(o.payment_status, 'none'), coalesce(o.return_status, 'none')),
      HINT = CASE WHEN t.verdict = 'hold' THEN 'Record the earlier event first; events from platforms are held until then.'
                  ELSE 'The order''s state machine does not allow this event now.' END;
  END IF;

  IF t.verdict = 'hold' THEN
    INSERT INTO ves.held_order_events (tenant_id, store_id, order_id, event_type, payload, source, observed_at, reason)
    VALUES (tenant_id, store_id, order_id, event_type, payload, source, observed_at, t.reason);
    res := ('held', coalesce(o.status, 'none'), coalesce(o.payment_status, 'none'), coalesce(o.return_status, 'none'),
            coalesce(o.version, 0), NULL, 0)::ves.order_result;
  ELSE
    ar := ves._apply_order_event(tenant_id, store_id, order_id, event_type, payload, source, observed_at, t);
    res.outcome := 'applied';
    res.event_id := ar.event_id;
    res.released := 0;
    -- Held events that this one lets through, in the order they arrived.
    LOOP
      progress := false;
      FOR h IN SELECT * FROM ves.held_order_events x WHERE x.tenant_id = record_order_event.tenant_id
                 AND x.order_id = record_order_event.order_id AND x.status = 'held' ORDER BY x.hold_id LOOP
        SELECT * INTO o FROM ves.orders x WHERE x.tenant_id = record_order_event.tenant_id
          AND x.order_id = record_order_event.order_id;
        t := ves._order_transition(o.status, o.payment_status, o.return_status, h.event_type, h.payload);
        CONTINUE WHEN t.verdict = 'hold';
        IF t.verdict = 'apply' THEN
          ar := ves._apply_order_event(h.tenant_id, h.store_id, h.order_id, h.event_type, h.payload, h.source,
                                       h.observed_at, t);
          UPDATE ves.held_order_events x SET status = 'applied', closed_at = now(), event_id = ar.event_id
          WHERE x.hold_id = h.hold_id;
          res.released := res.released + 1;
        ELSE
          UPDATE ves.held_order_events x SET status = 'rejected', closed_at = now(), reason = t.reason
          WHERE x.hold_id = h.hold_id;
        END IF;
        progress := true;
      END LOOP;
      EXIT WHEN NOT progress;
    END LOOP;
    SELECT * INTO o FROM ves.orders x WHERE x.tenant_id = record_order_event.tenant_id
      AND x.order_id = record_order_event.order_id;
    res.status := o.status; res.payment_status := o.payment_status; res.return_status := o.return_status;
    res.version := o.version;
  END IF;
  PERFORM ves._idempotency_finish(tenant_id, idempotency_key, 'record_order_event', request, to_jsonb(res));
  RETURN res;
END $$;

-- Closes held events whose prerequisite has not come within the sync
-- setting order_hold (7 days by default): status 'expired', never applied.
-- The sync worker runs it; returns how many it closed.
CREATE FUNCTION ves.expire_held_order_events(at timestamptz DEFAULT now()) RETURNS int
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  hold text := coalesce((SELECT settings ->> 'order_hold' FROM ves.sync_settings), '7 days');
  n int;
BEGIN
  UPDATE ves.held_order_events h SET status = 'expired', closed_at = at,
    reason = h.reason || format('; expired after %s', hold)
  WHERE h.status = 'held' AND h.held_at < at - hold::interval;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

CREATE FUNCTION ves.get_order(tenant_id uuid, order_id text) RETURNS ves.orders
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE o ves.orders;
BEGIN
  PERFORM ves.check_tenant(tenant_id);
  SELECT * INTO o FROM ves.orders x WHERE x.tenant_id = get_order.tenant_id AND x.order_id = get_order.order_id;
  RETURN o;
END $$;
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
-- Privileges: nothing for PUBLIC; ves_reader reads, ves_writer appends and
-- consumes, ves_admin also maintains. Row-level security limits direct
-- reads to the session's tenant (ves.tenant_id); the functions, which run
-- as the extension owner, check the tenant themselves.

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ves FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA ves FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
  ves.read_entity(uuid, text, text, bigint, int),
  ves.read_all(bigint, int, uuid),
  ves.read_fence(),
  ves.current_tenant(),
  ves.check_tenant(uuid),
  ves.tenant_visible(uuid),
  ves.load_snapshot(uuid, text, text),
  ves.member_for(text, text, int),
  ves.canonical_json(jsonb),
  ves.canonical_json_text(text),
  ves.payload_hash(jsonb),
  ves.signing_hash(uuid),
  ves.leaf_hash(uuid, uuid, bigint, bytea, bytea),
  ves.receipt_hash(uuid, uuid, uuid, bigint, bytea),
  ves.stream_id(uuid, uuid),
  ves.merkle_root(bytea[]),
  ves.merkle_proof(bytea[], int),
  ves.verify_merkle_proof(bytea, bytea[], bigint, bytea),
  ves.verify_event(uuid),
  ves.verify_events(uuid, uuid, text, text, bigint, bigint),
  ves.export_event(uuid),
  ves._progress()
TO ves_reader;

GRANT EXECUTE ON FUNCTION
  ves.append(uuid, uuid, text, text, text, jsonb, bigint, text, jsonb, text, uuid),
  ves.append_batch(jsonb),
  ves.save_snapshot(uuid, text, text, bigint, jsonb),
  ves.create_subscription(uuid, text, text[], text[], int, bigint),
  ves.drop_subscription(uuid, text),
  ves.poll(uuid, text, int, int),
  ves.ack(uuid, text, int, bigint),
  ves.replay(uuid, text, bigint, bigint),
  ves.ingest_event(jsonb)
TO ves_writer;

GRANT EXECUTE ON FUNCTION
  ves.begin_maintenance(text),
  ves.ensure_partitions(timestamptz, interval),
  ves.drop_expired_partitions(timestamptz),
  ves._read_fence_holders(),
  ves.debug_raise(text),
  ves.debug_live_objects(),
  ves.create_agent_key(uuid, uuid, uuid),
  ves.rotate_agent_key(uuid, uuid),
  ves.register_agent_key(uuid, uuid, int, bytea),
  ves.revoke_agent_key(uuid, uuid, int),
  ves._keys_changed(),
  ves.create_destination(text, text, text, jsonb),
  ves.alter_destination(text, jsonb, text),
  ves.drop_destination(text),
  ves.pause_destination(text, text),
  ves.resume_destination(text),
  ves.get_sync_status(),
  ves.list_outbox_events(text, text, int),
  ves.get_outbox_event(bigint),
  ves.acknowledge_events(bigint[]),
  ves.retry_events(bigint[]),
  ves.get_sync_settings(),
  ves.set_sync_settings(jsonb),
  ves.push_events(text, int),
  ves.purge_outbox(int),
  ves.start_worker(text),
  ves.stop_worker(text),
  ves._worker_status(),
  ves._wake_worker(),
  ves._destinations_changed()
TO ves_admin;

GRANT EXECUTE ON FUNCTION
  ves.get_state(uuid, text, text),
  ves.get_stock(uuid, uuid, text, text),
  ves.get_order(uuid, text),
  ves.get_conflict_policy(uuid, text)
TO ves_reader;

GRANT EXECUTE ON FUNCTION
  ves.upsert(uuid, uuid, text, text, jsonb, bigint, text, text, timestamptz),
  ves.delete_entity(uuid, uuid, text, text, bigint, text, text, timestamptz),
  ves.adjust_stock(uuid, uuid, text, bigint, text, text, text, text, timestamptz),
  ves.set_stock(uuid, uuid, text, bigint, text, text, text, timestamptz),
  ves.reserve_stock(uuid, uuid, text, bigint, text, text, text, text, text),
  ves.release_stock(uuid, text, text, text),
  ves.commit_reservation(uuid, text, text),
  ves.set_low_stock_threshold(uuid, uuid, text, bigint, text),
  ves.record_order_event(uuid, uuid, text, text, jsonb, text, text, timestamptz)
TO ves_writer;

GRANT EXECUTE ON FUNCTION
  ves.set_conflict_policy(uuid, text, jsonb),
  ves.resolve_conflict(uuid, text, jsonb),
  ves.ensure_idempotency_partitions(timestamptz, int, interval),
  ves.expire_idempotency_records(timestamptz, interval),
  ves.expire_held_order_events(timestamptz),
  ves.bind_role(regrole, uuid),
  ves.unbind_role(regrole, uuid)
TO ves_admin;
GRANT SELECT ON ves.role_bindings TO ves_admin;

GRANT SELECT ON ves.entity_state, ves.conflicts, ves.open_conflicts, ves.conflict_policies, ves.inventory,
  ves.reservations, ves.orders, ves.held_order_events TO ves_reader;
GRANT SELECT ON ves.idempotency_records TO ves_admin;

GRANT SELECT ON ves.events, ves.streams, ves.snapshots, ves.subscriptions,
  ves.subscription_members, ves.subscription_status, ves.event_partitions,
  ves.agent_keys, ves.progress TO ves_reader;
GRANT SELECT ON ves.read_fence_holders, ves.maintenance_log, ves.partition_config, ves.destinations,
  ves.outbox, ves.sync_settings, ves.worker_status TO ves_admin;
-- ves.destination_secrets: nothing for anyone; only the extension owner reads it.
GRANT SELECT ON ves.idempotency_keys, ves.event_ids, ves.local_agents TO ves_admin;
-- ves.agent_key_secrets: nothing for anyone; only the extension owner reads it.

DO $rls$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['events', 'streams', 'snapshots', 'subscriptions',
                           'subscription_members', 'idempotency_keys', 'event_ids',
                           'agent_key_store', 'agent_key_secrets', 'local_agents', 'outbox',
                           'entity_state', 'conflicts', 'conflict_policies', 'inventory', 'reservations',
                           'orders', 'held_order_events', 'idempotency_records', 'tenant_bindings'] LOOP
    EXECUTE format('ALTER TABLE ves.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON ves.%I FOR SELECT USING (ves.tenant_visible(tenant_id))', t);
  END LOOP;
END
$rls$;

-- Create this month's and the next months' partitions now, so appends never
-- run DDL (which would lock ves.events until they commit). Later months are
-- created by ves.ensure_partitions(), run from cron or the sync worker; an
-- append that finds its month missing creates it as a last resort.
-- A pg_dump script turns check_function_bodies off and brings its own
-- partitions; creating ours would collide with them.
SELECT ves.ensure_partitions() WHERE current_setting('check_function_bodies')::boolean;
SELECT ves.ensure_idempotency_partitions() WHERE current_setting('check_function_bodies')::boolean;

-- Partitions are data, not part of the extension: detach them from it so
-- pg_dump writes their definitions and rows like those created later.
DO $detach$
DECLARE part regclass;
BEGIN
  FOR part IN
    SELECT c.oid::regclass FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid = d.objid
    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'e'
      AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'pg_ves')
      AND c.relispartition
  LOOP
    EXECUTE format('ALTER EXTENSION pg_ves DROP TABLE %s', part);
  END LOOP;
END
$detach$;
-- The rights of the sync worker when ves.worker_role names a role: grant
-- ves_worker to a LOGIN role (README "The worker's role and lifecycle").
-- Kept in one file that the upgrade scripts include as well.
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ves_worker') THEN
    CREATE ROLE ves_worker NOLOGIN;
  END IF;
END
$roles$;
GRANT USAGE ON SCHEMA ves TO ves_worker;

-- ves_worker: exactly what the sync worker does when ves.worker_role names
-- a role holding it. It reads the settings, the destinations and the events,
-- claims and records outbox rows, records the destinations' health; its
-- partition DDL, purges and expiries and its reading of the credentials go
-- through definer functions that pin their search_path.
-- (A worker statement that writes another column needs it added here.)
GRANT SELECT ON ves.sync_settings, ves.events, ves.destinations, ves.outbox TO ves_worker;
GRANT UPDATE (status, attempts, next_attempt_at, lease_until, leased_by, last_status, last_error, last_response,
              updated_at, synced_at) ON ves.outbox TO ves_worker;
GRANT UPDATE (breaker_state, last_success_at, last_error, last_error_at, paused, paused_reason)
  ON ves.destinations TO ves_worker;
GRANT EXECUTE ON FUNCTION
  ves.tenant_visible(uuid),
  ves._worker_secrets(),
  ves.ensure_partitions(timestamptz, interval),
  ves.ensure_idempotency_partitions(timestamptz, int, interval),
  ves.expire_idempotency_records(timestamptz, interval),
  ves.expire_held_order_events(timestamptz),
  ves.purge_outbox(int)
TO ves_worker;

-- The worker serves every tenant: it reads all events and claims and records
-- every outbox row, whatever ves.tenant_id its role might set.
CREATE POLICY sync_worker ON ves.outbox FOR ALL TO ves_worker USING (true) WITH CHECK (true);
CREATE POLICY sync_worker ON ves.events FOR SELECT TO ves_worker USING (true);
