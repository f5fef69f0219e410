#!/usr/bin/env bash
# Build AntDB (ADBSQL/AntDB a8a0374, the runbook's 5.0 version) once into a cache outside the
# checkout, and print the installation directory (ANTDB_HOME) on stdout.
#
#   scripts/ensure-antdb.sh            build if needed, then print ANTDB_HOME
#   scripts/ensure-antdb.sh --where    print ANTDB_HOME if already built, else exit 1 (no build)
#
# ANTDB_HOME set in the environment wins: it is checked and printed, nothing is built.
# Progress and timings go to stderr, so `ANTDB_HOME=$(scripts/ensure-antdb.sh)` works.
set -euo pipefail
source "$(dirname "$0")/upstream-cache.sh"

ARCHIVE=antdb-a8a0374.tar.gz
REV=a8a0374
URL="https://codeload.github.com/ADBSQL/AntDB/tar.gz/$REV"
BUILD_DEBS=(gcc make bison flex libreadline-dev zlib1g-dev libssl-dev libssh2-1-dev)
# What `make install` installs (src/Makefile's SUBDIRS, in its order) but for src/bin/agent, whose
# install fails and which no node needs, and the test suites; pg_stat_statements because the
# runbook preloads it. Version 2: v1 missed conversion_procs, snowball and pl (initdb needs them).
BUILD_VERSION=2
INSTALL_DIRS=(src/common src/port src/timezone src/backend src/backend/utils/mb/conversion_procs
              src/backend/snowball src/include src/interfaces src/backend/replication/libpqwalreceiver
              src/backend/replication/pgoutput src/fe_utils src/pl src/makefiles config
              contrib/pg_stat_statements)

check_home() {
  [ -x "$1/bin/initdb" ] && [ -x "$1/bin/pg_ctl" ] && [ -x "$1/bin/postgres" ] \
    && "$1/bin/initdb" --help 2>/dev/null | grep -q -- --nodename
}

if [ -n "${ANTDB_HOME:-}" ]; then
  check_home "$ANTDB_HOME" || { echo "error: ANTDB_HOME=$ANTDB_HOME is not an AntDB installation (bin/initdb with --nodename)" >&2; exit 1; }
  echo "$ANTDB_HOME"
  exit 0
fi

key="$(cache_key "$ARCHIVE" "$REV")-b$BUILD_VERSION"
root="$(cache_root)/antdb-$key"
home="$root/install"

finish_if_built AntDB "$root" "$home" check_home "${1:-}"

missing="$(missing_debs "${BUILD_DEBS[@]}")"
if [ -n "$missing" ]; then
  echo "AntDB: installing build dependencies from Debian: $missing" >&2
  # shellcheck disable=SC2086
  apt_install $missing
fi

lock_build "$root"
finish_if_built AntDB "$root" "$home" check_home

start=$(date +%s)
echo "AntDB: building $REV into $root (about 10 minutes on 2 cores, once)" >&2
rm -rf "$root"
mkdir -p "$root/src" "$root/build"
fetch_source "$ARCHIVE" "$URL" "$root/src"
(
  cd "$root/build"
  "$root/src/configure" --prefix="$home" CFLAGS="-O2 -fcommon" > "$root/configure.log" 2>&1 \
    || { tail -30 "$root/configure.log" >&2; exit 1; }
  jobs="$(nproc)"
  make -j"$jobs" > "$root/make.log" 2>&1 || { tail -40 "$root/make.log" >&2; exit 1; }
  make -C contrib/pg_stat_statements -j"$jobs" >> "$root/make.log" 2>&1 || { tail -40 "$root/make.log" >&2; exit 1; }
  for dir in "${INSTALL_DIRS[@]}"; do
    make -C "$dir" install >> "$root/install.log" 2>&1 || { tail -40 "$root/install.log" >&2; exit 1; }
  done
  make -C src install-local >> "$root/install.log" 2>&1 || { tail -40 "$root/install.log" >&2; exit 1; }
  for dir in src/bin/*/; do
    [ "$(basename "$dir")" = agent ] && continue
    [ -f "$dir/Makefile" ] || continue
    make -C "$dir" install >> "$root/install.log" 2>&1 || { tail -40 "$root/install.log" >&2; exit 1; }
  done
)
check_home "$home" || { echo "error: the AntDB build in $root did not produce a usable bin/initdb" >&2; exit 1; }
# Sources and objects are not needed once installed; the logs are kept for diagnosis.
rm -rf "$root/src" "$root/build"
chmod -R a+rX "$root"
touch "$root/.complete"
echo "AntDB: built in $(( $(date +%s) - start )) s" >&2
echo "$home"
