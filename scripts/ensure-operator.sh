#!/usr/bin/env bash
# Build the Crunchy postgres-operator v4.2.1 (the runbook's version) once into a cache outside
# the checkout, and print the directory holding it on stdout:
#   <dir>/postgres-operator        the operator binary (postgres-operator.go)
#   <dir>/conf/postgres-operator/  the templates the operator image ships as /default-pgo-config
#
#   scripts/ensure-operator.sh          build if needed, then print the directory
#   scripts/ensure-operator.sh --where  print it if already built, else exit 1 (no build)
#
# PGO_OPERATOR_DIR set in the environment wins (checked and printed, nothing built).
set -euo pipefail
source "$(dirname "$0")/upstream-cache.sh"

ARCHIVE=postgres-operator-4.2.1.tar.gz
REV=v4.2.1
URL="https://codeload.github.com/CrunchyData/postgres-operator/tar.gz/$REV"

check_dir() { [ -x "$1/postgres-operator" ] && [ -f "$1/conf/postgres-operator/pgo.yaml" ]; }

if [ -n "${PGO_OPERATOR_DIR:-}" ]; then
  check_dir "$PGO_OPERATOR_DIR" || { echo "error: PGO_OPERATOR_DIR=$PGO_OPERATOR_DIR has no postgres-operator binary and conf/" >&2; exit 1; }
  echo "$PGO_OPERATOR_DIR"
  exit 0
fi

key="$(cache_key "$ARCHIVE" "$REV")"
root="$(cache_root)/postgres-operator-$key"

finish_if_built postgres-operator "$root" "$root" check_dir "${1:-}"

command -v go > /dev/null || { echo "postgres-operator: installing Debian's golang-go" >&2; apt_install golang-go; }

lock_build "$root"
finish_if_built postgres-operator "$root" "$root" check_dir

start=$(date +%s)
echo "postgres-operator: building $REV into $root" >&2
rm -rf "$root"
gopath="$root/gopath"
src="$gopath/src/github.com/crunchydata/postgres-operator"
mkdir -p "$src"
fetch_source "$ARCHIVE" "$URL" "$src"
(
  cd "$src"
  # The v4.2.1 tree vendors its dependencies (dep) and predates modules: GOPATH mode.
  GOPATH="$gopath" GO111MODULE=off GOFLAGS="" GOCACHE="$root/gocache" CGO_ENABLED=0 \
    go build -o "$root/postgres-operator" ./postgres-operator.go > "$root/build.log" 2>&1 \
    || { tail -30 "$root/build.log" >&2; exit 1; }
)
mkdir -p "$root/conf"
cp -r "$src/conf/postgres-operator" "$root/conf/"
rm -rf "$gopath" "$root/gocache"
chmod -R a+rX "$root"
touch "$root/.complete"
echo "postgres-operator: built in $(( $(date +%s) - start )) s" >&2
echo "$root"
