-- Delivery metrics (README "Metrics"). The sync worker and ves.push_events
-- count every finished outbox row in shared memory (src/pg/sync/metrics.cpp):
-- attempts, successes, failures by class, retries, dead rows, requests and
-- items, and log-scale histograms of commit -> acknowledged (by event kind)
-- and of the HTTP round trip. The worker rolls them up into ves.sync_history
-- once a minute. Kept in one file that the upgrade script includes as well.

-- Per-minute rollups: what one destination counted during one minute.
-- counters holds the whole layout (core/delivery/histogram.hpp, append-only)
-- that ves.sync_metrics sums; the other columns are there to read.
CREATE TABLE ves.sync_history (
  minute             timestamptz NOT NULL,
  destination_id     int         NOT NULL,
  destination        text        NOT NULL,  -- its name when the rollup was written
  attempts           bigint      NOT NULL,
  successes          bigint      NOT NULL,
  failures           bigint      NOT NULL,
  retries            bigint      NOT NULL,
  dead               bigint      NOT NULL,
  inventory_sync_p95 double precision,      -- seconds, commit -> acknowledged
  order_sync_p95     double precision,
  http_p95           double precision,      -- seconds, request round trip
  counters           bigint[]    NOT NULL
);
CREATE INDEX sync_history_minute_idx ON ves.sync_history (minute, destination_id);
SELECT pg_catalog.pg_extension_config_dump('ves.sync_history', '');

CREATE FUNCTION ves._sync_metrics_live(cumulative boolean, OUT destination_id int, OUT counters bigint[])
  RETURNS SETOF record AS 'MODULE_PATHNAME', 'ves_sync_metrics_live' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION ves._add_counters(bigint[], bigint[]) RETURNS bigint[]
  AS 'MODULE_PATHNAME', 'ves_add_counters' LANGUAGE C IMMUTABLE;
CREATE AGGREGATE ves._sum_counters(bigint[]) (SFUNC = ves._add_counters, STYPE = bigint[]);
CREATE FUNCTION ves._counter_figures(counters bigint[],
    OUT attempts bigint, OUT successes bigint, OUT failures bigint, OUT retries bigint, OUT dead bigint,
    OUT requests bigint, OUT items bigint,
    OUT inventory_p50 double precision, OUT inventory_p95 double precision, OUT inventory_p99 double precision,
    OUT order_p50 double precision, OUT order_p95 double precision, OUT order_p99 double precision,
    OUT other_p95 double precision,
    OUT http_p50 double precision, OUT http_p95 double precision, OUT http_p99 double precision,
    OUT cross_platform_p95 double precision)
  AS 'MODULE_PATHNAME', 'ves_counter_figures' LANGUAGE C IMMUTABLE STRICT;
CREATE FUNCTION ves._record_cross_platform(destination_id int, seconds double precision) RETURNS void
  AS 'MODULE_PATHNAME', 'ves_record_cross_platform' LANGUAGE C VOLATILE STRICT;

-- Cross-platform sync: a SKU's count changed (a local change, or a platform
-- report the rules decided) at ves.inventory.updated_at; once every platform
-- it is mapped to is known to have the count, that took now() - updated_at.
-- One sample per SKU and location, when the last listing comes to agree,
-- counted on that listing's destination. A statement trigger for every
-- other writer of listings; the sync worker records a batch of pushes in one
-- statement that counts its samples itself, by the same rules
-- (src/pg/sync/outbox_sql.cpp, kRecordWithListingsSql), and the trigger leaves that
-- statement to it.
CREATE FUNCTION ves._listings_agree_counted() RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_listings_agree_counted' LANGUAGE C VOLATILE;
CREATE FUNCTION ves._listings_agree() RETURNS trigger
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM ves._record_cross_platform(x.destination_id, pg_catalog.date_part('epoch', now() - x.changed_at))
  FROM (
    SELECT DISTINCT ON (n.tenant_id, n.store_id, n.sku, n.location) n.destination_id, i.updated_at AS changed_at
    FROM new_listings n
    JOIN old_listings o ON o.destination_id = n.destination_id AND o.tenant_id = n.tenant_id
      AND o.store_id = n.store_id AND o.sku = n.sku AND o.location = n.location
    JOIN ves.inventory i ON i.tenant_id = n.tenant_id AND i.store_id = n.store_id AND i.sku = n.sku
      AND i.location = n.location
    WHERE n.known_quantity = i.available AND o.known_quantity IS DISTINCT FROM n.known_quantity
      AND NOT EXISTS (SELECT FROM ves.listings l
                      WHERE l.tenant_id = n.tenant_id AND l.store_id = n.store_id AND l.sku = n.sku
                        AND l.location = n.location AND l.known_quantity IS DISTINCT FROM i.available)
    ORDER BY n.tenant_id, n.store_id, n.sku, n.location, n.destination_id
  ) x;
  RETURN NULL;
END $$;
-- The WHEN clause leaves the worker's statement out before the function is
-- called (a definer-rights plpgsql call per recorded batch otherwise).
CREATE TRIGGER listings_agree AFTER UPDATE ON ves.listings
  REFERENCING OLD TABLE AS old_listings NEW TABLE AS new_listings
  FOR EACH STATEMENT WHEN (NOT ves._listings_agree_counted()) EXECUTE FUNCTION ves._listings_agree();
CREATE FUNCTION ves.reset_sync_metrics() RETURNS void
  AS 'MODULE_PATHNAME', 'ves_reset_sync_metrics' LANGUAGE C VOLATILE;
CREATE FUNCTION ves.prometheus_metrics() RETURNS text
  AS 'MODULE_PATHNAME', 'ves_prometheus_metrics' LANGUAGE C STABLE
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- One row per destination and one total (destination NULL) over the last
-- `window`: the per-minute rollups inside it plus what the live counters
-- hold since the last rollup. Latencies in seconds; NULL where nothing was
-- measured. cross_platform_sync_p95 is from the samples ves._listings_agree
-- counts. data_consistency_score is the share of listings
-- found equal at the last full reconciliation (per destination; all of them
-- on the total row), recovery_time the last recovery that ended in the window
-- or the one under way (ves.recoveries; the longest on the total row).
CREATE FUNCTION ves.sync_metrics("window" interval DEFAULT '5 min')
  RETURNS TABLE (destination text, inventory_sync_p50 double precision, inventory_sync_p95 double precision,
                 inventory_sync_p99 double precision, order_sync_p50 double precision,
                 order_sync_p95 double precision, order_sync_p99 double precision,
                 cross_platform_sync_p95 double precision, conflict_resolution_p95 double precision,
                 sync_success_rate double precision, conflict_resolution_rate double precision,
                 data_consistency_score double precision, recovery_time interval,
                 events_per_second double precision, concurrent_syncs bigint, queue_depth bigint,
                 oldest_pending_age interval, batch_efficiency double precision,
                 http_p50 double precision, http_p95 double precision, http_p99 double precision,
                 attempts bigint, successes bigint, failures bigint, retries bigint, dead bigint)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE seconds double precision;
BEGIN
  IF $1 IS NULL OR $1 <= interval '0' OR $1 > interval '10 years' THEN
    RAISE EXCEPTION 'window must be a positive interval of at most 10 years'
      USING ERRCODE = 'VE010', HINT = 'Pass a window such as ''5 min'' or ''1 hour''.';
  END IF;
  seconds := EXTRACT(epoch FROM $1);
  RETURN QUERY
  WITH counted AS (
    SELECT h.destination_id, h.counters FROM ves.sync_history h WHERE h.minute >= now() - $1
    UNION ALL
    SELECT l.destination_id, l.counters FROM ves._sync_metrics_live(false) l
  ), per AS (
    SELECT c.destination_id, ves._sum_counters(c.counters) AS counters FROM counted c GROUP BY c.destination_id
  ), queue AS (
    -- Open rows only, through outbox_open_idx (next_attempt_at is never
    -- NULL): closed rows stay until purged and outnumber them, and the
    -- sync worker reads these figures every 30 s (ves.evaluate_alerts).
    SELECT o.destination_id,
           count(*) AS depth,
           count(*) FILTER (WHERE o.lease_until > now()) AS syncing,
           now() - min(o.created_at) AS oldest
    FROM ves.outbox o
    WHERE o.status IN ('pending', 'failed') AND o.next_attempt_at IS NOT NULL
      AND (ves.current_tenant() IS NULL OR o.tenant_id = ves.current_tenant())
    GROUP BY GROUPING SETS ((o.destination_id), ())
  ), conflicts AS (
    SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(epoch FROM c.resolved_at - c.detected_at))
             FILTER (WHERE c.resolved_at >= now() - $1) AS p95,
           (count(*) FILTER (WHERE c.detected_at >= now() - $1 AND c.status = 'resolved'))::double precision
             / nullif(count(*) FILTER (WHERE c.detected_at >= now() - $1), 0) AS rate
    FROM ves.conflicts c
    WHERE ves.tenant_visible(c.tenant_id) AND (c.detected_at >= now() - $1 OR c.resolved_at >= now() - $1)
  ), targets AS (
    SELECT d.id, d.name, p.counters, q.depth, q.syncing, q.oldest, 1 AS ord
    FROM ves.destinations d
    LEFT JOIN per p ON p.destination_id = d.id
    LEFT JOIN queue q ON q.destination_id = d.id
    UNION ALL
    SELECT NULL, NULL, (SELECT ves._sum_counters(p.counters) FROM per p), q.depth, q.syncing, q.oldest, 2
    FROM (SELECT 1) one LEFT JOIN queue q ON q.destination_id IS NULL
  )
  SELECT t.name,
         f.inventory_p50, f.inventory_p95, f.inventory_p99, f.order_p50, f.order_p95, f.order_p99,
         f.cross_platform_p95,
         CASE WHEN t.ord = 2 THEN (SELECT k.p95 FROM conflicts k) END,
         coalesce(f.successes, 0)::double precision / nullif(coalesce(f.successes, 0) + coalesce(f.failures, 0), 0),
         CASE WHEN t.ord = 2 THEN (SELECT k.rate FROM conflicts k) END,
         CASE WHEN t.ord = 1 THEN (SELECT rr.consistency_score FROM ves.reconcile_runs rr WHERE rr.destination_id = t.id)
              ELSE (SELECT sum(rr.equal)::double precision / nullif(sum(rr.checked), 0) FROM ves.reconcile_runs rr) END,
         ves._recovery_time(t.id, $1),
         coalesce(f.successes, 0) / seconds,
         coalesce(t.syncing, 0), coalesce(t.depth, 0), t.oldest,
         f.items::double precision / nullif(f.requests, 0),
         f.http_p50, f.http_p95, f.http_p99,
         coalesce(f.attempts, 0), coalesce(f.successes, 0), coalesce(f.failures, 0),
         coalesce(f.retries, 0), coalesce(f.dead, 0)
  FROM targets t
  LEFT JOIN LATERAL ves._counter_figures(t.counters) f ON true
  ORDER BY t.ord, t.name;
END
$$;

REVOKE ALL ON FUNCTION ves._sync_metrics_live(boolean), ves._add_counters(bigint[], bigint[]),
  ves._sum_counters(bigint[]), ves._counter_figures(bigint[]), ves.reset_sync_metrics(),
  ves._record_cross_platform(int, double precision), ves._listings_agree(), ves._listings_agree_counted(),
  ves.prometheus_metrics(), ves.sync_metrics(interval) FROM PUBLIC;
REVOKE ALL ON ves.sync_history FROM PUBLIC;
-- Operators and monitoring roles (pg_monitor, which the Prometheus exporters
-- connect as) read the figures; they are per destination, not per tenant.
-- (USAGE lets pg_monitor name them; nothing else in ves is granted to it.)
GRANT USAGE ON SCHEMA ves TO pg_monitor;
GRANT EXECUTE ON FUNCTION ves.sync_metrics(interval), ves.prometheus_metrics() TO ves_admin, pg_monitor;
GRANT EXECUTE ON FUNCTION ves.reset_sync_metrics() TO ves_admin;
GRANT SELECT ON ves.sync_history TO ves_admin, pg_monitor;
-- The worker writes the rollups and drops expired ones.
GRANT SELECT, INSERT, DELETE ON ves.sync_history TO ves_worker;
-- Its record of pushed counts counts the cross-platform samples it completes.
GRANT EXECUTE ON FUNCTION ves._record_cross_platform(int, double precision), ves._listings_agree_counted()
  TO ves_worker;
