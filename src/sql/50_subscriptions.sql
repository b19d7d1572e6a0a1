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
