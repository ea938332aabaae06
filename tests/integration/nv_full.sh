#!/usr/bin/env bash
# A TPM whose NV memory is full: C_InitToken still works, its PIN roles fall
# back to DA-protected seals with a warning naming the cause, `tpmtoken
# status` says so, and once NV has room again a new PIN gets a per-token
# counter.
source "$(dirname "$0")/lib.sh"
swtpm_only "this test fills the NV memory"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
tpm() { tpm2_"$1" -T "$TPMTOKEN_TCTI" "${@:2}"; }

# Fill NV with indices outside tpmtoken's range, large ones first.
n=0
for size in 2048 512 64 8; do
  while tpm nvdefine -C o -s "$size" $((0x01500000 + n)) >/dev/null 2>&1; do n=$((n + 1)); done
done
[ "$n" -gt 0 ] || fail "could not define any NV index"
tpm nvdefine -C o -s 8 -a 'ownerread|ownerwrite|no_da|nt=pinfail' 0x01700000 >/dev/null 2>&1 \
  && fail "NV still has room for a PIN counter after $n indices"

free=$(p11 -L 2>/dev/null | awk '/^Slot/ { slot = $3 } /uninitialized/ { print slot; exit }' | tr -d '()')
# Without pin_fallback the fallback is refused, naming the cause and the setting.
out=$(p11 --slot "$free" --init-token --label full --so-pin 12345678 2>&1) \
  && fail "init-token fell back to the DA seal without pin_fallback"
grep -q "NV memory is full.*pin_fallback = dictionary-attack" <<<"$out" || fail "refusal not named: $out"
[ "$(tpm getcap handles-nv-index | grep -c "0x13[0-7]")" -eq 0 ] || fail "a refused init left a PIN counter"
pass "without pin_fallback a full NV refuses the PIN, naming the cause and the setting"
export TPMTOKEN_CONF="$WORK/tpmtoken.conf"
echo "pin_fallback = dictionary-attack" >"$TPMTOKEN_CONF"
out=$(TPMTOKEN_LOG=warn p11 --slot "$free" --init-token --label full --so-pin 12345678 2>&1) \
  || fail "init-token on a TPM with full NV: $out"
grep -q "NV memory is full" <<<"$out" || fail "no warning names the cause: $out"
p11 --token-label full --login --login-type so --so-pin 12345678 --init-pin --pin 1234 >/dev/null 2>&1 \
  || fail "init-pin"
"$T" status | grep -q FALLBACK || fail "status: $("$T" status)"
p11 --token-label full --login --pin 1234 -O >/dev/null 2>&1 || fail "login"
expect_fail CKR_PIN_INCORRECT p11 --token-label full --login --pin 9999 -O
token_flags full | grep -q 'user PIN count low' || fail "flags: $(token_flags full)"
tpm dictionarylockout -c >/dev/null
pass "full NV: the token falls back to DA-protected PIN seals, with a warning and in status"

tpm nvundefine -C o $((0x01500000)) >/dev/null || fail "nvundefine"
p11 --token-label full --login --login-type so --so-pin 12345678 --init-pin --pin 4321 >/dev/null 2>&1 \
  || fail "init-pin after freeing NV"
[ "$(tpm getcap handles-nv-index | grep -c '0x13[0-7]')" -eq 1 ] || fail "no PIN counter in tpmtoken's range"
"$T" --json status | python3 -c '
import json, sys
t = json.load(sys.stdin)["tokens"][0]
assert t["pin_counter"] == "dictionary-attack", t  # the SO role is still the fallback
' || fail "status --json"
expect_fail CKR_PIN_INCORRECT p11 --token-label full --login --pin 9999 -O
[ "$(( $(tpm getcap properties-variable | awk '/TPM2_PT_LOCKOUT_COUNTER/ { print $2 }') ))" -eq 0 ] \
  || fail "a wrong user PIN reached the DA counter after the user PIN got its own counter"
p11 --token-label full --login --pin 4321 -O >/dev/null 2>&1 || fail "login with the new PIN"
pass "with room in NV again the new user PIN gets a per-token counter"
