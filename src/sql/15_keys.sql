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
