#!/usr/bin/env bash
# Sync through a pg_ves sequencer against a plain ves_postgres link, in one
# run on the same three throwaway clusters (A, B, Q):
#
#   sequencer path (tenant T1): A pushes to Q (ves_postgres), Q sequences
#     (ves.sequence_events), B pulls the stream from Q (ves_postgres, "pull");
#   plain link (tenant T2): A pushes straight to B (ves_postgres), B
#     sequences, and B pulls the stream from its own sequencer log (a
#     ves_postgres source whose conninfo names B itself). pg_ves has no
#     shorter way for an event appended on A to be stored and applied on B:
#     ves.sequence_events only keeps the envelope and its receipt, the pull
#     is what stores and applies it.
#
# Per path: push rate (BENCH_SEQ_EVENTS appended on A in batches of 1,000
# while the worker drains, with B's source paused: from the first append to
# the sequencer's head reaching them all), pull rate (B's source resumed:
# until its cursor has passed them all), and latency (single appends on A at
# BENCH_SEQ_RATE/s for BENCH_SEQ_SECONDS, each on a new entity: B's
# ves.applied_events.applied_at minus A's ves.events.recorded_at; both are
# now() of their transaction on the same machine's clock, so the figure
# leaves out A's own append and B's commit, a millisecond or two each).
#
#   BENCH_SEQ_EVENTS (20000)      events of the push and pull runs
#   BENCH_SEQ_RATE (50)           appends per second of the latency run
#   BENCH_SEQ_SECONDS (20)        its length
#   BENCH_SEQ_PULL_INTERVAL (20)  pull_interval_ms of both sources
#   BENCH_SEQ_PULL_BATCH (1000)   pull_batch of both sources
#   BENCH_SEQ_PULL_ONLY (0)       1 gives B's sources "entity_types":
#                                 ["bench.none"], so B pushes nothing back;
#                                 by default (as test/t/034 sets them up) B
#                                 pushes every event it pulled back to the
#                                 source it came from, where it is a replay
#   PGVES_BENCH_KEEP (0)          1 keeps the scratch directory (server logs)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

events=${BENCH_SEQ_EVENTS:-20000}
rate=${BENCH_SEQ_RATE:-50}
seconds=${BENCH_SEQ_SECONDS:-20}
interval=${BENCH_SEQ_PULL_INTERVAL:-20}
pull_batch=${BENCH_SEQ_PULL_BATCH:-1000}
pull_only=${BENCH_SEQ_PULL_ONLY:-0}

t1=11111111-1111-4111-8111-111111111111
t2=33333333-3333-4333-8333-333333333333
store=22222222-2222-4222-8222-222222222222

work=$(scratch_dir sequencer_bench)
PG_CWD=$work
declare -A port
started=()
cleanup() {
  local n
  for n in "${started[@]}"; do
    as_pg pg_ctl -D "$work/$n" -m immediate stop >/dev/null 2>&1 || true
  done
  if [ "${PGVES_BENCH_KEEP:-0}" = 1 ]; then echo "bench: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A throwaway cluster NAME with trust authentication on loopback only and a
# sync worker in database postgres.
node() {
  local n=$1
  port[$n]=$(free_port)
  as_pg initdb -D "$work/$n" -A trust -U postgres -E UTF8 --locale=C >"$work/$n.initdb.log" 2>&1 ||
    { cat "$work/$n.initdb.log"; exit 1; }
  cat >>"$work/$n/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_ves'
listen_addresses = '127.0.0.1'
port = ${port[$n]}
unix_socket_directories = '$work'
shared_buffers = '256MB'
max_wal_size = '4GB'
jit = off
log_min_messages = warning
ves.databases = 'postgres'
# The clusters trust each other's connections (initdb -A trust): no password.
ves.remote_password_required = off
CONF
  as_pg pg_ctl -D "$work/$n" -l "$work/$n.log" -w start >/dev/null || { cat "$work/$n.log"; exit 1; }
  started+=("$n")
  on "$n" "CREATE EXTENSION pg_ves"
}
on() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${port[$1]}" -U postgres -d postgres -c "$2"; }
now() { date +%s.%N; }
conninfo() { echo "host=127.0.0.1 port=${port[$1]} dbname=postgres user=postgres"; }

node a
node b
node q

# Keys: A's agent signs both tenants' events; its key is registered where
# they are sequenced and where they are pulled.
for t in $t1 $t2; do
  IFS='|' read -r agent key public < <(on a "SELECT agent_id, key_id, encode(public_key, 'hex')
                                              FROM ves.create_agent_key('$t', '$store')")
  if [ "$t" = "$t1" ]; then on q "SELECT ves.register_agent_key('$t', '$agent', $key, '\\x$public')" >/dev/null; fi
  on b "SELECT ves.register_agent_key('$t', '$agent', $key, '\\x$public')" >/dev/null
done
q_key=$(on q "SELECT encode(public_key, 'hex') FROM ves.sequencer_identity()")
b_key=$(on b "SELECT encode(public_key, 'hex') FROM ves.sequencer_identity()")

common='"backoff_base_ms": 50, "backoff_cap_ms": 500, "max_attempts": 1000, "breaker_threshold": 0'
destination() { # NODE NAME TARGET TENANT SEQUENCER_KEY [PULL_OPTIONS]
  on "$1" "SELECT ves.create_destination('$2', 'ves_postgres', 'postgresql://127.0.0.1:${port[$3]}/postgres',
             '{\"conninfo\": \"$(conninfo "$3")\", \"sequencer_public_key\": \"$5\", \"tenant_id\": \"$4\",
               $common${6:+, $6}}')" >/dev/null
}
pull="\"pull\": true, \"store_id\": \"$store\", \"pull_interval_ms\": $interval, \"pull_batch\": $pull_batch"
[ "$pull_only" != 1 ] || pull="$pull, \"entity_types\": [\"bench.none\"]"
destination a to_q q $t1 "$q_key"
destination b from_q q $t1 "$q_key" "$pull"
destination a to_b b $t2 "$b_key"
destination b from_self b $t2 "$b_key" "$pull"

echo "pg_ves sequencer benchmark: 3 clusters (A, B, Q) on one machine, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pull_interval_ms $interval, pull_batch $pull_batch; worker settings are the defaults;" \
  "$([ "$pull_only" = 1 ] && echo "B's sources pull only" || echo "B pushes what it pulled back to its sources (replays)")"

# head_of PATH: the sequencer's head of the path's stream; cursor_of PATH:
# the next number B's source will apply.
head_of() {
  case $1 in
    seq) on q "SELECT ves.sequencer_head('$t1', '$store')" ;;
    plain) on b "SELECT ves.sequencer_head('$t2', '$store')" ;;
  esac
}
source_of() { case $1 in seq) echo from_q ;; plain) echo from_self ;; esac; }
tenant_of() { case $1 in seq) echo $t1 ;; plain) echo $t2 ;; esac; }
cursor_of() {
  on b "SELECT coalesce((SELECT c.next_sequence FROM ves.pull_cursors c JOIN ves.destinations d ON d.id = c.destination_id
                         WHERE d.name = '$(source_of "$1")'), 1)"
}
wait_for() { # DESCRIPTION SECONDS COMMAND...: polls every 20 ms
  local what=$1 limit=$2 deadline
  shift 2
  deadline=$(($(date +%s) + limit))
  until "$@"; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
      echo "bench: timed out waiting for $what" >&2
      on a "SELECT destination_id, status, count(*), max(last_error) FROM ves.outbox GROUP BY 1, 2" >&2 || true
      on b "SELECT * FROM ves.pull_status" >&2 || true
      exit 1
    fi
    sleep 0.02
  done
}
applied_at_least() { [ "$(on b "SELECT count(*) FROM ves.applied_events WHERE tenant_id = '$1'")" -ge "$2" ]; }
head_at_least() { [ "$(head_of "$1")" -ge "$2" ]; }
cursor_past() { [ "$(cursor_of "$1")" -gt "$2" ]; }

declare -A push_rate pull_rate lat
base=0
throughput() { # PATH: push, then pull, of $events events
  local path=$1 tenant t0 t1_ t2_ t3 b
  tenant=$(tenant_of "$path")
  on b "SELECT ves.pause_destination('$(source_of "$path")')" >/dev/null
  local start_head
  start_head=$(head_of "$path")
  t0=$(now)
  for b in $(seq $((events / 1000))); do
    on a "SELECT count(*) FROM ves.append_batch((SELECT jsonb_agg(jsonb_build_object(
            'tenant_id', '$tenant', 'store_id', '$store',
            'entity_type', 'InventoryItem', 'entity_id', 'SKU-' || ($b * 1000 + g), 'event_type', 'inventory.adjusted',
            'payload', jsonb_build_object('delta', g, 'reason', 'restock'))) FROM generate_series(1, 1000) g))" >/dev/null
  done
  t1_=$(now)
  wait_for "$path: the sequencer's head" 600 head_at_least "$path" $((start_head + events))
  t2_=$(now)
  on b "SELECT ves.resume_destination('$(source_of "$path")')" >/dev/null
  wait_for "$path: B's cursor" 600 cursor_past "$path" $((start_head + events))
  t3=$(now)
  push_rate[$path]=$(python3 -c "print(f'{$events / ($t2_ - $t0):.0f}')")
  pull_rate[$path]=$(python3 -c "print(f'{$events / ($t3 - $t2_):.0f}')")
  printf '%-9s push: %d events appended in %.2f s, sequenced in %.2f s = %s events/s; pull: applied on B in %.2f s = %s events/s\n' \
    "$path" "$events" "$(python3 -c "print($t1_ - $t0)")" "$(python3 -c "print($t2_ - $t0)")" "${push_rate[$path]}" \
    "$(python3 -c "print($t3 - $t2_)")" "${pull_rate[$path]}"
}

latency() { # PATH: single appends on A at $rate/s, each a new entity
  local path=$1 tenant n prefix
  tenant=$(tenant_of "$path")
  prefix="lat-$path-"
  n=$((rate * seconds))
  python3 - "$rate" "$n" "$tenant" "$store" "$prefix" <<'PY' | psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${port[a]}" -U postgres -d postgres >/dev/null
import sys, time
rate, n, tenant, store, prefix = float(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:]
start = time.monotonic()
for i in range(n):
    delay = start + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    print(f"SELECT ves.append('{tenant}', '{store}', 'InventoryItem', '{prefix}{i}', 'inventory.adjusted',"
          f" '{{\"delta\": 1, \"reason\": \"latency\"}}');", flush=True)
PY
  local head
  head=$(on a "SELECT count(*) FROM ves.events WHERE tenant_id = '$tenant'")
  wait_for "$path: the latency run on B" 120 applied_at_least "$tenant" "$head"
  on a "COPY (SELECT entity_id, extract(epoch FROM recorded_at) FROM ves.events
              WHERE tenant_id = '$tenant' AND entity_id LIKE '$prefix%') TO STDOUT" >"$work/$path.sent"
  on b "COPY (SELECT e.entity_id, extract(epoch FROM a.applied_at) FROM ves.events e
              JOIN ves.applied_events a USING (tenant_id, event_id)
              WHERE e.tenant_id = '$tenant' AND e.entity_id LIKE '$prefix%') TO STDOUT" >"$work/$path.applied"
  local sequencer=q
  [ "$path" = seq ] || sequencer=b
  on $sequencer "COPY (SELECT entity_id, extract(epoch FROM sequenced_at) FROM ves.sequencer_events
                      WHERE tenant_id = '$tenant' AND entity_id LIKE '$prefix%') TO STDOUT" >"$work/$path.sequenced"
  lat[$path]=$(python3 - "$work/$path.sent" "$work/$path.applied" "$work/$path.sequenced" <<'PY'
import sys
sent, got, seq = (dict(l.split('\t') for l in open(f).read().splitlines()) for f in sys.argv[1:4])
def pct(xs, p):
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]
lat = sorted((float(got[k]) - float(t)) * 1000 for k, t in sent.items() if k in got)
push = sorted((float(seq[k]) - float(t)) * 1000 for k, t in sent.items() if k in seq)
pull = sorted((float(got[k]) - float(seq[k])) * 1000 for k in sent if k in got and k in seq)
print(f"{len(lat)} {len(sent) - len(lat)} {pct(lat, 50):.1f} {pct(lat, 99):.1f} {lat[-1]:.1f}"
      f" {pct(push, 50):.1f} {pct(push, 99):.1f} {pct(pull, 50):.1f} {pct(pull, 99):.1f}")
PY
)
  read -r count missing p50 p99 max push50 push99 pull50 pull99 <<<"${lat[$path]}"
  printf '%-9s latency at %s/s for %s s, A recorded -> B applied, %s events (%s missing): p50 %s ms, p99 %s ms, max %s ms\n' \
    "$path" "$rate" "$seconds" "$count" "$missing" "$p50" "$p99" "$max"
  printf '%-9s   of which A recorded -> sequenced: p50 %s ms, p99 %s ms; sequenced -> B applied: p50 %s ms, p99 %s ms\n' \
    "" "$push50" "$push99" "$pull50" "$pull99"
}

# Warm-up: one event down each path, so connections and plans exist.
for path in seq plain; do
  on a "SELECT ves.append('$(tenant_of $path)', '$store', 'InventoryItem', 'warm-up', 'inventory.adjusted', '{}')" >/dev/null
done
wait_for "the warm-up" 60 cursor_past seq 1
wait_for "the warm-up" 60 cursor_past plain 1

# Alternate the paths so drift in the machine's load hits both.
throughput seq
throughput plain
latency seq
latency plain

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
read -r _ _ sp50 sp99 _ <<<"${lat[seq]}"
read -r _ _ pp50 pp99 _ <<<"${lat[plain]}"
echo
echo "summary (pull_interval_ms $interval: a pulled event waits up to that long for the next pull)"
printf '%-22s %14s %14s %8s\n' "" "pg_ves sequencer" "plain link" "ratio"
printf '%-22s %14s %14s %8s\n' "push, events/s" "${push_rate[seq]}" "${push_rate[plain]}" "$(ratio "${push_rate[seq]}" "${push_rate[plain]}")"
printf '%-22s %14s %14s %8s\n' "pull, events/s" "${pull_rate[seq]}" "${pull_rate[plain]}" "$(ratio "${pull_rate[seq]}" "${pull_rate[plain]}")"
printf '%-22s %14s %14s %8s\n' "latency p50, ms" "$sp50" "$pp50" "$(ratio "$sp50" "$pp50")"
printf '%-22s %14s %14s %8s\n' "latency p99, ms" "$sp99" "$pp99" "$(ratio "$sp99" "$pp99")"

echo "B's outbox (events it pushed back to its sources): $(on b "SELECT coalesce(string_agg(d.name || ' ' || o.status || ' ' || o.n, ', '), 'none')
  FROM (SELECT destination_id, status, count(*) AS n FROM ves.outbox GROUP BY 1, 2) o JOIN ves.destinations d ON d.id = o.destination_id")"

# Anything the servers complained about.
for n in a b q; do
  errors=$(grep -cE 'ERROR|FATAL|PANIC|WARNING' "$work/$n.log" || true)
  [ "$errors" = 0 ] || { echo "server log of $n: $errors ERROR/FATAL/PANIC/WARNING lines, first ones:"; grep -E 'ERROR|FATAL|PANIC|WARNING' "$work/$n.log" | head -5; }
done
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
