#!/usr/bin/env bash
# Runs Steward's coverage-guided fuzz targets (libFuzzer).
#
#   fuzz/run.sh [TARGET|all] [RUNS]
#
# Each target runs RUNS generated inputs (default 1,000,000), bounded by
# FUZZ_MAX_SECONDS per target (default 1800): a panic, an abort, a hang (one input over
# FUZZ_TIMEOUT seconds, default 10) or running out of memory fails the run, and the
# input that did it is saved under fuzz/artifacts/<target>/.
#
# Corpus: fuzz/corpus/<target>/ is the committed seed corpus. By default new inputs that
# reach new coverage are kept there (the corpus grows with each long run; minimise it
# with `FUZZ_MERGE=1` before committing). FUZZ_KEEP=0 (the test command's short run)
# reads the seeds but writes new inputs to a throw-away directory.
#
# Build: with a nightly toolchain and cargo-fuzz (on PATH or in
# /var/cache/steward-tools/bin) it is `cargo +nightly fuzz build` (AddressSanitizer on).
# Otherwise the machine's stable toolchain builds the same targets with the same
# libFuzzer (libfuzzer-sys) and SanitizerCoverage through stable `-C passes=sancov-module`
# flags, without AddressSanitizer (which needs nightly). FUZZ_BUILD=stable|cargo-fuzz
# forces one.
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_DIR=$PWD
ROOT=$(cd .. && pwd)

ALL_TARGETS=(policy_site policy_user helper_request ws_message jwt ids)
TARGET=${1:-all}
RUNS=${2:-1000000}
MAX_SECONDS=${FUZZ_MAX_SECONDS:-1800}
TIMEOUT=${FUZZ_TIMEOUT:-10}
KEEP=${FUZZ_KEEP:-1}
export PATH="/var/cache/steward-tools/bin:$PATH"
export CARGO_TERM_COLOR=never
TARGET_DIR=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-/var/cache/steward-target}-fuzz}
HOST=$(rustc -vV | sed -n 's/^host: //p')

if [[ $TARGET == all ]]; then
  targets=("${ALL_TARGETS[@]}")
else
  if [[ ! " ${ALL_TARGETS[*]} " == *" $TARGET "* ]]; then
    echo "fuzz/run.sh: unknown target '$TARGET'; targets: ${ALL_TARGETS[*]} (or all)" >&2
    exit 2
  fi
  targets=("$TARGET")
fi
if ! [[ $RUNS =~ ^[0-9]+$ && $MAX_SECONDS =~ ^[0-9]+$ && $TIMEOUT =~ ^[0-9]+$ ]]; then
  echo "fuzz/run.sh: RUNS, FUZZ_MAX_SECONDS and FUZZ_TIMEOUT must be whole numbers" >&2
  exit 2
fi

# FUZZ_NO_BUILD=1 runs the binaries the last build left (e.g. several targets at once).
build=${FUZZ_BUILD:-}
if [[ -z $build ]]; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly' && command -v cargo-fuzz >/dev/null; then
    build=cargo-fuzz
  else
    build=stable
  fi
fi

case ${FUZZ_NO_BUILD:-0}:$build in
  1:*) ;;
  *:cargo-fuzz)
    # cargo-fuzz's defaults: release code with debug assertions, AddressSanitizer,
    # trace-compares. Builds every target (one build, then each is up to date).
    (cd "$ROOT" && cargo +nightly fuzz build --fuzz-dir fuzz --target-dir "$TARGET_DIR")
    ;;
  *:stable)
    # What cargo-fuzz passes, minus the flags only nightly accepts (-Z sanitizers).
    # --target keeps these flags off build scripts and proc macros.
    RUSTFLAGS="--cfg fuzzing -C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=4 \
-C llvm-args=-sanitizer-coverage-inline-8bit-counters -C llvm-args=-sanitizer-coverage-pc-table \
-C llvm-args=-sanitizer-coverage-trace-compares -C debug-assertions -C overflow-checks" \
      cargo build --release --locked --manifest-path "$FUZZ_DIR/Cargo.toml" --target "$HOST" \
      --target-dir "$TARGET_DIR" --bins
    ;;
  *)
    echo "fuzz/run.sh: FUZZ_BUILD must be stable or cargo-fuzz" >&2
    exit 2
    ;;
esac
BIN_DIR=$TARGET_DIR/$HOST/release
echo "fuzz/run.sh: $([[ ${FUZZ_NO_BUILD:-0} == 1 ]] && echo "last build" || echo "built with $build"); $RUNS runs per target, at most ${MAX_SECONDS}s each"

max_len() {
  case $1 in
    policy_site | policy_user) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

scratch=$(mktemp -d /tmp/steward-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
  seeds=$FUZZ_DIR/corpus/$t
  mkdir -p "$seeds" "$FUZZ_DIR/artifacts/$t"
  if [[ $KEEP == 1 ]]; then
    corpus=("$seeds")
  else
    mkdir -p "$scratch/$t"
    corpus=("$scratch/$t" "$seeds")
  fi
  log=$scratch/$t.log
  start=$(date +%s)
  rc=0
  "$BIN_DIR/$t" -runs="$RUNS" -max_total_time="$MAX_SECONDS" -timeout="$TIMEOUT" \
    -rss_limit_mb=2048 -max_len="$(max_len "$t")" -print_final_stats=1 \
    -artifact_prefix="$FUZZ_DIR/artifacts/$t/" "${corpus[@]}" >"$log" 2>&1 || rc=$?
  secs=$(($(date +%s) - start))
  runs_done=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  echo "fuzz $t: ${runs_done:-?} inputs in ${secs}s, coverage ${cov:-?} edges / ${ft:-?} features, corpus $(find "${corpus[0]}" -type f | wc -l) files, rc $rc"
  if [[ $rc -ne 0 ]]; then
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written|timeout|out-of-memory' "$log" | head -n 20 >&2 || true
    tail -n 30 "$log" >&2
    failed+=("$t")
  elif [[ ${runs_done:-0} -lt $RUNS ]]; then
    echo "fuzz $t: stopped by the ${MAX_SECONDS}s bound before $RUNS inputs (no failure found)"
  fi
  if [[ ${FUZZ_MERGE:-0} == 1 && $rc -eq 0 ]]; then
    # The smallest set of inputs covering every feature reached: the corpus to commit.
    mkdir -p "$scratch/min-$t"
    "$BIN_DIR/$t" -set_cover_merge=1 -max_len="$(max_len "$t")" "$scratch/min-$t" "$seeds" >/dev/null 2>&1
    rm -rf "$seeds" && mv "$scratch/min-$t" "$seeds"
    echo "fuzz $t: corpus merged to $(find "$seeds" -type f | wc -l) files, $(du -sk "$seeds" | cut -f1) KiB"
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz/run.sh: FAILED: ${failed[*]} (inputs saved under fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz/run.sh: ${#targets[@]} targets passed"
