# The throwaway cluster of bench/run.sh and bench/state.sh, sourced by them
# after scripts/common.sh:
#
#   bench_cluster NAME
#
# makes a scratch directory, runs initdb with password authentication on
# loopback only (so other local users cannot reach the throwaway superuser
# while a benchmark runs), writes the settings below, starts the server,
# creates database "bench", exports PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE
# and defines sql(). On exit the cluster is stopped and the directory removed
# (PGVES_BENCH_KEEP=1 keeps the directory). Reads $shared_buffers and
# $sync_commit and a die() function; sets $work, $data and $port.
# PGVES_BENCH_WORKER_DB=bench runs the sync worker in the bench database (it
# then sends NOTIFY ves_events for the appenders); by default none runs.

bench_cluster() {
  work=$(scratch_dir "$1")
  PG_CWD=$work
  data="$work/data"
  port=$(free_port)
  bench_cluster_started=0
  trap bench_cluster_cleanup EXIT
  trap 'exit 130' INT TERM

  local password
  password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  printf '%s\n' "$password" >"$work/pwfile"
  [ "$(id -u)" -ne 0 ] || chown "$PG_USER" "$work/pwfile"
  chmod 600 "$work/pwfile"
  as_pg initdb -D "$data" -U postgres --auth=scram-sha-256 --pwfile="$work/pwfile" -E UTF8 --locale=C \
    >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; die "initdb failed"; }
  rm -f "$work/pwfile"

  # Tuned for a small dedicated machine, identical for pg_ves and the
  # baselines. Durability stays on: fsync and full-page writes are never
  # turned off, and synchronous_commit is on unless
  # PGVES_BENCH_SYNCHRONOUS_COMMIT says otherwise. Checkpoints are spaced so
  # that none falls inside a measurement by chance; every measurement starts
  # right after an explicit CHECKPOINT instead.
  cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$work'
shared_preload_libraries = 'pg_ves'
max_connections = 20
shared_buffers = '$shared_buffers'
wal_buffers = '16MB'
max_wal_size = '8GB'
min_wal_size = '1GB'
checkpoint_timeout = '30min'
checkpoint_completion_target = 0.9
fsync = on
full_page_writes = on
synchronous_commit = '$sync_commit'
work_mem = '16MB'
maintenance_work_mem = '256MB'
effective_cache_size = '4GB'
random_page_cost = 1.1
jit = off
log_min_messages = warning
ves.databases = '${PGVES_BENCH_WORKER_DB:-}'
CONF
  as_pg pg_ctl -D "$data" -l "$work/server.log" -w start >/dev/null ||
    { cat "$work/server.log"; die "the server did not start"; }
  bench_cluster_started=1

  export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGPASSWORD=$password PGDATABASE=bench
  PGDATABASE=postgres psql -qX -v ON_ERROR_STOP=1 -c 'CREATE DATABASE bench' >/dev/null
}

bench_cluster_cleanup() {
  if [ "${bench_cluster_started:-0}" = 1 ]; then
    as_pg pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1 ||
      as_pg pg_ctl -D "$data" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ "${PGVES_BENCH_KEEP:-0}" = 1 ]; then
    echo "bench: kept $work"
  else
    rm -rf "$work"
  fi
}

sql() { psql -qXAt -v ON_ERROR_STOP=1 "$@"; }
