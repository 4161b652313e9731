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
# Supply chain and unsafe code first: seconds, and no point testing a build that fails them.
bash scripts/check-unsafe.sh
bash scripts/check-supply-chain.sh
cargo build --workspace --bins --tests --locked
# Lints, and the MSRV check: clippy's incompatible_msrv refuses any std API newer than
# the workspace's rust-version in every crate that inherits it.
cargo clippy --workspace --all-targets --locked -- -D warnings
# The root helper is built without the spawner's `client` feature: tokio must not be
# among its dependencies (the e2e test spawner_ssh::helper_binary_links_no_tokio checks
# the built binary's symbols too).
if cargo tree --locked -e normal -p steward-spawner --no-default-features | grep -q '^.*tokio v'; then
  echo "scripts/test.sh: steward-spawner without default features depends on tokio" >&2
  exit 1
fi

# ---- fuzzing: a short run of every fuzz target (the full 1,000,000-input runs: fuzz/run.sh) ----
# The stable build: the same on every machine, nightly or not (and no AddressSanitizer build).
FUZZ_BUILD=stable FUZZ_KEEP=0 FUZZ_MAX_SECONDS=4 bash fuzz/run.sh all

# Unit tests of every crate, then the end-to-end suite (real users, cgroups, PAM, slapd,
# Chromium) from the same build.
cargo test --workspace --locked --no-fail-fast --exclude steward-e2e
# casbin-rs as the policy engine's differential oracle (a workspace of its own: compare/).
cargo test --manifest-path compare/Cargo.toml --locked --no-fail-fast
cargo test -p steward-e2e --locked --no-fail-fast -- --test-threads 2
# The hub suites again with every demo hub on its own PostgreSQL (Debian's, started by
# the fixture) instead of SQLite: the state store is the hub's, whichever it is.
STEWARD_TEST_DATABASE=postgresql cargo test -p steward-e2e --locked --no-fail-fast \
  --test hub --test faults -- --test-threads 2
# Load (issue 19), bounded: 60 s of simulated people with real PAM sessions watching and
# operating on owners' UI servers; fails on any error or on an operation without exactly
# one intent and one outcome in the audit log. Figures: docs/benchmarks.md, "Load".
"$CARGO_TARGET_DIR/debug/load" --users "${STEWARD_LOAD_USERS:-200}" --owners "${STEWARD_LOAD_OWNERS:-50}" --secs 60

# The Debian package, installed, started from its unit's lines, and purged. Last: purge
# removes /etc/pam.d/steward, which it restores, but nothing should be using it then.
bash scripts/test-package.sh
