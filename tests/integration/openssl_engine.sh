#!/usr/bin/env bash
# OpenSSL 3 with the libp11 engine (Debian's libengine-pkcs11-openssl) signs
# with TPM keys: self-signed certificates and CSRs for EC and RSA keys by
# object label and by id, the PIN in the URI or in openssl.cnf, and
# dgst -sign; everything verifies with the public key. The engine makes
# itself OpenSSL's default for RSA and EC, so this also checks that nothing
# the module does with OpenSSL loops back into it.
source "$(dirname "$0")/lib.sh"
fixture_start
enginesdir=${OPENSSL_ENGINES:-$(openssl version -e | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')}
[ -f "$enginesdir/pkcs11.so" ] \
  || skip "the libp11 engine is not installed ($enginesdir/pkcs11.so; Debian package libengine-pkcs11-openssl)"
init_token device 12345678 1234
p11 --token-label device --login --pin 1234 --keypairgen --key-type EC:prime256v1 --label ec-key --id 01 \
  >/dev/null 2>&1 || fail "EC keypairgen"
p11 --token-label device --login --pin 1234 --keypairgen --key-type rsa:2048 --label rsa-key --id 02 \
  >/dev/null 2>&1 || fail "RSA keypairgen"

conf() { engine_conf "$WORK/openssl.cnf" "$1"; }
conf ""
export OPENSSL_CONF="$WORK/openssl.cnf"
eng=(-engine pkcs11 -keyform engine)

for k in ec rsa; do
  uri="pkcs11:token=device;object=$k-key;type=private;pin-value=1234"
  timeout 60 openssl req -new -x509 "${eng[@]}" -key "$uri" -subj "/CN=thing-$k/O=tpmtoken" -days 2 \
    -out "$WORK/$k.pem" 2>"$WORK/req.err" || fail "$k: self-signed certificate: $(cat "$WORK/req.err")"
  openssl verify -CAfile "$WORK/$k.pem" "$WORK/$k.pem" >/dev/null || fail "$k: certificate does not verify"
  timeout 60 openssl req -new "${eng[@]}" -key "$uri" -subj "/CN=csr-$k" -out "$WORK/$k.csr" 2>/dev/null \
    || fail "$k: CSR"
  openssl req -in "$WORK/$k.csr" -verify -noout 2>&1 | grep -q 'verify OK' || fail "$k: CSR signature"
done
pass "self-signed certificates and CSRs with EC and RSA TPM keys"

echo "telemetry" >"$WORK/msg"
openssl x509 -in "$WORK/rsa.pem" -pubkey -noout >"$WORK/rsa.pub"
timeout 60 openssl dgst -sha256 "${eng[@]}" -sign "pkcs11:token=device;id=%02;type=private;pin-value=1234" \
  -out "$WORK/sig" "$WORK/msg" 2>/dev/null || fail "dgst -sign by id"
openssl dgst -sha256 -verify "$WORK/rsa.pub" -signature "$WORK/sig" "$WORK/msg" >/dev/null \
  || fail "dgst signature does not verify"
pass "dgst -sign by id"

# The PIN from the engine section of openssl.cnf instead of the URI.
conf "PIN = 1234"
timeout 60 openssl req -new -x509 "${eng[@]}" -key "pkcs11:token=device;object=ec-key;type=private" \
  -subj "/CN=pin-from-conf" -days 1 -out "$WORK/conf.pem" 2>/dev/null || fail "PIN from openssl.cnf"
openssl verify -CAfile "$WORK/conf.pem" "$WORK/conf.pem" >/dev/null || fail "conf certificate"
pass "PIN from openssl.cnf"

# A wrong PIN fails cleanly.
conf ""
if timeout 60 openssl req -new -x509 "${eng[@]}" -key "pkcs11:token=device;object=ec-key;type=private;pin-value=9999" \
  -subj "/CN=x" -days 1 -out "$WORK/bad.pem" 2>/dev/null; then
  fail "signed with a wrong PIN"
fi
pass "wrong PIN refused"
