#!/usr/bin/env bash
# A longer sqlsmith run than the suite's bounded one (scripts/test.sh runs
# scripts/sqlsmith.sh for PGVES_SQLSMITH_SECONDS, default 60):
#
#   SQLSMITH_SECONDS=3600 bash bench/sqlsmith.sh     (default 1800)
#
# Same cluster, data and non-superuser ves_admin role as the suite's step;
# fails when a server process dies by a signal or the server stops answering.
# The logs (server, sqlsmith's error and impedance report) are copied to
# bench/sqlsmith-logs/ (or SQLSMITH_KEEP) whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
. scripts/common.sh
build_and_install
PGVES_SQLSMITH_KEEP=${SQLSMITH_KEEP:-$(pwd)/bench/sqlsmith-logs} \
  exec bash scripts/sqlsmith.sh "${SQLSMITH_SECONDS:-1800}"
