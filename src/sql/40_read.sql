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
