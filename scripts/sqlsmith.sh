#!/usr/bin/env bash
# SQL-level fuzzing of pg_ves with sqlsmith (Debian package `sqlsmith`):
#
#   bash scripts/sqlsmith.sh [SECONDS]     (default $PGVES_SQLSMITH_SECONDS or 60)
#
# Starts a throwaway cluster with pg_ves created, the sync worker running and
# some data (appends, a batch, upserts, stock with reservations, a webhook
# destination on the mock sink), then lets sqlsmith send random queries for
# SECONDS as a role that holds ves_admin but is not a superuser (so it cannot
# simply call pg_terminate_backend or write files). sqlsmith's own query errors
# are expected and ignored. Fails when a server process died by a signal, the
# server restarted after a crash, or it stops answering. Expects pg_ves built
# and installed (scripts/test.sh and bench/sqlsmith.sh do that first).
# --exclude-catalog keeps its FROM clauses on pg_ves' tables and views (it
# still calls any function). PGVES_SQLSMITH_SEED fixes the random seed; PGVES_SQLSMITH_KEEP=DIR copies the
# logs there.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

seconds=${1:-${PGVES_SQLSMITH_SECONDS:-60}}
seed=${PGVES_SQLSMITH_SEED:-$(( (RANDOM << 15) | RANDOM ))}

command -v sqlsmith >/dev/null || { echo "sqlsmith is not installed (scripts/deps.sh installs it)"; exit 1; }

dir=$(scratch_dir sqlsmith)
PG_CWD=$dir
port=$(free_port)
sink_pid=""
cleanup() {
  as_pg pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null || true
  if [ -n "${PGVES_SQLSMITH_KEEP:-}" ]; then
    mkdir -p "$PGVES_SQLSMITH_KEEP" && cp "$dir"/*.log "$PGVES_SQLSMITH_KEEP"/ 2>/dev/null
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

python3 test/mock/sink.py --port 0 --port-file "$dir/sink.port" --quiet --max-records 1000 &
sink_pid=$!
for _ in $(seq 50); do [ -s "$dir/sink.port" ] && break; sleep 0.1; done
sink_port=$(cat "$dir/sink.port")

# log_min_messages = log keeps the postmaster's crash reports (LOG) and the
# query that was running, without the thousands of ERRORs sqlsmith provokes.
start_throwaway_cluster "$dir" "$port" < <(
  grep -v '^log_min_messages' test/pg_ves.conf
  echo "ves.databases = 'postgres'"
  echo "log_min_messages = log"
  echo "log_min_error_statement = panic"
) || { tail -n 20 "$dir/server.log"; exit 1; }

as_pg psql -X -q -v ON_ERROR_STOP=1 -v sink_port="$sink_port" >"$dir/setup.log" 2>&1 <<'SQL' || { cat "$dir/setup.log"; exit 1; }
CREATE EXTENSION pg_ves;
\set t1 '''00000000-0000-0000-0000-00000000aa01'''
\set t2 '''00000000-0000-0000-0000-00000000aa02'''
\set s1 '''00000000-0000-0000-0000-00000000bb01'''
SELECT ves.create_destination('sink', 'webhook', 'http://127.0.0.1:' || :'sink_port' || '/hook',
  '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "max_attempts": 3}');
SELECT count(*) FROM generate_series(1, 50) g,
  LATERAL ves.append(:t1, :s1, 'Order', 'o-' || g, 'order.created', jsonb_build_object('n', g, 'total', g * 1.5));
SELECT count(*) FROM ves.append_batch((SELECT jsonb_agg(jsonb_build_object('tenant_id', :t2, 'store_id', :s1,
  'entity_type', 'InventoryItem', 'entity_id', 'SKU-' || g, 'event_type', 'inventory.adjusted',
  'payload', jsonb_build_object('delta', g))) FROM generate_series(1, 50) g));
SELECT count(*) FROM generate_series(1, 20) g,
  LATERAL ves.upsert(:t1, :s1, 'Customer', 'c-' || g, jsonb_build_object('name', 'c' || g, 'tier', g % 3));
SELECT count(*) FROM generate_series(1, 20) g, LATERAL ves.set_stock(:t1, :s1, 'SKU-' || g, 10);
SELECT count(*) FROM generate_series(1, 20) g, LATERAL ves.reserve_stock(:t1, :s1, 'SKU-' || g, 2, 'r-' || g);
SELECT count(*) FROM generate_series(1, 10) g, LATERAL ves.adjust_stock(:t1, :s1, 'SKU-' || g, -3);
SELECT count(*) FROM generate_series(1, 5) g, LATERAL ves.commit_reservation(:t1, 'r-' || g);
SELECT count(*) FROM generate_series(6, 10) g, LATERAL ves.release_stock(:t1, 'r-' || g);
SELECT ves.create_subscription(:t1, 'smith-sub');
CREATE ROLE smith LOGIN;
GRANT ves_admin TO smith;
GRANT CREATE ON SCHEMA public TO smith;
ALTER ROLE smith SET statement_timeout = '3s';
ALTER ROLE smith SET lock_timeout = '1s';
ALTER ROLE smith SET idle_in_transaction_session_timeout = '10s';
SQL

postmaster_pid=$(head -n 1 "$dir/data/postmaster.pid")
echo "sqlsmith: ${seconds}s against pg_ves as a ves_admin role (seed $seed)"
timeout --signal=INT --kill-after=10 "$seconds" \
  sqlsmith --target="host=127.0.0.1 port=$port dbname=postgres user=smith application_name=sqlsmith" \
  --seed="$seed" --exclude-catalog --verbose >"$dir/sqlsmith.log" 2>&1
queries=$(grep -oE 'queries: [0-9]+' "$dir/sqlsmith.log" | tail -n 1 | grep -oE '[0-9]+')

failed=0
# The server must still answer, with the same postmaster and no crash cycle.
if ! as_pg timeout 30 psql -X -qAt -c 'SELECT 1' >/dev/null 2>&1; then
  echo "the server does not answer after the sqlsmith run"
  failed=1
fi
if [ "$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)" != "$postmaster_pid" ]; then
  echo "the postmaster is not the one that started"
  failed=1
fi
crashes=$(grep -E -A2 'terminated by signal|server process .* was terminated|terminating any other active server processes|all server processes terminated' "$dir/server.log" || true)
if [ -n "$crashes" ]; then
  echo "$crashes"
  echo "a server process died during the sqlsmith run (seed $seed); the query is on the 'Failed process was running' line"
  failed=1
fi
if [ "$failed" -eq 0 ]; then
  echo "sqlsmith: ok (${queries:-?} queries, no server process died, the server answers)"
else
  tail -n 20 "$dir/sqlsmith.log"
fi
exit "$failed"
