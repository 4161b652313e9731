#!/usr/bin/env bash
# Supply chain: `cargo deny check` — advisories (RustSec), licences, bans, sources —
# over every crate in Cargo.lock (deny.toml says what is allowed and why).
#
# The RustSec advisory database is a git repository on GitHub. Where GitHub is reachable,
# `cargo deny fetch` brings the current one. Where it is not (this project's machines
# reach only package registries), the snapshot committed in supply-chain/ is installed
# where cargo-deny looks for the database, keeping its real commit date, so the check
# runs against real advisories as of that date and says so; a database fetched earlier
# that is newer than the snapshot is kept. Refresh the snapshot with
# `scripts/check-supply-chain.sh --update-snapshot DIR` from a clone of
# github.com/rustsec/advisory-db.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/var/cache/steward-tools/bin:$PATH"
# cargo-deny keys its database directory by a hash of the database URL.
DB_DIR=${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-3157b0e258782691
SNAPSHOT=supply-chain/advisory-db.tar.xz
read -r snap_commit snap_date <supply-chain/advisory-db.commit

if [[ ${1:-} == --update-snapshot ]]; then
  src=${2:?usage: $0 --update-snapshot PATH-TO-advisory-db-clone}
  git -C "$src" archive --format=tar HEAD crates rust LICENSE.txt README.md support.toml | xz -9 >"$SNAPSHOT"
  git -C "$src" log -1 --format='%H %cI' >supply-chain/advisory-db.commit
  echo "snapshot updated to $(cat supply-chain/advisory-db.commit)"
  exit 0
fi

if ! command -v cargo-deny >/dev/null; then
  echo "check-supply-chain: cargo-deny is missing; run scripts/install-deps.sh" >&2
  exit 1
fi

install_snapshot() {
  local tmp
  tmp=$(mktemp -d "$(dirname "$DB_DIR")/.snapshot.XXXXXX")
  tar -xJf "$SNAPSHOT" -C "$tmp"
  git -C "$tmp" init -q -b main
  git -C "$tmp" add -A
  GIT_AUTHOR_DATE=$snap_date GIT_COMMITTER_DATE=$snap_date git -C "$tmp" \
    -c user.name=steward -c user.email=steward@localhost commit -q \
    -m "RustSec advisory-db snapshot of $snap_commit"
  rm -rf "$DB_DIR"
  mv "$tmp" "$DB_DIR"
}

mkdir -p "$(dirname "$DB_DIR")"
offline=()
if timeout 60 cargo deny fetch db >/dev/null 2>&1; then
  echo "check-supply-chain: advisory database fetched: $(git -C "$DB_DIR" log -1 --format='%h of %cI')"
else
  snap_epoch=$(date -d "$snap_date" +%s)
  have_epoch=$(git -C "$DB_DIR" log -1 --format=%ct 2>/dev/null || echo 0)
  if ((have_epoch < snap_epoch)); then
    install_snapshot
  fi
  echo "check-supply-chain: advisory database not fetchable here; using the one of" \
    "$(git -C "$DB_DIR" log -1 --format=%cI) (committed snapshot: $snap_commit of $snap_date)"
  offline=(--offline)
fi
# Offline, cargo-deny reads `cargo metadata` from the local registry cache only, which a
# build fills with the crates of this platform alone: fetch every locked crate first.
if ((${#offline[@]})); then
  cargo fetch --locked --quiet
  cargo fetch --locked --quiet --manifest-path fuzz/Cargo.toml
  cargo fetch --locked --quiet --manifest-path compare/Cargo.toml
fi
cargo deny "${offline[@]}" --locked check advisories bans licenses sources
# The fuzz workspace has its own lock file (libFuzzer and the instrumented build).
cargo deny "${offline[@]}" --locked --manifest-path fuzz/Cargo.toml --log-level error \
  check advisories bans licenses sources
# The casbin comparison: a workspace of its own with its own deny.toml (one accepted,
# named advisory; see compare/Cargo.toml).
cargo deny "${offline[@]}" --locked --manifest-path compare/Cargo.toml --config compare/deny.toml --log-level error \
  check advisories bans licenses sources
