#!/usr/bin/env bash
# PIN limits that hold against the TPM owner (issue 7 item 3). The owner
# authorization (empty here, as on most machines) can no longer rewrite a
# token's PIN counter: tpm2_nvwrite -C o is refused by the TPM. An owner who
# undefines the counter and defines it again with the same public area and an
# auth he knows gets past PolicySecret, but the seal's PIN value is then
# guarded by the TPM's dictionary-attack counter: his guesses are bounded.
# The counter's name and write policy computed by the module are the ones the
# TPM reports.
source "$(dirname "$0")/lib.sh"
fixture_start
H=${BUS_HELPER:?BUS_HELPER must name the bus_helper binary}
tpm() { tpm2_"$1" -T "$TPMTOKEN_TCTI" "${@:2}"; }

init_token bus 12345678 1234
idx=$(tpm getcap handles-nv-index | awk '/^- 0x13[0-7]/ { print $2 }' | tail -1)
[ -n "$idx" ] || fail "no PIN counter: $(tpm getcap handles-nv-index)"

# The module's computed name is the TPM's.
want=$("$H" names "$idx" | head -1)
got=$(tpm nvreadpublic "$idx" | awk '/name:/ { print $2 }')
[ "${got,,}" = "${want,,}" ] || fail "computed name $want, the TPM says $got"
attrs=$(tpm nvreadpublic "$idx" | awk '/friendly: .*nt/ { print $2 }')
[[ $attrs == *policywrite* && $attrs != *ownerwrite* ]] || fail "counter attributes: $attrs"
pass "the PIN counter's computed name matches the TPM's; no ownerwrite"

# Lock the user PIN, then try to reset the counter with the owner auth.
for _ in $(seq 10); do
  p11 --token-label bus --login --pin 9999 -O >/dev/null 2>&1 && fail "a wrong PIN logged in"
done
token_flags bus | grep -q 'user PIN locked' || fail "not locked: $(token_flags bus)"
printf '\0\0\0\0\0\0\0\x0a' >"$WORK/reset"
out=$(tpm nvwrite -C o -i "$WORK/reset" "$idx" 2>&1) && fail "tpm2_nvwrite -C o reset the counter"
grep -q '0x149\|authorization' <<<"$out" || fail "nvwrite refused for another reason: $out"
token_flags bus | grep -q 'user PIN locked' || fail "the counter moved: $(token_flags bus)"
expect_fail CKR_PIN_LOCKED p11 --token-label bus --login --pin 1234 -O
pass "tpm2_nvwrite -C o on a PIN counter is refused by the TPM (NV authorization); still locked"

# Undefine + re-create with a known auth: guesses bounded by the DA limit.
tpm dictionarylockout -s -n 5 -t 600 -l 600 >/dev/null || fail "dictionarylockout setup"
n=$("$H" pin-attack 10) || fail "pin-attack helper"
echo "guesses the TPM allowed on a re-created counter: $n (DA limit 5)"
[ "$n" -le 5 ] || fail "the TPM allowed $n guesses, more than its DA limit of 5"
pass "re-created counter: the TPM allowed $n guesses at the seal's PIN value, then locked out"
