#!/usr/bin/env bash
# Soak test (not part of the suite): mixed traffic under crashes, then the
# invariants a user relies on.
#
#   SOAK_SECONDS=1800 bash bench/soak.sh        (the default is 1800 s)
#
# For SOAK_SECONDS, on a throwaway cluster with the sync worker running:
#   - SOAK_APPENDERS clients append events (ves.append) and keep every event
#     id the server acknowledged (the call returned after a durable commit);
#   - a client upserts entity state (ves.upsert);
#   - SOAK_STOCK clients reserve, commit, release and adjust stock on a few
#     hot SKUs;
#   - three webhook destinations on the mock sink (test/mock/sink.py): one
#     healthy, one whose behaviour changes every few seconds (5xx, 429 with
#     Retry-After, connection resets, slow answers, hangs past the timeout,
#     success), one that always answers 400;
#   - every SOAK_KILL_EVERY seconds (default 8) a kill -9 of a random client
#     backend, of the sync worker, or of the postmaster (then a restart).
# Then the sink is healed, the worker drains, and the run checks:
#   - no acknowledged append is missing from ves.events;
#   - no oversell: available >= 0 and reserved <= on_hand on every row, and
#     reserved equals the sum of held reservations;
#   - every outbox row is synced or dead (nothing stuck pending, failed or
#     leased), and the healthy destination has nothing dead;
#   - ves.verify_events() reports nothing.
# Prints the figures and exits non-zero when an invariant fails.
# SOAK_KEEP=1 keeps the scratch directory (server log, client logs).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
. scripts/common.sh
build_and_install

seconds=${SOAK_SECONDS:-1800}
kill_every=${SOAK_KILL_EVERY:-8}
appenders=${SOAK_APPENDERS:-2}
stockers=${SOAK_STOCK:-2}

dir=$(scratch_dir soak)
PG_CWD=$dir
port=$(free_port)
sink_pid=""
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  as_pg pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  [ -z "$sink_pid" ] || { kill "$sink_pid" 2>/dev/null; wait "$sink_pid" 2>/dev/null; }
  if [ -n "${SOAK_KEEP:-}" ]; then echo "soak: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 test/mock/sink.py --port 0 --port-file "$dir/sink.port" --quiet --max-records 2000 &
sink_pid=$!
for _ in $(seq 50); do [ -s "$dir/sink.port" ] && break; sleep 0.1; done
sink_port=$(cat "$dir/sink.port")
sink_url="http://127.0.0.1:$sink_port"

start_throwaway_cluster "$dir" "$port" <<EOF
cluster_name = 'soak_$port'
ves.databases = 'postgres'
restart_after_crash = on
log_min_messages = log
EOF
psql_q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

tenant=00000000-0000-0000-0000-00000000c001
store=00000000-0000-0000-0000-00000000d001
psql_q -v sink="$sink_url" >/dev/null <<SQL || { echo "soak: setup failed"; exit 1; }
CREATE EXTENSION pg_ves;
SELECT ves.set_sync_settings('{"lease_seconds": 5}');
SELECT ves.create_destination('healthy', 'webhook', :'sink' || '/healthy',
  '{"max_attempts": 1000, "backoff_cap_ms": 1000, "breaker_cooldown_ms": 1000, "timeout_ms": 2000}');
SELECT ves.create_destination('faulty', 'webhook', :'sink' || '/faulty',
  '{"max_attempts": 6, "backoff_base_ms": 100, "backoff_cap_ms": 2000, "breaker_cooldown_ms": 1000, "timeout_ms": 1000}');
SELECT ves.create_destination('refusing', 'webhook', :'sink' || '/refusing',
  '{"max_attempts": 3, "backoff_base_ms": 100, "backoff_cap_ms": 500, "event_types": ["order.created"]}');
SELECT count(*) FROM generate_series(1, 20) g, LATERAL ves.set_stock('$tenant', '$store', 'HOT-' || g, 50);
SQL
curl_post() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST"), timeout=5).read()' "$@"; }
curl_post "$sink_url/_control" '{"path": "/refusing", "mode": "status", "status": 400}'

stop_at=$(( $(date +%s) + seconds ))
running() { [ "$(date +%s)" -lt "$stop_at" ]; }

# Clients: one psql per call, so a killed backend or a restarting server only
# fails that call. A result is counted only when psql exits 0 after commit.
appender() {
  local n=0 id
  while running; do
    n=$((n + 1))
    id=$(PGAPPNAME=soak-client psql_q -c "SELECT event_id FROM ves.append('$tenant', '$store', 'Order', 'o-$1-$((n % 500))',
           'order.created', jsonb_build_object('client', $1, 'n', $n, 'total', $n * 1.25))" 2>>"$dir/client-$1.err")
    if [ $? -eq 0 ] && [ -n "$id" ]; then echo "$id" >>"$dir/acked.$1"; else echo x >>"$dir/refused.$1"; sleep 0.05; fi
  done
}
upserter() {
  local n=0 out
  while running; do
    n=$((n + 1))
    # An applied upsert appends an event: its id counts as acknowledged too.
    if out=$(PGAPPNAME=soak-client psql_q -c "SELECT outcome || ' ' || coalesce(event_id::text, '') FROM ves.upsert('$tenant',
          '$store', 'Customer', 'c-$((n % 50))', jsonb_build_object('name', 'c$((n % 50))', 'visits', $n))" 2>>"$dir/upsert.err"); then
      echo "${out%% *}" >>"$dir/upserts"
      [ -z "${out#* }" ] || echo "${out#* }" >>"$dir/acked.upsert"
    else echo x >>"$dir/refused.upsert"; sleep 0.05; fi
  done
}
stocker() {
  local n=0 sku qty r
  while running; do
    n=$((n + 1))
    sku="HOT-$((RANDOM % 20 + 1))"
    qty=$((RANDOM % 4 + 1))
    r="r-$1-$n"
    case $((RANDOM % 10)) in
      0|1|2|3|4) sql="SELECT available FROM ves.reserve_stock('$tenant', '$store', '$sku', $qty, '$r')"; what=reserve ;;
      5|6) sql="SELECT count(*) FROM (SELECT ves.commit_reservation('$tenant', reservation_id) FROM ves.reservations
                 WHERE tenant_id = '$tenant' AND status = 'held' ORDER BY random() LIMIT 1) s"; what=commit ;;
      7) sql="SELECT count(*) FROM (SELECT ves.release_stock('$tenant', reservation_id) FROM ves.reservations
                 WHERE tenant_id = '$tenant' AND status = 'held' ORDER BY random() LIMIT 1) s"; what=release ;;
      8) sql="SELECT available FROM ves.adjust_stock('$tenant', '$store', '$sku', $((RANDOM % 30 + 5)), reason => 'restock')"; what=restock ;;
      9) sql="SELECT available FROM ves.adjust_stock('$tenant', '$store', '$sku', -$qty, reason => 'shrinkage')"; what=shrink ;;
    esac
    if PGAPPNAME=soak-client psql_q -c "$sql" >/dev/null 2>>"$dir/stock-$1.err"; then
      echo "$what" >>"$dir/stock.ok"
    else echo "$what" >>"$dir/stock.refused"; sleep 0.02; fi
  done
}
# The faulty destination's behaviour changes every 3 s.
faults() {
  local rules=(
    '{"path": "/faulty", "mode": "ok"}'
    '{"path": "/faulty", "mode": "status", "status": 503}'
    '{"path": "/faulty", "mode": "status", "status": 429, "retry_after": "1"}'
    '{"path": "/faulty", "mode": "reset"}'
    '{"path": "/faulty", "mode": "slow", "delay_ms": 300}'
    '{"path": "/faulty", "mode": "hang", "delay_ms": 3000}'
    '{"path": "/faulty", "mode": "status", "status": 500}'
  )
  while running; do
    curl_post "$sink_url/_control" "${rules[RANDOM % ${#rules[@]}]}" 2>/dev/null
    sleep 3
  done
}

pg_alive() { psql_q -c 'SELECT 1' >/dev/null 2>&1; }
# Waits until no process of the killed server is left (backends notice the
# postmaster's death), then starts it again.
restart_server() {
  for _ in $(seq 300); do
    pgrep -f "^postgres: soak_$port: " >/dev/null || break
    sleep 0.1
  done
  for _ in $(seq 20); do
    as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}
killer() {
  local pid what
  while running; do
    sleep "$kill_every"
    running || break
    case $((RANDOM % 10)) in
      0|1|2|3|4) what=backend
        # Client calls are short, and the server may still be recovering
        # from the last kill: look for one in flight for up to 10 s.
        for _ in $(seq 100); do
          pid=$(psql_q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'soak-client'
                           ORDER BY random() LIMIT 1" 2>/dev/null)
          [ -z "$pid" ] || break
          sleep 0.1
        done ;;
      5|6|7) what=worker
        pid=$(psql_q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_ves worker' LIMIT 1" 2>/dev/null) ;;
      *) what=postmaster
        pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null) ;;
    esac
    [ -n "$pid" ] || continue
    kill -9 "$pid" 2>/dev/null || continue
    echo "$(date +%T) $what $pid" >>"$dir/kills"
    if [ "$what" = postmaster ]; then
      restart_server || { echo "$(date +%T) restart failed" >>"$dir/kills"; }
    fi
  done
}

echo "soak: ${seconds}s on 127.0.0.1:$port; kill -9 every ${kill_every}s; $appenders appenders, 1 upserter, $stockers stock clients"
for i in $(seq "$appenders"); do appender "$i" & pids+=($!); done
upserter & pids+=($!)
for i in $(seq "$stockers"); do stocker "$i" & pids+=($!); done
faults & pids+=($!)
killer & pids+=($!)
wait "${pids[@]}"
pids=()

# --- after the traffic ----------------------------------------------------------

pg_alive || restart_server || { echo "soak: the server does not start again"; tail -n 30 "$dir/server.log"; exit 1; }
curl_post "$sink_url/_control" '{"path": "/faulty", "mode": "ok"}'
echo "soak: traffic stopped; waiting for the worker to drain the outbox"
drained=0
for _ in $(seq 600); do
  left=$(psql_q -c "SELECT count(*) FROM ves.outbox WHERE status NOT IN ('synced', 'dead')" 2>/dev/null)
  [ "$left" = 0 ] && { drained=1; break; }
  sleep 0.5
done

count() { cat "$@" 2>/dev/null | wc -l; }
acked=$(count "$dir"/acked.[0-9]*)
acked_upserts=$(count "$dir/acked.upsert")
cat "$dir"/acked.[0-9]* "$dir/acked.upsert" 2>/dev/null | sort -u >"$dir/acked.all"
chown "$PG_USER" "$dir/acked.all" 2>/dev/null || true
missing=$(psql_q <<SQL
CREATE TEMP TABLE acked (id uuid);
\\copy acked FROM '$dir/acked.all'
SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT FROM ves.events e WHERE e.event_id = a.id);
SQL
)
oversold=$(psql_q -c "SELECT count(*) FROM ves.inventory WHERE available < 0 OR reserved > on_hand")
mismatch=$(psql_q -c "SELECT count(*) FROM ves.inventory i WHERE i.reserved <> coalesce((SELECT sum(quantity) FROM ves.reservations r
  WHERE r.tenant_id = i.tenant_id AND r.store_id = i.store_id AND r.sku = i.sku AND r.location = i.location AND r.status = 'held'), 0)")
outbox=$(psql_q -c "SELECT string_agg(d.name || ':' || o.status || '=' || o.n, ' ' ORDER BY d.name, o.status)
  FROM (SELECT destination_id, status, count(*) n FROM ves.outbox GROUP BY 1, 2) o JOIN ves.destinations d ON d.id = o.destination_id")
stuck=$(psql_q -c "SELECT count(*) FROM ves.outbox WHERE status NOT IN ('synced', 'dead')")
healthy_dead=$(psql_q -c "SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
  WHERE d.name = 'healthy' AND o.status = 'dead'")
bad_events=$(psql_q -c "SELECT count(*) FROM ves.verify_events()")
events=$(psql_q -c "SELECT count(*) FROM ves.events")
stock=$(psql_q -c "SELECT sum(on_hand) || ' on hand, ' || sum(reserved) || ' reserved, ' || min(available) || ' min available' FROM ves.inventory")
crashes=$(grep -cE 'terminated by signal' "$dir/server.log")
nonkill=$(grep -E 'terminated by signal' "$dir/server.log" | grep -vc 'signal 9: Killed')

echo "--- soak figures"
printf '%-34s %s\n' \
  "duration (s)" "$seconds" \
  "acknowledged appends" "$acked" \
  "refused or failed appends" "$(count "$dir"/refused.[0-9]*)" \
  "upserts (outcomes)" "$(sort "$dir/upserts" 2>/dev/null | uniq -c | awk '{printf "%s %s ", $2, $1}')" \
  "acknowledged upsert events" "$acked_upserts" \
  "stock calls ok / refused" "$(count "$dir/stock.ok") / $(count "$dir/stock.refused")" \
  "kills: backend / worker / postmaster" "$(grep -c ' backend ' "$dir/kills" 2>/dev/null) / $(grep -c ' worker ' "$dir/kills" 2>/dev/null) / $(grep -c ' postmaster ' "$dir/kills" 2>/dev/null)" \
  "server processes ended by a signal" "$crashes ($nonkill not SIGKILL)" \
  "events stored" "$events" \
  "outbox rows" "$outbox" \
  "stock" "$stock"
echo "--- soak invariants"
ok=1
check() { if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: $2 (want $3)"; ok=0; fi; }
check "acknowledged appends and upsert events missing from ves.events" "$missing" 0
check "inventory rows oversold (available < 0 or reserved > on_hand)" "$oversold" 0
check "inventory rows whose reserved differs from the held reservations" "$mismatch" 0
check "outbox rows neither synced nor dead after the drain" "$stuck" 0
check "dead outbox rows of the healthy destination" "$healthy_dead" 0
check "events failing ves.verify_events()" "$bad_events" 0
check "server processes ended by a signal other than SIGKILL" "$nonkill" 0
[ "$drained" = 1 ] || echo "(the drain did not finish within 300 s)"
[ "$ok" = 1 ] && echo "soak: PASS" || { echo "soak: FAIL"; SOAK_KEEP=1; }
[ "$ok" = 1 ]
