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
# Cold start (issue 10 item 4): the TPM commands of one short-lived
# `pkcs11-tool --login --sign`, with the module's own primary and with the
# TCG SRK, counted on the bus by the integration test (on its own swtpm: it
# persists an SRK, so never on the TPM in TPMTOKEN_TCTI).
if [ -n "$SWTPM_PID" ] && command -v pkcs11-tool >/dev/null; then
  echo "cold start, TPM commands of pkcs11-tool --login --sign (to TPM2_Sign; in all):"
  env -u TPMTOKEN_TCTI -u TPMTOKEN_STORE TOOL="$PWD/build/tools/tpmtoken" \
    bash tests/integration/cold_start.sh | sed -n 's/^\(own primary\|TCG SRK\): /  \1: /p'
fi
