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
