#!/usr/bin/env bash
# Per-token PIN retry limits enforced by the TPM's PIN_FAIL counters: flags on
# every step, CKR_PIN_LOCKED even with the right PIN, SO unlock, no effect on
# the TPM's global dictionary-attack counter or on another token.
source "$(dirname "$0")/lib.sh"
fixture_start
export TPMTOKEN_CONF="$WORK/tpmtoken.conf"
printf 'user_pin_retries = 4\nso_pin_retries = 3\n' >"$TPMTOKEN_CONF"

init_token locked 12345678 1234
init_token bystander 12345678 1234
flags=$(token_flags locked)
grep -q 'PIN count low' <<<"$flags" && fail "fresh token shows count low: $flags"

for attempt in 1 2 3 4; do
  expect_fail CKR_PIN_INCORRECT p11 --token-label locked --login --pin 0000 -O
  flags=$(token_flags locked)
  grep -q 'user PIN count low' <<<"$flags" || fail "attempt $attempt: no count-low flag: $flags"
  if [ "$attempt" -eq 3 ]; then
    grep -q 'final user PIN try' <<<"$flags" || fail "attempt 3: no final-try flag: $flags"
  else
    grep -q 'final user PIN try' <<<"$flags" && fail "attempt $attempt: early final-try: $flags"
  fi
  if [ "$attempt" -eq 4 ]; then
    grep -q 'user PIN locked' <<<"$flags" || fail "attempt 4: not locked: $flags"
  else
    grep -q 'user PIN locked' <<<"$flags" && fail "attempt $attempt: locked early: $flags"
  fi
done
pass "flags follow the counter"

expect_fail CKR_PIN_LOCKED p11 --token-label locked --login --pin 1234 -O
pass "right PIN refused while locked"

p11 --token-label bystander --login --pin 1234 -O >/dev/null 2>&1 || fail "other token affected"
counter=$(tpm2_getcap -T "$TPMTOKEN_TCTI" properties-variable | awk '/TPM2_PT_LOCKOUT_COUNTER/ { print $2 }')
[ "$counter" = "0x0" ] || fail "global DA counter moved to $counter"
pass "other token and the TPM's DA counter untouched"

p11 --token-label locked --login --login-type so --so-pin 12345678 --init-pin --pin 5555 >/dev/null 2>&1 \
  || fail "SO unlock"
flags=$(token_flags locked)
grep -q 'user PIN' <<<"$flags" && fail "flags after unlock: $flags"
p11 --token-label locked --login --pin 5555 -O >/dev/null 2>&1 || fail "login after unlock"
pass "SO unlocks the user with C_InitPIN"

expect_fail CKR_PIN_INCORRECT p11 --token-label locked --login --pin 0000 -O
p11 --token-label locked --login --pin 5555 -O >/dev/null 2>&1 || fail "login"
grep -q 'count low' <<<"$(token_flags locked)" && fail "a successful login did not reset the counter"
pass "a successful login resets the count"

for attempt in 1 2 3; do
  expect_fail CKR_PIN_INCORRECT p11 --token-label locked --login --login-type so --so-pin 00000000 --session-rw -O
done
grep -q 'SO PIN locked' <<<"$(token_flags locked)" || fail "SO not locked: $(token_flags locked)"
expect_fail CKR_PIN_LOCKED p11 --token-label locked --login --login-type so --so-pin 12345678 --session-rw -O
p11 --token-label locked --login --pin 5555 -O >/dev/null 2>&1 || fail "user login while SO locked"
pass "SO PIN locks independently"
