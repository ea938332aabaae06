#!/usr/bin/env bash
# Issue 10 item 1: a process killed on a bare TPM leaves its objects there; a
# resource manager started over that TPM later cannot reclaim them. Then the
# module's message names the cause and the fix, and the fix works.
source "$(dirname "$0")/lib.sh"
swtpm_only "it fills the TPM's object slots"
fixture_start
export TPMTOKEN_RUN_DIR="$WORK/run"
source "$(dirname "$0")/procs_lib.sh"
procs_setup
BARE=$TPMTOKEN_TCTI
# A signer on the bare TPM holds the primary and both keys (three slots).
"$SIGNER" procs 1234 100000 01 02 >/dev/null 2>&1 &
victim=$!
transient() { tpm2_getcap -T "$BARE" handles-transient | count_lines '^-'; }
left=0
for _ in $(seq 100); do left=$(transient); [ "$left" -ge 3 ] && break; sleep 0.1; done
[ "$left" -ge 3 ] || fail "the signer never held three objects ($left after 10 s)"
kill -9 "$victim"
wait "$victim" 2>/dev/null || true  # killed: its status is the signal's
left=$(transient)
[ "$left" -ge 3 ] || fail "the killed signer left $left objects, not a full TPM"
fixture_start_shared   # tpm2-abrmd over the filled swtpm
abrmd_pid=${CLEANUP_PIDS[-1]}
expect_fail "tpm2_flushcontext -t" p11 --token-label procs --login --pin 1234 \
  --sign -m ECDSA-SHA256 --id 01 -i "$WORK/data" -o "$WORK/sig"
pass "through tpm2-abrmd over a TPM a killed bare client filled: the message names cause and fix"
# The fix it names: stop the resource manager, flush over the TPM's own
# TCTI, start it again.
kill "$abrmd_pid"
wait "$abrmd_pid" 2>/dev/null || true
tpm2_flushcontext -T "$BARE" -t || fail "tpm2_flushcontext -t"
tpm2_flushcontext -T "$BARE" -s || fail "tpm2_flushcontext -s"
name="com.intel.tss2.Tabrmd.r$$"
tpm2-abrmd --session --allow-root --dbus-name="$name" --tcti="$BARE" >"$WORK/abrmd2.log" 2>&1 &
CLEANUP_PIDS+=($!)
export TPMTOKEN_TCTI="tabrmd:bus_type=session,bus_name=$name"
up=""
for _ in $(seq 100); do tpm2_getcap -T "$TPMTOKEN_TCTI" properties-fixed >/dev/null 2>&1 && { up=1; break; }; sleep 0.1; done
[ -n "$up" ] || fail "the restarted tpm2-abrmd did not come up: $(tail -3 "$WORK/abrmd2.log")"
p11 --token-label procs --login --pin 1234 --sign -m ECDSA-SHA256 --id 01 -i "$WORK/data" \
  -o "$WORK/sig" >"$WORK/fix.out" 2>&1 || fail "after the fix the signature still fails: $(grep tpmtoken "$WORK/fix.out")"
pass "after the fix it names (flush over the TPM's own TCTI, resource manager restarted) the signature works"
