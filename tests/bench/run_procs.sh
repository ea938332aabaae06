#!/usr/bin/env bash
# Issue 10 items 3 and 5 (tests/bench/bench_procs.cc): keys in turn and
# thread latencies, first on a bare swtpm, then through tpm2-abrmd in front
# of the same swtpm: bash tests/bench/run_procs.sh (after a build).
set -euo pipefail
cd "$(dirname "$0")/../.."
export MODULE=${MODULE:-$PWD/build/src/libtpmtoken.so}
source scripts/common.sh
WORK=$(mktemp -d /tmp/tpmtoken-bench-procs.XXXXXX)
SWTPM_PID="" PIDS=()
trap 'for p in "${PIDS[@]}" $SWTPM_PID; do kill "$p" 2>/dev/null; done; rm -rf "$WORK"' EXIT
export TPMTOKEN_RUN_DIR="$WORK/run"
swtpm_start "$WORK/tpm" || { echo "bench: swtpm did not start" >&2; exit 1; }
bare=$TPMTOKEN_TCTI
echo "== bare swtpm (no resource manager)"
TPMTOKEN_STORE="$WORK/bare.sqlite3" build/tests/bench_procs
dbus-daemon --session --fork --nopidfile --print-address=3 --print-pid=4 \
  3>"$WORK/dbus.addr" 4>"$WORK/dbus.pid"
PIDS+=("$(cat "$WORK/dbus.pid")")
export DBUS_SESSION_BUS_ADDRESS=$(cat "$WORK/dbus.addr")
name="com.intel.tss2.Tabrmd.b$$"
tpm2-abrmd --session --allow-root --dbus-name="$name" --tcti="$bare" >"$WORK/abrmd.log" 2>&1 &
PIDS+=($!)
export TPMTOKEN_TCTI="tabrmd:bus_type=session,bus_name=$name"
for _ in $(seq 50); do tpm2_getcap -T "$TPMTOKEN_TCTI" properties-fixed >/dev/null 2>&1 && break; sleep 0.1; done
echo
echo "== through tpm2-abrmd"
TPMTOKEN_STORE="$WORK/rm.sqlite3" build/tests/bench_procs
