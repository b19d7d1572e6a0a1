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
