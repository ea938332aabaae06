#!/usr/bin/env bash
# Runs the benchmark on its own swtpm (or the TPM in TPMTOKEN_TCTI) with a
# scratch store: bash tests/bench/run.sh  (after ./run test has built it).
set -euo pipefail
cd "$(dirname "$0")/../.."
export MODULE=${MODULE:-$PWD/build/src/libtpmtoken.so}
source scripts/common.sh
WORK=$(mktemp -d /tmp/tpmtoken-bench.XXXXXX)
SWTPM_PID="" PIDS=()
trap 'for p in "${PIDS[@]}" $SWTPM_PID; do kill "$p" 2>/dev/null; done; rm -rf "$WORK"' EXIT
export TPMTOKEN_STORE="$WORK/store.sqlite3"
if [ -z "${TPMTOKEN_TCTI:-}" ]; then
  swtpm_start "$WORK/tpm" || { echo "bench: swtpm did not start" >&2; exit 1; }
fi
build/tests/bench
# Issue 10 item 6: the operations again through tpm2-abrmd in front of the
# same swtpm, so "mod/pw" is the module against raw ESAPI password sessions
# through the same resource manager.
if [ -n "$SWTPM_PID" ] && command -v tpm2-abrmd >/dev/null; then
  dbus-daemon --session --fork --nopidfile --print-address=3 --print-pid=4 \
    3>"$WORK/dbus.addr" 4>"$WORK/dbus.pid"
  PIDS+=("$(cat "$WORK/dbus.pid")")
  name="com.intel.tss2.Tabrmd.bench$$"
  DBUS_SESSION_BUS_ADDRESS=$(cat "$WORK/dbus.addr") tpm2-abrmd --session --allow-root \
    --dbus-name="$name" --tcti="$TPMTOKEN_TCTI" >"$WORK/abrmd.log" 2>&1 &
  PIDS+=($!)
  rm_tcti="tabrmd:bus_type=session,bus_name=$name"
  export DBUS_SESSION_BUS_ADDRESS=$(cat "$WORK/dbus.addr")
  for _ in $(seq 50); do tpm2_getcap -T "$rm_tcti" properties-fixed >/dev/null 2>&1 && break; sleep 0.1; done
  echo
  echo "through tpm2-abrmd (the same swtpm; ESAPI columns also through tpm2-abrmd):"
  TPMTOKEN_TCTI=$rm_tcti TPMTOKEN_STORE="$WORK/rm.sqlite3" BENCH_OPS_ONLY=1 build/tests/bench
fi
# Cold start (issue 10 item 4): the TPM commands of one short-lived
# `pkcs11-tool --login --sign`, with the module's own primary and with the
# TCG SRK, counted on the bus by the integration test (on its own swtpm: it
# persists an SRK, so never on the TPM in TPMTOKEN_TCTI).
if [ -n "$SWTPM_PID" ] && command -v pkcs11-tool >/dev/null; then
  echo "cold start, TPM commands of pkcs11-tool --login --sign (to TPM2_Sign; in all):"
  env -u TPMTOKEN_TCTI -u TPMTOKEN_STORE TOOL="$PWD/build/tools/tpmtoken" \
    bash tests/integration/cold_start.sh | sed -n 's/^\(own primary\|TCG SRK\): /  \1: /p'
fi
