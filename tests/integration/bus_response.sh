#!/usr/bin/env bash
# No length from a response is trusted (issue 8 item 3): a proxy patches the
# parameterSize of the TPM2_Unseal answer at login to 0xFFFFFFFF. The old
# wipe-after-response zeroed that many bytes of the heap; now the response
# fails its bounds check: CKR_DEVICE_ERROR, no crash, and the next login in
# a new process works (the PIN counter was not charged). Then the answer to
# TPM2_PolicySecret with the right PIN is lost after the TPM ran it: the
# login fails with CKR_DEVICE_ERROR, the module's session is dropped (its
# nonces may be out of step), and no PIN try is charged by what follows.
source "$(dirname "$0")/lib.sh"
fixture_start
direct=$TPMTOKEN_TCTI
init_token bus 12345678 1234

bus_proxy 15e 2 paramsize
# The first unseal is the store key's at C_Initialize; the login's is the second.
if out=$(p11 --token-label bus --login --pin 1234 -O 2>&1); then rc=0; else rc=$?; fi
grep -q "patched parameterSize" "$WORK/proxy.log" || fail "the proxy patched nothing"
[ "$rc" -ne 0 ] || fail "a response claiming 4 GiB of parameters was accepted"
[ "$rc" -lt 128 ] || fail "pkcs11-tool died of signal $((rc - 128)): $out"
grep -q "CKR_FUNCTION_FAILED\|CKR_DEVICE_ERROR" <<<"$out" || fail "unexpected outcome: $out"
TPMTOKEN_TCTI=$direct token_flags bus | grep -q 'count low' && fail "the PIN counter was charged"
TPMTOKEN_TCTI=$direct p11 --token-label bus --login --pin 1234 -O >/dev/null 2>&1 || fail "login after"
pass "a 0xFFFFFFFF parameterSize: refused without a crash ($(grep -o 'CKR_[A-Z_]*' <<<"$out" | head -1)); the token is intact"

bus_proxy 151 1 drop
H=${BUS_HELPER:?BUS_HELPER must name the bus_helper binary}
expect_fail CKR_DEVICE_ERROR p11 --token-label bus --login --pin 1234 -O
grep -q "dropped an answer" "$WORK/proxy.log" || fail "the proxy dropped nothing"
for _ in 1 2 3; do p11 --token-label bus --login --pin 1234 -O >/dev/null 2>&1 || fail "login after a lost answer"; done
TPMTOKEN_TCTI=$direct token_flags bus | grep -q 'count low' && fail "a correct PIN was charged: $(TPMTOKEN_TCTI=$direct token_flags bus)"
pass "a lost PolicySecret answer: CKR_DEVICE_ERROR, no PIN try charged, the next logins work"

# The same within one process, where the dropped session would otherwise
# carry stale nonces into the next PolicySecret.
bus_proxy 151 1 drop
out=$("$H" login "$MODULE" 1234 4 2>/dev/null) || fail "login helper"
[ "$(tr '\n' ' ' <<<"$out")" = "0x30 0x0 0x0 0x0 " ] || fail "logins in one process after a lost answer: $out"
TPMTOKEN_TCTI=$direct token_flags bus | grep -q 'count low' && fail "a correct PIN was charged"
pass "in one process: the lost answer fails one login (CKR_DEVICE_ERROR); the next three succeed, nothing charged"

# A PIN-counter answer altered on the way: C_GetTokenInfo and C_Login say
# CKR_DEVICE_ERROR, never "locked", and nothing advises re-initializing.
kill "${CLEANUP_PIDS[-1]}"
rm -f "$WORK/proxy.port"
# The 1st NV_Read of a start is the store anchor's; the 2nd the user PIN counter.
bus_proxy 14e 2 flip
out=$(p11 -L 2>&1) || true  # pkcs11-tool -L goes on after a failed C_GetTokenInfo
grep -q "flipped a byte" "$WORK/proxy.log" || fail "the proxy altered nothing"
grep -q "C_GetTokenInfo() failed: rv = CKR_DEVICE_ERROR" <<<"$out" || fail "expected CKR_DEVICE_ERROR: $out"
grep -q "reading the user PIN counter" <<<"$out" || fail "the cause is not named: $out"
grep -qi "locked\|C_InitToken\|C_InitPIN" <<<"$out" && fail "a locked PIN or a wipe advised: $out"
pass "an altered PIN-counter answer: CKR_DEVICE_ERROR from C_GetTokenInfo, no 'locked', no wipe advised"

# C_GenerateRandom (one byte, bus helper) with the first TPM2_GetRandom
# answer altered by bus_proxy MODE; the proxy must log PROXY_LINE, and the
# call must return CKR_DEVICE_ERROR (0x30). The module's lines: random.err.
forged_random() {  # forged_random MODE PROXY_LINE
  bus_proxy 17b 1 "$1"
  out=$(TPMTOKEN_LOG=error "$H" random "$MODULE" 1 2>"$WORK/random.err") || fail "random helper: $(cat "$WORK/random.err")"
  grep -q "$2" "$WORK/proxy.log" || fail "the proxy altered nothing ($1)"
  [ "${out%% *}" = 0x30 ] || fail "expected CKR_DEVICE_ERROR (0x30) for $1: $out $(cat "$WORK/random.err")"
}

# A forged TPM_RC_POLICY_FAIL where no key policy applies (the answer to the
# TPM2_GetRandom behind C_GenerateRandom): CKR_DEVICE_ERROR naming the
# altered answer, never CKR_KEY_FUNCTION_NOT_PERMITTED (that code is only for
# a PCR-bound key the TPM refused: integration/pcr_key.sh).
# 0x30 is CKR_DEVICE_ERROR (0x68 would be CKR_KEY_FUNCTION_NOT_PERMITTED).
forged_random rc:9d "answered rc 0x9d"
grep -q "no key policy governs" "$WORK/random.err" || fail "the cause is not named: $(cat "$WORK/random.err")"
pass "a forged 'policy check failed' for TPM2_GetRandom: CKR_DEVICE_ERROR, the altered answer named"

# Forged codes that would send the user after the wrong cause: 'no NV space'
# for a command that allocates none is an altered answer (CKR_DEVICE_ERROR),
# not CKR_DEVICE_MEMORY with advice about PIN counters; 'authorization
# failed' for a command the owner does not authorize advises no owner_auth.
forged_random rc:14b "answered rc 0x14b"
grep -q "allocates none" "$WORK/random.err" || fail "the cause is not named: $(cat "$WORK/random.err")"
grep -q "PIN counters" "$WORK/random.err" && fail "PIN counters blamed: $(cat "$WORK/random.err")"
forged_random rc:98e "answered rc 0x98e"
grep -q "owner_auth" "$WORK/random.err" && fail "owner_auth advised for TPM2_GetRandom: $(cat "$WORK/random.err")"
grep -q "altered on the way" "$WORK/random.err" || fail "the cause is not named: $(cat "$WORK/random.err")"
pass "forged 'no NV space' and 'authorization failed' for TPM2_GetRandom: CKR_DEVICE_ERROR, no PIN-counter or owner_auth advice"

# A forged 'integrity check failed' for the store key's TPM2_Load, with the
# storage key pinned and matched: not "another TPM, or cleared" (that would
# send the user to restore or re-create), but a damaged blob or an altered
# answer; the store opens on an honest bus.
bus_proxy 157 1 rc:9f
out=$(p11 -L 2>&1) && fail "the store opened with a forged integrity failure: $out"
grep -q "answered rc 0x9f" "$WORK/proxy.log" || fail "the proxy forged nothing"
grep -q "another TPM" <<<"$out" && fail "a forged answer blamed on another TPM: $out"
grep -q "store pinned.*altered on the way" <<<"$out" || fail "the cause is not named: $out"
TPMTOKEN_TCTI=$direct p11 --token-label bus --login --pin 1234 -O >/dev/null 2>&1 || fail "the store does not open on an honest bus"
pass "a forged integrity failure of the store key's load: the pinned key named, not 'another TPM'; the store intact"

# A success whose tag was altered to "no sessions": its session area (and
# HMAC) is gone. The module names a malformed answer, not tpm2-tss's
# "called in the wrong order", which reads as a bug in the module.
forged_random notag "tag 'no sessions'"
grep -q "wrong order" "$WORK/random.err" && fail "reported as out of order: $(cat "$WORK/random.err")"
grep -q "malformed" "$WORK/random.err" || fail "the cause is not named: $(cat "$WORK/random.err")"
pass "an answer stripped of its session area: CKR_DEVICE_ERROR naming a malformed response"
