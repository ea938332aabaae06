#!/usr/bin/env bash
# The tpmtoken tool: token init/list/delete, status, PINs (file, environment,
# prompt-free stdin), key generate/list/delete/import, csr, cert import/list,
# rotation with the old credential working until --finish, exit codes.
source "$(dirname "$0")/lib.sh"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
echo 87654321 >"$WORK/so"
echo 123456 >"$WORK/pin"
expect_exit() {  # expect_exit CODE CMD...
  local want=$1 rc=0
  shift
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "exit $rc (want $want) from $*: $(cat "$WORK/err")"
}

"$T" token init --label device --so-pin-file "$WORK/so" --pin-file "$WORK/pin" >/dev/null || fail "token init"
"$T" --json token list | grep -q '"label":"device"' || fail "token list --json"
"$T" status | grep -q 'device' || fail "status"
"$T" --json status | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["tokens"][0]["user_pin"]=="ok"' \
  || fail "status --json"
expect_exit 2 "$T" token init --label device --so-pin-file "$WORK/so" --pin-file "$WORK/pin"
pass "token init, list, status"

export TPMTOKEN_PIN=123456
"$T" key generate --key device-key >/dev/null || fail "key generate"
"$T" key generate --key rsa-key --type rsa:2048 >/dev/null || fail "key generate rsa"
"$T" --json key list | grep -q '"label":"rsa-key","id":"[0-9a-f]*","type":"rsa:2048","origin":"generated"' \
  || fail "key list --json: $("$T" --json key list)"
expect_exit 3 "$T" csr --key nosuch --subject /CN=x
expect_exit 2 "$T" key generate --key bad --type ec:p192
pass "key generate and list"

"$T" csr --key device-key --subject '/CN=thing-42/O=tpmtoken' --san 'DNS:thing-42.local,IP:127.0.0.1' \
  --out "$WORK/d.csr" || fail "csr"
openssl req -in "$WORK/d.csr" -verify -noout 2>&1 | grep -q 'verify OK' || fail "CSR does not verify"
openssl req -in "$WORK/d.csr" -noout -text | grep -q 'DNS:thing-42.local' || fail "CSR SAN"
"$T" csr --key rsa-key --subject '/CN=rsa-thing' | openssl req -verify -noout 2>&1 | grep -q 'verify OK' \
  || fail "RSA CSR"
make_ca "$WORK"
sign_csr "$WORK/d.csr" "$WORK/d.pem"
expect_exit 2 "$T" cert import --key rsa-key "$WORK/d.pem"
"$T" cert import --key device-key "$WORK/d.pem" >/dev/null || fail "cert import"
"$T" cert list | grep -q 'subject /CN=thing-42/O=tpmtoken.*issuer /CN=test-ca.*expires' || fail "cert list"
p11 --token-label device -O --type cert 2>/dev/null | grep -q 'label: *device-key' || fail "cert not on the token"
pass "csr, cert import, cert list"

# Rotation: the old key signs until --finish; then the label and certificate move.
old_id=$("$T" --json key list | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["label"]=="device-key"][0])')
"$T" rotate --key device-key --out "$WORK/n.csr" 2>/dev/null || fail "rotate"
openssl req -in "$WORK/n.csr" -noout -subject | grep -q 'CN = thing-42' || fail "rotation CSR subject"
expect_exit 2 "$T" rotate --key device-key
echo data >"$WORK/msg"
p11 --token-label device --login --pin 123456 --sign -m ECDSA-SHA256 --label device-key -i "$WORK/msg" \
  -o "$WORK/sig" >/dev/null 2>&1 || fail "the old key stopped working before --finish"
sign_csr "$WORK/n.csr" "$WORK/n.pem"
expect_exit 2 "$T" rotate --key device-key --finish "$WORK/d.pem"
"$T" rotate --key device-key --finish "$WORK/n.pem" >/dev/null || fail "rotate --finish"
new_id=$("$T" --json key list | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["label"]=="device-key"][0])')
[ "$old_id" != "$new_id" ] || fail "the key did not change"
"$T" key list | grep -q 'device-key.next' && fail "the successor label remained"
[ "$("$T" --json cert list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] \
  || fail "expected one certificate after rotation"
p11 --token-label device --read-object --type cert --label device-key -o "$WORK/now.der" >/dev/null 2>&1
[ "$(openssl x509 -inform DER -in "$WORK/now.der" -noout -fingerprint)" = "$(openssl x509 -in "$WORK/n.pem" -noout -fingerprint)" ] \
  || fail "the token does not hold the new certificate"
pass "rotate: old key works until --finish, then label and certificate move in one step"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$WORK/imp.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform DER -out "$WORK/imp.der" 2>/dev/null
"$T" key import --key imported-ec "$WORK/imp.pem" >/dev/null || fail "key import PEM"
"$T" key import --key imported-rsa "$WORK/imp.der" >/dev/null || fail "key import DER"
"$T" key list | grep -q 'imported-ec.*ec:p384.*imported' || fail "imported key listed"
"$T" csr --key imported-rsa --subject /CN=imported | openssl req -verify -noout 2>&1 | grep -q 'verify OK' \
  || fail "imported key signs"
echo "not a key" >"$WORK/junk"
expect_exit 2 "$T" key import --key junk "$WORK/junk"
"$T" key delete --key imported-ec >/dev/null || fail "key delete"
"$T" key list | grep -q imported-ec && fail "key still listed after delete"
pass "key import (PEM and DER), key delete"

unset TPMTOKEN_PIN
expect_exit 4 env TPMTOKEN_PIN=0000 "$T" key list
echo 654321 >"$WORK/new"
"$T" pin change --pin-file "$WORK/pin" --new-pin-file "$WORK/new" >/dev/null || fail "pin change"
expect_exit 4 "$T" key list --pin-file "$WORK/pin"
"$T" key list --pin-file "$WORK/new" >/dev/null || fail "new PIN"
"$T" key list --pin 654321 2>"$WORK/warn" >/dev/null || fail "--pin"
grep -q 'visible to other users' "$WORK/warn" || fail "no warning for a PIN on the command line"
for _ in 1 2 3 4 5 6 7 8 9 10; do
  TPMTOKEN_PIN=0000 "$T" key list >/dev/null 2>&1 && fail "a wrong PIN listed keys"
done
expect_exit 4 "$T" key list --pin-file "$WORK/new"
grep -q 'pin unlock' "$WORK/err" || fail "the locked message does not name the fix: $(cat "$WORK/err")"
"$T" pin unlock --so-pin-file "$WORK/so" --new-pin-file "$WORK/pin" >/dev/null || fail "pin unlock"
"$T" key list --pin-file "$WORK/pin" >/dev/null || fail "login after unlock"
pass "pin change, lockout, pin unlock, PIN sources"

expect_exit 4 "$T" token delete --so-pin 00000000
"$T" token delete --so-pin-file "$WORK/so" >/dev/null || fail "token delete"
"$T" token list | grep -q device && fail "token still listed"
left=$(tpm2_getcap -T "$TPMTOKEN_TCTI" handles-nv-index | count_lines '0x13[0-7]')
[ "$left" = 0 ] || fail "PIN counters left in the TPM after delete"
expect_exit 3 "$T" key list --token device
pass "token delete removes the token and its PIN counters"
