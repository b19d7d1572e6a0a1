#!/usr/bin/env bash
# Platform adapter benchmarks: how fast the sync worker keeps each commerce
# platform's counts in step (shopify, tiktok_shop, amazon_sp, meta_catalog,
# against their mocks in test/mock/platforms.py with no rate limit), side by
# side with the generic webhook kind in the same run; TikTok Shop and Amazon
# also against bench/sink.c's platform modes, a server as cheap as the one
# webhook deliveries meet; and how long a stock change takes from commit to
# the Shopify request. Starts and removes its own
# cluster, mocks and sinks. See bench/README.md.
#
#   BENCH_PLATFORM_SKUS (1000)        SKUs mapped per destination
#   BENCH_PLATFORM_CHANGES (4)        changes per SKU in the collapsing pass
#   BENCH_PLATFORM_ROUNDS (5)         rounds of the one-change pass
#   BENCH_PLATFORM_CONCURRENCY (8)    every destination's concurrency
#   BENCH_PLATFORM_KINDS (all)        e.g. "webhook shopify"
#   BENCH_SAFETY_POLL_MS (5000)       the worker's safety_poll_ms (a diagnosis)
#   BENCH_LATENCY_RATE (50)           stock changes per second for the latency run
#   BENCH_LATENCY_SECONDS (20)        its length
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

skus=${BENCH_PLATFORM_SKUS:-1000}
changes=${BENCH_PLATFORM_CHANGES:-4}
rounds=${BENCH_PLATFORM_ROUNDS:-5}
concurrency=${BENCH_PLATFORM_CONCURRENCY:-8}
kinds=${BENCH_PLATFORM_KINDS:-webhook webhook_py shopify tiktok_shop amazon_sp meta_catalog tiktok_shop_c amazon_sp_c}
rate=${BENCH_LATENCY_RATE:-50}
seconds=${BENCH_LATENCY_SECONDS:-20}
repo=$PWD

dir=$(scratch_dir platforms_bench)
PG_CWD=$dir
port=$(free_port)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

echo "pg_ves platform benchmarks on $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cc -O2 -o "$dir/sink" bench/sink.c -lsodium
# The adapters alone (build_requests + classify_rows), against the objects
# of this tree's build.
c++ -O2 -std=c++17 -Isrc -o "$dir/adapters" bench/adapters.cpp src/core/*/*.o -lsodium -lcurl
cc -O2 -I"$(pg_config --includedir)" -o "$dir/stock_latency" bench/stock_latency.c \
  -L"$(pg_config --libdir)" -lpq

start_throwaway_cluster "$dir" "$port" <<CONF
ves.databases = 'postgres'
shared_buffers = '512MB'
max_wal_size = '4GB'
CONF
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
now() { date +%s.%N; }
hz=$(getconf CLK_TCK)
cpu() { awk -v hz="$hz" '{printf "%.3f\n", ($14 + $15) / hz}' "/proc/$1/stat"; }
wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return; sleep 0.05; done; echo "no $1" >&2; exit 1; }

# --- servers: the C sink, the Python sink (same HTTP plumbing as the
# platform mocks) and one mock process per platform, so that each one's CPU
# time is its own.
declare -A srv_port srv_pid
"$dir/sink" "$dir/sink.port" "$dir/sink.txt" & srv_pid[webhook]=$!; pids+=($!)
wait_file "$dir/sink.port"; srv_port[webhook]=$(cat "$dir/sink.port")
python3 test/mock/sink.py --engine threaded --port-file "$dir/pysink.port" --quiet --max-records 1000 &
srv_pid[webhook_py]=$!; pids+=($!)
wait_file "$dir/pysink.port"; srv_port[webhook_py]=$(cat "$dir/pysink.port")
declare -A mock_of=([shopify]=shopify [tiktok_shop]=tiktok [amazon_sp]=amazon [meta_catalog]=meta)
for k in shopify tiktok_shop amazon_sp meta_catalog; do
  python3 test/mock/platforms.py --platforms "${mock_of[$k]}" --port-file "$dir/$k.port" --quiet --max-records 2000 &
  srv_pid[$k]=$!; pids+=($!)
  wait_file "$dir/$k.port"; srv_port[$k]=$(cat "$dir/$k.port")
done
# The same two adapters against the C sink in their platform modes (the
# token, the sign and the quantities checked; see bench/sink.c), so that
# webhook deliveries and platform requests meet servers of the same cost.
"$dir/sink" "$dir/tiktok_shop_c.port" "$dir/tiktok_shop_c.txt" tiktok tts_app_key tts_app_secret \
  tts_access_token_0 tts_refresh_token &
srv_pid[tiktok_shop_c]=$!; pids+=($!)
"$dir/sink" "$dir/amazon_sp_c.port" "$dir/amazon_sp_c.txt" amazon amzn1.application-oa2-client.pgvestest \
  amzn-client-secret 'Atzr|pgves-refresh-token' &
srv_pid[amazon_sp_c]=$!; pids+=($!)
for k in tiktok_shop_c amazon_sp_c; do wait_file "$dir/$k.port"; srv_port[$k]=$(cat "$dir/$k.port"); done
# The destination kind a bench kind is (webhook_py: webhook to the Python
# sink; tiktok_shop_c: tiktok_shop to the C sink).
kind_of() { local k=${1%_py}; echo "${k%_c}"; }
# Requests a server has received so far.
requests() {
  local u="http://127.0.0.1:${srv_port[$1]}"
  case $1 in
    webhook|*_c) curl -s "$u/count" ;;
    webhook_py) curl -s "$u/_requests/count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' ;;
    *) curl -s "$u/_stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])' ;;
  esac
}

q "CREATE EXTENSION pg_ves"
q "SELECT ves.set_sync_settings('{\"window\": 256, \"claim_batch\": 256, \"safety_poll_ms\": ${BENCH_SAFETY_POLL_MS:-5000}}')" >/dev/null
for _ in $(seq 100); do
  worker=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_ves worker'")
  [ -n "$worker" ] && break; sleep 0.1
done
echo "$skus SKUs per destination, $changes changes per SKU in the collapsing pass, concurrency $concurrency, no rate limit, worker window 256"

# Each kind has its own tenant and store, so a pass touches one destination.
tenant_of() { printf '00000000-0000-4000-8000-%012d' "$1"; }
store_of() { printf '00000000-0000-4000-9000-%012d' "$1"; }
common='"rate_limit": 0, "concurrency": '$concurrency', "max_attempts": 100, "backoff_base_ms": 50, "backoff_cap_ms": 1000, "breaker_threshold": 0'
options() { # kind tenant store
  local ids="\"tenant_id\": \"$2\", \"store_id\": \"$3\""
  case $1 in
    webhook|webhook_py) echo "{\"tenant_id\": \"$2\", \"entity_types\": [\"inventory\"], \"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", $common}" ;;
    shopify) echo "{$ids, $common, \"access_token\": \"shpat_pgves_test\", \"location_id\": \"gid://shopify/Location/1\"}" ;;
    tiktok_shop|tiktok_shop_c) echo "{$ids, $common, \"app_key\": \"tts_app_key\", \"app_secret\": \"tts_app_secret\",
      \"access_token\": \"tts_access_token_0\", \"refresh_token\": \"tts_refresh_token\",
      \"shop_cipher\": \"ROW_pgves_test\", \"warehouse_id\": \"7000000000000000001\", \"auth_url\": \"http://127.0.0.1:${srv_port[$1]}\"}" ;;
    amazon_sp|amazon_sp_c) echo "{$ids, $common, \"seller_id\": \"A1PGVESTEST\", \"marketplace_ids\": [\"ATVPDKIKX0DER\"],
      \"client_id\": \"amzn1.application-oa2-client.pgvestest\", \"client_secret\": \"amzn-client-secret\",
      \"refresh_token\": \"Atzr|pgves-refresh-token\", \"lwa_url\": \"http://127.0.0.1:${srv_port[$1]}/auth/o2/token\",
      \"product_type\": \"PRODUCT\"}" ;;
    meta_catalog) echo "{$ids, $common, \"catalog_id\": \"880000000000001\", \"access_token\": \"meta-access-token\", \"api_version\": \"v23.0\"}" ;;
  esac
}
url_of() {
  case $1 in webhook|webhook_py) echo "http://127.0.0.1:${srv_port[$1]}/hook" ;; *) echo "http://127.0.0.1:${srv_port[$1]}" ;; esac
}
ref_sql() { # kind -> SQL expression of the platform_ref of SKU g
  case $1 in
    shopify) echo "jsonb_build_object('inventory_item_id', 'gid://shopify/InventoryItem/' || (1000 + g))" ;;
    tiktok_shop|tiktok_shop_c) echo "jsonb_build_object('product_id', (7300 + g)::text, 'sku_id', (8300 + g)::text)" ;;
    amazon_sp|amazon_sp_c) echo "jsonb_build_object('sku', 'SKU-' || g)" ;;
    meta_catalog) echo "jsonb_build_object('retailer_id', 'SKU-' || g)" ;;
  esac
}
set_all() { # tenant store "quantity expression of g and j" changes-per-SKU
  q "DO \$\$ BEGIN FOR j IN 1 .. $4 LOOP FOR g IN 1 .. $skus LOOP
       PERFORM ves.set_stock('$1', '$2', 'SKU-' || g, ($3)::bigint); END LOOP; END LOOP; END \$\$"
}
# Open rows through the worker's own index (next_attempt_at is never NULL):
# polled ten times a second, a scan of every closed row would take a share
# of the two cores the worker and the mocks measure on. Rows that end in
# another status than synced fail the check after the passes.
open_rows() { q "SELECT count(*) FROM ves.outbox WHERE destination_id = $1 AND status IN ('pending', 'failed') AND next_attempt_at IS NOT NULL"; }
drain() { for _ in $(seq 1200); do [ "$(open_rows "$1")" -eq 0 ] && return; sleep 0.1; done; echo "destination $1 did not drain" >&2; exit 1; }

results="$dir/results.txt"
: >"$results"
declare -A dest_id tenant store
i=0
for k in $kinds; do
  i=$((i + 1)); t=$(tenant_of $i); s=$(store_of $i); tenant[$k]=$t; store[$k]=$s
  id=$(q "SELECT id FROM ves.create_destination('$k', '$(kind_of $k)', '$(url_of $k)', '$(options $k $t $s)')")
  dest_id[$k]=$id
  set_all "$t" "$s" "100 + g" 1
  if [ "${k#webhook}" = "$k" ]; then
    q "SELECT count(*) FROM generate_series(1, $skus) g, LATERAL ves.map_listing('$k', 'SKU-' || g, $(ref_sql $k)) x" >/dev/null
  fi
  drain "$id"   # the initial counts (and the first token) are not timed
done
# Statistics as autovacuum leaves them a minute after a bulk mapping: the
# worker's plans made on the empty tables are made again (see RESULTS.md).
q "ANALYZE ves.listings, ves.inventory, ves.outbox"

# One timed pass of kind $1: pass $2 (round $3), $4 changes per SKU to the
# quantity expression $5 (of g and j), in one transaction.
run_pass() {
  local k=$1 id=${dest_id[$1]} last r0 w0 m0 t0 w1 m1 r1 end rows spread
  last=$(q "SELECT coalesce(max(id), 0) FROM ves.outbox WHERE destination_id = $id")
  r0=$(requests "$k"); w0=$(cpu "$worker"); m0=$(cpu "${srv_pid[$k]}")
  set_all "${tenant[$k]}" "${store[$k]}" "$5" "$4"
  t0=$(now)
  drain "$id"
  w1=$(cpu "$worker"); m1=$(cpu "${srv_pid[$k]}"); r1=$(requests "$k")
  end=$(q "SELECT extract(epoch FROM max(synced_at)) FROM ves.outbox WHERE destination_id = $id AND id > $last")
  rows=$(q "SELECT count(*) FROM ves.outbox WHERE destination_id = $id AND id > $last")
  # When the rows were recorded synced: 4 figures, seconds after the commit.
  spread=$(q "SELECT string_agg(to_char(extract(epoch FROM s) - $t0, 'FM990.00'), '/' ORDER BY p)
              FROM (SELECT p, percentile_disc(p) WITHIN GROUP (ORDER BY synced_at) s
                    FROM ves.outbox, unnest(ARRAY[0.25, 0.5, 0.75, 1.0]) p
                    WHERE destination_id = $id AND id > $last GROUP BY p) x")
  echo "$k $2 $3 $rows $((r1 - r0)) $t0 $end $w0 $w1 $m0 $m1 $spread" >>"$results"
}
# Pass 1 in rounds, the kinds one after another within each: the machine's
# speed drifts over a run (a shared host), and a ratio taken between passes
# seconds apart, then its median over the rounds, is what holds still.
for round in $(seq "$rounds"); do
  for k in $kinds; do run_pass "$k" 1 "$round" 1 "200 + $round + g"; done
done
for k in $kinds; do run_pass "$k" 2 1 "$changes" "300 + 10 * g + j"; done
# Every platform holds the final count of every SKU.
for k in $kinds; do
  if [ "${k#webhook}" = "$k" ]; then
    if [ "${k%_c}" != "$k" ]; then
      refused=$(curl -s "http://127.0.0.1:${srv_port[$k]}/quantities")
      [ "$refused" = 0 ] || { echo "$k: $refused requests refused for their credentials" >&2; exit 1; }
      python3 -c 'import json, sys; print(json.dumps({"quantities": {k: int(n) for k, n in (l.split() for l in open(sys.argv[1]))}}))' \
        "$dir/$k.txt.quantities" >"$dir/quantities.json"
    else
      curl -s "http://127.0.0.1:${srv_port[$k]}/_quantities" >"$dir/quantities.json"
    fi
    python3 - "$(kind_of $k)" "$skus" "$changes" "$dir/quantities.json" <<'PY'
import json, sys
kind, skus, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
q = json.load(open(sys.argv[4]))["quantities"]
def key(g):
    if kind == "shopify": return "gid://shopify/InventoryItem/%d@gid://shopify/Location/1" % (1000 + g)
    if kind == "tiktok_shop": return "%d/%d@7000000000000000001" % (7300 + g, 8300 + g)
    return "SKU-%d" % g
bad = [g for g in range(1, skus + 1) if q.get(key(g)) != 300 + 10 * g + m]
if bad:
    sys.exit("%s: %d SKUs do not hold their final count (e.g. SKU-%d: %s)" % (kind, len(bad), bad[0], q.get(key(bad[0]))))
PY
  fi
done
dead=$(q "SELECT count(*) FROM ves.outbox WHERE status <> 'synced'")
[ "$dead" -eq 0 ] || { echo "$dead outbox rows are not synced" >&2; exit 1; }
[ "$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_ves worker'")" = "$worker" ] ||
  echo "warning: the worker restarted during the run; its CPU figures are incomplete" >&2
sleep 1  # the statistics of the worker's last transactions
hot_line=$(q "SELECT 'listings updates: ' || n_tup_upd || ', HOT: ' || n_tup_hot_upd
                || ' (' || round(100.0 * n_tup_hot_upd / greatest(n_tup_upd, 1)) || ' %)'
              FROM pg_stat_user_tables WHERE relid = 'ves.listings'::regclass")

# --- commit -> Shopify request latency at a steady load --------------------
lat_line=""
case " $kinds " in *" shopify "*)
  i=0; for k in $kinds; do i=$((i + 1)); [ "$k" = shopify ] && break; done
  seq0=$(curl -s "http://127.0.0.1:${srv_port[shopify]}/_log/count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
  w0=$(cpu "$worker"); m0=$(cpu "${srv_pid[shopify]}")
  "$dir/stock_latency" "$(tenant_of $i)" "$(store_of $i)" "$skus" "$rate" "$seconds" 100000 >"$dir/latency_client.txt"
  id=$(q "SELECT id FROM ves.destinations WHERE name = 'shopify'")
  drain "$id"
  w1=$(cpu "$worker"); m1=$(cpu "${srv_pid[shopify]}")
  curl -s "http://127.0.0.1:${srv_port[shopify]}/_log?after=$seq0" >"$dir/latency_log.json"
  lat_line=$(python3 - "$dir/latency_client.txt" "$dir/latency_log.json" "$rate" "$seconds" "$w0" "$w1" "$m0" "$m1" <<'PY'
import json, sys
sent = {}
for line in open(sys.argv[1]):
    sku, qty, t = line.split()
    sent[(sku, int(qty))] = int(t)
got, requests = {}, 0
for r in json.load(open(sys.argv[2]))["requests"]:
    if "inventorySetQuantities" not in (r.get("body") or ""):
        continue
    requests += 1
    for line in json.loads(r["body"])["variables"]["input"]["quantities"]:
        sku = "SKU-%d" % (int(line["inventoryItemId"].rsplit("/", 1)[1]) - 1000)
        got.setdefault((sku, int(line["quantity"])), r["time"])
lat = sorted((got[k] - t / 1e9) * 1000 for k, t in sent.items() if k in got)
pct = lambda p: lat[min(len(lat) - 1, int(p / 100 * len(lat)))]
cpu = lambda a, b: (float(b) - float(a)) / float(sys.argv[4]) * 100
print("latency at %s stock changes/s for %s s, commit -> Shopify request: %d changes, %d sent (the rest were"
      " superseded before sending), %d requests; p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms;"
      " worker CPU %.1f %%, mock CPU %.1f %%"
      % (sys.argv[3], sys.argv[4], len(sent), len(lat), requests, pct(50), pct(95), pct(99), lat[-1],
         cpu(sys.argv[5], sys.argv[6]), cpu(sys.argv[7], sys.argv[8])))
PY
)
esac

# --- the servers alone under one fixed load ----------------------------------
# How much of a gap between kinds is the server's own: the Python sink and
# the TikTok Shop mock each answer the same number of requests from
# bench/http_load.c (8 keep-alive connections, a new request as soon as an
# answer comes), a webhook delivery's request and a valid signed TikTok
# inventory update (with the access token the worker last used).
load_line=""
if [[ " $kinds " == *" webhook_py "* && " $kinds " == *" tiktok_shop "* ]]; then
  cc -O2 -o "$dir/http_load" bench/http_load.c
  curl -s "http://127.0.0.1:${srv_port[tiktok_shop]}/_log" >"$dir/tiktok_log.json"
  python3 - "$dir" "${srv_port[webhook_py]}" "${srv_port[tiktok_shop]}" <<'PY'
import json, sys, time
sys.path.insert(0, "test/mock")
from platforms import tiktok_sign
d, py_port, tt_port = sys.argv[1], sys.argv[2], sys.argv[3]
def raw(port, target, headers, body):
    head = ["POST %s HTTP/1.1" % target, "Host: 127.0.0.1:%s" % port, "User-Agent: pg_ves/0.1",
            "Accept: */*", "Content-Type: application/json"] + headers + ["Content-Length: %d" % len(body)]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
body = json.dumps({"type": "inventory.stock_set", "data": {"pad": "x" * 760}}).encode()
open(d + "/req_webhook_py", "wb").write(raw(py_port, "/hook", [
    "webhook-id: 01a2302f-4db9-7185-81d8-a3b58cb5a658", "webhook-timestamp: %d" % time.time(),
    "webhook-signature: v1,UxPf+x/TKw/yEgRe45FwUjDoJRTvj3+Zsg1obcx7OAQ="], body))
token = json.load(open(d + "/tiktok_log.json"))["requests"][-1]["headers"]["x-tts-access-token"]
path = "/product/202309/products/7301/inventory/update"
body = json.dumps({"skus": [{"id": "8301", "inventory": [{"warehouse_id": "7000000000000000001",
                                                          "quantity": 5}]}]}, separators=(",", ":")).encode()
pairs = [("app_key", "tts_app_key"), ("shop_cipher", "ROW_pgves_test"), ("timestamp", str(int(time.time())))]
target = path + "?" + "&".join("%s=%s" % kv for kv in pairs) + "&sign=" + tiktok_sign("tts_app_secret", path, pairs, body)
open(d + "/req_tiktok_shop", "wb").write(raw(tt_port, target, ["x-tts-access-token: " + token], body))
PY
  load_line="servers alone under the same load (bench/http_load.c, 8 connections, 20,000 requests):"
  for k in webhook_py tiktok_shop; do
    m0=$(cpu "${srv_pid[$k]}")
    read -r n secs bad < <("$dir/http_load" "${srv_port[$k]}" 8 20000 "$dir/req_$k")
    m1=$(cpu "${srv_pid[$k]}")
    load_line+=$(awk -v k="$k" -v n="$n" -v s="$secs" -v b="$bad" -v m0="$m0" -v m1="$m1" \
      'BEGIN { printf " %s %.0f us/request, %.0f requests/s, %d not 200;", k, (m1 - m0) / n * 1e6, n / s, b }')
  done
fi

# --- summary -----------------------------------------------------------------
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
label = {"webhook": "webhook (C sink)", "webhook_py": "webhook (Python sink)",
         "tiktok_shop_c": "tiktok_shop (C sink)", "amazon_sp_c": "amazon_sp (C sink)"}
base = {}
print("== summary: per pass, from the commit to the last row recorded synced")
print("%-22s %6s %6s %6s %9s %9s %6s %10s %10s %9s %8s  %s" % (
    "destination", "pass", "events", "reqs", "reqs/s", "events/s", "req/ev",
    "wkr us/req", "wkr us/ev", "mock us/req", "mock %", "synced by (s): 25/50/75/100 %"))
for k, p, rnd, ev, rq, t0, end, w0, w1, m0, m1, spread in rows:
    ev, rq = int(ev), int(rq)
    el = max(float(end) - float(t0), 1e-3)
    w, m = float(w1) - float(w0), float(m1) - float(m0)
    f = dict(rps=rq / el, eps=ev / el, wreq=w / max(rq, 1) * 1e6, wev=w / ev * 1e6)
    base.setdefault((p, rnd), {})[k] = f
    print("%-22s %6s %6d %6d %9.0f %9.0f %6.3f %10.0f %10.1f %9.0f %8.0f  %s" % (
        label.get(k, k), p + "." + rnd, ev, rq, f["rps"], f["eps"], rq / ev, f["wreq"], f["wev"],
        m / max(rq, 1) * 1e6, m / el * 100, spread))
print()
print("== adapters against webhook deliveries in the same round of a pass (target: >= 0.8x)")
print("   reqs/s: requests per second against webhook's to the C sink and to the Python sink;")
print("   SKU upd/s: SKU changes made good per second, against webhook's deliveries per second (C sink);")
print("   worker CPU: webhook's worker CPU time per request (per change) over the adapter's (C sink);")
print("   pass 1: the median of the rounds' ratios, then the lowest and highest round")
cols = ("rps", "C"), ("rps", "py"), ("eps", "C"), ("wreq", "C"), ("wev", "C")
print("%-14s %4s %19s %19s %19s %19s %19s" % ("adapter", "pass", "reqs/s C", "reqs/s Py",
                                              "SKU upd/s C", "wkr CPU /req", "wkr CPU /change"))
kinds = []
for k, *_ in rows:
    if not k.startswith("webhook") and k not in kinds:
        kinds.append(k)
for p in sorted({p for p, _ in base}):
    for k in kinds:
        cells = []
        for key, sink in cols:
            ratios = []
            for (pp, rnd), by in base.items():
                b, f = by.get("webhook" if sink == "C" else "webhook_py"), by.get(k)
                if pp != p or not b or not f:
                    continue
                ratios.append(b[key] / f[key] if key.startswith("w") else f[key] / b[key])
            if not ratios:
                cells.append("-")
            elif len(ratios) == 1:
                cells.append("%.2fx" % ratios[0])
            else:
                cells.append("%.2fx (%.2f-%.2f)" % (statistics.median(ratios), min(ratios), max(ratios)))
        print("%-14s %4s %19s %19s %19s %19s %19s" % (k, p, *cells))
PY
[ -z "$lat_line" ] || echo "$lat_line"
[ -z "$load_line" ] || echo "$load_line"
echo "$hot_line"

# --- the adapters alone, one core ----------------------------------------------
echo
echo "== adapters alone: build_requests + classify_rows of a success answer, batches of 16 rows (bench/adapters.cpp)"
"$dir/adapters" 2 16 | awk '
  BEGIN { printf "%-14s %9s %12s %12s %10s %16s\n", "kind", "rows/req", "us/SKU upd", "us/request", "body bytes", "per SKU vs webhook" }
  $1 == "webhook" { w = $3 }
  { printf "%-14s %9.1f %12.2f %12.2f %10d %15.2fx\n", $1, $2, $3, $4, $5, w / $3 }'
