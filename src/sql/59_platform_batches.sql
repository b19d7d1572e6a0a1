-- Batches a platform accepted for later processing. Meta's items_batch
-- answers with a handle before it has applied anything; per-item errors are
-- only known once check_batch_request_status says the batch finished. The
-- worker records each accepted batch here with its lines in the order sent,
-- and ves.follow_up_batches asks about the due ones: a line the platform
-- refused leaves its listing 'failed' with the platform's reason (and its
-- known count unknown, so the next change or reconciliation sends it again).

CREATE TABLE ves.platform_batches (
  id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  destination_id int         NOT NULL REFERENCES ves.destinations ON DELETE CASCADE,
  tenant_id      uuid        NOT NULL,
  handle         text        NOT NULL,
  items          jsonb       NOT NULL,  -- [{"sku", "location", "key"}], line order
  accepted_at    timestamptz NOT NULL DEFAULT now(),
  status         text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'finished', 'unknown')),
  checks         int         NOT NULL DEFAULT 0,
  next_check_at  timestamptz NOT NULL DEFAULT now(),
  failed_items   int,
  last_error     text,
  finished_at    timestamptz,
  UNIQUE (destination_id, handle)
);
SELECT pg_catalog.pg_extension_config_dump('ves.platform_batches', '');
CREATE INDEX platform_batches_due ON ves.platform_batches (next_check_at) WHERE status = 'pending';
CREATE INDEX platform_batches_closed ON ves.platform_batches (finished_at) WHERE status <> 'pending';

CREATE FUNCTION ves._follow_up_read(destination_id int, kind text, url text, kind_options jsonb, timeout_ms int,
                                    handles text[], lines jsonb, rate_limit float8, burst int,
                                    concurrency int) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'ves_follow_up_read' LANGUAGE C VOLATILE;

-- The due accepted batches of each destination that is not paused, at most
-- max_batches each, those due longest first, with what asking about them
-- takes: the destination's platform and limits, and each batch's lines'
-- keys in the order sent. Finished and given-up batches older than a day
-- are deleted first.
CREATE FUNCTION ves._follow_ups_due(max_batches int)
  RETURNS TABLE (destination_id int, kind text, url text, kind_options jsonb, timeout_ms int,
                 rate_limit float8, burst int, concurrency int, ids bigint[], handles text[], lines jsonb)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  DELETE FROM ves.platform_batches b WHERE b.status <> 'pending' AND b.finished_at < now() - interval '1 day';
  SELECT x.id, x.kind, x.url, x.kind_options, x.timeout_ms, x.rate_limit, x.burst, x.concurrency,
         array_agg(b.id ORDER BY b.next_check_at, b.id),
         array_agg(b.handle ORDER BY b.next_check_at, b.id),
         jsonb_agg((SELECT coalesce(jsonb_agg(i -> 'key'), '[]') FROM jsonb_array_elements(b.items) i)
                   ORDER BY b.next_check_at, b.id)
  FROM ves.destinations x
  CROSS JOIN LATERAL (SELECT * FROM ves.platform_batches p
                      WHERE p.destination_id = x.id AND p.status = 'pending' AND p.next_check_at <= now()
                      ORDER BY p.next_check_at, p.id LIMIT max_batches) b
  WHERE NOT x.paused
  GROUP BY x.id
  ORDER BY x.id
$$;

-- Records what the platform said of the batches `ids` (`got`: one answer
-- per batch, in ves._follow_up_read's form) and returns how many finished.
-- A batch not finished yet is asked again after 2, 4, 8 ... up to 60
-- seconds; after 30 checks it is given up as 'unknown' (the listings keep
-- their state; the next reconciliation reads the counts back). A batch not
-- asked (the destination's rate left no room for it) stays due, its checks
-- unchanged.
CREATE FUNCTION ves._follow_up_record(ids bigint[], got jsonb) RETURNS int
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r        jsonb;
  finished int := 0;
BEGIN
  IF ids IS NULL OR got IS NULL OR jsonb_typeof(got) <> 'array' OR jsonb_array_length(got) <> cardinality(ids) THEN
    RAISE EXCEPTION 'got must hold one answer per batch' USING ERRCODE = 'VE010',
      HINT = 'Only ves.follow_up_batches and the sync worker record follow-ups.';
  END IF;
  FOR i IN 1 .. cardinality(ids) LOOP
    r := got -> (i - 1);
    IF NOT coalesce((r ->> 'asked')::boolean, true) THEN
      CONTINUE;
    END IF;
    IF (r ->> 'finished')::boolean THEN
      UPDATE ves.listings l SET state = 'failed', last_error = f.value ->> 'reason', known_quantity = NULL,
                                updated_at = now()
      FROM ves.platform_batches b, jsonb_array_elements(r -> 'failed') f
      WHERE b.id = ids[i] AND l.destination_id = b.destination_id
        AND l.sku = b.items -> ((f.value ->> 'line')::int) ->> 'sku'
        AND l.location = b.items -> ((f.value ->> 'line')::int) ->> 'location'
        AND (l.pushed_at IS NULL OR l.pushed_at <= b.accepted_at);
      UPDATE ves.platform_batches b SET status = 'finished', finished_at = now(), checks = b.checks + 1,
        failed_items = jsonb_array_length(r -> 'failed'),
        last_error = (SELECT string_agg(f.value ->> 'reason', '; ') FROM jsonb_array_elements(r -> 'failed') f)
      WHERE b.id = ids[i];
      finished := finished + 1;
    ELSE
      UPDATE ves.platform_batches b SET checks = b.checks + 1, last_error = r ->> 'error',
        next_check_at = now() + least(interval '60 seconds', interval '2 seconds' * power(2, least(b.checks, 5))),
        status = CASE WHEN b.checks + 1 >= 30 THEN 'unknown' ELSE 'pending' END,
        finished_at = CASE WHEN b.checks + 1 >= 30 THEN now() END
      WHERE b.id = ids[i];
    END IF;
  END LOOP;
  RETURN finished;
END $$;

-- Asks the platforms about their due accepted batches (at most max_batches
-- per destination), records what they say and returns how many finished
-- (ves._follow_up_record: when each is asked again, when it is given up).
-- Finished and given-up batches are deleted after a day. The questions keep
-- to the destination's rate_limit, burst and concurrency (ves._follow_up_read
-- asks only as many as the read bucket allows at once): a batch not asked in
-- this round stays due, its checks unchanged, and the batches due longest
-- are asked first, so none waits behind others asked again and again. The
-- sync worker asks the same questions on its own HTTP engine, beside its
-- deliveries, every 2 seconds.
CREATE FUNCTION ves.follow_up_batches(max_batches int DEFAULT 20) RETURNS int
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d        record;
  got      jsonb;
  finished int := 0;
BEGIN
  IF max_batches IS NULL OR max_batches < 1 THEN
    RAISE EXCEPTION 'max_batches must be 1 or more' USING ERRCODE = 'VE010',
      HINT = 'Pass how many batches per destination to ask about, e.g. 20.';
  END IF;
  FOR d IN SELECT * FROM ves._follow_ups_due(max_batches) LOOP
    BEGIN
      got := ves._follow_up_read(d.destination_id, d.kind, d.url, d.kind_options, d.timeout_ms, d.handles,
                                 d.lines, d.rate_limit, d.burst, d.concurrency);
    EXCEPTION WHEN OTHERS THEN
      -- The platform could not be asked (no credentials, a bad answer):
      -- ask again later, like a batch that has not finished.
      got := (SELECT jsonb_agg(jsonb_build_object('finished', false, 'error', SQLERRM, 'failed', '[]'::jsonb))
              FROM unnest(d.ids));
    END;
    finished := finished + ves._follow_up_record(d.ids, got);
  END LOOP;
  RETURN finished;
END $$;

REVOKE ALL ON ves.platform_batches FROM PUBLIC;
REVOKE ALL ON FUNCTION ves._follow_up_read(int, text, text, jsonb, int, text[], jsonb, float8, int, int),
  ves._follow_ups_due(int), ves._follow_up_record(bigint[], jsonb), ves.follow_up_batches(int) FROM PUBLIC;
ALTER TABLE ves.platform_batches ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ves.platform_batches FOR SELECT USING (ves.tenant_visible(tenant_id));
GRANT SELECT ON ves.platform_batches TO ves_admin;
GRANT EXECUTE ON FUNCTION ves.follow_up_batches(int) TO ves_admin;
