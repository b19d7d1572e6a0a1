#!/usr/bin/env bash
# Runs every pg_ves test: unit (GoogleTest, ASan+UBSan), pg_regress,
# isolation and TAP, each against clusters it starts itself. Installs what is
# missing first. Prints one closing line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

bash scripts/deps.sh || exit 1
. scripts/common.sh
build_and_install || { echo "0 passed, 1 failed"; exit 1; }

# The MCP SDK client that test/t/040_mcp.pl runs, as package-lock.json pins it.
if [ ! -d test/mcp/node_modules ]; then
  (cd test/mcp && npm ci --no-audit --no-fund --loglevel=error </dev/null) >&2 ||
    echo "npm ci in test/mcp failed: test/t/040_mcp.pl will fail"
fi

work=$(scratch_dir test)
PG_CWD=$work  # as_pg runs from here: the clone may be where the cluster user cannot enter
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
failures=()
record() {  # name, passed count, failed count
  passed=$((passed + $2))
  failed=$((failed + $3))
  if [ "$3" -ne 0 ]; then failures+=("$1"); fi
}

# Copies of the inputs the cluster user can read, wherever this clone lives.
cp -r sql expected test monitoring "$work/"
[ "$(id -u)" -ne 0 ] || chown -R "$PG_USER" "$work"

echo "== self-contained clone"
# A clone must pass its own tests: no tracked file other than Markdown may
# refer to a path beside the clone (the test vectors live in test/vectors).
if [ -d .git ] || [ -f .git ]; then
  tracked() { git ls-files -z; }
else
  tracked() { find . -path ./build -prune -o -type f -print0; }
fi
outside=$(tracked | grep -zv '[.]md$' | xargs -0 grep -nE '[.][.]/shared|[.][.]/[.][.]/' 2>/dev/null || true)
if [ -n "$outside" ]; then
  echo "$outside"
  echo "these files refer to paths outside the clone"
  record self-contained 0 1
else
  echo "no tracked file refers to a path outside the clone"
  record self-contained 1 0
fi

echo "== style and layering"
# One format for every C and C++ file, and src/core free of PostgreSQL: each
# of its sources includes core/base/no_postgres.hpp after everything else, so
# a PostgreSQL header pulled in by any include above stops the build.
if make -s format-check >"$work/format.log" 2>&1; then
  echo "clang-format: every file formatted"
  record format 1 0
else
  head -n 40 "$work/format.log"
  echo "run 'make format' to format them"
  record format 0 1
fi
misplaced=$(for f in src/core/*/*.cpp; do
  [ "$(grep '^#include' "$f" | tail -n 1)" = '#include "core/base/no_postgres.hpp"' ] || echo "$f"
done)
probe=$(printf '#include "postgres.h"\n#include "core/base/no_postgres.hpp"\n' |
  g++ -std=c++17 -fsyntax-only -Isrc -I"$(pg_config --includedir-server)" -x c++ - 2>&1 || true)
if [ -z "$misplaced" ] && grep -q 'must not include PostgreSQL headers' <<<"$probe"; then
  echo "every src/core source ends its includes with the no-PostgreSQL guard, and the guard fires"
  record layering 1 0
else
  [ -z "$misplaced" ] || echo "guard missing or not last in: $misplaced"
  grep -q 'must not include PostgreSQL headers' <<<"$probe" || echo "the guard did not fire after postgres.h"
  record layering 0 1
fi

# src/pg/sync in layers without cycles: commit signals depend on shared
# memory only, the deliverer knows nothing of the launcher, and the worker
# loop is the only file that uses both.
sync_layers=$(python3 - <<'PY'
import glob, os, re
deps = {}
for f in sorted(glob.glob("src/pg/sync/*.[ch]pp")):
    m = os.path.splitext(os.path.basename(f))[0]
    for inc in re.findall(r'^#include "pg/sync/(\w+)\.hpp"', open(f).read(), re.M):
        if inc != m:
            deps.setdefault(m, set()).add(inc)
rules = {"signals": set(deps) | {"launcher", "deliverer", "worker_loop", "outbox_sql"},
         "deliverer": {"launcher", "worker_loop"}, "outbox_sql": {"launcher", "worker_loop"},
         "launcher": {"deliverer", "worker_loop", "outbox_sql"}}
for m, banned in rules.items():
    for d in sorted(deps.get(m, set()) & banned):
        print(f"src/pg/sync/{m} includes pg/sync/{d}.hpp")
def cycle(m, path):
    if m in path:
        return path[path.index(m):] + [m]
    for d in sorted(deps.get(m, ())):
        c = cycle(d, path + [m])
        if c:
            return c
for m in sorted(deps):
    c = cycle(m, [])
    if c:
        print("include cycle: " + " -> ".join(c))
        break
PY
)
if [ -z "$sync_layers" ]; then
  echo "src/pg/sync: no include cycles; signals and the deliverer do not know the launcher"
  record sync-layers 1 0
else
  echo "$sync_layers"
  record sync-layers 0 1
fi

echo "== unit (src/core, GoogleTest, ASan+UBSan)"
if cmake -S . -B build/unit -DCMAKE_BUILD_TYPE=Debug -DPGVES_SANITIZE=ON >"$work/cmake.log" 2>&1 &&
   cmake --build build/unit -j"$(nproc)" >>"$work/cmake.log" 2>&1; then
  ctest --test-dir build/unit -j"$(nproc)" --output-on-failure 2>&1 | tee "$work/unit.log" | tail -n 3
  u_total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$work/unit.log")
  u_failed=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1/p' "$work/unit.log")
  record unit $(( ${u_total:-1} - ${u_failed:-1} )) "${u_failed:-1}"
else
  tail -n 30 "$work/cmake.log"
  record unit 0 1
fi

echo "== fuzz (libFuzzer, bounded)"
if CXX=clang++ cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGVES_SANITIZE=OFF -DPGVES_FUZZ=ON >"$work/fuzz.log" 2>&1 &&
   cmake --build build/fuzz -j"$(nproc)" --target fuzz_canonical_json fuzz_envelope >>"$work/fuzz.log" 2>&1; then
  for target in fuzz_canonical_json fuzz_envelope; do
    mkdir -p "$work/corpus/$target"
    if build/fuzz/$target -max_total_time="${PGVES_FUZZ_SECONDS:-15}" -print_final_stats=0 "$work/corpus/$target" >"$work/$target.log" 2>&1; then
      echo "$target: ok ($(grep -oE '#[0-9]+' "$work/$target.log" | tail -n 1) runs)"
      record "$target" 1 0
    else
      tail -n 30 "$work/$target.log"
      record "$target" 0 1
    fi
  done
else
  tail -n 30 "$work/fuzz.log"
  record fuzz 0 1
fi

echo "== mock platform self-test"
for t in sink platforms sequencer bench_sink; do
  if python3 "test/mock/test_$t.py" >"$work/mock_$t.log" 2>&1; then
    n=$(sed -n 's/^Ran \([0-9]*\) test.*/\1/p' "$work/mock_$t.log")
    echo "test/mock/$t.py: ${n:-?} cases ok"
    record mock "${n:-1}" 0
  else
    tail -n 30 "$work/mock_$t.log"
    record mock 0 1
  fi
done

regress_counts() {  # log file -> "passed failed"
  local ok bad
  ok=$(grep -cE '^(ok|test|     ) .* \.\.\. ok|^ok [0-9]+' "$1")
  bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+' "$1")
  echo "$ok $bad"
}

echo "== pg_regress"
tests=$(cd sql && ls *.sql | sed 's/\.sql$//' | sort)
# --bindir: pg_regress would otherwise run the server of the installation it
# was built for, not the one pg_config (and make install) names.
as_pg "$PGXS_DIR/src/test/regress/pg_regress" --bindir="$PG_BIN" \
  --temp-instance="$work/regress/instance" --temp-config="$work/test/pg_ves.conf" \
  --inputdir="$work" --outputdir="$work/regress" --load-extension=pg_ves \
  $tests >"$work/regress.log" 2>&1
rc=$?
cat "$work/regress.log" | grep -E '\.\.\. |tests (passed|failed)|^(not )?ok'
read -r ok bad < <(regress_counts "$work/regress.log")
[ $rc -eq 0 ] || [ "$bad" -gt 0 ] || bad=1
record pg_regress "$ok" "$bad"
[ $rc -eq 0 ] || cat "$work/regress/regression.diffs" 2>/dev/null | head -n 200

echo "== isolation"
specs=$(cd test/isolation/specs && ls *.spec | sed 's/\.spec$//' | sort)
as_pg "$PGXS_DIR/src/test/isolation/pg_isolation_regress" --bindir="$PG_BIN" \
  --temp-instance="$work/isolation/instance" --temp-config="$work/test/pg_ves.conf" \
  --inputdir="$work/test/isolation" --outputdir="$work/isolation" --load-extension=pg_ves \
  $specs >"$work/isolation.log" 2>&1
rc=$?
cat "$work/isolation.log" | grep -E '\.\.\. |tests (passed|failed)|^(not )?ok'
read -r ok bad < <(regress_counts "$work/isolation.log")
[ $rc -eq 0 ] || [ "$bad" -gt 0 ] || bad=1
record isolation "$ok" "$bad"
[ $rc -eq 0 ] || cat "$work/isolation/regression.diffs" 2>/dev/null | head -n 200

echo "== TAP"
as_pg mkdir -p "$work/tap"
as_pg env TESTDIR="$work/tap" PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
  PGVES_TEST_CONF="$work/test/pg_ves.conf" PGVES_REPO="$work" \
  PERL5LIB="$PGXS_DIR/src/test/perl:$work/test/t" \
  prove --timer -j"${PGVES_TAP_JOBS:-2}" -v "$work"/test/t/*.pl >"$work/tap.log" 2>&1
rc=$?
grep -E '^(ok|not ok)|^\[|Result:|Files=' "$work/tap.log" | grep -vE '^(ok|not ok) [0-9]+ -' || true
t_total=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\).*/\1/p' "$work/tap.log")
# A TODO test that fails is expected to (TAP), as prove counts it.
t_failed=$(grep -E '^not ok' "$work/tap.log" | grep -cv '# TODO')
[ $rc -eq 0 ] || [ "$t_failed" -gt 0 ] || t_failed=1
record tap $(( ${t_total:-0} - t_failed )) "$t_failed"
[ $rc -eq 0 ] || { tail -n 60 "$work/tap.log"; find "$work/tap" -name '*.log' -exec tail -n 40 {} + 2>/dev/null | tail -n 120; }

echo "== sqlsmith (SQL fuzzing as a ves_admin role, bounded)"
# One test: fails when a server process died by a signal or the server stopped
# answering (its output then names the query that was running).
if bash scripts/sqlsmith.sh "${PGVES_SQLSMITH_SECONDS:-60}" >"$work/sqlsmith-run.log" 2>&1; then
  tail -n 1 "$work/sqlsmith-run.log"
  record sqlsmith 1 0
else
  tail -n 40 "$work/sqlsmith-run.log"
  record sqlsmith 0 1
fi

echo "== debian (package build and lintian, bounded)"
# One test: dpkg-buildpackage -b of a copy of this tree, reusing the objects
# built above, then lintian with no error (scripts/deb.sh --reuse-build).
if timeout -k 30 "${PGVES_DEB_SECONDS:-600}" bash scripts/deb.sh --reuse-build >"$work/deb.log" 2>&1; then
  grep -E '^(dpkg-buildpackage|lintian):' "$work/deb.log"
  record debian 1 0
else
  tail -n 40 "$work/deb.log"
  record debian 0 1
fi

echo "== server logs"
# A backend that died by a signal is a crash, even when every test passed.
# Only SIGKILL is expected: the crash tests send it on purpose.
crashes=$(grep -rhE 'terminated by signal' "$work" --include='*.log' 2>/dev/null | grep -v 'signal 9: Killed' || true)
# A program run as the cluster user from a directory it cannot enter warns
# on every start, and TAP polls then wait out their timeout.
cwd_warnings=$(grep -rh 'could not change directory' "$work" --include='*.log' 2>/dev/null | head -n 5 || true)
# The launcher, connected to no database, must read the shared catalogs
# without their indexes: every cluster's fresh start checks it.
no_db_reads=$(grep -rh 'cannot read pg_class without having selected a database' "$work" --include='*.log' 2>/dev/null | head -n 5 || true)
if [ -n "$crashes" ] || [ -n "$cwd_warnings" ] || [ -n "$no_db_reads" ]; then
  [ -z "$crashes" ] || echo "$crashes"
  [ -z "$cwd_warnings" ] || echo "$cwd_warnings"
  [ -z "$no_db_reads" ] || echo "$no_db_reads"
  record server-logs 0 1
else
  echo "no backend terminated by a signal, no 'could not change directory', no catalog read without a database"
  record server-logs 1 0
fi

if ((${#failures[@]})); then
  echo "failed suites: ${failures[*]}"
  # The failing TAP checks with their files and what they printed about the
  # failure (got/expected, diag), last, where a truncated log still shows
  # them.
  [ ! -f "$work/tap.log" ] || awk '/^\[[0-9:]+\] /{file=$2} /^not ok/ && !/# TODO/{print "  " file ": " $0; n=12; next} n>0 && /^#/{print "    " $0; n--; next} {n=0}' "$work/tap.log" | head -n 60
  [ ! -f "$work/tap.log" ] || sed -n '/^Test Summary Report/,/^Files=/p' "$work/tap.log" | head -n 30
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
