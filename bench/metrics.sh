#!/usr/bin/env bash
# What the delivery metrics cost: signed appends and the sync worker's drain
# to a local keep-alive sink, with ves.metrics on and off in the same run,
# alternating (on, off, on, off, ...) so that both see the same machine.
# Prints each round and the ratio of the medians (target: metrics cost
# under 3 %). Starts and removes its own cluster and sink.
#
#   BENCH_METRICS_ROUNDS (3)          rounds per setting
#   BENCH_METRICS_APPEND_SECONDS (10) pgbench length of one append round
#   BENCH_METRICS_CLIENTS (2)         pgbench clients
#   BENCH_METRICS_DRAIN_EVENTS (20000) backlog of one drain round
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

rounds=${BENCH_METRICS_ROUNDS:-3}
seconds=${BENCH_METRICS_APPEND_SECONDS:-10}
clients=${BENCH_METRICS_CLIENTS:-2}
events=${BENCH_METRICS_DRAIN_EVENTS:-20000}

dir=$(scratch_dir metrics_bench)
PG_CWD=$dir
port=$(free_port)
sink_pid=""
cleanup() {
  [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null || true
  as_pg pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

cc -O2 -o "$dir/sink" bench/sink.c -lsodium
start_throwaway_cluster "$dir" "$port" <<CONF
ves.databases = 'postgres'
shared_buffers = '512MB'
max_wal_size = '4GB'
CONF
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
now() { date +%s.%N; }

rm -f "$dir/sink.port"
"$dir/sink" "$dir/sink.port" /dev/null &
sink_pid=$!
for _ in $(seq 100); do [ -s "$dir/sink.port" ] && break; sleep 0.05; done
sink_port=$(cat "$dir/sink.port")
sink_count() { curl -s "http://127.0.0.1:$sink_port/count"; }

q "CREATE EXTENSION pg_ves"
q "SELECT ves.set_sync_settings('{\"window\": 256, \"claim_batch\": 256}')" >/dev/null
q "SELECT ves.create_destination('sink', 'webhook', 'http://127.0.0.1:$sink_port/hook',
     '{\"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", \"concurrency\": 64}')" >/dev/null

# One signed append per transaction, each to its own SKU (fanned out to the
# sink: an outbox row per append, as in production).
cat >"$dir/append.sql" <<'SQL'
\set n random(1, 1000000000)
SELECT ves.append('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000b2',
  'InventoryItem', 'SKU-' || :n, 'inventory.adjusted', '{"delta": 1, "reason": "restock"}');
SQL
chown "$PG_USER" "$dir/append.sql" 2>/dev/null || true

set_metrics() {
  q "ALTER SYSTEM SET ves.metrics = $1" >/dev/null
  q "SELECT pg_reload_conf()" >/dev/null
  sleep 1
}

append_round() {
  q "SELECT ves.stop_worker()" >/dev/null
  as_pg pgbench -n -h 127.0.0.1 -p "$port" -U postgres -c "$clients" -j "$clients" -T "$seconds" \
    -f "$dir/append.sql" postgres 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}

drain_round() {
  q "SELECT ves.stop_worker()" >/dev/null
  q "TRUNCATE ves.outbox" >/dev/null
  q "SELECT count(*) FROM ves.append_batch((SELECT jsonb_agg(jsonb_build_object(
       'tenant_id', '00000000-0000-0000-0000-0000000000b1', 'store_id', '00000000-0000-0000-0000-0000000000b2',
       'entity_type', 'InventoryItem', 'entity_id', 'DRAIN-' || g, 'event_type', 'inventory.adjusted',
       'payload', jsonb_build_object('delta', g))) FROM generate_series(1, $events) g))" >/dev/null
  local before t0 t1
  before=$(sink_count)
  t0=$(now)
  q "SELECT ves.start_worker()" >/dev/null
  while [ "$(( $(sink_count) - before ))" -lt "$events" ]; do sleep 0.02; done
  t1=$(now)
  python3 -c "print(f'{$events / ($t1 - $t0):.0f}')"
}

echo "pg_ves metrics overhead on $(nproc) cores: $rounds rounds per setting, appends ${seconds}s x $clients clients, drains of $events rows"
declare -a append_on append_off drain_on drain_off
for r in $(seq "$rounds"); do
  for setting in on off; do
    set_metrics "$setting"
    a=$(append_round)
    d=$(drain_round)
    echo "round $r, ves.metrics = $setting: appends $a tps, drain $d rows/s"
    if [ "$setting" = on ]; then append_on+=("$a"); drain_on+=("$d"); else append_off+=("$a"); drain_off+=("$d"); fi
  done
done

python3 - "${append_on[*]}" "${append_off[*]}" "${drain_on[*]}" "${drain_off[*]}" <<'PY'
import statistics, sys
ao, af, do, df = ([float(x) for x in a.split()] for a in sys.argv[1:5])
for name, on, off in (("append", ao, af), ("drain", do, df)):
    mon, moff = statistics.median(on), statistics.median(off)
    print(f"{name}: median {mon:.0f}/s with metrics, {moff:.0f}/s without; on/off = {mon / moff:.3f}"
          f" (cost {100 * (1 - mon / moff):+.1f} %, target < 3 %)")
PY
