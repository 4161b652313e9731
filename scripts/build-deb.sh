#!/usr/bin/env bash
# Builds the Debian package steward_<version>-1_<arch>.deb with cargo-deb.
#
#   scripts/build-deb.sh            release build (what a site installs)
#   scripts/build-deb.sh --debug    debug build packaged as profile "deb-test" (the test
#                                   suite's, to reuse the build the tests already made)
#
# Prints the path of the .deb on the last line of stdout. cargo-deb is installed once
# into /var/cache/steward-tools (outside the clone) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/steward-target}"
TOOLS=/var/cache/steward-tools
CARGO_DEB_VERSION=3.8.0
if ! "$TOOLS/bin/cargo-deb" --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
  cargo install --quiet --root "$TOOLS" cargo-deb --version "$CARGO_DEB_VERSION" --locked >&2
fi
BINS=(steward steward-uiserver steward-spawn)
fast=()
PKGS=(-p steward-hub -p steward-uiserver-stub -p steward-spawner)
if [[ "${1:-}" == "--debug" ]]; then
  profile=deb-test
  fast=(--fast) # the test's package is installed once and thrown away
  # The very build scripts/test.sh makes (same targets, so the same features): a no-op there.
  cargo build --workspace --bins --tests --locked >&2
  # cargo-deb refuses the dev profile by name; give it the dev binaries under a
  # profile of their own instead of building everything a second time.
  mkdir -p "$CARGO_TARGET_DIR/$profile"
  for b in "${BINS[@]}"; do cp -f "$CARGO_TARGET_DIR/debug/$b" "$CARGO_TARGET_DIR/$profile/$b"; done
else
  profile=release
  cargo build --locked --release --bins "${PKGS[@]}" >&2
fi
out="$CARGO_TARGET_DIR/$profile"
rm -rf "$out/gen-docs"
"$out/steward" gen-docs "$out/gen-docs"
gzip -9n "$out"/gen-docs/man/*.1
mkdir -p "$CARGO_TARGET_DIR/debian"
# cargo-deb prints the path of the package it wrote.
"$TOOLS/bin/cargo-deb" -p steward-hub --no-build --profile "$profile" "${fast[@]}" \
  --output "$CARGO_TARGET_DIR/debian" | tail -n1
