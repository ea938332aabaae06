#!/usr/bin/env bash
# Runs the benchmark on its own swtpm (or the TPM in TPMTOKEN_TCTI) with a
# scratch store: bash tests/bench/run.sh  (after ./run test has built it).
set -euo pipefail
cd "$(dirname "$0")/../.."
export MODULE=${MODULE:-$PWD/build/src/libtpmtoken.so}
source scripts/common.sh
WORK=$(mktemp -d /tmp/tpmtoken-bench.XXXXXX)
SWTPM_PID=""
trap '[ -n "$SWTPM_PID" ] && kill "$SWTPM_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
export TPMTOKEN_STORE="$WORK/store.sqlite3"
if [ -z "${TPMTOKEN_TCTI:-}" ]; then
  swtpm_start "$WORK/tpm" || { echo "bench: swtpm did not start" >&2; exit 1; }
fi
build/tests/bench
