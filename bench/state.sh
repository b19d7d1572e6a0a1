#!/usr/bin/env bash
# Entity state, conflicts and reservations: ves.upsert without and with
# conflicts, ves.reserve_stock on one hot SKU, each next to plain signed
# ves.append measured in the same run, on the same throwaway cluster, with the
# same settings as bench/run.sh. See bench/README.md.
#
#   bash bench/state.sh
#
# Needs pg_ves built and installed (README: make && sudo make install) and
# pgbench. Settings, all optional:
#   PGVES_BENCH_SECONDS=20          pgbench seconds per 4-client case
#   PGVES_BENCH_SLICES=2            alternating slices those seconds are split into
#   PGVES_BENCH_WARMUP=2            untimed pgbench seconds per case first
#   PGVES_BENCH_SINGLE_SECONDS=8    seconds of each single-client latency run
#   PGVES_BENCH_CLIENTS=4           pgbench clients
#   PGVES_BENCH_ENTITIES=1000       distinct entities per client (no-conflict case)
#   PGVES_BENCH_HOT=10              entities in the hot set (conflict case)
#   PGVES_BENCH_SYNCHRONOUS_COMMIT=on
#   PGVES_BENCH_SHARED_BUFFERS=512MB
#   PGVES_BENCH_TENANTS=10 PGVES_BENCH_SKUS=1000   append baseline, as in run.sh
#   PGVES_BENCH_DIAGNOSE=1          at the end, list the functions and statements
#                                   that take the time inside each call
#                                   (track_functions, pg_stat_statements; about +20 s); 0 skips it
#   PGVES_BENCH_KEEP=1              keep the scratch directory (logs)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
. scripts/common.sh

seconds=${PGVES_BENCH_SECONDS:-20}
slices=${PGVES_BENCH_SLICES:-2}
warmup=${PGVES_BENCH_WARMUP:-2}
single_seconds=${PGVES_BENCH_SINGLE_SECONDS:-8}
clients=${PGVES_BENCH_CLIENTS:-4}
entities=${PGVES_BENCH_ENTITIES:-1000}
hot=${PGVES_BENCH_HOT:-10}
sync_commit=${PGVES_BENCH_SYNCHRONOUS_COMMIT:-on}
shared_buffers=${PGVES_BENCH_SHARED_BUFFERS:-512MB}
tenants=${PGVES_BENCH_TENANTS:-10}
skus=${PGVES_BENCH_SKUS:-1000}
diagnose=${PGVES_BENCH_DIAGNOSE:-1}
cores=$(nproc)
t_start=$(date +%s)

die() { echo "bench: $*" >&2; exit 1; }
command -v pgbench >/dev/null || die "pgbench is missing (apt-get install postgresql-client-15)"
[ -f "$(pg_config --sharedir)/extension/pg_ves.control" ] ||
  die "pg_ves is not installed; run 'make && sudo make install' first"
install_sql="$(pg_config --sharedir)/extension/pg_ves--$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$(pg_config --sharedir)/extension/pg_ves.control").sql"
grep -q 'FUNCTION ves.reserve_stock' "$install_sql" ||
  die "the installed pg_ves has no ves.upsert / ves.reserve_stock; run 'make && sudo make install'"

# Other work may reinstall pg_ves while this runs; the end of the run says so.
so="$(pg_config --pkglibdir)/pg_ves.so"
installed_at() { stat -c %Y "$so" "$install_sql" | tr '\n' ' '; }
installed_before=$(installed_at)

. bench/cluster.sh
bench_cluster state_bench
sql -c 'CREATE EXTENSION pg_ves'

tenant_sql() { echo "('00000000-0000-4000-8000-' || lpad(($1)::text, 12, '0'))::uuid"; }
store_sql() { echo "('00000000-0000-4000-9000-' || lpad(($1)::text, 12, '0'))::uuid"; }
t1=$(tenant_sql 1)
s1=$(store_sql 1)
sources="ARRAY['shopify', 'amazon', 'tiktok', 'meta']"

# --- pgbench scripts --------------------------------------------------------
# Baseline: the single append of bench/run.sh, unchanged.
cat >"$work/append.sql" <<EOF
\\set t random(1, $tenants)
\\set s random(1, $skus)
\\set d random(-5, 5)
\\set w random(1, 4)
\\set o random(1000000, 9999999)
\\set v random(1, 1000000000)
SELECT ves.append($(tenant_sql :t), $(store_sql :t), 'InventoryItem', 'SKU-' || :s, 'inventory.adjusted', jsonb_build_object('sku', 'SKU-' || :s, 'delta', :d::int, 'reason', 'sale', 'location', 'WH-' || :w, 'order_id', 'ORD-' || :o));
EOF
# (a) No conflicts: client c owns the entities P-c-1 .. P-c-N (spread over the
# tenants) and is their only writer, always as the same source and with no
# base version, so every call applies (rule "none": the source's own last
# write is the base). ~100-byte state.
state_expr="jsonb_build_object('title', 'Product ' || :n, 'price', :p::int, 'currency', 'EUR', 'color', (ARRAY['red', 'blue', 'green', 'black'])[:c::int], 'sku', 'SKU-' || :n)"
cat >"$work/upsert_own.sql" <<EOF
\\set n random(1, $entities)
\\set t 1 + :n % $tenants
\\set p random(1, 1000000)
\\set c random(1, 4)
SELECT ves.upsert($(tenant_sql :t), $(store_sql :t), 'Product', 'P-' || :client_id || '-' || :n, $state_expr, source => 'shopify');
EOF
# (b) Conflicts: every client writes the hot set HOT-1 .. HOT-k of tenant 1
# with base_version 1 (always stale after the first change) as a random one
# of four platforms, so every call is a version_mismatch. The tenant's policy
# is the default with review_window_ms = 0: a field changed on both sides is
# settled by source priority when the two writers are different platforms and
# opened for review (rule "merge") when the same platform wrote last.
cat >"$work/upsert_hot.sql" <<EOF
\\set n random(1, $hot)
\\set p random(1, 1000000)
\\set c random(1, 4)
\\set src random(1, 4)
SELECT ves.upsert($t1, $s1, 'Product', 'HOT-' || :n, $state_expr, base_version => 1, source => ($sources)[:src::int]);
EOF
# Reservations: one unit of one SKU per call, reservation id generated.
cat >"$work/reserve.sql" <<EOF
SELECT ves.reserve_stock($t1, $s1, 'HOT-SKU', 1);
EOF

# --- helpers ----------------------------------------------------------------
# One pgbench run: name, script, seconds, clients, [log prefix], [PGOPTIONS].
# Prints "tps transactions"; dies on failed transactions.
pgbench_once() {
  local out="$work/pgbench_$1.out" j=$(( $4 < cores ? $4 : cores )) logopt=()
  [ -z "${5:-}" ] || logopt=(--log "--log-prefix=$5")
  PGOPTIONS="${6:-}" pgbench -n -M prepared -c "$4" -j "$j" -T "$3" "${logopt[@]}" -f "$2" >"$out" 2>&1 ||
    { cat "$out" >&2; die "pgbench for $1 failed"; }
  if grep -q 'number of failed transactions' "$out" && ! grep -q 'number of failed transactions: 0 ' "$out"; then
    cat "$out" >&2; die "pgbench for $1 had failed transactions"
  fi
  awk '/^number of transactions actually processed:/ { n = $6 }
       /^tps = .*without initial connection time/ { t = $3 }
       END { printf "%.1f %d\n", t, n }' "$out"
}
# p50 p95 p99 (ms) of the per-transaction latencies (µs, 3rd field) in pgbench logs.
log_percentiles() {
  cat "$@" | awk '{ print $3 }' | sort -n | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "- - -"; exit }
    split("0.50 0.95 0.99", q, " ")
    for (i = 1; i <= 3; i++) { k = int(q[i] * NR + 0.999999); if (k < 1) k = 1; printf "%.3f ", v[k] / 1000 }
    printf "\n" }'
}
# p50 p95 p99 (ms) of "duration: X ms  execute" lines in the server log after byte offset $1.
server_percentiles() {
  tail -c +"$(($1 + 1))" "$work/server.log" | sed -n 's/.*duration: \([0-9.]*\) ms  execute .*/\1/p' | sort -n |
    awk '{ v[NR] = $1 } END {
      if (NR == 0) { print "- - - 0"; exit }
      split("0.50 0.95 0.99", q, " ")
      for (i = 1; i <= 3; i++) { k = int(q[i] * NR + 0.999999); if (k < 1) k = 1; printf "%.3f ", v[k] }
      printf "%d\n", NR }'
}
mean() { awk '{ s += $1; n++ } END { printf "%.1f", (n ? s / n : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
conflicts_now() { sql -c 'SELECT count(*) FROM ves.conflicts'; }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "pg_ves state benchmarks — $(date -u '+%Y-%m-%d %H:%M UTC'), PostgreSQL $(sql -c 'SHOW server_version' | sed 's/ .*//')"
echo "machine: $cores cores (${cpu:-unknown CPU}), $(free -g | awk '/^Mem:/ { print $2 " GB RAM" }'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cluster: shared_buffers=$shared_buffers, fsync=on, full_page_writes=on, synchronous_commit=$sync_commit, jit=off"
echo "pg_ves: $so built $(date -u -d "@${installed_before%% *}" '+%Y-%m-%d %H:%M UTC'), checkout $(git -c safe.directory="$repo" -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -c safe.directory="$repo" -C "$repo" status --porcelain -- src Makefile 2>/dev/null | grep -q . && echo ' + uncommitted changes in src/')"

# --- seeding ----------------------------------------------------------------
# Every entity, SKU and the hot set exist before anything is measured, so the
# runs measure updates of existing rows (the steady state), not first writes.
# Upserts are committed every 500 calls (each holds an advisory lock until commit).
echo "== seeding: $tenants x $skus SKUs (append), $clients x $entities products, $hot hot products, 1 hot SKU"
sql -v t_count="$tenants" -v s_count="$skus" <<EOF
SELECT count(*) FROM generate_series(1, :t_count) t,
  LATERAL ves.append_batch((
    SELECT jsonb_agg(jsonb_build_object(
             'tenant_id', $(tenant_sql t), 'store_id', $(store_sql t),
             'entity_type', 'InventoryItem', 'entity_id', 'SKU-' || s,
             'event_type', 'inventory.adjusted',
             'payload', jsonb_build_object('sku', 'SKU-' || s, 'delta', 0, 'reason', 'count', 'location', 'WH-1', 'order_id', 'ORD-0')))
    FROM generate_series(1, :s_count) s)) \\g /dev/null
SELECT count(*) FROM generate_series(1, :t_count) t,
  LATERAL ves.set_conflict_policy($(tenant_sql t), '*', '{"review_window_ms": 0}') \\g /dev/null
EOF
sql <<EOF
DO \$\$
DECLARE k int := 0;
BEGIN
  FOR c IN 0 .. $clients - 1 LOOP
    FOR n IN 1 .. $entities LOOP
      PERFORM ves.upsert($(tenant_sql "1 + n % $tenants"), $(store_sql "1 + n % $tenants"), 'Product', 'P-' || c || '-' || n,
        jsonb_build_object('title', 'Product ' || n, 'price', 0, 'currency', 'EUR', 'color', 'none', 'sku', 'SKU-' || n),
        source => 'shopify');
      k := k + 1;
      IF k % 500 = 0 THEN COMMIT; END IF;
    END LOOP;
  END LOOP;
  FOR n IN 1 .. $hot LOOP
    PERFORM ves.upsert($t1, $s1, 'Product', 'HOT-' || n,
      jsonb_build_object('title', 'Hot ' || n, 'price', 0, 'currency', 'EUR', 'color', 'none', 'sku', 'HOT-' || n));
  END LOOP;
END \$\$;
SELECT ves.set_stock($t1, $s1, 'HOT-SKU', 1000000000000) \\g /dev/null
EOF
[ "$(sql -c "SELECT count(*) FROM ves.entity_state WHERE version = 1")" = $((clients * entities + hot)) ] ||
  die "seeding did not leave every product at version 1"
sql -c 'VACUUM ANALYZE'

# --- 1. throughput, 4 clients -------------------------------------------------
# The four cases alternate in slices, each after a CHECKPOINT, so drift in
# the disk's fsync latency hits them alike. Latency percentiles come from the
# pgbench transaction logs of all slices.
slice=$(( (seconds + slices - 1) / slices ))
cases=(append own hot reserve)
declare -A script=([append]="$work/append.sql" [own]="$work/upsert_own.sql" [hot]="$work/upsert_hot.sql" [reserve]="$work/reserve.sql")
declare -A label=([append]="ves.append (baseline)" [own]="ves.upsert, no conflicts" [hot]="ves.upsert, conflicts (hot set)" [reserve]="ves.reserve_stock, 1 hot SKU")
declare -A tps_list=() txns=()
echo "== 1. $clients clients, ${seconds} s per case in $slices alternating slices (warm-up ${warmup} s each)"
reserved_txns=0
for c in "${cases[@]}"; do
  if [ "$warmup" -gt 0 ]; then
    r=$(pgbench_once "${c}_warmup" "${script[$c]}" "$warmup" "$clients")
    [ "$c" != reserve ] || reserved_txns=$((reserved_txns + ${r#* }))
  fi
done
hot_conflicts=0
for ((i = 1; i <= slices; i++)); do
  for c in "${cases[@]}"; do
    sql -c 'CHECKPOINT'
    before=$(conflicts_now)
    r=$(pgbench_once "$c" "${script[$c]}" "$slice" "$clients" "$work/log_${c}_$i")
    after=$(conflicts_now)
    tps_list[$c]+="${r% *} "
    txns[$c]=$(( ${txns[$c]:-0} + ${r#* } ))
    [ "$c" != reserve ] || reserved_txns=$((reserved_txns + ${r#* }))
    if [ "$c" = hot ]; then hot_conflicts=$((hot_conflicts + after - before)); fi
    if [ "$c" != hot ] && [ "$after" != "$before" ]; then die "$c created $((after - before)) conflicts"; fi
  done
done
declare -A tps=() lat=()
for c in "${cases[@]}"; do
  tps[$c]=$(printf '%s\n' ${tps_list[$c]} | mean)
  lat[$c]=$(log_percentiles "$work"/log_"${c}"_*)
  printf '%-34s %9s tps   p50/p95/p99 %s ms   (slices: %s)\n' "${label[$c]}" "${tps[$c]}" "$(echo ${lat[$c]} | tr ' ' '/')" "${tps_list[$c]% }"
done
echo "conflicts rows created by the measured conflict runs: $hot_conflicts for ${txns[hot]} upserts"
echo "all conflicts rows so far, by outcome (status, rule):"
sql -F ' ' -c "SELECT '   ', count(*), status, rule, conflict_type FROM ves.conflicts GROUP BY 3, 4, 5 ORDER BY 2 DESC"

# Reservations: the books must balance.
read -r inv_reserved inv_available held_count held_sum reserved_events <<<"$(sql -F ' ' -c "
  SELECT i.reserved, i.available,
         (SELECT count(*) FROM ves.reservations r WHERE r.tenant_id = i.tenant_id AND r.sku = i.sku AND r.status = 'held'),
         (SELECT coalesce(sum(quantity), 0) FROM ves.reservations r WHERE r.tenant_id = i.tenant_id AND r.sku = i.sku AND r.status = 'held'),
         (SELECT count(*) FROM ves.events e WHERE e.tenant_id = i.tenant_id AND e.entity_type = 'inventory'
            AND e.entity_id = i.sku AND e.event_type = 'inventory.reserved')
  FROM ves.inventory i WHERE i.tenant_id = $t1 AND i.store_id = $s1 AND i.sku = 'HOT-SKU'")"
check_ok=ok
[ "$inv_reserved" = "$held_sum" ] && [ "$held_count" = "$reserved_txns" ] && [ "$reserved_events" = "$reserved_txns" ] &&
  [ "$inv_available" -ge 0 ] || check_ok=FAILED
# release_stock gives units back once; the second call is a duplicate.
read -r rel_reserved rel_outcome <<<"$(sql -F ' ' <<EOF
SELECT count(*) FROM (SELECT ves.release_stock($t1, reservation_id) FROM ves.reservations
  WHERE tenant_id = $t1 AND sku = 'HOT-SKU' AND status = 'held' ORDER BY created_at LIMIT 100) x \\g /dev/null
SELECT i.reserved, (SELECT (ves.release_stock($t1, (SELECT reservation_id FROM ves.reservations
    WHERE tenant_id = $t1 AND sku = 'HOT-SKU' AND status = 'released' LIMIT 1))).outcome)
  FROM ves.inventory i WHERE i.tenant_id = $t1 AND i.sku = 'HOT-SKU';
EOF
)"
[ "$rel_reserved" = $((inv_reserved - 100)) ] && [ "$rel_outcome" = duplicate ] || check_ok=FAILED
echo "reservations check: $reserved_txns successful reserve_stock calls, $held_count held ($held_sum units), inventory reserved=$inv_reserved available=$inv_available, $reserved_events inventory.reserved events; 100 released -> reserved=$rel_reserved, repeat release: $rel_outcome => $check_ok"

# --- 2. one client: latency without queueing ----------------------------------
# pgbench's transaction latency (client round trip + execution + commit, which
# waits for the WAL flush) and, from the same calls, the server's own
# "execute" duration (log_min_duration_statement = 0 in that session only):
# the time inside the database, without the commit and the round trip.
echo "== 2. one client, ${single_seconds} s per case: client latency and server-side execute time"
declare -A lat1=() exec1=() tps1=()
for c in append own hot; do
  sql -c 'CHECKPOINT'
  offset=$(stat -c %s "$work/server.log")
  r=$(pgbench_once "${c}_single" "${script[$c]}" "$single_seconds" 1 "$work/single_${c}" "-c log_min_duration_statement=0")
  tps1[$c]=${r% *}
  lat1[$c]=$(log_percentiles "$work"/single_"${c}".*)
  exec1[$c]=$(server_percentiles "$offset")
  printf '%-34s %9s tps   client p50/p95/p99 %s ms   in database p50/p95/p99 %s ms (%s calls)\n' "${label[$c]}" "${tps1[$c]}" \
    "$(echo ${lat1[$c]} | tr ' ' '/')" "$(echo ${exec1[$c]} | cut -d' ' -f1-3 | tr ' ' '/')" "$(echo ${exec1[$c]} | cut -d' ' -f4)"
done

# --- 3. where the time goes (optional) ------------------------------------------
# One client, 4 s per case, with track_functions = all (self time of every
# pg_ves function, SQL and C ones included unless inlined) and, when it is
# installed, pg_stat_statements with track = all (each statement run inside
# the call). Both are set for these sessions only, after the measurements.
if [ "$diagnose" = 1 ]; then
  pgss=0
  if [ -f "$(pg_config --sharedir)/extension/pg_stat_statements.control" ]; then
    pgss=1
    echo "shared_preload_libraries = 'pg_ves, pg_stat_statements'" >>"$data/postgresql.conf"
    as_pg pg_ctl -D "$data" -m fast -w restart >/dev/null || { tail -n 20 "$work/server.log"; die "restart failed"; }
    sql -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'
  fi
  echo "== 3. diagnosis: 1 client, 4 s per case; functions by self time (track_functions = all)$([ "$pgss" = 1 ] && echo ', statements inside the call (pg_stat_statements.track = all)')"
  for c in own hot reserve; do
    sql -c 'SELECT pg_stat_reset()' >/dev/null
    [ "$pgss" = 0 ] || sql -c 'SELECT pg_stat_statements_reset()' >/dev/null
    r=$(pgbench_once "${c}_diag" "${script[$c]}" 4 1 "" "-c track_functions=all$([ "$pgss" = 1 ] && echo ' -c pg_stat_statements.track=all')")
    n=${r#* }
    sleep 1  # function statistics reach the shared statistics when the session ends
    echo "-- ${label[$c]} ($n calls): function, calls per call, self ms per call, total ms per call"
    sql -F ' | ' -c "SELECT '   ' || rpad(schemaname || '.' || funcname, 26), to_char(calls::numeric / $n, '90.0') || 'x',
                            to_char(self_time / $n, '90.000'), to_char(total_time / $n, '90.000')
                     FROM pg_stat_user_functions WHERE calls > 0 AND funcname <> 'ensure_partitions'
                     ORDER BY self_time DESC LIMIT 8"
    if [ "$pgss" = 1 ]; then
      echo "   statements: ms per call of the top-level statement, then per nested statement (executions per call)"
      sql -F ' | ' <<EOF
WITH s AS (SELECT calls, total_exec_time, toplevel, regexp_replace(query, '\s+', ' ', 'g') AS q
           FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%' AND query NOT LIKE 'CHECKPOINT%')
SELECT '   ' || to_char(total_exec_time / $n, '90.000'), to_char(calls::numeric / $n, '90.0') || 'x',
       CASE WHEN toplevel THEN '[top] ' ELSE '' END || left(q, 100)
FROM s ORDER BY toplevel DESC, total_exec_time DESC LIMIT 9;
EOF
    fi
  done
fi

# --- summary --------------------------------------------------------------------
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v != "-" && v + 0 <= t + 0 ? "ok" : "MISS") }'; }
p95() { echo "$1" | cut -d' ' -f2; }
echo
echo "== summary (synchronous_commit=$sync_commit, $cores cores, $clients clients, load average now $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-40s %9s %8s %8s %8s %8s\n' "measure" "tps" "p50 ms" "p95 ms" "p99 ms" "/append"
for c in "${cases[@]}"; do
  read -r a b d <<<"${lat[$c]}"
  printf '%-40s %9.0f %8s %8s %8s %8s\n' "${label[$c]}, $clients clients" "${tps[$c]}" "$a" "$b" "$d" "$(ratio "${tps[$c]}" "${tps[append]}")"
done
printf '%-40s %9s\n' "  conflicts rows per conflicting upsert" "$(ratio "$hot_conflicts" "${txns[hot]}")"
printf '%-40s %9s\n' "  reservations balance" "$check_ok"
printf '%-40s %9s %8s %8s %8s %8s  %s\n' "one client" "tps" "p50 ms" "p95 ms" "p99 ms" "" "in database: p95 ms (target <= 1 ms)"
for c in append own hot; do
  read -r a b d <<<"${lat1[$c]}"
  e95=$(p95 "${exec1[$c]}")
  v=""; [ "$c" = append ] || v=" $(verdict "$e95" 1)"
  printf '%-40s %9.0f %8s %8s %8s %8s  %s%s\n' "${label[$c]}" "${tps1[$c]}" "$a" "$b" "$d" "" "$e95" "$v"
done
echo "total time: $(( $(date +%s) - t_start )) s"
[ "$(installed_at)" = "$installed_before" ] ||
  echo "bench: WARNING: pg_ves was reinstalled while this ran: the figures may not all come from the build named at the top"
[ "$check_ok" = ok ] || die "the reservation books do not balance (see above)"
