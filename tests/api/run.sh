#!/usr/bin/env bash
# Runs one suite of the C-ABI tests on its own swtpm behind tpm2-abrmd (the
# fork and multi-process tests need more than one connection to the TPM).
# Usage: run.sh BINARY SUITE   (BARE_TPM=1: swtpm alone, no tpm2-abrmd)
source "$(dirname "$0")/../integration/lib.sh"
if [ -n "${BARE_TPM:-}" ]; then
  fixture_start
  # Not exec: the EXIT trap stops this test's swtpm.
  "$1" --gtest_filter="$2.*" --gtest_brief=1
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
"$1" --gtest_filter="$2.*" --gtest_brief=1
