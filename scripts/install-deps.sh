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
  # The Cylc venv: cylc install needs rsync; patchelf makes the copied interpreter relocatable.
  rsync patchelf
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

# --- Cylc (cylc-flow 8.7 + cylc-uiserver 1.10) in one pinned venv ---------------------
# Both need Python >= 3.12; Debian 12 ships 3.11. We use an interpreter the machine
# already has (PATH, /usr/local, or root's pyenv), and when it lives somewhere the demo
# users cannot read (root's home) we copy its installation to /opt/steward/python3.X and
# point its ELF run paths at the copy, so the venv works for every user.
STEWARD_OPT=/opt/steward
CYLC_VENV="${STEWARD_CYLC_VENV:-$STEWARD_OPT/cylc-venv}"
CYLC_REQS="$(cd "$(dirname "$0")/.." && pwd)/etc/cylc/requirements.txt"
want_stamp="$(sha256sum "$CYLC_REQS" | cut -d' ' -f1)"

venv_ok() {
  [[ -x "$CYLC_VENV/bin/python" && -f "$CYLC_VENV/.steward-requirements" ]] || return 1
  [[ "$(cat "$CYLC_VENV/.steward-requirements")" == "$want_stamp" ]] || return 1
  # The stamp alone could outlive a broken interpreter copy: ask the venv itself, as a
  # user without root's home, which is how the demo users will run it.
  runuser -u nobody -- "$CYLC_VENV/bin/python" -c \
    'import importlib.metadata as m; assert m.version("cylc-flow")=="8.7.0" and m.version("cylc-uiserver")=="1.10.0"' \
    >/dev/null 2>&1
}

# Prints "<executable> <base prefix>" of the first interpreter >= 3.12, < 3.14.
find_python() {
  local c out
  local candidates=("${STEWARD_PYTHON:-}" python3.12 python3.13 /usr/local/bin/python3.12
    /usr/local/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3.13)
  for c in /root/.pyenv/versions/3.12.*/bin/python3.12 /root/.pyenv/versions/3.13.*/bin/python3.13; do
    candidates+=("$c")
  done
  for c in "${candidates[@]}"; do
    [[ -n "$c" ]] || continue
    command -v "$c" >/dev/null 2>&1 || continue
    out="$("$c" -c 'import sys; v=sys.version_info; print(sys.executable if (3,12)<=v[:2]<(3,14) else "", sys.base_prefix, "%d.%d" % v[:2])' 2>/dev/null)" || continue
    [[ "$out" == /* ]] || continue
    echo "$out"
    return 0
  done
  return 1
}

# Makes the interpreter at prefix $1 (version $2) readable by every user; prints the
# python executable to build the venv with.
readable_python() {
  local prefix="$1" ver="$2" dest
  if runuser -u nobody -- "$prefix/bin/python$ver" -c 'import ssl, sqlite3, ctypes' >/dev/null 2>&1; then
    echo "$prefix/bin/python$ver"
    return 0
  fi
  dest="$STEWARD_OPT/python$ver"
  echo "install-deps: copying Python $ver from $prefix to $dest (the demo users cannot read $prefix)" >&2
  mkdir -p "$dest"
  rsync -a --delete --exclude "lib/python$ver/test/" --exclude '__pycache__/' "$prefix/" "$dest/"
  # pyenv builds link libpython with an absolute run path into the old prefix; make
  # every such ELF find libpython relative to itself instead.
  local f rel dir
  while IFS= read -r -d '' f; do
    if patchelf --print-rpath "$f" 2>/dev/null | grep -q "^$prefix"; then
      dir="$(dirname "$f")"
      rel="$(realpath --relative-to="$dir" "$dest/lib")"
      patchelf --set-rpath "\$ORIGIN/$rel" "$f"
    fi
  done < <(find "$dest" -type f \( -name '*.so' -o -name '*.so.*' -o -path "$dest/bin/*" \) -print0)
  chmod -R a+rX "$dest"
  echo "$dest/bin/python$ver"
}

if venv_ok; then
  :
else
  if ! found="$(find_python)"; then
    echo "install-deps: no Python >= 3.12 found (looked at \$STEWARD_PYTHON, python3.12/3.13 on PATH, /usr/local/bin, /usr/bin and /root/.pyenv/versions/3.12.*, 3.13.*)." >&2
    echo "install-deps: cylc-flow 8.7 and cylc-uiserver 1.10 need it; install one (e.g. pyenv install 3.12) or set STEWARD_PYTHON=/path/to/python3.12, then run this again." >&2
    exit 1
  fi
  read -r _exe prefix ver <<<"$found"
  py="$(readable_python "$prefix" "$ver")"
  echo "install-deps: creating $CYLC_VENV with $py (cylc-flow 8.7, cylc-uiserver 1.10)"
  rm -rf "$CYLC_VENV"
  mkdir -p "$(dirname "$CYLC_VENV")"
  "$py" -m venv "$CYLC_VENV"
  "$CYLC_VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$CYLC_REQS"
  "$CYLC_VENV/bin/pip" check >/dev/null
  chmod -R a+rX "$CYLC_VENV"
  echo "$want_stamp" >"$CYLC_VENV/.steward-requirements"
  if ! venv_ok; then
    echo "install-deps: $CYLC_VENV was built but 'cylc' does not run for an unprivileged user; see the output above" >&2
    exit 1
  fi
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
