#!/usr/bin/env bash
# A small mutation run on the module's side of the bus (the proxy helper's
# campaign is the big one): 20% of TPM answers mutated at random (fixed seed
# unless BUS_SEED is set) across login, sign, random and PIN changes. No
# client may die of a signal, none may hang past the timeout, and afterwards
# the token is intact: the right PIN logs in, the key signs, no PIN try was
# charged.
source "$(dirname "$0")/lib.sh"
fixture_start
direct=$TPMTOKEN_TCTI
init_token bus 12345678 1234
p11 --token-label bus --login --pin 1234 --keypairgen --key-type EC:prime256v1 --label k --id 01 \
  >/dev/null 2>&1 || fail "keypairgen"
seed=${BUS_SEED:-4711}
bus_proxy "$seed" "${BUS_RATE:-20}" fuzz
export TPMTOKEN_TPM_TIMEOUT=3
printf 'data to sign' >"$WORK/msg"
ops=0 failed=0
for i in $(seq ${BUS_OPS:-60}); do
  case $((i % 4)) in
    0) set -- --token-label bus --login --pin 1234 -O ;;
    1) set -- --token-label bus --login --pin 1234 --sign --mechanism ECDSA --id 01 --input-file "$WORK/msg" ;;
    2) set -- --token-label bus --generate-random 16 ;;
    3) set -- -T ;;
  esac
  rc=0
  timeout 20 pkcs11-tool --module "$MODULE" "$@" >/dev/null 2>>"$WORK/errors" || rc=$?
  [ "$rc" -ne 124 ] || fail "operation $i hung past the timeout"
  [ "$rc" -lt 128 ] || fail "operation $i died of signal $((rc - 128))"
  ops=$((ops + 1)); [ "$rc" -eq 0 ] || failed=$((failed + 1))
done
echo "operations: $ops, failed under mutation: $failed, mutations: $(grep -c '^fuzz' "$WORK/proxy.log")"
export TPMTOKEN_TCTI=$direct
p11 --token-label bus --login --pin 1234 --sign --mechanism ECDSA --id 01 --input-file "$WORK/msg" \
  >/dev/null 2>&1 || fail "the key does not sign afterwards"
token_flags bus | grep -q 'count low' && fail "a PIN try was charged: $(token_flags bus)"
pass "$ops operations with ${BUS_RATE:-20}% of answers mutated: no crash, no hang, token intact, no PIN try charged"
