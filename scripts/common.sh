# Shared by the demo and test scripts: where PostgreSQL lives and how to run
# its programs as an unprivileged user (the server refuses to run as root).
PG_BIN=$(pg_config --bindir)
PGXS_DIR=$(dirname "$(dirname "$(dirname "$(pg_config --pgxs)")")")
export PATH="$PG_BIN:$PATH"

# The user that owns test and demo clusters.
if [ "$(id -u)" -eq 0 ]; then
  PG_USER=${PGVES_TEST_USER:-postgres}
  id "$PG_USER" >/dev/null 2>&1 || useradd --system --create-home "$PG_USER"
  # From a directory the cluster user can enter: the clone may live where only
  # root can (mode 700, like /root), and Postgres' programs then warn "could not
  # change directory" on every start, which TAP's poll_query_until counts as a
  # failed poll. Scripts point PG_CWD at their scratch directory; paths given to
  # as_pg must be absolute.
  as_pg() { (cd "${PG_CWD:-/tmp}" && runuser -u "$PG_USER" -- env PATH="$PATH" "$@"); }
else
  PG_USER=$(id -un)
  as_pg() { "$@"; }
fi

# A scratch directory the cluster user owns.
scratch_dir() {
  local d
  d=$(mktemp -d "/tmp/pg_ves_$1.XXXXXX")
  chmod 755 "$d"
  [ "$(id -u)" -ne 0 ] || chown "$PG_USER" "$d"
  echo "$d"
}

# A free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

build_and_install() {
  make -s -j"$(nproc)"
  make -s install >/dev/null
}

# A throwaway cluster in DIR on PORT (loopback and a socket in DIR), owned by
# the cluster user, with pg_ves preloaded; extra postgresql.conf lines come on
# standard input. Exports PG* so psql and libpq clients connect to it.
start_throwaway_cluster() {
  local dir=$1 port=$2
  as_pg initdb -D "$dir/data" -A trust -U postgres >/dev/null
  {
    echo "shared_preload_libraries = 'pg_ves'"
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    cat
  } >>"$dir/data/postgresql.conf"
  as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
  export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
}
