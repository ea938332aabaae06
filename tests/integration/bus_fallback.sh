#!/usr/bin/env bash
# No PIN moves to the dictionary-attack fallback on a forged answer (issue 8
# item 2). A proxy answers TPM2_NV_DefineSpace with TPM_RC_NV_SPACE: without
# pin_fallback the PIN is refused with a line naming the cause and the
# setting, nothing falls back. A proxy that flips ownerAuthSet in the
# TPM2_GetCapability answer is caught by the session's response HMAC
# (CKR_DEVICE_ERROR), not believed. With pin_fallback = dictionary-attack
# the forged "NV full" does give the fallback: the setting is the consent.
source "$(dirname "$0")/lib.sh"
fixture_start
tpm() { tpm2_"$1" -T "$TPMTOKEN_TCTI" "${@:2}"; }
direct=$TPMTOKEN_TCTI
p11 -L >/dev/null 2>&1 || fail "store creation"
free=$(p11 -L 2>/dev/null | awk '/^Slot/ { slot = $3 } /uninitialized/ { print slot; exit }' | tr -d '()')

bus_proxy 12a 1 nvspace
out=$(p11 --slot "$free" --init-token --label bus --so-pin 12345678 2>&1) && fail "init-token fell back: $out"
grep -q "answered TPM_RC_NV_SPACE" "$WORK/proxy.log" || fail "the proxy forged nothing"
grep -q "NV memory is full.*pin_fallback = dictionary-attack" <<<"$out" || fail "refusal not named: $out"
TPMTOKEN_TCTI=$direct p11 -L | grep -q 'token label *: bus' && fail "a token was made"
[ "$(TPMTOKEN_TCTI=$direct tpm getcap handles-nv-index | grep -c '^- 0x13[0-7]')" -eq 0 ] \
  || fail "the index the TPM did define is left: $(TPMTOKEN_TCTI=$direct tpm getcap handles-nv-index)"
pass "a forged TPM_RC_NV_SPACE refuses the PIN with the cause and the setting; no silent fallback"

bus_proxy 17a 1 ownerauth  # the start's owner-exposure check reads the store (tpm_facts.cc)
out=$(p11 --slot "$free" --init-token --label bus --so-pin 12345678 2>&1) && fail "init-token with a forged capability: $out"
grep -q "flipped ownerAuthSet" "$WORK/proxy.log" || fail "the proxy flipped nothing"
grep -q "CKR_DEVICE_ERROR" <<<"$out" || fail "expected CKR_DEVICE_ERROR: $out"
grep -q "response HMAC does not verify" <<<"$out" || fail "the forgery is not named: $out"
pass "a flipped ownerAuthSet bit fails the response HMAC: CKR_DEVICE_ERROR, no fallback"

export TPMTOKEN_CONF="$WORK/tpmtoken.conf"
echo "pin_fallback = dictionary-attack" >"$TPMTOKEN_CONF"
bus_proxy 12a 1 nvspace
out=$(TPMTOKEN_LOG=warn p11 --slot "$free" --init-token --label bus --so-pin 12345678 2>&1) \
  || fail "init-token with pin_fallback: $out"
grep -q "no per-token PIN counter (the TPM's NV memory is full)" <<<"$out" || fail "no warning: $out"
[ "$(TPMTOKEN_TCTI=$direct tpm getcap handles-nv-index | grep -c '^- 0x13[0-7]')" -eq 0 ] \
  || fail "NV index left: $(TPMTOKEN_TCTI=$direct tpm getcap handles-nv-index)"
pass "with pin_fallback = dictionary-attack the fallback is taken, with a warning"
