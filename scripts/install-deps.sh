#!/usr/bin/env bash
# Installs the Debian packages Steward's build, demo and tests need on a fresh machine.
# Idempotent: skips apt entirely when every package is already present.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PACKAGES=(
  build-essential pkg-config libpam0g-dev libclang-dev
  sudo passwd procps util-linux pamtester openssh-server openssh-client iproute2 curl
  slapd ldap-utils stress-ng
  # Slurm backend tests: a private munged + slurmctld + slurmd (tests/src/slurm.rs).
  munge slurm-wlm slurm-client
  chromium chromium-driver fonts-dejavu-core
  postgresql haproxy
  # The package test (scripts/test-package.sh): systemd only for systemd-analyze (it
  # starts nothing on a machine not booted with systemd), socat for NOTIFY_SOCKET,
  # man-db for `man -w`, curl and openssl to log in over HTTPS.
  systemd socat man-db curl openssl adduser
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
