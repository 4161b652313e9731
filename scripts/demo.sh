#!/usr/bin/env bash
# Builds Steward and runs `steward demo`: a working hub on https://127.0.0.1:8443 with
# demo users alice, bob and carl (random passwords printed once), a demo site policy and
# demo workflows. Ctrl-C stops it and the servers it started.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then
  echo "scripts/demo.sh: run as root (the demo creates Unix users and starts servers as them)" >&2
  exit 1
fi
bash scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/steward-target}"
cargo build --workspace --bins --locked
exec "$CARGO_TARGET_DIR/debug/steward" demo "$@"
