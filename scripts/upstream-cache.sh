#!/usr/bin/env bash
# Shared by ensure-antdb.sh and ensure-operator.sh (sourced, not run): where pinned upstream
# sources come from and where their builds are cached. Nothing built here lands in the checkout.
#
# Source: ../shared/upstream/<archive> when present (checked against its SHA256SUMS), else
# the same pinned revision from the project's public repository.
# Cache: $ANTDB_K8S_CACHE, else /var/cache/antdb-k8s-airflow (root) or ~/.cache/antdb-k8s-airflow.
# The build is keyed by the archive's checksum (or the pinned revision when downloaded), so a new
# pin builds anew and an unchanged one is reused.

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED_UPSTREAM="${ANTDB_K8S_UPSTREAM:-$here/../shared/upstream}"

cache_root() {
  if [ -n "${ANTDB_K8S_CACHE:-}" ]; then
    echo "$ANTDB_K8S_CACHE"
  elif [ "$(id -u)" = "0" ]; then
    # Database servers run as the unprivileged `postgres` user: the build must be readable by
    # it, which /root/.cache is not.
    echo /var/cache/antdb-k8s-airflow
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/antdb-k8s-airflow"
  fi
}

# cache_key ARCHIVE FALLBACK_REV -> the first 16 hex digits of the archive's checksum, or the
# pinned revision when the archive is absent.
cache_key() {
  local archive="$SHARED_UPSTREAM/$1"
  if [ -f "$archive" ]; then
    sha256sum "$archive" | cut -c1-16
  else
    echo "rev-$2"
  fi
}

# fetch_source ARCHIVE URL DEST: unpack the pinned source into DEST (one top-level folder
# stripped). The archive is verified against SHA256SUMS when it comes from ../shared.
fetch_source() {
  local archive="$SHARED_UPSTREAM/$1" url="$2" dest="$3"
  mkdir -p "$dest"
  if [ -f "$archive" ]; then
    if [ -f "$SHARED_UPSTREAM/SHA256SUMS" ]; then
      (cd "$SHARED_UPSTREAM" && grep " $1\$" SHA256SUMS | sha256sum -c --quiet -) \
        || { echo "error: $archive does not match $SHARED_UPSTREAM/SHA256SUMS" >&2; return 1; }
    fi
    tar -xzf "$archive" -C "$dest" --strip-components=1
  else
    echo "$archive is absent: downloading the same pinned revision from $url" >&2
    command -v curl > /dev/null || apt_install curl
    curl -fsSL "$url" | tar -xz -C "$dest" --strip-components=1
  fi
}

apt_install() {
  local sudo=""
  [ "$(id -u)" = "0" ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${_APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq
    _APT_UPDATED=1
  fi
  $sudo apt-get install -y -qq --no-install-recommends "$@" > /dev/null
}

# missing_debs PKG... -> the packages not installed yet
missing_debs() {
  local pkg missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  echo "${missing[@]:-}"
}

# finish_if_built LABEL ROOT RESULT CHECK [--where]: when ROOT holds a finished build whose RESULT
# passes CHECK, print RESULT and exit 0. With --where, exit 1 otherwise (never build).
finish_if_built() {
  local label="$1" root="$2" result="$3" check="$4" mode="${5:-}"
  if [ -f "$root/.complete" ] && "$check" "$result"; then
    [ "$mode" = "--where" ] || echo "$label: reusing the build in $result" >&2
    echo "$result"
    exit 0
  fi
  [ "$mode" != "--where" ] || exit 1
}

# lock_build ROOT: one build of ROOT at a time; a second caller waits here for the first
# (then finish_if_built finds its result).
lock_build() {
  mkdir -p "$(dirname "$1")"
  exec 9> "$1.lock"
  flock 9
}
