#!/usr/bin/env bash
# Issue 7 item 3 (the module's side): the warning when the owner
# authorization is empty and the store is bound to no PCRs (status and one
# line at C_Initialize), and `tpmtoken token delete --owner`, the way out of
# a locked SO PIN: it needs the TPM owner authorization, and takes the
# token's PIN counters with it.
source "$(dirname "$0")/lib.sh"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
tpm() { tpm2_"$1" -T "$TPMTOKEN_TCTI" "${@:2}"; }
# A persistent storage key, so the module needs no owner authorization to
# start once the owner has a password.
tpm createprimary -C o -G ecc256:aes128cfb -c "$WORK/primary.ctx" >/dev/null || fail "createprimary"
tpm evictcontrol -C o -c "$WORK/primary.ctx" 0x81000001 >/dev/null || fail "evictcontrol"
tpm flushcontext -t >/dev/null || fail "flushcontext"
conf() { printf 'so_pin_retries = 3\nprimary_handle = 0x81000001\n%s\n' "${1:-}" >"$WORK/tpmtoken.conf"; }
conf
export TPMTOKEN_CONF="$WORK/tpmtoken.conf"
init_token victim 87654321 1234
init_token other 11223344 5678

"$T" status | grep -q "^WARNING .*owner authorization is empty .*pcr_policy" \
  || fail "status does not warn: $("$T" status)"
out=$(TPMTOKEN_LOG=warn p11 -L 2>&1)
[ "$(grep -c "owner authorization is empty" <<<"$out")" -eq 1 ] || fail "C_Initialize: want one warning line: $out"
pass "empty owner authorization without PCR binding: status and C_Initialize warn"

for _ in 1 2 3; do
  p11 --token-label victim --session-rw --login --login-type so --so-pin 00000000 -O >/dev/null 2>&1 \
    && fail "a wrong SO PIN logged in"
done
token_flags victim | grep -q "SO PIN locked" || fail "the SO PIN did not lock: $(token_flags victim)"
before=$(tpm getcap handles-nv-index | grep -c '0x13[0-7]')

# With an owner password the module does not know, the TPM refuses: nothing goes.
tpm changeauth -c o ownerpw >/dev/null || fail "changeauth"
rc=0
"$T" token delete --token victim --owner >"$WORK/out" 2>&1 || rc=$?
[ "$rc" -eq 4 ] && grep -q "refused the owner authorization" "$WORK/out" || fail "token delete --owner without the owner auth: $rc $(cat "$WORK/out")"
"$T" token list | grep -q victim || fail "the token went without the owner authorization"
"$T" status | grep -q "^WARNING" && fail "status warns although the owner has a password"

conf "owner_auth = ownerpw"
"$T" token delete --token victim --owner >"$WORK/out" 2>&1 || fail "token delete --owner: $(cat "$WORK/out")"
"$T" token list | grep -q victim && fail "token still listed"
after=$(tpm getcap handles-nv-index | grep -c '0x13[0-7]')
[ "$after" -eq $((before - 2)) ] || fail "PIN counters: $before before, $after after (want 2 fewer)"
p11 --token-label other --login --pin 5678 -O >/dev/null 2>&1 || fail "the other token suffered"
pass "token delete --owner: refused without the owner authorization; with it, the token and its counters go"
