-- Entity state, idempotent upsert and conflicts. src/core/state/conflict.cpp
-- decides every conflict rule and names every strategy, conflict type and
-- rule; src/pg/state/conflict.cpp serves them to the plpgsql here, which
-- gathers facts and writes rows. Resolving by hand: 87_resolve.sql.
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

-- The names of the conflict machinery, as src/core/state decides them:
-- kind conflict_type, strategy (a policy's), resolution (what
-- ves.resolve_conflict takes) and rule (what decided, in ves.conflicts).
CREATE FUNCTION ves.conflict_vocabulary(OUT kind text, OUT name text) RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'ves_conflict_vocabulary' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- Refuses a ves.resolve_conflict call that no conflict could make valid.
CREATE FUNCTION ves._check_resolution(conflict_id uuid, strategy text, merged jsonb) RETURNS void
  AS 'MODULE_PATHNAME', 'ves_check_resolution' LANGUAGE C IMMUTABLE;
-- What resolving a stored conflict with `strategy` does: accept_local,
-- accept_remote or merge (last_write_wins picks a side as decide does).
CREATE FUNCTION ves._resolution_effect(conflict_id uuid, strategy text, merged jsonb, fields text[], policy jsonb,
                                       local_source text, local_observed_at timestamptz, local_state jsonb,
                                       remote_source text, remote_observed_at timestamptz, remote_state jsonb)
  RETURNS text AS 'MODULE_PATHNAME', 'ves_resolution_effect' LANGUAGE C IMMUTABLE;
-- Reservations win over adjustments: what a new on-hand count does against
-- the units reserved.
CREATE FUNCTION ves._decide_stock(policy jsonb, on_hand bigint, reserved bigint, wanted bigint,
                                  OUT conflict_type text, OUT outcome text, OUT rule text, OUT on_hand bigint)
  AS 'MODULE_PATHNAME', 'ves_decide_stock' LANGUAGE C IMMUTABLE;

-- Builds a state from picks ({"field": "l" | "r"}) and the two original values.
CREATE FUNCTION ves._pick(picks jsonb, l jsonb, r jsonb) RETURNS jsonb
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(pg_catalog.jsonb_object_agg(p.key, CASE WHEN p.value = '"r"' THEN r -> p.key ELSE l -> p.key END),
                  '{}'::jsonb)
  FROM pg_catalog.jsonb_each(picks) AS p
$$;

-- Argument checks shared by the state, inventory and order functions.
CREATE FUNCTION ves._check_entity(tenant_id uuid, store_id uuid, entity_type text, entity_id text, source text)
  RETURNS void AS 'MODULE_PATHNAME', 'ves_check_entity' LANGUAGE C STABLE;

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

-- The one wrapper of every keyed call (ves.upsert, delete_entity, adjust_stock,
-- set_stock, reserve_stock, record_order_event):
--   res := ves._keyed_begin(tenant_id, idempotency_key, 'op', request, res);
--   IF res.outcome = 'duplicate' THEN RETURN res; END IF;
--   ... the call's work ...
--   RETURN ves._keyed_end(tenant_id, idempotency_key, 'op', request, res);
-- _keyed_begin returns the result the first call with this key returned, as
-- a repeat (outcome 'duplicate'; original_outcome, where the result type has
-- it, is what the first call did), or `result` unchanged when the key is new
-- or absent. It holds the key's lock for the transaction.
CREATE FUNCTION ves._keyed_begin(tenant_id uuid, idempotency_key text, operation text, request jsonb,
                                 INOUT result anyelement)
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE cached jsonb := ves._idempotency_begin(tenant_id, idempotency_key, operation, request);
BEGIN
  IF cached IS NOT NULL THEN
    result := jsonb_populate_record(result, cached || jsonb_build_object('outcome', 'duplicate',
                                                                         'original_outcome', cached -> 'outcome'));
  END IF;
END $$;

-- Keeps the result of a keyed call (nothing without a key) and returns it.
CREATE FUNCTION ves._keyed_end(tenant_id uuid, idempotency_key text, operation text, request jsonb,
                               INOUT result anyelement)
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM ves._idempotency_finish(tenant_id, idempotency_key, operation, request, to_jsonb(result));
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


-- Records what a source reported: the base of its next change that names no
-- base version, and its latest observed_at.
CREATE FUNCTION ves._source_seen(seen jsonb, source text, reported jsonb, observed_at timestamptz) RETURNS jsonb
  LANGUAGE sql STABLE AS $$
  -- sql, without settings, so that the statements of ves._state_change
  -- inline it; every name is qualified for the same reason.
  SELECT seen OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(source, pg_catalog.jsonb_build_object(
    'state', reported,
    'observed_at', CASE WHEN (seen OPERATOR(pg_catalog.->) source OPERATOR(pg_catalog.->>) 'observed_at')::pg_catalog.timestamptz
                             OPERATOR(pg_catalog.>) observed_at
                        THEN (seen OPERATOR(pg_catalog.->) source OPERATOR(pg_catalog.->>) 'observed_at')::pg_catalog.timestamptz
                        ELSE observed_at END))
$$;

-- Records a conflict, open or resolved by a rule: the row and a
-- sync.conflict_detected event on the conflict's own stream that carries the
-- whole record, so that every node the event reaches holds the same record
-- (ves._apply_ingested_conflict). An open one also sends NOTIFY
-- ves_conflicts (payload: the id). src/pg/state/conflict_record.cpp.
CREATE FUNCTION ves._record_conflict(c ves.conflicts) RETURNS uuid
  AS 'MODULE_PATHNAME', 'ves_record_conflict' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- Opens a conflict for review (ves._record_conflict).
CREATE FUNCTION ves._open_conflict(c ves.conflicts) RETURNS uuid
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  c.status := 'open';
  RETURN ves._record_conflict(c);
END $$;

-- The version of an entity's stream (NULL when it has none).
CREATE FUNCTION ves._stream_version(tenant_id uuid, entity_type text, entity_id text) RETURNS bigint
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT x.version FROM ves.streams x
  WHERE x.tenant_id = _stream_version.tenant_id AND x.entity_type = _stream_version.entity_type
    AND x.entity_id = _stream_version.entity_id
$$;

-- The decision and its effect, shared by ves.upsert (arguments checked) and
-- ves._apply_ingested (`ingested`: an event from another node, already
-- stored on the entity's stream): src/pg/state/state_change.cpp.
CREATE FUNCTION ves._state_change(tenant_id uuid, store_id uuid, entity_type text, entity_id text, state jsonb,
                                  base_version bigint, source text, observed_at timestamptz,
                                  ingested ves.events DEFAULT NULL) RETURNS ves.upsert_result
  AS 'MODULE_PATHNAME', 'ves_state_change' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;



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
  AS 'MODULE_PATHNAME', 'ves_upsert' LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- ves.upsert with an idempotency key (arguments checked).
CREATE FUNCTION ves._upsert_keyed(tenant_id uuid, store_id uuid, entity_type text, entity_id text, state jsonb,
                                  base_version bigint, source text, idempotency_key text, observed_at timestamptz)
  RETURNS ves.upsert_result LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  request jsonb := jsonb_build_array(store_id, entity_type, entity_id, state, base_version, source);
  res     ves.upsert_result;
BEGIN
  res := ves._keyed_begin(tenant_id, idempotency_key, 'upsert', request, res);
  IF res.outcome = 'duplicate' THEN RETURN res; END IF;
  res := ves._state_change(tenant_id, store_id, entity_type, entity_id, state, base_version, source, observed_at);
  RETURN ves._keyed_end(tenant_id, idempotency_key, 'upsert', request, res);
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
  cur          ves.entity_state;
  ar           ves.append_result;
  res          ves.upsert_result;
BEGIN
  PERFORM ves._check_entity(tenant_id, store_id, entity_type, entity_id, source);
  res := ves._keyed_begin(tenant_id, idempotency_key, 'delete_entity', request, res);
  IF res.outcome = 'duplicate' THEN RETURN res; END IF;
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
  RETURN ves._keyed_end(tenant_id, idempotency_key, 'delete_entity', request, res);
END $$;

-- The current state of an entity (NULL when it has none or was deleted).
CREATE FUNCTION ves.get_state(tenant_id uuid, entity_type text, entity_id text) RETURNS jsonb
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM ves.check_tenant(tenant_id);
  RETURN (SELECT s.state FROM ves.entity_state s WHERE s.tenant_id = get_state.tenant_id
          AND s.entity_type = get_state.entity_type AND s.entity_id = get_state.entity_id AND NOT s.deleted);
END $$;

-- Resolving a conflict on an entity of ves.entity_state (ves.resolve_conflict
-- calls this with what the chosen strategy does: accept_local keeps the
-- entity as it is now; accept_remote applies the incoming side's changes,
-- relative to the base, on top of the entity as it is now; merge stores
-- `merged`, or the proposed state). Returns the entity's version, the event
-- that changed it (if any) and the state it was resolved to.
CREATE FUNCTION ves._resolve_state_conflict(c ves.conflicts, chosen text, merged jsonb, OUT version bigint,
                                            OUT event_id uuid, OUT resolved_state jsonb)
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cur      ves.entity_state;
  target   jsonb;
  ar       ves.append_result;
BEGIN
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
  version := cur.version;
  IF target IS NOT NULL AND (cur.state IS NULL OR cur.deleted OR target IS DISTINCT FROM cur.state) THEN
    SELECT * INTO ar FROM ves.append(c.tenant_id, c.store_id, c.entity_type, c.entity_id,
      c.entity_type || CASE WHEN cur.state IS NULL OR cur.deleted THEN '.created' ELSE '.updated' END,
      jsonb_build_object('state', target, 'source', c.remote_source, 'observed_at', c.remote_observed_at),
      metadata => jsonb_build_object('conflict_id', c.conflict_id, 'resolution', c.strategy),
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
    version := ar.entity_version;
    event_id := ar.event_id;
  END IF;
  resolved_state := coalesce(target, cur.state);
END $$;
