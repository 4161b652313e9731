#!/usr/bin/env bash
# Installs the Debian packages Steward's build, demo and tests need on a fresh machine.
# Idempotent: skips apt entirely when every package is already present.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PACKAGES=(
  build-essential pkg-config libpam0g-dev libclang-dev
  sudo passwd procps util-linux pamtester openssh-server openssh-client iproute2
  slapd ldap-utils stress-ng
  chromium chromium-driver fonts-dejavu-core
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  # slapd asks debconf questions on install; preseed so it never blocks a non-interactive run.
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Cargo tools for the security checks, built once into a cache outside the clone and
# reused by later runs: cargo-deny (supply chain, always) and cargo-fuzz (only where a
# nightly toolchain exists; fuzz/run.sh builds with stable otherwise).
TOOLS=/var/cache/steward-tools
install_tool() {
  local crate=$1 version=$2
  if [[ -x $TOOLS/bin/$crate ]] && "$TOOLS/bin/$crate" --version 2>/dev/null | grep -q "$version"; then
    return
  fi
  echo "install-deps: building $crate $version into $TOOLS"
  CARGO_TARGET_DIR=$TOOLS/build cargo install --quiet --root "$TOOLS" --locked --version "$version" "$crate"
}
install_tool cargo-deny 0.20.2
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  install_tool cargo-fuzz 0.13.2
fi
