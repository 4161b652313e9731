#!/usr/bin/env bash
# Soak (issue 19; not CI): the load benchmark at a lower rate for an hour, sampling the
# hub's RSS and open file descriptors every minute. Fails when either grows more than 5 %
# after warm-up, or when processes or cgroups leak (see bench/src/bin/load.rs, --soak).
#
#   scripts/soak.sh                 # 60 minutes, 50 users, 10 owners, one op per user per 10 s
#   SOAK_SECS=180 SOAK_WARMUP=60 scripts/soak.sh   # a short run proving the script works
#
# Run as root. Builds release binaries in CARGO_TARGET_DIR (default /var/cache/steward-target).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then
  echo "scripts/soak.sh: run as root (it creates Unix users and starts servers as them)" >&2
  exit 1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/steward-target}"
profile="${SOAK_PROFILE:-release}"
if [[ "$profile" == release ]]; then
  cargo build --release --workspace --bins --locked
else
  cargo build --workspace --bins --locked
fi
exec "$CARGO_TARGET_DIR/$profile/load" --soak \
  --users "${SOAK_USERS:-50}" --owners "${SOAK_OWNERS:-10}" \
  --secs "${SOAK_SECS:-3600}" --interval-ms "${SOAK_INTERVAL_MS:-10000}" \
  --sample-secs "${SOAK_SAMPLE_SECS:-60}" --warmup-secs "${SOAK_WARMUP:-600}"
