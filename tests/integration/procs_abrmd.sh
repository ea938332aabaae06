#!/usr/bin/env bash
# Issue 10 item 1 through tpm2-abrmd: a process killed mid-signature, then
# the next process works at once.
source "$(dirname "$0")/lib.sh"
fixture_start_shared
source "$(dirname "$0")/procs_lib.sh"
procs_setup
kill_rounds 3
pids=()
for w in 1 2; do "$SIGNER" procs 1234 50 01 02 >"$WORK/s$w.out" 2>&1 & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "a signer after the kills failed: $(cat "$WORK"/s*.out)"; done
pass "through tpm2-abrmd: 3 processes killed mid-signature, the next process signed at once each time"
