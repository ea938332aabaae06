#!/usr/bin/env bash
# The owner authorization never crosses the bus (issue 8, smaller items):
# with an owner password and no persistent storage key, the module creates
# its storage primary and PIN counters with HMAC authorizations, never a
# password session. A passive bus log of token init, PIN init, login,
# random generation and a PIN change holds neither the owner password nor
# the PINs.
source "$(dirname "$0")/lib.sh"
fixture_start
tpm() { tpm2_"$1" -T "$TPMTOKEN_TCTI" "${@:2}"; }
tpm changeauth -c o owner-pass-4711 >/dev/null || fail "changeauth owner"
export TPMTOKEN_CONF="$WORK/tpmtoken.conf"
echo "owner_auth = owner-pass-4711" >"$TPMTOKEN_CONF"
direct=$TPMTOKEN_TCTI
bus_proxy 0 0 log

init_token bus 87654321 246813
p11 --token-label bus --login --pin 246813 --generate-random 32 >/dev/null 2>&1 || fail "login + random"
p11 --token-label bus --login --pin 246813 --change-pin --new-pin 135792 >/dev/null 2>&1 || fail "change-pin"
p11 --token-label bus --login --pin 135792 -O >/dev/null 2>&1 || fail "login with the new PIN"
[ "$(tpm2_getcap -T "$direct" handles-nv-index | grep -c '^- 0x13[0-7]')" -eq 2 ] \
  || fail "expected two PIN counters"
bus="$WORK/proxy.port.bus"
[ -s "$bus" ] || fail "no bus log"
for secret in owner-pass-4711 87654321 246813 135792; do
  grep -qa -- "$secret" "$bus" && fail "'$secret' crossed the bus in clear"
done
pass "owner password and PINs never on the bus ($(stat -c %s "$bus") bytes logged); per-token counters made with the owner password"
