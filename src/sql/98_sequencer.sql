-- pg_ves as a VES v1 sequencer (README "pg_ves as the sequencer"):
-- ves.sequence_events numbers pushed envelopes per (tenant, store) and
-- answers as StateSet's ingest endpoint; ves.sequenced_events serves them
-- back; batch commitments chain Merkle roots over contiguous ranges.

-- The sequencer's Ed25519 key, one per database, created on first use; the
-- 32-byte seed sealed under the server key like agent keys (nonce || box).
-- No role is granted anything on this table.
CREATE TABLE ves.sequencer_key (
  singleton    boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  sequencer_id uuid        NOT NULL,
  public_key   bytea       NOT NULL CHECK (length(public_key) = 32),
  key_version  int         NOT NULL DEFAULT 0,
  secret_box   bytea       NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per stream: its head, locked (FOR UPDATE) while a batch is
-- numbered, so numbers are gapless and unrelated streams never wait.
CREATE TABLE ves.sequencer_streams (
  tenant_id         uuid        NOT NULL,
  store_id          uuid        NOT NULL,
  head              bigint      NOT NULL DEFAULT 0,
  last_sequenced_at timestamptz,
  PRIMARY KEY (tenant_id, store_id)
);

-- Sequenced events: the envelope exactly as received, the canonical payload
-- its hash covers, and the hashes a verifier recomputes.
CREATE TABLE ves.sequencer_events (
  tenant_id              uuid        NOT NULL,
  store_id               uuid        NOT NULL,
  sequence_number        bigint      NOT NULL CHECK (sequence_number >= 1),
  event_id               uuid        NOT NULL,
  source_agent_id        uuid        NOT NULL,
  agent_key_id           bigint      NOT NULL,
  entity_type            text        NOT NULL,
  entity_id              text        NOT NULL,
  event_type             text        NOT NULL,
  created_at             text        NOT NULL,
  command_id             uuid,
  base_version           bigint,
  agent_signature_scheme int,
  envelope               jsonb       NOT NULL,
  payload_canonical      text        NOT NULL,
  payload_plain_hash     bytea       NOT NULL CHECK (length(payload_plain_hash) = 32),
  agent_signature        bytea       NOT NULL CHECK (length(agent_signature) = 64),
  signing_hash           bytea       NOT NULL CHECK (length(signing_hash) = 32),
  leaf_hash              bytea       NOT NULL CHECK (length(leaf_hash) = 32),
  receipt_hash           bytea       NOT NULL CHECK (length(receipt_hash) = 32),
  receipt                jsonb       NOT NULL,
  sequenced_at           timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, store_id, sequence_number),
  UNIQUE (tenant_id, event_id)
);
CREATE UNIQUE INDEX sequencer_events_command ON ves.sequencer_events (tenant_id, store_id, command_id)
  WHERE command_id IS NOT NULL;

-- The sequencer's own version per entity: how many events it accepted for
-- it, which base_version must equal.
CREATE TABLE ves.sequencer_entities (
  tenant_id   uuid   NOT NULL,
  store_id    uuid   NOT NULL,
  entity_type text   NOT NULL,
  entity_id   text   NOT NULL,
  version     bigint NOT NULL,
  PRIMARY KEY (tenant_id, store_id, entity_type, entity_id)
);

-- Batch commitments: contiguous ranges from 1, each root chained to the
-- previous one's (32 zero bytes for the first). signature is the
-- sequencer's Ed25519 signature of ves.sequencer_commitment_hash(...).
CREATE TABLE ves.sequencer_commitments (
  batch_id       uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  tenant_id      uuid        NOT NULL,
  store_id       uuid        NOT NULL,
  start_sequence bigint      NOT NULL CHECK (start_sequence >= 1),
  end_sequence   bigint      NOT NULL,
  merkle_root    bytea       NOT NULL CHECK (length(merkle_root) = 32),
  previous_root  bytea       NOT NULL CHECK (length(previous_root) = 32),
  leaf_count     int         NOT NULL,
  sequencer_id   uuid        NOT NULL,
  signature      bytea       NOT NULL CHECK (length(signature) = 64),
  committed_at   timestamptz NOT NULL DEFAULT now(),
  CHECK (end_sequence >= start_sequence AND leaf_count = end_sequence - start_sequence + 1),
  UNIQUE (tenant_id, store_id, start_sequence),
  UNIQUE (tenant_id, store_id, end_sequence)
);

SELECT pg_catalog.pg_extension_config_dump('ves.sequencer_key', '');
SELECT pg_catalog.pg_extension_config_dump('ves.sequencer_streams', '');
SELECT pg_catalog.pg_extension_config_dump('ves.sequencer_events', '');
SELECT pg_catalog.pg_extension_config_dump('ves.sequencer_entities', '');
SELECT pg_catalog.pg_extension_config_dump('ves.sequencer_commitments', '');

CREATE FUNCTION ves.sequence_events(agent_id uuid, envelopes jsonb) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ves_sequence_events' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ves.sequencer_identity(OUT sequencer_id uuid, OUT public_key bytea, OUT key_version int)
  AS 'MODULE_PATHNAME', 'ves_sequencer_identity' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ves.sequencer_commitment_hash(tenant_id uuid, store_id uuid, start_sequence bigint,
                                              end_sequence bigint, merkle_root bytea, previous_root bytea)
  RETURNS bytea
  AS 'MODULE_PATHNAME', 'ves_sequencer_commitment_hash' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION ves._sequencer_sign_commitment(tenant_id uuid, store_id uuid, start_sequence bigint,
                                               end_sequence bigint, merkle_root bytea, previous_root bytea)
  RETURNS bytea
  AS 'MODULE_PATHNAME', 'ves_sequencer_sign_commitment' LANGUAGE C VOLATILE;

-- Ed25519 verification for auditors: a receipt's sequencerSignature over
-- its receipt hash, a commitment's signature over its commitment hash.
CREATE FUNCTION ves.verify_ed25519(public_key bytea, message bytea, signature bytea) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_verify_ed25519' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION ves.sequencer_head(tenant_id uuid, store_id uuid) RETURNS bigint
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF tenant_id IS NULL OR store_id IS NULL THEN
    RAISE EXCEPTION 'tenant_id and store_id must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Name the stream: its tenant and store.';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  RETURN coalesce((SELECT s.head FROM ves.sequencer_streams s
                   WHERE s.tenant_id = sequencer_head.tenant_id AND s.store_id = sequencer_head.store_id), 0);
END $$;

-- The served form of a sequenced event: the envelope as StateSet's server
-- serialises a stored one (lowercase UUIDs, 0x-hex, agent_signature_scheme,
-- command_id and base_version only when set) plus sequence_number and
-- sequenced_at.
CREATE FUNCTION ves._sequenced_item(e ves.sequencer_events) RETURNS jsonb
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT jsonb_build_object('envelope', env, 'sequenced_at', env->'sequenced_at', 'receipt', e.receipt)
  FROM (SELECT jsonb_build_object(
      'ves_version', 1, 'event_id', e.event_id, 'tenant_id', e.tenant_id, 'store_id', e.store_id,
      'source_agent_id', e.source_agent_id, 'agent_key_id', e.agent_key_id,
      'entity_type', e.entity_type, 'entity_id', e.entity_id, 'event_type', e.event_type,
      'created_at', e.created_at, 'payload_kind', 0, 'payload', e.envelope->'payload',
      'payload_plain_hash', '0x' || encode(e.payload_plain_hash, 'hex'),
      'payload_cipher_hash', '0x' || repeat('0', 64),
      'agent_signature', '0x' || encode(e.agent_signature, 'hex'),
      'agent_signature_scheme', coalesce(e.agent_signature_scheme, 0),
      'sequence_number', e.sequence_number,
      'sequenced_at', to_char(e.sequenced_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
    || jsonb_strip_nulls(jsonb_build_object('command_id', e.command_id, 'base_version', e.base_version))
    AS env) x
$$;

-- Pull: the stream's events from from_sequence (inclusive, 0 read as 1), at
-- most max_count (1..1000), in the item layout of GET /api/v1/events.
CREATE FUNCTION ves.sequenced_events(tenant_id uuid, store_id uuid, from_sequence bigint DEFAULT 1,
                                     max_count int DEFAULT 100) RETURNS jsonb
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  items jsonb;
BEGIN
  IF tenant_id IS NULL OR store_id IS NULL OR from_sequence IS NULL OR max_count IS NULL THEN
    RAISE EXCEPTION 'tenant_id, store_id, from_sequence and max_count must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Name the stream and the first sequence number to read.';
  END IF;
  IF max_count < 1 OR max_count > 1000 THEN
    RAISE EXCEPTION 'max_count must be from 1 to 1000, not %', max_count USING ERRCODE = 'VE063',
      HINT = 'Read at most 1000 events per call; continue from the last sequence_number + 1.';
  END IF;
  IF from_sequence < 0 THEN
    RAISE EXCEPTION 'from_sequence must be 0 or more, not %', from_sequence USING ERRCODE = 'VE063',
      HINT = 'Sequence numbers start at 1.';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  SELECT coalesce(jsonb_agg(ves._sequenced_item(e) ORDER BY e.sequence_number), '[]') INTO items
  FROM ves.sequencer_events e
  WHERE e.tenant_id = sequenced_events.tenant_id AND e.store_id = sequenced_events.store_id
    AND e.sequence_number >= greatest(from_sequence, 1)
    AND e.sequence_number < greatest(from_sequence, 1) + max_count;
  RETURN jsonb_build_object('events', items, 'count', jsonb_array_length(items),
                            'head', ves.sequencer_head(tenant_id, store_id));
END $$;

-- Commits the next contiguous range of a stream (at most max_events events
-- after the last commitment's end): its Merkle root (VES v1 §10 over the
-- events' leaf hashes), chained to the previous root and signed. Returns
-- nothing when no event is uncommitted.
CREATE FUNCTION ves.commit_sequencer_batch(tenant_id uuid, store_id uuid, max_events int DEFAULT 1000)
  RETURNS SETOF ves.sequencer_commitments
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  last ves.sequencer_commitments;
  first_seq bigint;
  last_seq bigint;
  leaves bytea[];
  root bytea;
  prev bytea;
  made ves.sequencer_commitments;
BEGIN
  IF tenant_id IS NULL OR store_id IS NULL OR max_events IS NULL THEN
    RAISE EXCEPTION 'tenant_id, store_id and max_events must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Name the stream to commit.';
  END IF;
  IF max_events < 1 OR max_events > 100000 THEN
    RAISE EXCEPTION 'max_events must be from 1 to 100000, not %', max_events USING ERRCODE = 'VE063',
      HINT = 'Commit at most 100000 events per batch (1000 by default).';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  -- One committer per stream at a time; sequencing goes on meanwhile.
  PERFORM pg_advisory_xact_lock(hashtextextended('pg_ves sequencer commit '
                                                 || tenant_id::text || store_id::text, 0));
  SELECT * INTO last FROM ves.sequencer_commitments c
  WHERE c.tenant_id = commit_sequencer_batch.tenant_id AND c.store_id = commit_sequencer_batch.store_id
  ORDER BY c.end_sequence DESC LIMIT 1;
  first_seq := coalesce(last.end_sequence, 0) + 1;
  last_seq := least(ves.sequencer_head(tenant_id, store_id), first_seq + max_events - 1);
  IF last_seq < first_seq THEN
    RETURN;
  END IF;
  SELECT array_agg(e.leaf_hash ORDER BY e.sequence_number) INTO leaves
  FROM ves.sequencer_events e
  WHERE e.tenant_id = commit_sequencer_batch.tenant_id AND e.store_id = commit_sequencer_batch.store_id
    AND e.sequence_number BETWEEN first_seq AND last_seq;
  IF coalesce(cardinality(leaves), 0) <> last_seq - first_seq + 1 THEN
    -- Numbers are gapless by construction; a hole means the table was
    -- altered behind the sequencer's back. Commit nothing over it.
    RAISE EXCEPTION 'the stream has % of the % events %..% (a hole): nothing was committed',
      coalesce(cardinality(leaves), 0), last_seq - first_seq + 1, first_seq, last_seq
      USING ERRCODE = 'VE056',
      HINT = 'Restore the missing sequenced events (ves.sequencer_events) from a backup, then commit again.';
  END IF;
  root := ves.merkle_root(leaves);
  prev := coalesce(last.merkle_root, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
  INSERT INTO ves.sequencer_commitments AS x (tenant_id, store_id, start_sequence, end_sequence, merkle_root,
                                              previous_root, leaf_count, sequencer_id, signature)
  VALUES (tenant_id, store_id, first_seq, last_seq, root, prev, cardinality(leaves),
          (SELECT i.sequencer_id FROM ves.sequencer_identity() i),
          ves._sequencer_sign_commitment(tenant_id, store_id, first_seq, last_seq, root, prev))
  RETURNING * INTO made;
  RETURN NEXT made;
END $$;

-- The sync worker's hook (housekeeping, every 10 s): commits every stream's
-- uncommitted events, 1000 per batch. Returns how many batches.
CREATE FUNCTION ves._commit_sequencer_batches() RETURNS int
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s record;
  n int := 0;
  more boolean;
BEGIN
  FOR s IN SELECT st.tenant_id, st.store_id FROM ves.sequencer_streams st
           WHERE st.head > coalesce((SELECT max(c.end_sequence) FROM ves.sequencer_commitments c
                                     WHERE c.tenant_id = st.tenant_id AND c.store_id = st.store_id), 0) LOOP
    BEGIN
      LOOP
        more := EXISTS (SELECT FROM ves.commit_sequencer_batch(s.tenant_id, s.store_id, 1000));
        EXIT WHEN NOT more;
        n := n + 1;
        EXIT WHEN n >= 100;
      END LOOP;
    EXCEPTION WHEN SQLSTATE 'VE056' THEN
      -- A damaged stream waits for an operator; the others are committed.
      RAISE WARNING 'pg_ves: sequencer stream %/% not committed: %', s.tenant_id, s.store_id, SQLERRM;
    END;
  END LOOP;
  RETURN n;
END $$;

-- An inclusion proof of one sequenced event in its committed batch, which
-- ves.verify_merkle_proof accepts: hashes are hex without 0x; directions[i]
-- says on which side the sibling proof_path[i] lies ("left" or "right").
CREATE FUNCTION ves.sequencer_proof(tenant_id uuid, store_id uuid, sequence_number bigint) RETURNS jsonb
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c ves.sequencer_commitments;
  leaves bytea[];
  idx int;
  proof bytea[];
BEGIN
  IF tenant_id IS NULL OR store_id IS NULL OR sequence_number IS NULL THEN
    RAISE EXCEPTION 'tenant_id, store_id and sequence_number must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'Name the stream and the sequence number.';
  END IF;
  PERFORM ves.check_tenant(tenant_id);
  SELECT * INTO c FROM ves.sequencer_commitments x
  WHERE x.tenant_id = sequencer_proof.tenant_id AND x.store_id = sequencer_proof.store_id
    AND sequencer_proof.sequence_number BETWEEN x.start_sequence AND x.end_sequence;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'sequence number % of this stream is in no commitment yet', sequence_number
      USING ERRCODE = 'VE063',
      HINT = 'Commit it first with ves.commit_sequencer_batch (the sync worker does so every 10 seconds).';
  END IF;
  SELECT array_agg(e.leaf_hash ORDER BY e.sequence_number) INTO leaves
  FROM ves.sequencer_events e
  WHERE e.tenant_id = c.tenant_id AND e.store_id = c.store_id
    AND e.sequence_number BETWEEN c.start_sequence AND c.end_sequence;
  idx := (sequence_number - c.start_sequence)::int;
  proof := ves.merkle_proof(leaves, idx);
  RETURN jsonb_build_object(
    'sequence_number', sequence_number, 'batch_id', c.batch_id,
    'merkle_root', encode(c.merkle_root, 'hex'), 'previous_root', encode(c.previous_root, 'hex'),
    'leaf_hash', encode(leaves[idx + 1], 'hex'), 'leaf_index', idx,
    'proof_path', coalesce((SELECT jsonb_agg(encode(p, 'hex') ORDER BY o) FROM unnest(proof) WITH ORDINALITY u(p, o)), '[]'),
    'directions', coalesce((SELECT jsonb_agg(CASE WHEN (idx >> (o - 1)::int) & 1 = 1 THEN 'left' ELSE 'right' END ORDER BY o)
                            FROM unnest(proof) WITH ORDINALITY u(p, o)), '[]'),
    'start_sequence', c.start_sequence, 'end_sequence', c.end_sequence);
END $$;

-- Per stream: head, how far commitments reach, when it last sequenced.
CREATE FUNCTION ves.sequencer_status(OUT tenant_id uuid, OUT store_id uuid, OUT head bigint,
                                     OUT committed_through bigint, OUT last_sequenced_at timestamptz)
  RETURNS SETOF record
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT s.tenant_id, s.store_id, s.head,
         coalesce((SELECT max(c.end_sequence) FROM ves.sequencer_commitments c
                   WHERE c.tenant_id = s.tenant_id AND c.store_id = s.store_id), 0),
         s.last_sequenced_at
  FROM ves.sequencer_streams s
  WHERE ves.tenant_visible(s.tenant_id)
  ORDER BY s.tenant_id, s.store_id
$$;

REVOKE ALL ON ves.sequencer_key, ves.sequencer_streams, ves.sequencer_events, ves.sequencer_entities,
  ves.sequencer_commitments FROM PUBLIC;
REVOKE ALL ON FUNCTION ves.sequence_events(uuid, jsonb), ves.sequencer_identity(),
  ves.sequencer_commitment_hash(uuid, uuid, bigint, bigint, bytea, bytea),
  ves._sequencer_sign_commitment(uuid, uuid, bigint, bigint, bytea, bytea),
  ves.verify_ed25519(bytea, bytea, bytea),
  ves.sequencer_head(uuid, uuid), ves._sequenced_item(ves.sequencer_events),
  ves.sequenced_events(uuid, uuid, bigint, int), ves.commit_sequencer_batch(uuid, uuid, int),
  ves._commit_sequencer_batches(), ves.sequencer_proof(uuid, uuid, bigint), ves.sequencer_status()
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves.sequencer_identity(),
  ves.sequencer_commitment_hash(uuid, uuid, bigint, bigint, bytea, bytea),
  ves.verify_ed25519(bytea, bytea, bytea),
  ves.sequencer_head(uuid, uuid), ves.sequenced_events(uuid, uuid, bigint, int),
  ves.sequencer_proof(uuid, uuid, bigint), ves.sequencer_status()
  TO ves_reader;
GRANT EXECUTE ON FUNCTION ves.sequence_events(uuid, jsonb), ves.commit_sequencer_batch(uuid, uuid, int)
  TO ves_writer;
GRANT EXECUTE ON FUNCTION ves._commit_sequencer_batches() TO ves_worker;

-- Readers see their tenants' rows (row-level security as 90_security.sql).
DO $rls$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['sequencer_streams', 'sequencer_events', 'sequencer_entities',
                           'sequencer_commitments'] LOOP
    EXECUTE format('ALTER TABLE ves.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON ves.%I FOR SELECT USING (ves.tenant_visible(tenant_id))', t);
    EXECUTE format('GRANT SELECT ON ves.%I TO ves_reader', t);
  END LOOP;
END
$rls$;
