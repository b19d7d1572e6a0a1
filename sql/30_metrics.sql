-- Delivery metrics: counters and histograms in shared memory, read through
-- ves.sync_metrics(window), ves.prometheus_metrics() and the new columns of
-- ves.get_sync_status(). No worker runs here: ves.push_events drives
-- delivery against a closed port, so every attempt is a transport failure
-- and the counts are exact. (Latencies of successful deliveries are checked
-- against the mock sink in test/t/050_metrics.pl.)
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000003001'''
\set s '''00000000-0000-0000-0000-000000003002'''

SELECT ves.reset_sync_metrics();
SELECT (ves.create_destination('metrics-inv', 'http', 'http://127.0.0.1:9/inv',
  '{"entity_types": ["inventory", "order"], "max_attempts": 2, "backoff_base_ms": 1, "backoff_cap_ms": 1,
    "jitter": 0, "timeout_ms": 2000}')).name;

-- Nothing happened yet: zero counts, no percentiles, no rate.
SELECT destination, attempts, successes, failures, dead, sync_success_rate, inventory_sync_p95,
       http_p95, queue_depth, batch_efficiency
FROM ves.sync_metrics() WHERE destination = 'metrics-inv';

-- Three entities, one event each, queued for the destination.
SELECT count(*) FROM ves.append(:t, :s, 'inventory', 'sku-1', 'stock.set', '{"on_hand": 5}');
SELECT count(*) FROM ves.append(:t, :s, 'inventory', 'sku-2', 'stock.set', '{"on_hand": 7}');
SELECT count(*) FROM ves.append(:t, :s, 'order', 'o-1', 'order.created', '{}');
SELECT destination, pending, queue_depth, last_sync_at, open_conflicts >= 0 AS has_open_conflicts
FROM ves.get_sync_status() WHERE destination = 'metrics-inv';
SELECT destination, queue_depth, oldest_pending_age IS NOT NULL AS has_oldest, concurrent_syncs
FROM ves.sync_metrics('1 hour') WHERE destination = 'metrics-inv';

-- First pass: three attempts, three transport failures, no row dead yet.
SELECT sent, synced, failed, dead FROM ves.push_events('metrics-inv');
SELECT destination, attempts, successes, failures, retries, dead, sync_success_rate, events_per_second,
       batch_efficiency, http_p95 IS NOT NULL AS has_http_p95, inventory_sync_p95
FROM ves.sync_metrics() WHERE destination = 'metrics-inv';
-- Second pass (after the 1 ms backoff): the second attempts are retries and
-- every row ends dead (max_attempts 2).
SELECT pg_sleep(0.05);
SELECT sent, synced, failed, dead FROM ves.push_events('metrics-inv');
SELECT destination, attempts, successes, failures, retries, dead, sync_success_rate, queue_depth
FROM ves.sync_metrics() WHERE destination = 'metrics-inv';
-- The total row (destination NULL) comes last and counts every destination.
SELECT destination IS NULL AS is_total, attempts >= 6 AS counts_all, dead >= 3 AS dead_all
FROM ves.sync_metrics() ORDER BY destination IS NULL DESC LIMIT 1;
SELECT count(*) FILTER (WHERE destination IS NULL) AS total_rows FROM ves.sync_metrics();

-- The Prometheus exposition: failures by class, dead rows, a histogram per
-- event kind with cumulative buckets ending in +Inf.
SELECT line FROM regexp_split_to_table(ves.prometheus_metrics(), E'\n') AS line
WHERE line ~ 'destination="metrics-inv"'
  AND line ~ '^(pgves_delivery_(attempts|dead|retries)_total|pgves_delivery_failures_total.*class="(transport|permanent)"|pgves_outbox_dead_rows|pgves_http_request_duration_seconds_count|pgves_sync_latency_seconds_count.*kind="inventory")'
ORDER BY line;
SELECT count(*) AS type_lines, count(DISTINCT line) AS distinct_type_lines
FROM regexp_split_to_table(ves.prometheus_metrics(), E'\n') AS line WHERE line LIKE '# TYPE %';

-- A reset starts the live counters again from zero.
SELECT ves.reset_sync_metrics();
SELECT attempts, failures, dead FROM ves.sync_metrics() WHERE destination = 'metrics-inv';

-- Percentiles are read from the log-scale buckets, interpolated inside the
-- bucket: 100 inventory samples in (1 ms, 2 ms] (the fifth bucket, element
-- 17 of the counters) give p50 1.5 ms and p99 1.99 ms.
SELECT round(inventory_p50::numeric, 6) AS p50, round(inventory_p99::numeric, 6) AS p99,
       order_p50, attempts
FROM ves._counter_figures((SELECT array_agg(CASE WHEN i = 17 THEN 100 ELSE 0 END ORDER BY i)
                           FROM generate_series(1, 104) i));

-- Bad windows are refused.
SELECT regress_try($q$SELECT * FROM ves.sync_metrics('-5 min')$q$);
SELECT regress_try($q$SELECT * FROM ves.sync_metrics(NULL)$q$);

-- Who may read them: administrators and monitoring roles, not readers or writers.
SELECT r AS role, has_function_privilege(r, 'ves.sync_metrics(interval)', 'EXECUTE') AS sync_metrics,
       has_function_privilege(r, 'ves.prometheus_metrics()', 'EXECUTE') AS prometheus,
       has_table_privilege(r, 'ves.sync_history', 'SELECT') AS history,
       has_function_privilege(r, 'ves.reset_sync_metrics()', 'EXECUTE') AS reset
FROM unnest(ARRAY['ves_reader', 'ves_writer', 'ves_admin', 'pg_monitor']) r;

SELECT ves.drop_destination('metrics-inv');
