#!/usr/bin/env bash
# The browser test drives Debian's headless Chromium, and the compose test validates
# docker-compose.yaml with Debian's docker-compose (offline, no Docker engine needed).
# Install whichever is missing.
set -euo pipefail
missing=()
command -v chromium > /dev/null 2>&1 || missing+=(chromium)
command -v docker-compose > /dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing from Debian: ${missing[*]} (needed by the UI and compose tests)..."
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
