#!/usr/bin/env bash
# Issue 9 item 2, the per-key boot binding: a key generated with
# `tpmtoken key generate --pcr-policy sha256:16` (CKA_TPMTOKEN_PCR_POLICY)
# signs while PCR 16 holds its value; once it is extended the TPM refuses
# the key (TPM_RC_POLICY_FAIL) and C_Sign returns
# CKR_KEY_FUNCTION_NOT_PERMITTED with a log line naming the PCRs; after the
# PCR is reset (locality 0 may reset PCR 16: it stands in for a reboot into
# the same boot state) the key signs again. A key beside it with no binding
# signs throughout (the refusal is the binding's, not the TPM's state).
source "$(dirname "$0")/lib.sh"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
T_() { tpm2_"$1" -T "$TPMTOKEN_TCTI" "${@:2}" >/dev/null 2>&1 || fail "tpm2_$1 ${*:2}"; }
echo 87654321 >"$WORK/so"
echo 123456 >"$WORK/pin"
"$T" token init --label bound --so-pin-file "$WORK/so" --pin-file "$WORK/pin" >/dev/null \
  || fail "token init"
export TPMTOKEN_PIN=123456
expect_fail 'pcr-policy' "$T" key generate --key bad --pcr-policy sha256:99
"$T" key generate --key boot-key --pcr-policy sha256:16 >"$WORK/boot.out" \
  || fail "key generate --pcr-policy"
grep -q "bound to PCRs sha256:16" "$WORK/boot.out" || fail "generate said: $(cat "$WORK/boot.out")"
"$T" key generate --key free-key >"$WORK/free.out" || fail "key generate"
unset TPMTOKEN_PIN
echo "boot state" >"$WORK/msg"
# The key by its CKA_ID (from the generate line): pkcs11-tool may not select by label.
id_of() { sed -n 's/.*, id \([0-9a-f]*\).*/\1/p' "$WORK/$1.out"; }
sign() {
  p11 --token-label bound --login --pin 123456 --sign --id "$(id_of "$1")" --mechanism ECDSA-SHA256 \
    -i "$WORK/msg" -o "$WORK/sig" 2>&1
}
out=$(sign boot) || fail "sign while PCR 16 holds its value: $out"
pass "a key bound to PCR 16 signs while the PCR holds its value"

T_ pcrextend "16:sha256=$(printf '%064d' 7)"
out=$(sign boot) && fail "the bound key signed after PCR 16 changed: $out"
grep -q 'CKR_KEY_FUNCTION_NOT_PERMITTED' <<<"$out" || fail "expected CKR_KEY_FUNCTION_NOT_PERMITTED: $out"
grep -q 'bound to PCRs sha256:16' <<<"$out" || fail "log line does not name the PCRs: $out"
grep -q 'boot state changed' <<<"$out" || fail "log line does not name the cause: $out"
out=$(sign free) || fail "an unbound key was refused too: $out"
pass "after PCR 16 changed the TPM refuses the bound key with CKR_KEY_FUNCTION_NOT_PERMITTED"

T_ pcrreset 16
out=$(sign boot) || fail "sign after PCR 16 was reset: $out"
pass "the bound key signs again once PCR 16 is back"
