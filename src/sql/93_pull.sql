-- Pulling VES streams from sequencers (README "Pulling from a sequencer").
-- A source is a destination with the kind option "pull": true (kind
-- ves_sequencer), naming one stream (tenant_id, store_id). The worker and
-- ves.pull_events read pages of sequenced events after the cursor (outside
-- any transaction or lock), then ves._pull_apply verifies every event and
-- stores and applies the contiguous verified prefix, moving the cursor in
-- the same transaction (src/pg/sync/pull.cpp).

-- One cursor per (source, tenant, store): the next sequence number to apply.
CREATE TABLE ves.pull_cursors (
  destination_id      int         NOT NULL REFERENCES ves.destinations ON DELETE CASCADE,
  tenant_id           uuid        NOT NULL,
  store_id            uuid        NOT NULL,
  next_sequence       bigint      NOT NULL DEFAULT 1 CHECK (next_sequence >= 1),
  last_event_id       uuid,                     -- the event applied at next_sequence - 1
  head_sequence       bigint      NOT NULL DEFAULT 0,  -- the highest number the source has shown
  pulled              bigint      NOT NULL DEFAULT 0,  -- items read
  applied             bigint      NOT NULL DEFAULT 0,  -- events stored and applied
  duplicates          bigint      NOT NULL DEFAULT 0,  -- events already stored here (e.g. pushed from here)
  gaps                bigint      NOT NULL DEFAULT 0,  -- pulls that stopped at a hole or a misordered number
  last_gap            text,
  last_gap_sequence   bigint,
  last_gap_at         timestamptz,
  gap_streak          int         NOT NULL DEFAULT 0,  -- pulls in a row that stopped at last_gap_sequence
  stopped_at_sequence bigint,                   -- set while a security alert holds the stream
  alert_id            bigint,
  last_pull_at        timestamptz,
  last_applied_at     timestamptz,
  last_error          text,
  last_error_at       timestamptz,
  PRIMARY KEY (destination_id, tenant_id, store_id)
);
SELECT pg_catalog.pg_extension_config_dump('ves.pull_cursors', '');

-- The sources' cursors, of the session's tenants only. lag: events the
-- source has shown that are not applied here yet (head - (cursor - 1)).
CREATE VIEW ves.pull_status WITH (security_barrier) AS
  SELECT d.name AS source, d.kind, c.tenant_id, c.store_id, c.next_sequence AS cursor,
         c.head_sequence AS head, greatest(c.head_sequence - (c.next_sequence - 1), 0) AS lag,
         c.last_pull_at, c.last_applied_at, c.pulled, c.applied, c.duplicates, c.gaps, c.last_gap,
         c.last_gap_at, c.stopped_at_sequence IS NOT NULL AS stopped, c.stopped_at_sequence AS stopped_at,
         c.alert_id, c.last_error, c.last_error_at, d.paused
  FROM ves.pull_cursors c JOIN ves.destinations d ON d.id = c.destination_id
  WHERE ves.tenant_visible(c.tenant_id);

-- The pull sources (every one, or only those the worker serves: not
-- paused), with their stream, cursor and sealed credentials.
CREATE FUNCTION ves._pull_sources(include_paused boolean DEFAULT false)
  RETURNS TABLE (destination_id int, name text, url text, kind_options jsonb, tenant_id uuid, store_id uuid,
                 timeout_ms int, headers jsonb, secret_box bytea, headers_box bytea, next_sequence bigint,
                 stopped boolean, fresh boolean, kind text, credentials_box bytea)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT d.id, d.name, d.url, d.kind_options, d.tenant_id, (d.kind_options ->> 'store_id')::uuid, d.timeout_ms,
         d.headers, s.secret_box, s.headers_box, coalesce(c.next_sequence, 1), c.stopped_at_sequence IS NOT NULL,
         c.destination_id IS NULL OR (c.applied = 0 AND c.duplicates = 0 AND c.last_event_id IS NULL), d.kind,
         s.credentials_box
  FROM ves.destinations d
  LEFT JOIN ves.destination_secrets s ON s.destination_id = d.id
  LEFT JOIN ves.pull_cursors c ON c.destination_id = d.id AND c.tenant_id = d.tenant_id
    AND c.store_id = (d.kind_options ->> 'store_id')::uuid
  WHERE coalesce((d.kind_options ->> 'pull')::boolean, false) AND d.tenant_id IS NOT NULL
    AND (include_paused OR NOT d.paused)
  ORDER BY d.id
$$;

-- The source's cursor row, made when missing and locked.
CREATE FUNCTION ves._pull_cursor(dest int) RETURNS ves.pull_cursors
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations;
  c ves.pull_cursors;
BEGIN
  SELECT * INTO d FROM ves.destinations x WHERE x.id = dest;
  INSERT INTO ves.pull_cursors (destination_id, tenant_id, store_id)
  VALUES (d.id, d.tenant_id, (d.kind_options ->> 'store_id')::uuid) ON CONFLICT DO NOTHING;
  SELECT * INTO c FROM ves.pull_cursors x
  WHERE x.destination_id = d.id AND x.tenant_id = d.tenant_id AND x.store_id = (d.kind_options ->> 'store_id')::uuid
  FOR UPDATE;
  RETURN c;
END $$;

-- What a pull moved: the cursor (only past applied events), counters, the
-- head, and the hole or misordered number it stopped at (gap, at
-- gap_sequence). Returns how many pulls in a row stopped there.
-- A pull that applied events is announced on the source's sync stream
-- (98_sync_events.sql) in the same transaction: sync.started and
-- sync.completed, a pair as a reconciliation run's. A pull that applied
-- nothing (an idle poll, only duplicates) appends nothing, however often
-- the source is polled.
CREATE FUNCTION ves._pull_advance(dest int, next_sequence bigint, last_event_id uuid, head bigint,
                                  pulled bigint, applied bigint, duplicates bigint, gap text, gap_sequence bigint)
  RETURNS int
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c ves.pull_cursors := ves._pull_cursor(dest);
  src text;
  run text;
BEGIN
  IF _pull_advance.applied > 0 THEN
    src := (SELECT d.name FROM ves.destinations d WHERE d.id = dest);
    run := gen_random_uuid()::text;
    PERFORM ves._sync_event('sync.started', jsonb_build_object('destination', src, 'run', run, 'kind', 'pull',
      'from_sequence', c.next_sequence), c.tenant_id, c.store_id);
    PERFORM ves._sync_event('sync.completed', jsonb_strip_nulls(jsonb_build_object('destination', src,
      'run', run, 'kind', 'pull', 'from_sequence', c.next_sequence,
      'to_sequence', _pull_advance.next_sequence - 1, 'head', greatest(c.head_sequence, head),
      'pulled', _pull_advance.pulled, 'applied', _pull_advance.applied,
      'duplicates', _pull_advance.duplicates, 'stopped_at', CASE WHEN gap IS NOT NULL THEN gap_sequence END,
      'stop', gap)), c.tenant_id, c.store_id);
  END IF;
  UPDATE ves.pull_cursors x SET next_sequence = _pull_advance.next_sequence,
    last_event_id = coalesce(_pull_advance.last_event_id, x.last_event_id),
    head_sequence = greatest(x.head_sequence, head, _pull_advance.next_sequence - 1),
    pulled = x.pulled + _pull_advance.pulled, applied = x.applied + _pull_advance.applied,
    duplicates = x.duplicates + _pull_advance.duplicates,
    gaps = x.gaps + (gap IS NOT NULL)::int,
    last_gap = coalesce(gap, x.last_gap),
    last_gap_at = CASE WHEN gap IS NOT NULL THEN now() ELSE x.last_gap_at END,
    gap_streak = CASE WHEN gap IS NULL THEN 0
                      WHEN x.last_gap_sequence = gap_sequence THEN x.gap_streak + 1 ELSE 1 END,
    last_gap_sequence = coalesce(gap_sequence, x.last_gap_sequence),
    last_pull_at = now(),
    last_applied_at = CASE WHEN _pull_advance.applied + _pull_advance.duplicates > 0 THEN now()
                           ELSE x.last_applied_at END,
    last_error = NULL, last_error_at = NULL
  WHERE (x.destination_id, x.tenant_id, x.store_id) = (c.destination_id, c.tenant_id, c.store_id)
  RETURNING x.* INTO c;
  RETURN c.gap_streak;
END $$;

-- Stops the source's stream at seq with a security alert (recorded at once,
-- in this transaction, with NOTIFY ves_security); returns the alert's id.
CREATE FUNCTION ves._pull_stop(dest int, seq bigint, kind text, reason text, event_id uuid, raw bytea)
  RETURNS bigint
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c ves.pull_cursors := ves._pull_cursor(dest);
  src text := (SELECT d.name FROM ves.destinations d WHERE d.id = dest);
  aid bigint;
BEGIN
  INSERT INTO ves.security_alerts (alert_uid, kind, source, tenant_id, store_id, sequence_number, event_id, reason,
                                   raw, raw_truncated, reported_by, detected_at)
  VALUES (gen_random_uuid(), kind, src, c.tenant_id, c.store_id, seq, event_id, left(reason, 1000),
          substring(raw FROM 1 FOR 8192), octet_length(raw) > 8192, session_user, clock_timestamp())
  RETURNING id INTO aid;
  UPDATE ves.pull_cursors x SET stopped_at_sequence = seq, alert_id = aid
  WHERE (x.destination_id, x.tenant_id, x.store_id) = (c.destination_id, c.tenant_id, c.store_id);
  PERFORM pg_notify('ves_security', json_build_object('id', aid, 'kind', kind, 'source', src,
                                                      'tenant_id', c.tenant_id)::text);
  RETURN aid;
END $$;

-- A read that failed (kept until the next pull that reads). The first
-- failure of a streak (no error kept yet) appends sync.failed on the
-- source's sync stream; the retries that follow append nothing until a read
-- works (ves._pull_advance clears the error) and a later failure starts a
-- new streak.
CREATE FUNCTION ves._pull_failed(dest int, error text) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE c ves.pull_cursors := ves._pull_cursor(dest);
BEGIN
  IF c.last_error IS NULL THEN
    PERFORM ves._sync_event('sync.failed', jsonb_build_object(
      'destination', (SELECT d.name FROM ves.destinations d WHERE d.id = dest), 'kind', 'pull',
      'cursor', c.next_sequence, 'error', left(coalesce(error, 'unknown'), 500)), c.tenant_id, c.store_id);
  END IF;
  UPDATE ves.pull_cursors x SET last_error = left(error, 1000), last_error_at = now(), last_pull_at = now()
  WHERE (x.destination_id, x.tenant_id, x.store_id) = (c.destination_id, c.tenant_id, c.store_id);
END $$;

-- The receipt a pulled event came with, kept as a pushed event's is.
CREATE FUNCTION ves._pull_receipt(dest int, tenant_id uuid, event_id uuid, seq bigint, receipt jsonb,
                                  signature_verified boolean) RETURNS void
  LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
  INSERT INTO ves.sequencer_receipts (tenant_id, event_id, destination_id, sequence_number, sequenced_at,
                                      receipt_hash, signature_verified, receipt)
  VALUES ($2, $3, $1, $4, ($5 ->> 'sequencedAt')::timestamptz,
          decode(regexp_replace($5 ->> 'receiptHash', '^0x', ''), 'hex'), $6, $5)
  ON CONFLICT DO NOTHING
$$;

-- The C halves (src/pg/sync/pull.cpp): one read and apply for
-- ves.pull_events, and the apply of a page the worker read.
CREATE FUNCTION ves._pull_once(destination_id int, since bigint, max_count int) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ves_pull_once' LANGUAGE C VOLATILE;
CREATE FUNCTION ves._pull_apply(destination_id int, from_sequence bigint, fresh_start boolean, page text)
  RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ves_pull_apply' LANGUAGE C VOLATILE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE TYPE ves.pull_result AS (
  pulled      int,     -- items the source served
  applied     int,     -- events stored and applied
  duplicates  int,     -- events already stored here, not stored again (the cursor moved past them)
  head        bigint,  -- the highest sequence number the source has shown
  cursor      bigint,  -- the next sequence number to apply, after this pull
  stopped_at  bigint,  -- where applying stopped (a hole, a misordered number, an invalid event); NULL: read to the end
  stop_reason text,    -- hole, repeat, out_of_order, alert
  alert_id    bigint   -- the security alert holding the stream, if any
);

-- One pull of a source now: reads from the cursor (or from `since`, only
-- where the cursor has applied nothing yet or is `since`) at most max_count
-- events, verifies each, stores and applies the verified prefix. See README.
CREATE FUNCTION ves.pull_events(source text, since bigint DEFAULT NULL, max_count int DEFAULT 100)
  RETURNS ves.pull_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations;
  r jsonb;
  res ves.pull_result;
BEGIN
  IF source IS NULL OR max_count IS NULL THEN
    RAISE EXCEPTION 'source and max_count must not be NULL' USING ERRCODE = 'VE011',
      HINT = 'ves.pull_events(''my-sequencer'') pulls from the cursor.';
  END IF;
  d := ves._destination(source);
  IF d.tenant_id IS NOT NULL THEN
    PERFORM ves.check_tenant(d.tenant_id);
  END IF;
  IF NOT coalesce((d.kind_options ->> 'pull')::boolean, false) THEN
    RAISE EXCEPTION 'destination "%" is not a pull source', source USING ERRCODE = 'VE065',
      HINT = 'Make it one with ves.alter_destination(''' || source
             || ''', ''{"pull": true, "tenant_id": "<uuid>", "store_id": "<uuid>"}'') (kind ves_sequencer).';
  END IF;
  IF d.paused THEN
    RAISE EXCEPTION 'source "%" is paused', source USING ERRCODE = 'VE068',
      HINT = 'Resume it with ves.resume_destination(''' || source || ''') first.';
  END IF;
  IF max_count NOT BETWEEN 1 AND 1000 THEN
    RAISE EXCEPTION 'max_count must be between 1 and 1000' USING ERRCODE = 'VE010',
      HINT = 'Sequencers serve at most 1000 events a read.';
  END IF;
  IF since IS NOT NULL AND since < 1 THEN
    RAISE EXCEPTION 'since must be 1 or more' USING ERRCODE = 'VE010', HINT = 'Sequence numbers start at 1.';
  END IF;
  r := ves._pull_once(d.id, since, max_count);
  res := jsonb_populate_record(NULL::ves.pull_result, r);
  RETURN res;
END $$;

REVOKE ALL ON ves.pull_cursors, ves.pull_status FROM PUBLIC;
REVOKE ALL ON FUNCTION ves._pull_sources(boolean), ves._pull_cursor(int),
  ves._pull_advance(int, bigint, uuid, bigint, bigint, bigint, bigint, text, bigint),
  ves._pull_stop(int, bigint, text, text, uuid, bytea), ves._pull_failed(int, text),
  ves._pull_receipt(int, uuid, uuid, bigint, jsonb, boolean), ves._pull_once(int, bigint, int),
  ves._pull_apply(int, bigint, boolean, text), ves.pull_events(text, bigint, int)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves.pull_events(text, bigint, int) TO ves_admin;
GRANT EXECUTE ON FUNCTION ves._pull_sources(boolean), ves._pull_apply(int, bigint, boolean, text),
  ves._pull_failed(int, text) TO ves_worker;
ALTER TABLE ves.pull_cursors ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ves.pull_cursors FOR SELECT USING (ves.tenant_visible(tenant_id));
GRANT SELECT ON ves.pull_status TO ves_reader;
GRANT SELECT ON ves.pull_cursors TO ves_admin;
