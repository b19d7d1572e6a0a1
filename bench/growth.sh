#!/usr/bin/env bash
# Growth runs: does pg_ves stay as fast when its tables are large?
#
#   bash bench/growth.sh
#
# 1. Two databases of one throwaway cluster: "small" holds 10,000 events
#    (1,000 entities x 10), "large" holds BENCH_GROWTH_EVENTS (10 million) spread
#    over BENCH_GROWTH_ENTITIES (1 million) entities, 10 events each, loaded with
#    ves.append_batch. Single appends (pgbench, as bench/run.sh) and
#    ves.read_entity of a random loaded entity run against both in alternating
#    slices; the figures are large / small (target >= 0.9 each).
# 2. The sync worker drains a backlog of BENCH_GROWTH_BACKLOG (1 million) outbox
#    rows and of BENCH_GROWTH_SMALL_BACKLOG (10,000) rows, the small one before
#    and after the large one, to the C sink of bench/outbox.sh. The rate is the
#    sink's: requests received between the first and the last, over that time.
#    Target: the large backlog's rate >= 0.9 x the small one's.
#
# Settings, all optional:
#   BENCH_GROWTH_EVENTS (10000000)   BENCH_GROWTH_ENTITIES (1000000)
#   BENCH_GROWTH_LOADERS (2)         sessions loading "large" at once
#   BENCH_GROWTH_BATCH (10000)       events per ves.append_batch call of the load
#   BENCH_GROWTH_SECONDS (24)        pgbench seconds per side and measure, in
#   BENCH_GROWTH_SLICES (4)          alternating slices
#   BENCH_GROWTH_CLIENTS (4)
#   BENCH_GROWTH_BACKLOG (1000000)   BENCH_GROWTH_SMALL_BACKLOG (10000)
#   BENCH_GROWTH_PARTS (append,drain) which parts run
#   BENCH_GROWTH_SHARED_BUFFERS (512MB, as bench/run.sh)
#   PGVES_BENCH_KEEP=1               keep the cluster directory
# With the defaults it takes about 25 minutes on 2 cores and needs about 20 GB
# of disk while it runs (events, indexes and WAL).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
. scripts/common.sh

events=${BENCH_GROWTH_EVENTS:-10000000}
entities=${BENCH_GROWTH_ENTITIES:-1000000}
loaders=${BENCH_GROWTH_LOADERS:-2}
batch=${BENCH_GROWTH_BATCH:-10000}
seconds=${BENCH_GROWTH_SECONDS:-24}
slices=${BENCH_GROWTH_SLICES:-4}
clients=${BENCH_GROWTH_CLIENTS:-4}
backlog=${BENCH_GROWTH_BACKLOG:-1000000}
small_backlog=${BENCH_GROWTH_SMALL_BACKLOG:-10000}
parts=${BENCH_GROWTH_PARTS:-append,drain}
small_entities=1000
small_events=10000
sync_commit=on
shared_buffers=${BENCH_GROWTH_SHARED_BUFFERS:-512MB}
cores=$(nproc)
threads=$((clients < cores ? clients : cores))

die() { echo "bench: $*" >&2; exit 1; }
command -v pgbench >/dev/null || die "pgbench is missing (apt-get install postgresql-client-15)"
command -v cc >/dev/null || die "a C compiler is missing (apt-get install build-essential)"
[ -f "$(pg_config --sharedir)/extension/pg_ves.control" ] ||
  die "pg_ves is not installed; run 'make && sudo make install' first"
[ "$batch" -le "$entities" ] || die "BENCH_GROWTH_BATCH must not exceed BENCH_GROWTH_ENTITIES"

# The worker serves database "postgres" (the drain); "small" and "large" have
# no destination, so it has nothing to do there.
export PGVES_BENCH_WORKER_DB=postgres
. bench/cluster.sh
bench_cluster growth_bench

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
mean() { awk '{ s += $1; n++ } END { printf "%.4f", (n ? s / n : 0) }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v + 0 >= t + 0 ? "ok" : "MISS") }'; }
now() { date +%s.%N; }
has_part() { case ",$parts," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
so="$(pg_config --pkglibdir)/pg_ves.so"
echo "pg_ves growth runs — $(date -u '+%Y-%m-%d %H:%M UTC'), PostgreSQL $(sql -c 'SHOW server_version' | sed 's/ .*//')"
echo "machine: $cores cores (${cpu:-unknown CPU}), $(free -g | awk '/^Mem:/ { print $2 " GB RAM" }'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cluster: shared_buffers=$shared_buffers, fsync=on, synchronous_commit=$sync_commit; pg_ves $so built $(date -u -r "$so" '+%Y-%m-%d %H:%M UTC'), checkout $(git -c safe.directory="$repo" -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"

# Entity n belongs to tenant n % 10 + 1 (its store likewise); its events are
# inventory.adjusted with a ~100-byte payload, as in bench/run.sh.
tenant_of() { echo "('00000000-0000-4000-8000-' || lpad(($1 % 10 + 1)::text, 12, '0'))::uuid"; }
store_of() { echo "('00000000-0000-4000-9000-' || lpad(($1 % 10 + 1)::text, 12, '0'))::uuid"; }
# The JSON array of events first .. first+count-1 of a store with $3 entities:
# event g goes to entity g % entities + 1, so a batch touches each entity once.
events_json() {  # first, count, entities
  echo "(SELECT jsonb_agg(jsonb_build_object(
      'tenant_id', $(tenant_of e), 'store_id', $(store_of e),
      'entity_type', 'InventoryItem', 'entity_id', 'SKU-' || e, 'event_type', 'inventory.adjusted',
      'payload', jsonb_build_object('sku', 'SKU-' || e, 'delta', g % 11 - 5, 'reason', 'sale',
                                    'location', 'WH-1', 'order_id', 'ORD-' || g)))
    FROM (SELECT g, g % $3 + 1 AS e FROM generate_series($1::bigint, $1::bigint + $2 - 1) g) s)"
}
append_range() {  # database, first, count, entities
  PGDATABASE=$1 sql -c "SELECT count(*) FROM ves.append_batch($(events_json "$2" "$3" "$4"))" >/dev/null
}

summary=()

if has_part append; then
  for db in small large; do
    PGDATABASE=postgres sql -c "CREATE DATABASE $db"
    PGDATABASE=$db sql -c 'CREATE EXTENSION pg_ves'
  done
  append_range small 0 "$small_events" "$small_entities"

  echo "== loading $events events over $entities entities into \"large\": $loaders sessions, ves.append_batch of $batch"
  batches=$(( (events + batch - 1) / batch ))
  load_start=$(now)
  for ((l = 0; l < loaders; l++)); do
    (
      for ((b = l; b < batches; b += loaders)); do
        first=$((b * batch))
        count=$(( events - first < batch ? events - first : batch ))
        t0=$(now)
        append_range large "$first" "$count" "$entities"
        echo "$b $count $t0 $(now)"
      done >"$work/load_$l.txt"
    ) &
  done
  wait
  load_end=$(now)
  # The load's rate at its start and at its end (first and last tenth of the
  # batches by start time): how append_batch itself keeps up as the store grows.
  sort -k3,3n "$work"/load_*.txt | awk -v total_s="$(awk -v a="$load_start" -v b="$load_end" 'BEGIN { print b - a }')" '
    { n++; c[n] = $2; s[n] = $3; e[n] = $4 }
    END {
      k = int(n / 10); if (k < 1) k = 1
      for (i = 1; i <= k; i++) { a += c[i]; if (e[i] > ae) ae = e[i] }
      for (i = n - k + 1; i <= n; i++) { z += c[i]; if (e[i] > ze) ze = e[i] }
      total = 0; for (i = 1; i <= n; i++) total += c[i]
      printf "loaded %d events in %.0f s = %.0f events/s; first tenth %.0f events/s, last tenth %.0f events/s\n",
        total, total_s, total / total_s, a / (ae - s[1]), z / (ze - s[n - k + 1])
    }'
  PGDATABASE=large sql -c 'VACUUM ANALYZE'
  PGDATABASE=small sql -c 'VACUUM ANALYZE'
  for db in small large; do
    printf '%s: %s events; ves.events and its indexes %s; ves.streams %s\n' "$db" \
      "$(PGDATABASE=$db sql -c 'SELECT count(*) FROM ves.events')" \
      "$(PGDATABASE=$db sql -c "SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) FROM pg_partition_tree('ves.events') WHERE isleaf")" \
      "$(PGDATABASE=$db sql -c "SELECT pg_size_pretty(pg_total_relation_size('ves.streams'))")"
  done

  # pgbench scripts. Appends go to a random entity of 1 .. $entities in both
  # stores: in "large" it exists with 10 events, in "small" it is mostly new
  # (bench/run.sh finds new and existing entities append at the same rate).
  cat >"$work/append.sql" <<EOF
\\set e random(1, $entities)
\\set d random(-5, 5)
\\set o random(1000000, 9999999)
SELECT ves.append($(tenant_of :e), $(store_of :e), 'InventoryItem', 'SKU-' || :e, 'inventory.adjusted', jsonb_build_object('sku', 'SKU-' || :e, 'delta', :d::int, 'reason', 'sale', 'location', 'WH-1', 'order_id', 'ORD-' || :o));
EOF
  for db in small large; do
    n=$([ "$db" = small ] && echo "$small_entities" || echo "$entities")
    cat >"$work/read_$db.sql" <<EOF
\\set e random(1, $n)
SELECT count(*) FROM ves.read_entity($(tenant_of :e), 'InventoryItem', 'SKU-' || :e);
EOF
  done
  pgbench_once() {  # database, script, seconds -> "tps latency_ms"
    local log="$work/pgbench.log"
    PGDATABASE=$1 pgbench -n -M prepared -c "$clients" -j "$threads" -T "$3" -f "$2" >"$log" 2>&1 ||
      { cat "$log" >&2; die "pgbench on $1 failed"; }
    if grep -q 'number of failed transactions' "$log" && ! grep -q 'number of failed transactions: 0 ' "$log"; then
      cat "$log" >&2; die "pgbench on $1 had failed transactions"
    fi
    printf '%s %s\n' "$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$log")" \
      "$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' "$log")"
  }
  slice=$(( (seconds + slices - 1) / slices ))
  echo "== single append and read_entity, pgbench $clients clients, $seconds s per side in $slices alternating slices"
  for db in small large; do pgbench_once "$db" "$work/append.sql" 2 >/dev/null; pgbench_once "$db" "$work/read_$db.sql" 2 >/dev/null; done
  declare -A tps=() lat=()
  for ((i = 1; i <= slices; i++)); do
    for what in append read; do
      for db in small large; do
        script="$work/append.sql"; [ "$what" = read ] && script="$work/read_$db.sql"
        PGDATABASE=$db sql -c 'CHECKPOINT'
        read -r t l < <(pgbench_once "$db" "$script" "$slice")
        tps[$what.$db]+="$t "
        lat[$what.$db]+="$l "
      done
    done
  done
  for what in append read; do
    for db in small large; do
      printf '%-7s %-6s %8.0f tps, latency average %s ms   (slices: %s)\n' "$what" "$db" \
        "$(printf '%s\n' ${tps[$what.$db]} | mean)" "$(printf '%s\n' ${lat[$what.$db]} | mean | awk '{ printf "%.3f", $1 }')" \
        "$(printf '%.0f ' ${tps[$what.$db]})"
    done
    r=$(ratio "$(printf '%s\n' ${tps[$what.large]} | mean)" "$(printf '%s\n' ${tps[$what.small]} | mean)")
    label="single append tps"; [ "$what" = read ] && label="read_entity tps (1 / latency)"
    summary+=("$(printf '%-48s %s   (target >= 0.9: %s)' "$label, $events events vs $small_events:" "$r" "$(verdict "$r" 0.9)")")
  done
  # The large store is not needed any more: free its disk before the drain.
  PGDATABASE=postgres sql -c 'DROP DATABASE large'
fi

if has_part drain; then
  cc -O2 -o "$work/sink" "$repo/bench/sink.c" -lsodium || die "cannot build bench/sink.c"
  sink_pid=""
  trap '[ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null || true; bench_cluster_cleanup' EXIT
  PGDATABASE=postgres
  export PGDATABASE
  sql -c 'CREATE EXTENSION pg_ves'
  sql -c "SELECT ves.set_sync_settings('{\"window\": 256, \"claim_batch\": 256}')" >/dev/null
  sql -c 'SELECT ves.stop_worker()' >/dev/null
  # The same destination as bench/outbox.sh, its URL moved to each run's sink.
  sql -c "SELECT ves.create_destination('sink', 'webhook', 'http://127.0.0.1:9/hook',
     '{\"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", \"concurrency\": 64}')" >/dev/null
  next=0
  drain() {  # rows -> prints deliveries/s between the sink's first and last request
    local rows=$1 run=$2 b count
    rm -f "$work/sink.port"
    "$work/sink" "$work/sink.port" "$work/drain_$run.txt" &
    sink_pid=$!
    for _ in $(seq 100); do [ -s "$work/sink.port" ] && break; sleep 0.05; done
    sql -c "SELECT ves.alter_destination('sink', '{}', url => 'http://127.0.0.1:$(cat "$work/sink.port")/hook')" >/dev/null
    for ((b = 0; b < rows; b += 10000)); do
      count=$(( rows - b < 10000 ? rows - b : 10000 ))
      append_range postgres "$next" "$count" 1000000
      next=$((next + count))
    done
    local queued
    queued=$(sql -c "SELECT count(*) FROM ves.outbox WHERE status = 'pending'")
    [ "$queued" -ge "$rows" ] || die "only $queued outbox rows are pending after $rows appends"
    sql -c 'CHECKPOINT'
    sql -c 'SELECT ves.start_worker()' >/dev/null
    while [ "$(curl -s "http://127.0.0.1:$(cat "$work/sink.port")/count")" -lt "$queued" ]; do sleep 0.1; done
    while [ "$(sql -c "SELECT count(*) FROM ves.outbox WHERE status <> 'synced'")" -ne 0 ]; do sleep 0.1; done
    sql -c 'SELECT ves.stop_worker()' >/dev/null
    kill "$sink_pid"; wait "$sink_pid" 2>/dev/null || true; sink_pid=""
    sort -k2,2n "$work/drain_$run.txt" | awk -v q="$queued" '
      NR == 1 { first = $2 } { last = $2; n++ }
      END { printf "%.0f %d %.2f\n", (n - 1) / ((last - first) / 1e9), n, (last - first) / 1e9 }'
  }
  echo "== drain to the C sink: $small_backlog, $backlog and $small_backlog outbox rows (window 256, concurrency 64)"
  declare -A rate=()
  for run in small1 large small2; do
    rows=$small_backlog; [ "$run" = large ] && rows=$backlog
    read -r r n s < <(drain "$rows" "$run")
    rate[$run]=$r
    echo "$run: $rows rows: $n requests in $s s = $r deliveries/s; outbox now holds $(sql -c 'SELECT count(*) FROM ves.outbox') rows"
  done
  small_rate=$(awk -v a="${rate[small1]}" -v b="${rate[small2]}" 'BEGIN { printf "%.0f", (a + b) / 2 }')
  r=$(ratio "${rate[large]}" "$small_rate")
  summary+=("$(printf '%-48s %s   (target >= 0.9: %s)' "drain, $backlog rows of backlog vs $small_backlog:" "$r" "$(verdict "$r" 0.9)")")
fi

echo "== summary ($(date -u '+%H:%M UTC'); load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s\n' "${summary[@]}"
