#!/usr/bin/env bash
# Outbox benchmarks: how fast the sync worker drains a backlog to a local
# keep-alive HTTP sink, and how long an event takes from commit to the sink
# on an idle system. Starts and removes its own cluster and sink.
#
#   BENCH_DRAIN_EVENTS (100000)  backlog size of each of the two drains
#   BENCH_LATENCY_RATE (1000)    events per second for the latency run
#   BENCH_LATENCY_SECONDS (10)   its length
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

events=${BENCH_DRAIN_EVENTS:-100000}
rate=${BENCH_LATENCY_RATE:-1000}
seconds=${BENCH_LATENCY_SECONDS:-10}

dir=$(scratch_dir outbox_bench)
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
cc -O2 -I"$(pg_config --includedir)" -o "$dir/latency" bench/latency.c -L"$(pg_config --libdir)" -lpq

start_throwaway_cluster "$dir" "$port" <<CONF
ves.databases = 'postgres'
shared_buffers = '512MB'
max_wal_size = '4GB'
CONF
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

start_sink() {
  rm -f "$dir/sink.port"
  "$dir/sink" "$dir/sink.port" "$1" &
  sink_pid=$!
  for _ in $(seq 100); do [ -s "$dir/sink.port" ] && break; sleep 0.05; done
  sink_port=$(cat "$dir/sink.port")
}
sink_count() { curl -s "http://127.0.0.1:$sink_port/count"; }
now() { date +%s.%N; }

q "CREATE EXTENSION pg_ves"
echo "pg_ves outbox benchmarks on $(nproc) cores"

# --- drain ----------------------------------------------------------------
# Twice: with the worker's and the destination's defaults (window 64,
# concurrency 16), then with a wider window and more requests in flight
# (window 256, concurrency 64), as a sink that takes them allows.
q "SELECT ves.stop_worker()" >/dev/null
q "SELECT ves.create_destination('sink', 'webhook', 'http://127.0.0.1:9/hook',
     '{\"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}')" >/dev/null
next_batch=0
drain_run() {  # label
  start_sink "$dir/drain_$1.txt"
  q "SELECT ves.alter_destination('sink', '{}', url => 'http://127.0.0.1:$sink_port/hook')" >/dev/null
  batches=$(( (events + 999) / 1000 ))
  for _ in $(seq "$batches"); do
    b=$next_batch
    next_batch=$((next_batch + 1))
    q "SELECT count(*) FROM ves.append_batch((SELECT jsonb_agg(jsonb_build_object(
         'tenant_id', '00000000-0000-0000-0000-0000000000a1', 'store_id', '00000000-0000-0000-0000-0000000000a2',
         'entity_type', 'InventoryItem', 'entity_id', 'SKU-' || ($b * 1000 + g), 'event_type', 'inventory.adjusted',
         'payload', jsonb_build_object('delta', g, 'reason', 'restock'))) FROM generate_series(1, 1000) g))" >/dev/null
  done
  queued=$(q "SELECT count(*) FROM ves.outbox WHERE status = 'pending'")
  q "CHECKPOINT"
  t0=$(now)
  q "SELECT ves.start_worker()" >/dev/null
  while [ "$(sink_count)" -lt "$queued" ]; do sleep 0.05; done
  t1=$(now)
  while [ "$(q "SELECT count(*) FROM ves.outbox WHERE status NOT IN ('synced')")" -ne 0 ]; do sleep 0.1; done
  t2=$(now)
  q "SELECT ves.stop_worker()" >/dev/null
  kill "$sink_pid"; wait "$sink_pid" 2>/dev/null || true; sink_pid=""
  drain=$(python3 -c "print(f'{$queued / ($t1 - $t0):.0f}')")
  recorded=$(python3 -c "print(f'{$queued / ($t2 - $t0):.0f}')")
  dups=$(awk '{print $1}' "$dir/drain_$1.txt" | sort | uniq -d | wc -l)
  echo "drain, $1: $queued outbox rows received by the sink in $(python3 -c "print(f'{$t1 - $t0:.2f}')") s = $drain deliveries/s; all recorded synced: $recorded rows/s; duplicates: $dups"
}
drain_run "defaults (window 64, concurrency 16)"
q "SELECT ves.set_sync_settings('{\"window\": 256, \"claim_batch\": 256}')" >/dev/null
q "SELECT ves.alter_destination('sink', '{\"concurrency\": 64}')" >/dev/null
drain_run "window 256, concurrency 64"
echo "(target: >= 15000 deliveries/s at the defaults, issue 14)"
q "SELECT ves.start_worker()" >/dev/null

# --- commit -> sink latency on an idle system -----------------------------
start_sink "$dir/latency_sink.txt"
q "SELECT ves.alter_destination('sink', '{}', url => 'http://127.0.0.1:$sink_port/hook')" >/dev/null
sleep 1
"$dir/latency" "$rate" "$seconds" >"$dir/latency_client.txt"
sent=$(wc -l <"$dir/latency_client.txt")
for _ in $(seq 200); do [ "$(sink_count)" -ge "$sent" ] && break; sleep 0.05; done
kill "$sink_pid"; wait "$sink_pid" 2>/dev/null || true; sink_pid=""
python3 - "$dir/latency_client.txt" "$dir/latency_sink.txt" "$rate" <<'PY'
import sys
sent = dict(line.split() for line in open(sys.argv[1]))
got = {}
for line in open(sys.argv[2]):
    k, v = line.split()
    got.setdefault(k, int(v))
lat = sorted((got[k] - int(t)) / 1e6 for k, t in sent.items() if k in got)
missing = len(sent) - len(lat)
def pct(p):
    return lat[min(len(lat) - 1, int(p / 100 * len(lat)))]
print(f"latency at {sys.argv[3]} events/s, commit -> request received, {len(lat)} events"
      f" ({missing} missing): p50 {pct(50):.2f} ms, p95 {pct(95):.2f} ms, p99 {pct(99):.2f} ms, max {lat[-1]:.2f} ms"
      f" (targets p50 <= 5 ms, p99 <= 50 ms)")
PY
