#!/usr/bin/env bash
# Verification rate of stored events (ves.verify_events: canonical JSON,
# payload hash, signing hash, Ed25519 verify per event) against libsodium's
# raw verify rate on the same machine, in one run. Starts and removes its
# own cluster.
#   BENCH_VERIFY_EVENTS (50000)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

events=${BENCH_VERIFY_EVENTS:-50000}
dir=$(scratch_dir verify_bench)
PG_CWD=$dir
port=$(free_port)
cleanup() {
  as_pg pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

c++ -O2 -std=c++17 -o "$dir/raw_verify" bench/raw_verify.cpp -lsodium
start_throwaway_cluster "$dir" "$port" <<CONF
shared_buffers = '512MB'
CONF
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
q "CREATE EXTENSION pg_ves"
for b in $(seq $(( (events + 999) / 1000 ))); do
  q "SELECT count(*) FROM ves.append_batch((SELECT jsonb_agg(jsonb_build_object(
       'tenant_id', '00000000-0000-0000-0000-0000000000a1', 'store_id', '00000000-0000-0000-0000-0000000000a2',
       'entity_type', 'InventoryItem', 'entity_id', 'SKU-' || (g % 1000), 'event_type', 'inventory.adjusted',
       'payload', jsonb_build_object('sku', 'SKU-' || g, 'delta', g, 'reason', 'restock', 'location', 'A-12'))) FROM generate_series(1, 1000) g))" >/dev/null
done
q "VACUUM ANALYZE ves.events" >/dev/null
q "SELECT count(*) FROM ves.verify_events()" >/dev/null   # warm the cache
# Three timed calls in one session each: the figure is the call itself (psql's
# \timing), not starting psql and a backend, which the raw verify does not pay.
timed() { psql -X -q -At -v ON_ERROR_STOP=1 -c '\timing on' -c "$1" | awk '/^Time:/ { t = $2; next } { r = $0 } END { print r, t }'; }
times=""
for _ in 1 2 3; do
  read -r failing ms < <(timed "SELECT count(*) FROM ves.verify_events()")
  times+="$ms "
done
n=$(q "SELECT count(*) FROM ves.events")
raw=$("$dir/raw_verify" 3 | sed -n 's/verifies_per_s=\([0-9]*\).*/\1/p')
python3 - "$n" "$times" "$raw" "$failing" <<'PY'
import statistics, sys
n, times, raw, failing = int(sys.argv[1]), [float(t) / 1000 for t in sys.argv[2].split()], float(sys.argv[3]), sys.argv[4]
t = statistics.median(times)
rate = n / t
print(f"verify_events: {n} events in {t:.3f} s (median of {', '.join(f'{x:.3f}' for x in times)}) = {rate:.0f} events/s"
      f" ({failing} failing); raw libsodium verify: {raw:.0f}/s; ratio {rate / raw:.2f} (target >= 1.6 on 2 cores, issue 14)")
PY
