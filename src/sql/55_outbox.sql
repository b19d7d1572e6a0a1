-- The outbox: one row per (event, destination), written in the appending
-- transaction, drained by the sync worker (src/pg/sync/worker_loop.cpp, deliverer.cpp) over HTTP.
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

-- The destination kinds are the adapters registered in
-- src/core/platforms/registry.cpp; SQL keeps no list of its own. IMMUTABLE:
-- a build of pg_ves knows a fixed set of kinds, and kinds are only ever
-- added, so a row accepted once stays valid.
CREATE FUNCTION ves.destination_kinds(OUT kind text, OUT description text) RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'ves_destination_kinds' LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 8;

CREATE FUNCTION ves._destination_kind_known(kind text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_destination_kind_known' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The options a kind has beyond the common ones (its adapter's
-- option_names()): accepted by ves._destination_options and kept in
-- ves.destinations.kind_options.
CREATE FUNCTION ves._destination_kind_options(kind text) RETURNS text[]
  AS 'MODULE_PATHNAME', 'ves_destination_kind_options' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Those of them that are credentials: sealed in
-- ves.destination_secrets.credentials_box, never kept in kind_options.
CREATE FUNCTION ves._destination_kind_secret_options(kind text) RETURNS text[]
  AS 'MODULE_PATHNAME', 'ves_destination_kind_secret_options' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Whether a kind is a commerce platform: its destinations serve one store
-- (options tenant_id and store_id), take inventory events and sync the
-- listings mapped to them (ves.map_listing).
CREATE FUNCTION ves._destination_kind_platform(kind text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_destination_kind_platform' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- What a new destination of a kind sends at unless its options say
-- otherwise: a platform's published rate limits.
CREATE FUNCTION ves._destination_kind_defaults(kind text, OUT rate_limit float8, OUT burst int, OUT concurrency int)
  AS 'MODULE_PATHNAME', 'ves_destination_kind_defaults' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TABLE ves.destinations (
  id                  int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name                text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
  kind                text        NOT NULL CHECK (ves._destination_kind_known(kind)),
  -- Checked with libcurl's URL parser when written (ves._destination_check);
  -- a ves_postgres destination's names the remote database (no password).
  url                 text        NOT NULL CHECK (url ~* '^(https?|postgres(ql)?)://'),
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
  updated_at          timestamptz NOT NULL DEFAULT now(),
  -- The kind's own options (ves._destination_kind_options(kind)), e.g.
  -- auth and sequencer_public_key of a ves_sequencer; no secrets.
  kind_options        jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(kind_options) = 'object')
);

-- Credentials, sealed with crypto_secretbox under the server key
-- (ves.server_key_file, nonce || box, as agent private keys): the webhook
-- secret and a JSON object of the secret headers' values. Readable by the
-- extension owner only, and even then only as sealed bytes; the worker opens
-- them when it loads destinations.
CREATE TABLE ves.destination_secrets (
  destination_id int   PRIMARY KEY REFERENCES ves.destinations ON DELETE CASCADE,
  secret_box     bytea,
  headers_box    bytea,
  -- A JSON object of the kind's credential options
  -- (ves._destination_kind_secret_options), e.g. a platform's access token.
  credentials_box bytea
);

-- Access tokens the worker obtained for a destination (a TikTok Shop token
-- refresh, a Login with Amazon grant), sealed the same way: a JSON object
-- of access_token, expires_at_unix_ms and the platform's current
-- refresh_token. Dropped when the destination's credentials change.
CREATE TABLE ves.destination_tokens (
  destination_id int         PRIMARY KEY REFERENCES ves.destinations ON DELETE CASCADE,
  token_box      bytea       NOT NULL,
  expires_at     timestamptz,
  updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Dumped: TikTok Shop rotates its refresh token, so the one the worker holds
-- here may be the only one the platform still takes.
SELECT pg_catalog.pg_extension_config_dump('ves.destination_tokens', '');

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
                  CHECK (status IN ('pending', 'synced', 'failed', 'dead', 'acknowledged', 'conflict')),
  attempts        int         NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  lease_until     timestamptz,
  leased_by       bigint,     -- lease identity of the holder (not a pid), see signals::lease_owner
  last_status     int,
  last_error      text,
  last_response   text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  synced_at       timestamptz,
  -- false once a person resolved a version conflict in favour of this
  -- event: the destination no longer checks the version it was written on.
  base_check      boolean     NOT NULL DEFAULT true,
  PRIMARY KEY (tenant_id, id)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);

-- Few indexes, on purpose: every delivery updates its row twice.
-- Claiming: each destination's open rows in position order (every claim is
-- for one destination, within its share of the worker's window). The
-- predicate's second half is always true (the column is NOT NULL), and the
-- claim implies it (next_attempt_at <= now()); the claim's per-entity probe
-- does not, so this index can never serve that probe, whatever the
-- statistics say (src/pg/sync/outbox_sql.cpp, kClaimSql).
CREATE INDEX outbox_open_idx ON ves.outbox (destination_id, event_position)
  WHERE status IN ('pending', 'failed') AND next_attempt_at IS NOT NULL;
-- Ordering: the open rows of one entity at one destination, and a row held
-- in conflict, which its entity's later rows wait behind; a claim probes it
-- once per candidate for the entity's previous such row.
CREATE INDEX outbox_entity_idx ON ves.outbox (destination_id, tenant_id, entity_type, entity_id, event_position)
  WHERE status IN ('pending', 'failed', 'conflict');
-- Purging closed rows.
CREATE INDEX outbox_closed_idx ON ves.outbox (updated_at) WHERE status IN ('synced', 'acknowledged');
-- Dead rows per destination (the dead_rows alert metric, read every 30 s):
-- few, and no other row ever enters this index.
CREATE INDEX outbox_dead_idx ON ves.outbox (destination_id) WHERE status = 'dead';

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
-- pg_dump keeps the settings. Restoring the dumped row into the database
-- CREATE EXTENSION just filled replaces the row there, keeping each setting
-- as dumped and the defaults of settings the dump does not know (a dump of
-- an older version), instead of failing on the singleton key. Not audited:
-- a restore is no administrative call (only updates are, 97_audit.sql).
CREATE FUNCTION ves._restore_sync_settings() RETURNS trigger
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  current jsonb;
BEGIN
  DELETE FROM ves.sync_settings RETURNING settings INTO current;
  NEW.settings := coalesce(current, '{}') || NEW.settings;
  RETURN NEW;
END $$;
CREATE TRIGGER restore BEFORE INSERT ON ves.sync_settings
  FOR EACH ROW EXECUTE FUNCTION ves._restore_sync_settings();
SELECT pg_catalog.pg_extension_config_dump('ves.sync_settings', '');
REVOKE ALL ON FUNCTION ves._restore_sync_settings() FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('ves.destinations', '');
SELECT pg_catalog.pg_extension_config_dump('ves.destination_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('ves.outbox', '');

-- Receipts of events a ves_sequencer destination sequenced, each verified
-- when it arrived (src/core/platforms/ves_sequencer.cpp): its receipt hash is
-- VES v1's for the event and the sequence number, and signature_verified says
-- whether its sequencer signature was checked against the destination's
-- sequencer_public_key. Written by the sync worker as it records the row;
-- no destination foreign key, so a receipt outlives a dropped destination.
CREATE TABLE ves.sequencer_receipts (
  tenant_id          uuid        NOT NULL,
  event_id           uuid        NOT NULL,
  destination_id     int         NOT NULL,
  sequence_number    bigint      NOT NULL CHECK (sequence_number >= 1),
  sequenced_at       timestamptz NOT NULL,
  receipt_hash       bytea       NOT NULL CHECK (length(receipt_hash) = 32),
  signature_verified boolean     NOT NULL,
  receipt            jsonb       NOT NULL,
  recorded_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, destination_id, event_id)
);
SELECT pg_catalog.pg_extension_config_dump('ves.sequencer_receipts', '');

-- Destinations ------------------------------------------------------------

CREATE FUNCTION ves._destination_options(d ves.destinations, options jsonb) RETURNS ves.destinations
  LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  known text[] := ARRAY['secret', 'tenant_id', 'entity_types', 'event_types', 'concurrency', 'rate_limit',
                        'burst', 'timeout_ms', 'max_attempts', 'backoff_base_ms', 'backoff_cap_ms', 'jitter',
                        'breaker_threshold', 'breaker_cooldown_ms', 'headers', 'alerts']
                        || ves._destination_kind_options(d.kind);
  secret text[] := ves._destination_kind_secret_options(d.kind);
  own text[] := ARRAY(SELECT o FROM unnest(ves._destination_kind_options(d.kind)) o WHERE NOT o = ANY (secret));
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
    -- Alert transitions delivered as events (README "Alerts"); not to a
    -- commerce platform, which takes only its listings' counts.
    IF options ? 'alerts' AND jsonb_typeof(options->'alerts') <> 'boolean' THEN
      RAISE invalid_parameter_value USING MESSAGE = 'alerts must be true or false';
    END IF;
    d.alerts := coalesce((options->>'alerts')::boolean, d.alerts, false);
    IF d.alerts AND ves._destination_kind_platform(d.kind) THEN
      RAISE invalid_parameter_value USING MESSAGE = 'a commerce platform destination cannot take alerts';
    END IF;
    -- The kind's own options, checked by its adapter (ves._destination_check);
    -- null removes one.
    d.kind_options := coalesce(d.kind_options, '{}');
    FOREACH k IN ARRAY own LOOP
      IF options ? k THEN
        d.kind_options := CASE WHEN options->k = 'null' THEN d.kind_options - k
                               ELSE d.kind_options || jsonb_build_object(k, options->k) END;
      END IF;
    END LOOP;
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
-- the sealed secret and secret header values. See src/pg/sync/destination_config.cpp.
-- A kind with credentials is checked as a whole: stored (its kind_options
-- and tenant_id) and the opened stored credentials overlaid with options;
-- credentials_box is the sealed credentials of that set.
CREATE FUNCTION ves._destination_check(kind text, url text, options jsonb, stored jsonb DEFAULT NULL,
                                       stored_credentials bytea DEFAULT NULL,
                                       OUT headers jsonb, OUT secret_box bytea, OUT headers_box bytea,
                                       OUT credentials_box bytea)
  AS 'MODULE_PATHNAME', 'ves_destination_check' LANGUAGE C VOLATILE;

-- Writes the sealed credentials of a destination: what options names
-- replaces what is stored ("secret": null removes the secret).
-- A change of credentials drops the access token obtained with the old ones.
CREATE FUNCTION ves._store_destination_secrets(dest int, options jsonb, sealed_secret bytea, sealed_headers bytea,
                                               sealed_credentials bytea)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  credentials_changed boolean := sealed_credentials IS NOT NULL AND options ?| ves._destination_kind_secret_options(
    (SELECT d.kind FROM ves.destinations d WHERE d.id = dest));
BEGIN
  IF NOT (options ? 'secret' OR options ? 'headers' OR sealed_credentials IS NOT NULL) THEN RETURN; END IF;
  INSERT INTO ves.destination_secrets AS s (destination_id, secret_box, headers_box, credentials_box)
  VALUES (dest, sealed_secret, sealed_headers, sealed_credentials)
  ON CONFLICT (destination_id) DO UPDATE
    SET secret_box = CASE WHEN options ? 'secret' THEN excluded.secret_box ELSE s.secret_box END,
        headers_box = CASE WHEN options ? 'headers' THEN excluded.headers_box ELSE s.headers_box END,
        credentials_box = coalesce(excluded.credentials_box, s.credentials_box);
  DELETE FROM ves.destination_secrets s
  WHERE s.destination_id = dest AND s.secret_box IS NULL AND s.headers_box IS NULL AND s.credentials_box IS NULL;
  IF credentials_changed THEN
    DELETE FROM ves.destination_tokens t WHERE t.destination_id = dest;
  END IF;
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
  IF NOT ves._destination_kind_known(kind) THEN
    RAISE EXCEPTION 'unknown destination kind "%"', kind USING ERRCODE = 'VE010',
      HINT = 'Kinds: ' || (SELECT string_agg(k.k_kind || ' (' || k.k_description || ')', ', ' ORDER BY k.k_n)
                           FROM ves.destination_kinds() WITH ORDINALITY AS k(k_kind, k_description, k_n)) || '.';
  END IF;
  IF length(name) NOT BETWEEN 1 AND 128 THEN
    RAISE EXCEPTION 'destination name must be 1 to 128 characters' USING ERRCODE = 'VE006',
      HINT = 'Use a short, stable name.';
  END IF;
  IF options IS NULL THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'VE010',
      HINT = 'Pass options such as ''{"secret": "whsec_...", "rate_limit": 50}''.';
  END IF;
  c := ves._destination_check(kind, url, options, NULL, NULL);
  d.name := name; d.kind := kind; d.url := url;
  SELECT k.concurrency, k.rate_limit, k.burst INTO d.concurrency, d.rate_limit, d.burst
    FROM ves._destination_kind_defaults(kind) k;
  d.timeout_ms := 10000; d.max_attempts := 10;
  d.backoff_base_ms := 500; d.backoff_cap_ms := 300000; d.jitter := 0.2; d.breaker_threshold := 5;
  d.breaker_cooldown_ms := 30000; d.headers := '{}'; d.kind_options := '{}';
  d := ves._destination_options(d, options);
  d.headers := coalesce(c.headers, d.headers);
  -- A commerce platform takes the store's inventory events unless told otherwise.
  IF ves._destination_kind_platform(kind) AND d.entity_types IS NULL THEN
    d.entity_types := ARRAY['inventory'];
  END IF;
  IF EXISTS (SELECT FROM ves.destinations x WHERE x.name = create_destination.name) THEN
    RAISE EXCEPTION 'destination "%" already exists', name USING ERRCODE = 'VE013',
      HINT = 'Use ves.alter_destination to change it.';
  END IF;
  INSERT INTO ves.destinations (name, kind, url, tenant_id, entity_types, event_types, concurrency, rate_limit,
                                burst, timeout_ms, max_attempts, backoff_base_ms, backoff_cap_ms, jitter,
                                breaker_threshold, breaker_cooldown_ms, headers, kind_options, alerts)
  VALUES (d.name, d.kind, d.url, d.tenant_id, d.entity_types, d.event_types, d.concurrency, d.rate_limit,
          d.burst, d.timeout_ms, d.max_attempts, d.backoff_base_ms, d.backoff_cap_ms, d.jitter,
          d.breaker_threshold, d.breaker_cooldown_ms, d.headers, d.kind_options, d.alerts)
  RETURNING * INTO d;
  PERFORM ves._store_destination_secrets(d.id, options, c.secret_box, c.headers_box, c.credentials_box);
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
  c := ves._destination_check(d.kind, url, options,
    jsonb_strip_nulls(d.kind_options || jsonb_build_object('tenant_id', d.tenant_id)),
    (SELECT s.credentials_box FROM ves.destination_secrets s WHERE s.destination_id = d.id));
  d := ves._destination_options(d, options);
  d.headers := coalesce(c.headers, d.headers);
  UPDATE ves.destinations x SET url = coalesce(alter_destination.url, x.url), tenant_id = d.tenant_id,
    entity_types = d.entity_types, event_types = d.event_types, concurrency = d.concurrency,
    rate_limit = d.rate_limit, burst = d.burst, timeout_ms = d.timeout_ms, max_attempts = d.max_attempts,
    backoff_base_ms = d.backoff_base_ms, backoff_cap_ms = d.backoff_cap_ms, jitter = d.jitter,
    breaker_threshold = d.breaker_threshold, breaker_cooldown_ms = d.breaker_cooldown_ms,
    headers = d.headers, kind_options = d.kind_options, alerts = d.alerts, updated_at = now()
  WHERE x.id = d.id RETURNING * INTO d;
  PERFORM ves._store_destination_secrets(d.id, options, c.secret_box, c.headers_box, c.credentials_box);
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
                 last_error text, breaker text,
                 -- the seeds' overview (README "Metrics"): rows not yet delivered (pending,
                 -- syncing, failed), the last delivery, the caller's open conflicts (every row)
                 queue_depth bigint, last_sync_at timestamptz, open_conflicts bigint,
                 -- rows a sequencer refused with a version conflict; a pull
                 -- source's head (the highest number a read has shown) and
                 -- lag (events shown but not applied), NULL for other destinations.
                 in_conflict bigint, pull_head bigint, pull_lag bigint,
                 -- This database as a sequencer: after the destinations, one row
                 -- per stream the caller sees (kind 'sequencer', destination NULL),
                 -- its head and how far batch commitments reach, as
                 -- ves.sequencer_status() shows them; NULL on destination rows.
                 tenant_id uuid, store_id uuid, sequencer_head bigint, committed_through bigint)
  -- plpgsql: ves.conflicts, ves.pull_cursors and ves.sequencer_status() are
  -- created further on.
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  open_count bigint := (SELECT count(*) FROM ves.conflicts c WHERE c.status = 'open' AND ves.tenant_visible(c.tenant_id));
BEGIN
  RETURN QUERY
  SELECT d.name, d.kind, d.paused,
         count(*) FILTER (WHERE ves._shown_status(o.status, o.lease_until) = 'pending'),
         count(*) FILTER (WHERE ves._shown_status(o.status, o.lease_until) = 'syncing'),
         count(*) FILTER (WHERE o.status = 'synced'),
         count(*) FILTER (WHERE ves._shown_status(o.status, o.lease_until) = 'failed'),
         count(*) FILTER (WHERE o.status = 'dead'),
         now() - min(o.created_at) FILTER (WHERE o.status IN ('pending', 'failed')),
         d.last_success_at, d.last_error, d.breaker_state,
         count(*) FILTER (WHERE o.status IN ('pending', 'failed')),
         greatest(max(o.synced_at), d.last_success_at),
         open_count,
         count(*) FILTER (WHERE o.status = 'conflict'),
         (SELECT max(p.head_sequence) FROM ves.pull_cursors p
          WHERE p.destination_id = d.id AND ves.tenant_visible(p.tenant_id)),
         (SELECT sum(greatest(p.head_sequence - (p.next_sequence - 1), 0))::bigint FROM ves.pull_cursors p
          WHERE p.destination_id = d.id AND ves.tenant_visible(p.tenant_id)),
         NULL::uuid, NULL::uuid, NULL::bigint, NULL::bigint
  FROM ves.destinations d
  LEFT JOIN ves.outbox o ON o.destination_id = d.id
   AND (ves.current_tenant() IS NULL OR o.tenant_id = ves.current_tenant())
  GROUP BY d.id
  ORDER BY d.name;
  -- The streams' visibility is ves.sequencer_status()'s (ves.tenant_visible).
  RETURN QUERY
  SELECT NULL::text, 'sequencer'::text, NULL::boolean, NULL::bigint, NULL::bigint, NULL::bigint,
         NULL::bigint, NULL::bigint, NULL::interval, NULL::timestamptz, NULL::text, NULL::text,
         NULL::bigint, NULL::timestamptz, open_count, NULL::bigint, NULL::bigint, NULL::bigint,
         q.tenant_id, q.store_id, q.head, q.committed_through
  FROM ves.sequencer_status() q
  ORDER BY q.tenant_id, q.store_id;
END
$$;

CREATE FUNCTION ves.list_outbox_events(status text DEFAULT NULL, destination text DEFAULT NULL,
                                       max_count int DEFAULT 100)
  RETURNS SETOF ves.outbox
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE dest int;
BEGIN
  PERFORM ves._check_max_count(max_count);
  IF status IS NOT NULL AND status NOT IN ('pending', 'syncing', 'synced', 'failed', 'dead', 'acknowledged',
                                          'conflict') THEN
    RAISE EXCEPTION 'unknown outbox status "%"', status USING ERRCODE = 'VE010',
      HINT = 'Statuses: pending, syncing, synced, failed, dead, acknowledged, conflict.';
  END IF;
  IF destination IS NOT NULL THEN dest := (ves._destination(destination)).id; END IF;
  RETURN QUERY SELECT o.id, o.tenant_id, o.destination_id, o.event_position, o.event_id, o.event_recorded_at,
      o.entity_type, o.entity_id, ves._shown_status(o.status, o.lease_until), o.attempts, o.next_attempt_at, o.lease_until,
      o.leased_by, o.last_status, o.last_error, o.last_response, o.created_at, o.updated_at, o.synced_at,
      o.base_check
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
  PERFORM ves._audit('acknowledge_events', NULL, ves.current_tenant(), jsonb_build_object('ids', ids, 'rows', n));
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
  PERFORM ves._audit('retry_events', NULL, ves.current_tenant(), jsonb_build_object('ids', ids, 'rows', n));
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
    IF k = 'reconcile_interval' AND jsonb_typeof(settings->k) = 'string'
       AND (settings->>k) ~ '^\s*0\s*[a-z ]*$' THEN
      NULL;  -- 0 turns the worker's periodic reconciliation off (93_inbound.sql)
    ELSIF k IN ('synced_retention', 'order_hold', 'reconcile_interval', 'webhook_dedupe_window') THEN
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
        HINT = 'Settings: window, claim_batch, lease_seconds, safety_poll_ms, synced_retention, purge_batch, order_hold, reconcile_interval, webhook_dedupe_window.';
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
CREATE FUNCTION ves._worker_secrets()
  RETURNS TABLE (destination_id int, secret_box bytea, headers_box bytea, credentials_box bytea, token_box bytea)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(s.destination_id, t.destination_id), s.secret_box, s.headers_box, s.credentials_box, t.token_box
  FROM ves.destination_secrets s FULL JOIN ves.destination_tokens t ON t.destination_id = s.destination_id
$$;

-- Keeps an access token the worker obtained (sealed by the worker; see
-- ves.destination_tokens) unless the destination's credentials changed
-- since it asked: credentials_box is the box it used.
CREATE FUNCTION ves._store_destination_token(dest int, used_credentials bytea, token_box bytea, expires_at timestamptz)
  RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM ves.destination_secrets s
                 WHERE s.destination_id = dest AND s.credentials_box IS NOT DISTINCT FROM used_credentials) THEN
    RETURN false;
  END IF;
  INSERT INTO ves.destination_tokens AS t (destination_id, token_box, expires_at)
  VALUES (dest, token_box, expires_at)
  ON CONFLICT (destination_id) DO UPDATE SET token_box = excluded.token_box, expires_at = excluded.expires_at,
    updated_at = now();
  RETURN true;
END $$;

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
