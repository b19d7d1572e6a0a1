#!/usr/bin/env bash
# Installs what pg_ves needs to build and test on Debian 12, and nothing when
# it is all there already, so it is safe to run any number of times.
set -euo pipefail

packages=(
  build-essential g++ make cmake pkg-config clang clang-format
  postgresql-15 postgresql-server-dev-15 postgresql-contrib
  libsodium-dev libcurl4-openssl-dev
  libgtest-dev libipc-run-perl python3 python3-cryptography procps
  sqlsmith
)
# pg_ves.so (ves_postgres destinations, src/pg/sync/remote_pg.cpp) and
# pg_ves_mcp link libpq; the MCP test runs the MCP SDK client on Node.js (a
# node that brings its own npm, as NodeSource's does, is enough).
packages+=(libpq-dev)
# The metrics tests check ves.prometheus_metrics() with promtool (package
# prometheus) and run prometheus-postgres-exporter with monitoring/'s queries.
packages+=(prometheus prometheus-postgres-exporter)
# scripts/deb.sh builds the Debian package (debian/) with PostgreSQL's
# extension tooling and checks it with lintian.
packages+=(dpkg-dev debhelper fakeroot lintian postgresql-server-dev-all)
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "pg_ves: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
