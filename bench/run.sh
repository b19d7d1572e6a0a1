#!/usr/bin/env bash
# pg_ves benchmarks: each pg_ves figure next to a baseline measured in the same
# run, on the same throwaway cluster, with the same settings. See bench/README.md.
#
#   bash bench/run.sh
#
# Needs pg_ves built and installed (README: make && sudo make install), pgbench,
# a C compiler and libpq's headers. Settings, all optional:
#   PGVES_BENCH_SECONDS=20          length of each pgbench run
#   PGVES_BENCH_WARMUP=3            untimed pgbench seconds per side before the runs
#   PGVES_BENCH_SLICES=4            alternating slices the pgbench seconds are split into
#   PGVES_BENCH_CLIENTS=4           pgbench clients
#   PGVES_BENCH_SYNCHRONOUS_COMMIT=on
#   PGVES_BENCH_SHARED_BUFFERS=512MB
#   PGVES_BENCH_BATCH_CALLS=50      append_batch calls (and baseline INSERTs)
#   PGVES_BENCH_BATCH_SIZE=1000     events per call
#   PGVES_BENCH_READ_PASSES=3       times the whole store is read
#   PGVES_BENCH_TENANTS=10 PGVES_BENCH_SKUS=1000
#   PGVES_BENCH_DIAGNOSE=1          also run ves.append with ves.notify=off and a
#                                   multi-row INSERT of literal values (about +30 s)
#   PGVES_BENCH_KEEP=1              keep the cluster directory (not the server)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
. scripts/common.sh

seconds=${PGVES_BENCH_SECONDS:-20}
warmup=${PGVES_BENCH_WARMUP:-3}
slices=${PGVES_BENCH_SLICES:-4}
diagnose=${PGVES_BENCH_DIAGNOSE:-0}
clients=${PGVES_BENCH_CLIENTS:-4}
sync_commit=${PGVES_BENCH_SYNCHRONOUS_COMMIT:-on}
shared_buffers=${PGVES_BENCH_SHARED_BUFFERS:-512MB}
batch_calls=${PGVES_BENCH_BATCH_CALLS:-50}
batch_size=${PGVES_BENCH_BATCH_SIZE:-1000}
read_passes=${PGVES_BENCH_READ_PASSES:-3}
tenants=${PGVES_BENCH_TENANTS:-10}
skus=${PGVES_BENCH_SKUS:-1000}
page=1000
cores=$(nproc)
threads=$((clients < cores ? clients : cores))

die() { echo "bench: $*" >&2; exit 1; }
command -v pgbench >/dev/null || die "pgbench is missing (apt-get install postgresql-client-15)"
command -v cc >/dev/null || die "a C compiler is missing (apt-get install build-essential)"
[ -f "$(pg_config --includedir)/libpq-fe.h" ] || die "libpq headers are missing (apt-get install libpq-dev)"
[ -f "$(pg_config --sharedir)/extension/pg_ves.control" ] ||
  die "pg_ves is not installed; run 'make && sudo make install' first"

. bench/cluster.sh
bench_cluster bench

# The baseline: a plain table with the columns and indexes of ves.events
# (LIKE copies the columns, NOT NULL and defaults) and a position sequence like
# ves.position_seq, without partitions, streams, idempotency, signing, NOTIFY
# or the read fence.
sql <<'EOF'
CREATE EXTENSION pg_ves;
CREATE SCHEMA bench;
CREATE SEQUENCE bench.plain_position_seq AS bigint CACHE 1;
CREATE TABLE bench.plain_events (LIKE ves.events INCLUDING DEFAULTS);
ALTER TABLE bench.plain_events ADD PRIMARY KEY (position, tenant_id, recorded_at);
CREATE INDEX plain_events_entity_idx ON bench.plain_events (tenant_id, entity_type, entity_id, entity_version);
CREATE INDEX plain_events_event_id_idx ON bench.plain_events (tenant_id, event_id);
EOF
# A signed pg_ves row also carries the signer, key id, signed timestamp,
# payload hash and signature. The baseline stores constants of the same types
# and sizes there: it pays for the bytes, not for computing them.
extra_columns="" extra_values=""
if [ "$(sql -c "SELECT count(*) FROM pg_attribute WHERE attrelid = 'ves.events'::regclass AND attname = 'agent_signature' AND NOT attisdropped")" = 1 ]; then
  extra_columns=", source_agent_id, agent_key_id, created_at, payload_plain_hash, agent_signature"
  extra_values=", '00000000-0000-4000-a000-000000000001'::uuid, 1, '2026-01-01T00:00:00.000Z', '\\x$(printf '%064d' 0)'::bytea, '\\x$(printf '%0128d' 0)'::bytea"
fi
export BENCH_EXTRA_COLUMNS=$extra_columns BENCH_EXTRA_VALUES=$extra_values

client="$work/client"
cc -O2 -I"$(pg_config --includedir)" "$repo/bench/client.c" -o "$client" -L"$(pg_config --libdir)" -lpq ||
  die "cannot build bench/client.c"

# pgbench scripts: the same tenant, store, SKU and ~100-byte payload
# expressions on both sides, so only the write itself differs.
common_vars="\\set t random(1, $tenants)
\\set s random(1, $skus)
\\set d random(-5, 5)
\\set w random(1, 4)
\\set o random(1000000, 9999999)
\\set v random(1, 1000000000)"
tenant_sql() { echo "('00000000-0000-4000-8000-' || lpad($1::text, 12, '0'))::uuid"; }
store_sql() { echo "('00000000-0000-4000-9000-' || lpad($1::text, 12, '0'))::uuid"; }
tenant_expr=$(tenant_sql :t)
store_expr=$(store_sql :t)
payload_expr="jsonb_build_object('sku', 'SKU-' || :s, 'delta', :d::int, 'reason', 'sale', 'location', 'WH-' || :w, 'order_id', 'ORD-' || :o)"
cat >"$work/plain_insert.sql" <<EOF
$common_vars
INSERT INTO bench.plain_events (position, tenant_id, store_id, entity_type, entity_id, entity_version, event_id, event_type, payload, metadata, source, recorded_at$extra_columns) VALUES (nextval('bench.plain_position_seq'), $tenant_expr, $store_expr, 'InventoryItem', 'SKU-' || :s, :v, gen_random_uuid(), 'inventory.adjusted', $payload_expr, '{}', 'manual', now()$extra_values);
EOF
cat >"$work/ves_append.sql" <<EOF
$common_vars
SELECT ves.append($tenant_expr, $store_expr, 'InventoryItem', 'SKU-' || :s, 'inventory.adjusted', $payload_expr);
EOF

# One pgbench run of a script; prints its tps (without connection time).
pgbench_once() {  # name, script, seconds, [extra PGOPTIONS]
  local log="$work/pgbench_$1.log"
  PGOPTIONS="${4:-}" pgbench -n -M prepared -c "$clients" -j "$threads" -T "$3" -f "$2" >"$log" 2>&1 ||
    { cat "$log" >&2; die "pgbench for $1 failed"; }
  if grep -q 'number of failed transactions' "$log" && ! grep -q 'number of failed transactions: 0 ' "$log"; then
    cat "$log" >&2
    die "pgbench for $1 had failed transactions"
  fi
  sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$log" | awk '{ printf "%.0f", $1 }'
}
mean() { awk '{ s += $1; n++ } END { printf "%.1f", (n ? s / n : 0) }'; }

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v + 0 >= t + 0 ? "ok" : "MISS") }'; }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "pg_ves benchmarks — $(date -u '+%Y-%m-%d %H:%M UTC'), PostgreSQL $(sql -c 'SHOW server_version' | sed 's/ .*//')"
echo "machine: $cores cores (${cpu:-unknown CPU}), $(free -g | awk '/^Mem:/ { print $2 " GB RAM" }')"
echo "cluster: port $port, shared_buffers=$shared_buffers, fsync=on, full_page_writes=on, synchronous_commit=$sync_commit, jit=off"
so="$(pg_config --pkglibdir)/pg_ves.so"
echo "pg_ves: $(sql -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_ves'"), $so built $(date -u -r "$so" '+%Y-%m-%d %H:%M UTC'), checkout $(git -c safe.directory="$repo" -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "load: $tenants tenants x $skus SKUs, payload ~100 bytes; machine load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# Every entity gets its stream row (and both tables their first rows) before
# any measurement, so single appends measure the steady state, not first writes.
echo "== seeding: one event per SKU on both sides"
seed_payload="jsonb_build_object('sku', 'SKU-' || s, 'delta', 0, 'reason', 'count', 'location', 'WH-1', 'order_id', 'ORD-0')"
sql -v t_count="$tenants" -v s_count="$skus" <<EOF
SELECT count(*) FROM generate_series(1, :t_count) t,
  LATERAL ves.append_batch((
    SELECT jsonb_agg(jsonb_build_object(
             'tenant_id', $(tenant_sql t), 'store_id', $(store_sql t),
             'entity_type', 'InventoryItem', 'entity_id', 'SKU-' || s,
             'event_type', 'inventory.adjusted', 'payload', $seed_payload))
    FROM generate_series(1, :s_count) s)) \\g /dev/null
INSERT INTO bench.plain_events (position, tenant_id, store_id, entity_type, entity_id,
                                entity_version, event_id, event_type, payload$extra_columns)
SELECT nextval('bench.plain_position_seq'), $(tenant_sql t), $(store_sql t), 'InventoryItem',
       'SKU-' || s, 1, gen_random_uuid(), 'inventory.adjusted', $seed_payload$extra_values
FROM generate_series(1, :t_count) t, generate_series(1, :s_count) s;
EOF
sql -c 'VACUUM ANALYZE'

# The disk's fsync latency drifts; slices of each side alternate so that
# drift hits both alike. Each slice starts right after a CHECKPOINT.
echo "== 1. single-event append, pgbench $clients clients, ${seconds} s each in $slices alternating slices"
slice=$(( (seconds + slices - 1) / slices ))
sides=(plain ves)
[ "$diagnose" = 1 ] && sides+=(ves_no_notify)
declare -A script=([plain]="$work/plain_insert.sql" [ves]="$work/ves_append.sql" [ves_no_notify]="$work/ves_append.sql")
declare -A options=([plain]="" [ves]="" [ves_no_notify]="-c ves.notify=off")
declare -A tps_list=()
if [ "$warmup" -gt 0 ]; then
  for side in "${sides[@]}"; do pgbench_once "$side" "${script[$side]}" "$warmup" "${options[$side]}" >/dev/null; done
fi
for ((i = 1; i <= slices; i++)); do
  for side in "${sides[@]}"; do
    sql -c 'CHECKPOINT'
    tps_list[$side]+="$(pgbench_once "$side" "${script[$side]}" "$slice" "${options[$side]}") "
  done
done
plain_tps=$(printf '%s\n' ${tps_list[plain]} | mean)
ves_tps=$(printf '%s\n' ${tps_list[ves]} | mean)
echo "plain INSERT          $plain_tps tps   (slices: ${tps_list[plain]% })"
echo "ves.append            $ves_tps tps   (slices: ${tps_list[ves]% })"
if [ "$diagnose" = 1 ]; then
  nonotify_tps=$(printf '%s\n' ${tps_list[ves_no_notify]} | mean)
  echo "ves.append, ves.notify=off  $nonotify_tps tps   (slices: ${tps_list[ves_no_notify]% }; diagnosis)"
fi

echo "== 2. batch append, $batch_calls calls x $batch_size events, one backend"
sql -c 'CHECKPOINT'
plain_batch=$("$client" batch plain "$batch_calls" "$batch_size" "$tenants" "$skus" 7)
echo "multi-row INSERT      $plain_batch   (prepared, 7 parameters a row)"
if [ "$diagnose" = 1 ]; then
  sql -c 'CHECKPOINT'
  echo "multi-row INSERT      $("$client" batch plain-literal "$batch_calls" "$batch_size" "$tenants" "$skus" 7)   (literal values, parsed each call; diagnosis)"
fi
sql -c 'CHECKPOINT'
ves_batch=$("$client" batch ves "$batch_calls" "$batch_size" "$tenants" "$skus" 7)
echo "ves.append_batch      $ves_batch"
plain_batch_eps=$(echo "$plain_batch" | field events_per_s)
ves_batch_eps=$(echo "$ves_batch" | field events_per_s)

echo "== 3. reading the whole store in $page-event pages, $read_passes passes"
sql -c 'VACUUM ANALYZE'
sql -c 'CHECKPOINT'
echo "ves.events: $(sql -c 'SELECT count(*) FROM ves.events') events; bench.plain_events: $(sql -c 'SELECT count(*) FROM bench.plain_events') rows"
ves_read=$("$client" read ves "$page" "$read_passes")
echo "ves.read_all          $ves_read"
direct_read=$("$client" read direct "$page" "$read_passes")
echo "SELECT on ves.events  $direct_read   (no fence, for diagnosis)"
plain_read=$("$client" read plain "$page" "$read_passes")
echo "SELECT on baseline    $plain_read"
ves_read_eps=$(echo "$ves_read" | field events_per_s)
direct_read_eps=$(echo "$direct_read" | field events_per_s)
plain_read_eps=$(echo "$plain_read" | field events_per_s)

r1=$(ratio "$ves_tps" "$plain_tps")
r2=$(ratio "$ves_batch_eps" "$plain_batch_eps")
r3=$(ratio "$ves_read_eps" "$plain_read_eps")
v1=$(verdict "$r1" 0.85)
v2=$([ "$(verdict "$ves_batch_eps" 40000)" = ok ] && [ "$(verdict "$r2" 0.45)" = ok ] && echo ok || echo MISS)
v3=$(verdict "$ves_read_eps" 200000)

echo
echo "== summary (synchronous_commit=$sync_commit, $cores cores, load average now $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-40s %12s %12s %7s  %-26s %s\n' "measure" "pg_ves" "baseline" "ratio" "target" "met"
printf '%-40s %12.0f %12.0f %7s  %-26s %s\n' "single append, $clients clients (tps)" "$ves_tps" "$plain_tps" "$r1" ">= 0.85x" "$v1"
printf '%-40s %12.0f %12.0f %7s  %-26s %s\n' "batch append, $batch_size/call (events/s)" "$ves_batch_eps" "$plain_batch_eps" "$r2" ">= 40000/s and >= 0.45x" "$v2"
printf '%-40s %12.0f %12.0f %7s  %-26s %s\n' "read_all, $page/page (events/s)" "$ves_read_eps" "$plain_read_eps" "$r3" ">= 200000/s" "$v3"
if [ "$diagnose" = 1 ]; then
  printf '%-40s %12.0f %12s %7s  %-26s %s\n' "  single append, ves.notify=off" "$nonotify_tps" "" "$(ratio "$nonotify_tps" "$plain_tps")" "(diagnosis)" ""
fi
printf '%-40s %12.0f %12s %7s  %-26s %s\n' "  same pages, ves.events without fence" "$direct_read_eps" "" "$(ratio "$direct_read_eps" "$plain_read_eps")" "(diagnosis)" ""
