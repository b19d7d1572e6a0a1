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
#   PGVES_BENCH_BATCH_ROUNDS=2      alternating rounds the batch calls are split into
#   PGVES_BENCH_HOT=300             hot entities of the hot-vs-new-entity runs
#   PGVES_BENCH_VERIFY_EVENTS=20000 events ves.verify_events checks per run
#   PGVES_BENCH_MEMORY_EVENTS=20000 events of the append_batch call whose memory is sampled
#   PGVES_BENCH_SINGLE_ONLY=1       only the single-append figures (1. and 2c.), about 1 minute
#   PGVES_BENCH_LISTEN=1            a session runs LISTEN ves_events throughout, so appenders
#                                   without a worker send NOTIFY (by default nobody listens)
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
batch_rounds=${PGVES_BENCH_BATCH_ROUNDS:-2}
hot=${PGVES_BENCH_HOT:-300}
verify_events=${PGVES_BENCH_VERIFY_EVENTS:-20000}
memory_events=${PGVES_BENCH_MEMORY_EVENTS:-20000}
single_only=${PGVES_BENCH_SINGLE_ONLY:-0}
listen=${PGVES_BENCH_LISTEN:-0}
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
cc -O2 -pthread -I"$(pg_config --includedir)" "$repo/bench/client.c" -o "$client" -L"$(pg_config --libdir)" -lpq ||
  die "cannot build bench/client.c"
c++ -O2 -std=c++17 -o "$work/raw_verify" "$repo/bench/raw_verify.cpp" -lsodium ||
  die "cannot build bench/raw_verify.cpp (needs libsodium-dev)"

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
# Hot entities: $hot SKUs of tenant 1, every append updates their stream rows;
# new entities: every append creates its entity (a stream row inserted).
cat >"$work/ves_hot.sql" <<EOF
$common_vars
\\set h random(1, $hot)
SELECT ves.append($(tenant_sql 1), $(store_sql 1), 'InventoryItem', 'SKU-' || :h, 'inventory.adjusted', $payload_expr);
EOF
cat >"$work/ves_new.sql" <<EOF
$common_vars
\\set n random(1, 1000000000000)
SELECT ves.append($(tenant_sql 1), $(store_sql 1), 'InventoryItem', 'NEW-' || :client_id || '-' || :n, 'inventory.adjusted', $payload_expr);
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

# A consumer that listens for appends: appenders (or the worker) then send
# NOTIFY ves_events. It stays idle, as a consumer between wake-ups does.
if [ "$listen" = 1 ]; then
  # psql reads its commands from a pipe this script holds open: after the
  # LISTEN it sits idle, outside any transaction (no snapshot held back), and
  # it exits when the script does.
  mkfifo "$work/listen.fifo"
  sql <"$work/listen.fifo" >/dev/null 2>&1 &
  exec 9>"$work/listen.fifo"
  echo 'LISTEN ves_events;' >&9
  sleep 1
  [ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN ves_events;'")" = 1 ] ||
    die "the listening session did not start"
  echo "a session listens on ves_events throughout"
fi

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

if [ "$single_only" != 1 ]; then
echo "== 2. batch append, $batch_calls calls x $batch_size events, one backend, in $batch_rounds alternating rounds"
# Multi-row INSERT, append_batch with ves.crypto_threads at its default (the
# cores) and with 1 (everything on the backend's own thread, the serial path
# of earlier versions): the same rows on every side of a round.
per_round=$(( (batch_calls + batch_rounds - 1) / batch_rounds ))
batch_sides=(plain ves ves_serial)
[ "$diagnose" = 1 ] && batch_sides+=(plain_literal)
declare -A batch_mode=([plain]=plain [ves]=ves [ves_serial]=ves [plain_literal]=plain-literal)
declare -A batch_opts=([plain]="" [ves]="" [ves_serial]="-c ves.crypto_threads=1" [plain_literal]="")
declare -A batch_events=() batch_seconds=() batch_rates=() batch_cpu_main=() batch_cpu_all=()
for ((r = 1; r <= batch_rounds; r++)); do
  for side in "${batch_sides[@]}"; do
    sql -c 'CHECKPOINT'
    out=$(BENCH_CPU=1 PGOPTIONS="${batch_opts[$side]}" "$client" batch "${batch_mode[$side]}" "$per_round" "$batch_size" "$tenants" "$skus" $((6 + r)))
    batch_events[$side]=$(( ${batch_events[$side]:-0} + $(echo "$out" | sed -n 's/^events=\([0-9]*\) .*/\1/p') ))
    batch_seconds[$side]=$(awk -v a="${batch_seconds[$side]:-0}" -v b="$(echo "$out" | field seconds)" 'BEGIN { printf "%.3f", a + b }')
    batch_rates[$side]+="$(echo "$out" | field events_per_s) "
    batch_cpu_main[$side]=$(awk -v a="${batch_cpu_main[$side]:-0}" -v b="$(echo "$out" | field cpu_main_s)" 'BEGIN { printf "%.2f", a + b }')
    batch_cpu_all[$side]=$(awk -v a="${batch_cpu_all[$side]:-0}" -v b="$(echo "$out" | field cpu_all_s)" 'BEGIN { printf "%.2f", a + b }')
  done
done
batch_eps() { awk -v e="${batch_events[$1]}" -v s="${batch_seconds[$1]}" 'BEGIN { printf "%.0f", (s > 0 ? e / s : 0) }'; }
plain_batch_eps=$(batch_eps plain)
ves_batch_eps=$(batch_eps ves)
serial_batch_eps=$(batch_eps ves_serial)
threads_default=$(sql -c 'SHOW ves.crypto_threads')
echo "multi-row INSERT              $plain_batch_eps events/s   (rounds: ${batch_rates[plain]% }; prepared, 7 parameters a row)"
echo "ves.append_batch, $threads_default threads    $ves_batch_eps events/s   (rounds: ${batch_rates[ves]% })"
echo "ves.append_batch, 1 thread    $serial_batch_eps events/s   (rounds: ${batch_rates[ves_serial]% }; the serial path)"
# CPU seconds of the backend over its calls: its own thread (the critical path
# the threads shorten) and all its threads; independent of other load.
for side in ves ves_serial; do
  label="$threads_default threads"
  [ "$side" = ves ] || label="1 thread"
  echo "  backend CPU, $label: own thread ${batch_cpu_main[$side]} s, with its threads ${batch_cpu_all[$side]} s, for ${batch_events[$side]} events"
done
if [ "$diagnose" = 1 ]; then
  echo "multi-row INSERT, literal     $(batch_eps plain_literal) events/s   (parsed each call; diagnosis)"
fi

echo "== 2b. backend memory of one append_batch call of $memory_events events (fresh connection each, after a one-event call)"
memory_out=$(BENCH_MEMORY=1 "$client" batch ves 1 "$memory_events" 1 "$skus" 11)
echo "ves.append_batch(jsonb)       $memory_out"
memory_ratio=$(echo "$memory_out" | field memory_per_input)
parse_out=$(BENCH_MEMORY=1 "$client" batch parse 1 "$memory_events" 1 "$skus" 11)
echo "jsonb_array_length, same input $parse_out"
parse_ratio=$(echo "$parse_out" | field memory_per_input)
own_ratio=$(awk -v a="$memory_ratio" -v b="$parse_ratio" 'BEGIN { printf "%.2f", a - b }')
text_out=$(BENCH_INPUT=text BENCH_MEMORY=1 "$client" batch ves 1 "$memory_events" 1 "$skus" 11)
echo "ves.append_batch(text)        $text_out"
text_ratio=$(echo "$text_out" | field memory_per_input)
receive_out=$(BENCH_INPUT=text BENCH_MEMORY=1 "$client" batch parse 1 "$memory_events" 1 "$skus" 11)
echo "octet_length, same text       $receive_out"
receive_ratio=$(echo "$receive_out" | field memory_per_input)
text_own_ratio=$(awk -v a="$text_ratio" -v b="$receive_ratio" 'BEGIN { printf "%.2f", a - b }')
generic_out=$(PGOPTIONS="-c plan_cache_mode=force_generic_plan" BENCH_INPUT=text BENCH_MEMORY=1 "$client" batch ves 1 "$memory_events" 1 "$skus" 11)
echo "same, generic plan            $generic_out"
generic_ratio=$(echo "$generic_out" | field memory_per_input)
keyed_out=$(BENCH_MEMORY=1 BENCH_KEYS=1 "$client" batch ves 1 "$memory_events" 1 "$skus" 12)
echo "same, every event keyed        $keyed_out"
retry_out=$(BENCH_MEMORY=1 BENCH_KEYS=1 "$client" batch ves 1 "$memory_events" 1 "$skus" 12)
echo "same batch again (duplicates)  $retry_out"
keyed_ratio=$(echo "$keyed_out" | field memory_per_input)
retry_ratio=$(echo "$retry_out" | field memory_per_input)
fi

echo "== 2c. $hot hot entities (every append updates one) vs a new entity per append, pgbench $clients clients, ${seconds} s each in $slices alternating slices"
stream_stats() { sql -c "SELECT n_tup_upd || ' ' || n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'ves.streams'::regclass"; }
for side in hot new; do pgbench_once "$side" "$work/ves_$side.sql" "$warmup" >/dev/null; done
sleep 1
read -r upd0 hot0 < <(stream_stats)
declare -A entity_tps=()
for ((i = 1; i <= slices; i++)); do
  for side in hot new; do
    sql -c 'CHECKPOINT'
    entity_tps[$side]+="$(pgbench_once "$side" "$work/ves_$side.sql" "$slice") "
  done
done
sleep 1
read -r upd1 hot1 < <(stream_stats)
hot_tps=$(printf '%s\n' ${entity_tps[hot]} | mean)
new_tps=$(printf '%s\n' ${entity_tps[new]} | mean)
hot_share=$(awk -v u=$((upd1 - upd0)) -v h=$((hot1 - hot0)) 'BEGIN { printf "%.0f", (u > 0 ? 100 * h / u : 0) }')
echo "ves.append, hot entities      $hot_tps tps   (slices: ${entity_tps[hot]% })"
echo "ves.append, new entity        $new_tps tps   (slices: ${entity_tps[new]% })"
echo "ves.streams updates: $((upd1 - upd0)), HOT: $((hot1 - hot0)) (${hot_share} %)"

if [ "$single_only" != 1 ]; then
echo "== 2d. ves.verify_events over the last $verify_events events vs libsodium's verify on one core"
sql -c 'VACUUM ANALYZE ves.events'
verify_from=$(sql -c "SELECT greatest(1, last_value - $verify_events + 1) FROM ves.position_seq")
verify_sql="SELECT count(*) FROM ves.verify_events(from_position => $verify_from, to_position => $verify_from + $verify_events - 1)"
sql -c "$verify_sql" >/dev/null   # warms the cache
verify_n=$(sql -c "SELECT count(*) FROM ves.events WHERE position >= $verify_from AND position < $verify_from + $verify_events")
declare -A verify_rates=()
for ((r = 1; r <= 2; r++)); do
  for side in serial threads; do
    opts=""
    [ "$side" = serial ] && opts="-c ves.crypto_threads=1"
    # The call's own time (psql's \timing), without starting psql and a
    # backend, which libsodium's raw verify does not pay either.
    read -r failing ms < <(PGOPTIONS="$opts" sql -c '\timing on' -c "$verify_sql" |
      awk '/^Time:/ { t = $2; next } { r = $0 } END { print r, t }')
    [ "$failing" = 0 ] || die "ves.verify_events reported $failing failures"
    verify_rates[$side]+="$(awk -v n="$verify_n" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }') "
  done
done
raw_rates=""
for ((r = 1; r <= 2; r++)); do raw_rates+="$("$work/raw_verify" 2 | sed -n 's/verifies_per_s=\([0-9]*\).*/\1/p') "; done
verify_threads=$(printf '%s\n' ${verify_rates[threads]} | mean)
verify_serial=$(printf '%s\n' ${verify_rates[serial]} | mean)
raw_verify=$(printf '%s\n' $raw_rates | mean)
echo "ves.verify_events, $threads_default threads   $verify_threads events/s   (runs: ${verify_rates[threads]% }; $verify_n events)"
echo "ves.verify_events, 1 thread   $verify_serial events/s   (runs: ${verify_rates[serial]% })"
echo "libsodium verify, one core    $raw_verify /s   (runs: ${raw_rates% })"

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
else
  ves_batch_eps=0 plain_batch_eps=0 serial_batch_eps=0 ves_read_eps=0 plain_read_eps=0 direct_read_eps=0
  verify_threads=0 verify_serial=0 raw_verify=0 memory_ratio=0 parse_ratio=0 own_ratio=0 text_ratio=0 receive_ratio=0 text_own_ratio=0 generic_ratio=0 keyed_ratio=0 retry_ratio=0 threads_default=$(sql -c 'SHOW ves.crypto_threads')
fi

r1=$(ratio "$ves_tps" "$plain_tps")
r2=$(ratio "$ves_batch_eps" "$plain_batch_eps")
r2s=$(ratio "$serial_batch_eps" "$plain_batch_eps")
r3=$(ratio "$ves_read_eps" "$plain_read_eps")
r4=$(ratio "$hot_tps" "$new_tps")
r5=$(ratio "$verify_threads" "$raw_verify")
r5s=$(ratio "$verify_serial" "$raw_verify")
v1=$(verdict "$r1" 0.75)
v2=$(verdict "$r2" 0.8)
v3=$(verdict "$ves_read_eps" 200000)
v4=$(verdict "$r4" 0.95)
v5=$(verdict "$r5" 1.6)
v6=$(awk -v m="$memory_ratio" 'BEGIN { print (m + 0 <= 2 ? "ok" : "MISS") }')
v6t=$(awk -v m="$text_ratio" 'BEGIN { print (m + 0 <= 2 ? "ok" : "MISS") }')

echo
echo "== summary (synchronous_commit=$sync_commit, $cores cores, ves.crypto_threads=$threads_default, load average now $(cut -d' ' -f1-3 /proc/loadavg))"
row() { printf '%-46s %12s %12s %7s  %-12s %s\n' "$@"; }
num() { printf '%.0f' "$1"; }
row "measure" "pg_ves" "baseline" "ratio" "target" "met"
row "single append vs plain INSERT, $clients clients (tps)" "$(num "$ves_tps")" "$(num "$plain_tps")" "$r1" ">= 0.75x" "$v1"
[ "$single_only" = 1 ] || row "batch of $batch_size vs multi-row INSERT (events/s)" "$ves_batch_eps" "$plain_batch_eps" "$r2" ">= 0.8x" "$v2"
[ "$single_only" = 1 ] || row "  same, ves.crypto_threads = 1 (serial)" "$serial_batch_eps" "$plain_batch_eps" "$r2s" "" ""
row "hot entities vs new entity per append (tps)" "$(num "$hot_tps")" "$(num "$new_tps")" "$r4" ">= 0.95x" "$v4"
row "  ves.streams updates that were HOT" "${hot_share} %" "" "" "" ""
[ "$single_only" = 1 ] || row "verify_events vs libsodium on 1 core (ev/s)" "$verify_threads" "$raw_verify" "$r5" ">= 1.6x" "$v5"
[ "$single_only" = 1 ] || row "  same, ves.crypto_threads = 1 (serial)" "$verify_serial" "$raw_verify" "$r5s" "" ""
[ "$single_only" = 1 ] || row "append_batch(jsonb) memory / input ($memory_events ev.)" "" "" "$memory_ratio" "<= 2x" "$v6"
[ "$single_only" = 1 ] || row "  same input to jsonb_array_length (parse only)" "" "" "$parse_ratio" "" ""
[ "$single_only" = 1 ] || row "  append_batch's own (the difference)" "" "" "$own_ratio" "" ""
[ "$single_only" = 1 ] || row "append_batch(text) memory / input" "" "" "$text_ratio" "<= 2x" "$v6t"
[ "$single_only" = 1 ] || row "  same text received only (octet_length)" "" "" "$receive_ratio" "" ""
[ "$single_only" = 1 ] || row "  append_batch's own (the difference)" "" "" "$text_own_ratio" "" ""
[ "$single_only" = 1 ] || row "  text, plan_cache_mode=force_generic_plan" "" "" "$generic_ratio" "" ""
[ "$single_only" = 1 ] || row "  every event with an idempotency key" "" "" "$keyed_ratio" "" ""
[ "$single_only" = 1 ] || row "  the keyed batch retried (all duplicates)" "" "" "$retry_ratio" "" ""
[ "$single_only" = 1 ] || row "read_all, $page/page (events/s)" "$(num "$ves_read_eps")" "$(num "$plain_read_eps")" "$r3" ">= 200000/s" "$v3"
if [ "$diagnose" = 1 ]; then
  row "  single append, ves.notify=off" "$(num "$nonotify_tps")" "" "$(ratio "$nonotify_tps" "$plain_tps")" "(diagnosis)" ""
fi
[ "$single_only" = 1 ] || row "  same pages, ves.events without fence" "$(num "$direct_read_eps")" "" "$(ratio "$direct_read_eps" "$plain_read_eps")" "(diagnosis)" ""
