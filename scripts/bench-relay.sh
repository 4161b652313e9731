#!/usr/bin/env bash
# Relay benchmarks (issue 8): hub vs direct vs configurable-http-proxy 5.x, one run.
# Needs root (demo users, UI servers started as them). Installs Node.js, CHP and HAProxy
# (the floor baselines) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/steward-target}"
if ! command -v npm >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
# HAProxy is optional: without it the floor baselines are skipped, not the run.
if ! command -v haproxy >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy) ||
        echo "HAProxy could not be installed: the floor baselines will be skipped"
fi
chp_dir=/var/cache/steward-bench/chp
if [ ! -x "$chp_dir/node_modules/.bin/configurable-http-proxy" ]; then
    mkdir -p "$chp_dir"
    npm install --silent --no-audit --no-fund --prefix "$chp_dir" 'configurable-http-proxy@5'
fi
echo "configurable-http-proxy $(node -p "require('$chp_dir/node_modules/configurable-http-proxy/package.json').version"), node $(node --version)"
cargo build --release --locked --workspace --bins
if command -v haproxy >/dev/null; then
    haproxy -v | head -1
    export STEWARD_BENCH_HAPROXY="$(command -v haproxy)"
fi
STEWARD_BENCH_CHP="$chp_dir/node_modules/.bin/configurable-http-proxy" \
    "$CARGO_TARGET_DIR/release/relay" "$@"
