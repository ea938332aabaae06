#!/usr/bin/env bash
# GnuTLS with the token's keys (--provider names the module): `certtool
# --generate-request` signs a CSR with a pkcs11: key (RSA and EC), and
# `gnutls-cli` does mutual TLS 1.3 and 1.2 against `openssl s_server -Verify`
# with the client key on the token. Refusals, each for its reason: a wrong
# PIN (GnuTLS: "Wrong PIN has been provided", its reading of CKR_PIN_INCORRECT), and the token key with a certificate of
# another key (the server answers "decrypt error": the handshake signature
# does not match the certificate).
source "$(dirname "$0")/client_lib.sh"
need certtool gnutls-bin
need gnutls-cli gnutls-bin
client_token
make_ca "$WORK"

printf 'cn = "thing-%s"\n' rsa >"$WORK/rsa.tmpl"
printf 'cn = "thing-%s"\n' ec >"$WORK/ec.tmpl"
for k in rsa ec; do
  GNUTLS_PIN=1234 certtool --provider "$MODULE" --generate-request \
    --load-privkey "pkcs11:token=device;object=$k-key;type=private" --template "$WORK/$k.tmpl" \
    --outfile "$WORK/$k.csr" >"$WORK/certtool.log" 2>&1 || fail "certtool $k CSR: $(tail -3 "$WORK/certtool.log")"
  openssl req -in "$WORK/$k.csr" -verify -noout 2>/dev/null || fail "the $k CSR's signature does not verify"
  sign_csr "$WORK/$k.csr" "$WORK/$k.pem"
done
# The CSR carries the token's public key.
p11 --token-label device --read-object --type pubkey --id 01 -o "$WORK/ec.pub.der" >/dev/null 2>&1
[ "$(openssl req -in "$WORK/ec.csr" -pubkey -noout)" = "$(openssl pkey -pubin -inform DER -in "$WORK/ec.pub.der")" ] \
  || fail "the EC CSR does not carry the token's key"
pass "certtool signs CSRs with the token's RSA and EC keys (verified by OpenSSL)"

# wrong PIN: certtool says why.
if out=$(GNUTLS_PIN=9999 certtool --provider "$MODULE" --generate-request \
  --load-privkey "pkcs11:token=device;object=ec-key;type=private" --template "$WORK/ec.tmpl" 2>&1); then
  fail "certtool signed with a wrong PIN"
fi
grep -q 'Wrong PIN has been provided' <<<"$out" || fail "certtool with a wrong PIN: $out"
pass "refused: certtool with a wrong PIN (CKR_PIN_INCORRECT)"

port=$(free_port_pair)
tls_server "$port"
connect() {  # connect PRIORITY KEY-LABEL CERT: one HTTP request; prints the output
  printf 'GET / HTTP/1.0\r\n\r\n' | GNUTLS_PIN=1234 timeout 60 gnutls-cli --provider "$MODULE" \
    --priority "$1" --x509cafile "$WORK/ca.pem" --x509certfile "$3" \
    --x509keyfile "pkcs11:token=device;object=$2;type=private" -p "$port" 127.0.0.1 2>&1
}
for k in rsa ec; do
  out=$(connect 'NORMAL:-VERS-ALL:+VERS-TLS1.3' "$k-key" "$WORK/$k.pem") || fail "$k TLS 1.3: $out"
  grep -q -- '- Description: (TLS1.3' <<<"$out" && grep -q 'Protocol  *: TLSv1.3' <<<"$out" \
    || fail "$k TLS 1.3: $out"
  out=$(connect 'NORMAL:-VERS-ALL:+VERS-TLS1.2' "$k-key" "$WORK/$k.pem") || fail "$k TLS 1.2: $out"
  grep -q -- '- Description: (TLS1.2' <<<"$out" && grep -q 'Protocol  *: TLSv1.2' <<<"$out" \
    || fail "$k TLS 1.2: $out"
done
pass "gnutls-cli mutual TLS 1.3 and 1.2 with the token's RSA and EC keys"

# Without --provider GnuTLS takes the modules p11-kit knows; as root p11-kit
# reads only the system's module directory, so a private mount namespace
# puts tpmtoken's module file there.
if p11kit_isolated true 2>/dev/null; then
  out=$(printf 'GET / HTTP/1.0\r\n\r\n' | GNUTLS_PIN=1234 p11kit_isolated timeout 60 gnutls-cli \
    --x509cafile "$WORK/ca.pem" --x509certfile "$WORK/ec.pem" \
    --x509keyfile "pkcs11:token=device;object=ec-key;type=private" -p "$port" 127.0.0.1 2>&1) \
    || fail "gnutls-cli through p11-kit's module list: $out"
  grep -q 'Protocol  *: TLSv1.3' <<<"$out" || fail "gnutls-cli through p11-kit's module list: $out"
  pass "gnutls-cli finds the token through p11-kit's module list (no --provider)"
else
  echo "not checked: gnutls-cli through p11-kit's module list (unshare -m needs root)"
fi

# The token's RSA key with a certificate for another RSA key.
openssl req -newkey rsa:2048 -nodes -subj /CN=other -keyout "$WORK/other.key" -out "$WORK/other.csr" 2>/dev/null
sign_csr "$WORK/other.csr" "$WORK/other.pem"
if out=$(connect 'NORMAL:-VERS-ALL:+VERS-TLS1.3' rsa-key "$WORK/other.pem"); then
  grep -q 'Protocol  *: TLSv1.3' <<<"$out" && fail "handshake with a certificate of another key succeeded"
fi
# TLS 1.3 client authentication completes on the client's side; the server
# then checks CertificateVerify against the certificate and sends alert 51.
grep -q 'Received alert \[51\]: Decrypt error' <<<"$out" || fail "a certificate of another key: $out"
pass "refused: the token key with another key's certificate"
