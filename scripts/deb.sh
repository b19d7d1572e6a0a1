#!/usr/bin/env bash
# Builds the Debian package (debian/, PostgreSQL's pg_buildext tooling) in a
# throwaway copy of the tracked files, as `dpkg-buildpackage -b -uc -us` in a
# clean clone would, and checks the result with lintian. Fails on a build
# failure or any lintian error; warnings are printed. Prints the package's
# file list. The system's pg_config (/usr/lib/postgresql/15) is used, as the
# Debian tooling wants: nothing is installed.
#
# --reuse-build (scripts/test.sh): the copy keeps the objects `make` has just
# built in this tree (times preserved) and dpkg-buildpackage runs without its
# clean step, so the package's build finds them up to date instead of
# compiling pg_ves a second time. Alone, the script builds from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
reuse=false
[ "${1:-}" != --reuse-build ] || reuse=true

work=$(mktemp -d /tmp/pg_ves_deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
if $reuse; then
  tar --exclude=./build --exclude=./.git --exclude=./test/mcp/node_modules -cf - . | tar -xpf - -C "$work/src"
elif [ -d .git ] || [ -f .git ]; then
  git ls-files -z | xargs -0 cp --parents -t "$work/src"
else
  tar --exclude=./build -cf - . | tar -xf - -C "$work/src"
fi

cd "$work/src"
# PATH without a private pg_config: pg_buildext asks for each version's own.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
start=$(date +%s)
nc=()
! $reuse || nc=(-nc)
if ! dpkg-buildpackage -b "${nc[@]}" -uc -us -j"$(nproc)" >"$work/build.log" 2>&1; then
  tail -n 60 "$work/build.log"
  echo "dpkg-buildpackage failed"
  exit 1
fi
echo "dpkg-buildpackage: built in $(($(date +%s) - start)) s"

changes=$(ls "$work"/*.changes)
for deb in "$work"/*.deb; do
  echo "$(basename "$deb"):"
  dpkg-deb --contents "$deb" | awk '{print "  " $NF}' | grep -v '/$'
done
# Errors fail; warnings and information are shown (each one left is
# explained in debian/*.lintian-overrides or below).
lintian --fail-on error --display-info "$changes" | tee "$work/lintian.log"
echo "lintian: $(grep -c '^E:' "$work/lintian.log" || true) errors, $(grep -c '^W:' "$work/lintian.log" || true) warnings"
