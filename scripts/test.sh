#!/usr/bin/env bash
# Runs every Steward test — unit and end-to-end — on this machine, as root.
# Installs what it needs first (Debian packages), then builds once and runs the unit and
# end-to-end tests from that one build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then
  echo "scripts/test.sh: run as root (the end-to-end tests create Unix users, cgroups and start daemons)" >&2
  exit 1
fi
bash scripts/install-deps.sh
# A target directory outside the clone lets repeated runs on one machine reuse the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/steward-target}"
export CARGO_TERM_COLOR=never
cargo build --workspace --bins --tests --locked
# Unit tests of every crate, then the end-to-end suite (real users, cgroups, PAM, slapd,
# Chromium) from the same build.
cargo test --workspace --locked --no-fail-fast --exclude steward-e2e
cargo test -p steward-e2e --locked --no-fail-fast -- --test-threads 2

# Load (issue 19), bounded: 60 s of simulated people with real PAM sessions watching and
# operating on owners' UI servers; fails on any error or on an operation without exactly
# one intent and one outcome in the audit log. Figures: docs/benchmarks.md, "Load".
"$CARGO_TARGET_DIR/debug/load" --users "${STEWARD_LOAD_USERS:-200}" --owners "${STEWARD_LOAD_OWNERS:-50}" --secs 60
