#!/usr/bin/env bash
# A TPM whose owner hierarchy has a password the module does not know, with a
# storage key the platform persisted (primary_handle): the module uses that
# key, cannot define per-token PIN counters, and falls back to seals that the
# TPM's dictionary-attack counter protects (DESIGN.md), saying so in
# `tpmtoken status`. Wrong PINs count there, the flags follow it, a lockout
# refuses even the right PIN and clearing it restores the token. With the
# right owner_auth, new PINs get per-token counters again; a wrong owner_auth
# is named.
source "$(dirname "$0")/lib.sh"
swtpm_only "this test sets an owner password and changes the lockout settings"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
export TPMTOKEN_CONF="$WORK/tpmtoken.conf"
tpm() { tpm2_"$1" -T "$TPMTOKEN_TCTI" "${@:2}"; }
da_failures() { echo $(( $(tpm getcap properties-variable | awk '/TPM2_PT_LOCKOUT_COUNTER/ { print $2 }') )); }
nv_count() { tpm getcap handles-nv-index | count_lines '^- 0x13[0-7]'; }  # PIN counters (anchors: 0x138xxxx)

tpm dictionarylockout -s -n 4 -t 600 -l 600 >/dev/null || fail "dictionarylockout setup"
tpm changeauth -c o owner-secret >/dev/null || fail "changeauth owner"

# Without a persistent storage key the module cannot make its own.
echo "pin_fallback = dictionary-attack" >"$TPMTOKEN_CONF"
expect_fail 'refused the owner authorization' p11 -L

# A storage key as TCG provisioning makes it (noda: usable in a lockout).
tpm createprimary -C o -P owner-secret -G ecc256:aes128cfb -c "$WORK/srk.ctx" \
  -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' >/dev/null \
  || fail "createprimary"
tpm evictcontrol -C o -P owner-secret -c "$WORK/srk.ctx" 0x81000001 >/dev/null || fail "evictcontrol"
tpm flushcontext -t >/dev/null
printf 'pin_fallback = dictionary-attack\nprimary_handle = 0x81000002\n' >"$TPMTOKEN_CONF"
expect_fail 'primary_handle 0x81000002 holds no key' p11 -L
printf 'pin_fallback = dictionary-attack\nprimary_handle = 0x40000001\n' >"$TPMTOKEN_CONF"
expect_fail 'must be a persistent handle' p11 -L
pass "an unknown owner password and a wrong primary_handle are named"

# Without pin_fallback the owner password refuses the PIN, naming the setting.
echo "primary_handle = 0x81000001" >"$TPMTOKEN_CONF"
free=$(p11 -L 2>/dev/null | awk '/^Slot/ { slot = $3 } /uninitialized/ { print slot; exit }' | tr -d '()')
expect_fail 'owner hierarchy has a password.*pin_fallback = dictionary-attack' \
  p11 --slot "$free" --init-token --label fallback --so-pin 12345678
pass "without pin_fallback the DA fallback is refused with the cause and the setting"
printf 'pin_fallback = dictionary-attack\nprimary_handle = 0x81000001\n' >"$TPMTOKEN_CONF"
init_token fallback 12345678 1234
[ "$(nv_count)" -eq 0 ] || fail "PIN counters were defined: $(tpm getcap handles-nv-index)"
"$T" status | grep -q 'FALLBACK' || fail "status does not show the fallback: $("$T" status)"
"$T" --json status | python3 -c '
import json, sys
t = json.load(sys.stdin)["tokens"][0]
assert t["pin_counter"] == "dictionary-attack", t' || fail "status --json pin_counter"
printf 'secret-payload' >"$WORK/data"
p11 --token-label fallback --login --pin 1234 --write-object "$WORK/data" --type data --label kept \
  --private >/dev/null 2>&1 || fail "write private object"
pass "token on a persistent storage key with DA-protected PIN seals; status says so"

[ "$(da_failures)" -eq 0 ] || fail "DA counter not 0 before wrong PINs: $(da_failures)"
expect_fail CKR_PIN_INCORRECT p11 --token-label fallback --login --pin 9999 -O
[ "$(da_failures)" -eq 1 ] || fail "a wrong PIN did not reach the DA counter: $(da_failures)"
token_flags fallback | grep -q 'user PIN count low' || fail "flags after one: $(token_flags fallback)"
expect_fail CKR_PIN_INCORRECT p11 --token-label fallback --login --pin 9999 -O
expect_fail CKR_PIN_INCORRECT p11 --token-label fallback --login --pin 9999 -O
token_flags fallback | grep -q 'final user PIN try' || fail "flags after three: $(token_flags fallback)"
expect_fail CKR_PIN_INCORRECT p11 --token-label fallback --login --pin 9999 -O
token_flags fallback | grep -q 'user PIN locked' || fail "flags in lockout: $(token_flags fallback)"
expect_fail CKR_PIN_LOCKED p11 --token-label fallback --login --pin 1234 -O
expect_fail 'dictionary-attack lockout' p11 --token-label fallback --login --pin 1234 -O
pass "wrong PINs count on the TPM's DA counter; the flags follow it; lockout refuses the right PIN"

tpm dictionarylockout -c >/dev/null || fail "clearing the lockout"
p11 --token-label fallback --login --pin 1234 --read-object --type data --label kept 2>/dev/null \
  | grep -q secret-payload || fail "private object after clearing the lockout"
p11 --token-label fallback --login --pin 1234 --change-pin --new-pin 4321 >/dev/null 2>&1 || fail "change-pin"
expect_fail CKR_PIN_INCORRECT p11 --token-label fallback --login --pin 1234 -O
p11 --token-label fallback --login --pin 4321 --read-object --type data --label kept 2>/dev/null \
  | grep -q secret-payload || fail "new PIN"
tpm dictionarylockout -c >/dev/null
pass "after the lockout is cleared the token and its objects are back; C_SetPIN works"

printf 'pin_fallback = dictionary-attack\nprimary_handle = 0x81000001\nowner_auth = not-the-password\n' >"$TPMTOKEN_CONF"
out=$(p11 --token-label fallback --login --login-type so --so-pin 12345678 --init-pin --pin 5555 2>&1) \
  && fail "init-pin with a wrong owner_auth succeeded"
grep -q 'refused owner_auth' <<<"$out" || fail "a wrong owner_auth is not named: $out"
p11 --token-label fallback --login --pin 4321 -O >/dev/null 2>&1 || fail "the old PIN stopped working"
tpm dictionarylockout -c >/dev/null || fail "clearing the dictionary-attack lockout"

printf 'pin_fallback = dictionary-attack\nprimary_handle = 0x81000001\nowner_auth = owner-secret\n' >"$TPMTOKEN_CONF"
p11 --token-label fallback --login --login-type so --so-pin 12345678 --init-pin --pin 5555 >/dev/null 2>&1 \
  || fail "init-pin with the right owner_auth"
[ "$(nv_count)" -eq 1 ] || fail "expected one PIN counter: $(tpm getcap handles-nv-index)"
before=$(da_failures)
expect_fail CKR_PIN_INCORRECT p11 --token-label fallback --login --pin 9999 -O
[ "$(da_failures)" -eq "$before" ] || fail "a wrong PIN on a per-token counter reached the DA counter"
p11 --token-label fallback --login --pin 5555 --read-object --type data --label kept 2>/dev/null \
  | grep -q secret-payload || fail "login with the new per-token PIN"
pass "with owner_auth the user PIN gets a per-token counter again; a wrong owner_auth is named"

# The per-token counter is read with the owner authorization (C_GetTokenInfo's
# flags): a wrong owner_auth there is named as such, not as an altered answer.
printf 'pin_fallback = dictionary-attack\nprimary_handle = 0x81000001\nowner_auth = not-the-password\n' >"$TPMTOKEN_CONF"
out=$(p11 -L 2>&1)
grep -q "PIN counter.*refused the owner authorization (set owner_auth" <<<"$out" ||
  fail "a wrong owner_auth at the PIN counter's read is not named: $out"
grep -q "altered on the way" <<<"$out" && fail "a wrong owner_auth reported as an altered answer: $out"
printf 'pin_fallback = dictionary-attack\nprimary_handle = 0x81000001\nowner_auth = owner-secret\n' >"$TPMTOKEN_CONF"
pass "a wrong owner_auth at the PIN counter's read (C_GetTokenInfo) is named"

# A DA lockout (here from wrong SO PINs, whose seal is still the fallback)
# leaves the store key working (NODA: the token is listed, public objects
# read), but now also blocks the per-token user PIN, whose seal is
# DA-protected so that a re-created counter cannot give unlimited guesses
# (README: Why it is safe); clearing the lockout restores it. A wrong user
# PIN still counts only on the token's counter.
for _ in 1 2 3 4; do
  expect_fail CKR_PIN_INCORRECT p11 --token-label fallback --login --login-type so --so-pin 99999999 --init-pin --pin 5555
done
expect_fail CKR_PIN_LOCKED p11 --token-label fallback --login --login-type so --so-pin 12345678 --init-pin --pin 5555
p11 -L 2>/dev/null | grep -q 'token label *: fallback' || fail "the store key stopped working in a DA lockout"
expect_fail 'dictionary-attack lockout' p11 --token-label fallback --login --pin 5555 -O
tpm dictionarylockout -c >/dev/null || fail "clearing the lockout"
before=$(da_failures)
expect_fail CKR_PIN_INCORRECT p11 --token-label fallback --login --pin 9999 -O
[ "$(da_failures)" -eq "$before" ] || fail "a wrong per-token PIN reached the DA counter"
p11 --token-label fallback --login --pin 5555 --read-object --type data --label kept 2>/dev/null \
  | grep -q secret-payload || fail "the per-token user PIN after clearing the lockout"
pass "a DA lockout blocks DA-protected PIN seals until cleared; the store key keeps working"
