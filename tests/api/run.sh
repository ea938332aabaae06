#!/usr/bin/env bash
# Runs one suite of the C-ABI tests on its own swtpm behind tpm2-abrmd (the
# fork and multi-process tests need more than one connection to the TPM).
# Usage: run.sh BINARY SUITE   (BARE_TPM=1: swtpm alone, no tpm2-abrmd)
source "$(dirname "$0")/../integration/lib.sh"
# run_suite BINARY SUITE: a suite whose every test skipped (GTEST_SKIP, e.g.
# no libp11 engine) is meson's skip (77), not a pass.
run_suite() {
  local rc=0
  "$1" --gtest_filter="$2.*" --gtest_brief=1 | tee "$WORK/gtest.out" || rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || exit "$rc"
  if grep -q '^\[  PASSED  \] 0 tests' "$WORK/gtest.out" && grep -q '^\[  SKIPPED \]' "$WORK/gtest.out"; then
    skip "every test of $2 skipped: $(grep -m1 -A1 'Skipped' "$WORK/gtest.out" | tail -1)"
  fi
}
if [ -n "${BARE_TPM:-}" ]; then
  fixture_start
  # Not exec: the EXIT trap stops this test's swtpm.
  run_suite "$1" "$2"
  exit
fi
fixture_start_shared
# A second, plain swtpm for a forked child to initialize against: GLib's D-Bus
# (inside the tabrmd TCTI) does not survive fork(), a socket TCTI does.
main_tcti=$TPMTOKEN_TCTI
main_pid=$SWTPM_PID
swtpm_start "$WORK/tpm-child" || fail "second swtpm did not start"
CLEANUP_PIDS+=("$SWTPM_PID")
export CHILD_TCTI=$TPMTOKEN_TCTI
export TPMTOKEN_TCTI=$main_tcti
SWTPM_PID=$main_pid
run_suite "$1" "$2"
