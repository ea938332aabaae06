#!/usr/bin/env bash
# OpenSSL 3 through pkcs11-provider 1.2.0 (not packaged in Debian 12; built
# here from ../shared/third_party beside the repository, once per build
# directory): `openssl pkeyutl -sign` with RSA PKCS#1 v1.5, RSA-PSS and ECDSA
# keys on the token, verified by plain OpenSSL; `openssl req -new` with a
# pkcs11: key; `openssl s_client` mutual TLS 1.3 (RSA and EC) against
# `s_server -Verify`; ECDH derive equal to OpenSSL's. All of it twice: with
# the default provider activated first, and with pkcs11 activated before
# default (the module must not be re-entered through it). Refusals, each for
# its reason: a wrong PIN (CKR_PIN_INCORRECT in the provider's debug log),
# and ECDSA
# signatures that a changed message does not verify.
source "$(dirname "$0")/client_lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${SHARED_DIR:-$root/../shared}
tarball=$shared/third_party/pkcs11-provider-1.2.0.tar.gz
[ -f "$tarball" ] || skip "no $tarball (a plain clone has no ../shared beside it): pkcs11-provider cannot be built"
command -v meson >/dev/null && command -v ninja >/dev/null || skip "meson and ninja are needed to build pkcs11-provider"

# Build once per build directory (BUILD_ROOT from meson), under a lock.
build=${BUILD_ROOT:-$WORK}/p11prov
provider=$build/build/src/pkcs11.so
mkdir -p "$build"
(
  flock 9
  if [ ! -f "$provider" ]; then
    rm -rf "$build/src" "$build/build"
    mkdir "$build/src"
    tar xzf "$tarball" -C "$build/src" --strip-components=1
    { meson setup "$build/build" "$build/src" && meson compile -C "$build/build"; } >"$build/build.log" 2>&1 \
      || { echo "FAIL: building pkcs11-provider (see $build/build.log): $(tail -5 "$build/build.log")" >&2; exit 1; }
  fi
) 9>"$build/.lock" || exit 1
[ -f "$provider" ] || fail "pkcs11-provider did not build: $provider is missing"

client_token
client_certs
for k in rsa ec; do openssl x509 -in "$WORK/$k.pem" -pubkey -noout >"$WORK/$k.pub.pem"; done
echo 1234 >"$WORK/pin"
echo 9999 >"$WORK/wrong-pin"

# provider_conf FILE ORDER PINFILE: ORDER is "default pkcs11" or "pkcs11 default".
# With pkcs11 first, OpenSSL fetches every algorithm from it first, digests
# included: TLS keeps transcript hashes it frees without finishing, and
# pkcs11-provider 1.2.0 returns such a session to its pool with the digest
# still active, so the next C_DigestInit there is CKR_OPERATION_ACTIVE (as
# PKCS#11 says). Blocking digests sends them to the default provider, as
# pkcs11-provider's own "forcing the provider" TLS test does.
provider_conf() {
  local first second
  read -r first second <<<"$2"
  cat >"$1" <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
$first = ${first}_sect
$second = ${second}_sect
[default_sect]
activate = 1
[pkcs11_sect]
module = $provider
pkcs11-module-path = $MODULE
pkcs11-module-token-pin = file:$3
$([ "$first" = pkcs11 ] && echo "pkcs11-module-block-operations = digest")
activate = 1
CNF
}

printf 'signed through pkcs11-provider\n' >"$WORK/msg"
openssl dgst -sha256 -binary "$WORK/msg" >"$WORK/msg.sha256"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/peer.key" 2>/dev/null
openssl pkey -in "$WORK/peer.key" -pubout -out "$WORK/peer.pub.pem"
openssl pkeyutl -derive -inkey "$WORK/peer.key" -peerkey "$WORK/ec.pub.pem" -out "$WORK/z.openssl" || fail "OpenSSL ECDH"
port=$(free_port_pair)
tls_server "$port"
uri() { echo "pkcs11:token=device;object=$1;type=private"; }

for order in "default pkcs11" "pkcs11 default"; do
  tag=${order%% *}-first
  provider_conf "$WORK/$tag.cnf" "$order" "$WORK/pin"
  P() { OPENSSL_CONF="$WORK/$tag.cnf" timeout 60 openssl "$@"; }

  P pkeyutl -sign -inkey "$(uri rsa-key)" -pkeyopt digest:sha256 -in "$WORK/msg.sha256" \
    -out "$WORK/$tag.rsa.sig" 2>"$WORK/err" || fail "$tag: RSA PKCS#1 sign: $(cat "$WORK/err")"
  openssl pkeyutl -verify -pubin -inkey "$WORK/rsa.pub.pem" -pkeyopt digest:sha256 -in "$WORK/msg.sha256" \
    -sigfile "$WORK/$tag.rsa.sig" >/dev/null || fail "$tag: the RSA PKCS#1 signature does not verify"
  P pkeyutl -sign -inkey "$(uri rsa-key)" -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss \
    -pkeyopt rsa_pss_saltlen:digest -in "$WORK/msg.sha256" -out "$WORK/$tag.pss.sig" 2>"$WORK/err" \
    || fail "$tag: RSA-PSS sign: $(cat "$WORK/err")"
  openssl pkeyutl -verify -pubin -inkey "$WORK/rsa.pub.pem" -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss \
    -pkeyopt rsa_pss_saltlen:digest -in "$WORK/msg.sha256" -sigfile "$WORK/$tag.pss.sig" >/dev/null \
    || fail "$tag: the RSA-PSS signature does not verify"
  P pkeyutl -sign -inkey "$(uri ec-key)" -in "$WORK/msg.sha256" -out "$WORK/$tag.ec.sig" 2>"$WORK/err" \
    || fail "$tag: ECDSA sign: $(cat "$WORK/err")"
  openssl pkeyutl -verify -pubin -inkey "$WORK/ec.pub.pem" -in "$WORK/msg.sha256" -sigfile "$WORK/$tag.ec.sig" \
    >/dev/null || fail "$tag: the ECDSA signature does not verify"
  # Refusal: the same signature over another message.
  openssl dgst -sha256 -binary <<<"another message" >"$WORK/other.sha256"
  out=$(openssl pkeyutl -verify -pubin -inkey "$WORK/ec.pub.pem" -in "$WORK/other.sha256" \
    -sigfile "$WORK/$tag.ec.sig" 2>&1) && fail "$tag: an ECDSA signature verified another message"
  grep -q 'Signature Verification Failure' <<<"$out" || fail "$tag: changed message: $out"
  pass "$tag: pkeyutl -sign with RSA PKCS#1 v1.5, RSA-PSS and ECDSA, verified by OpenSSL"

  for k in rsa ec; do
    P req -new -key "$(uri $k-key)" -subj "/CN=provider-$k" -out "$WORK/$tag.$k.csr" 2>"$WORK/err" \
      || fail "$tag: req -new with the $k key: $(cat "$WORK/err")"
    openssl req -in "$WORK/$tag.$k.csr" -verify -noout 2>/dev/null || fail "$tag: the $k CSR does not verify"
    [ "$(openssl req -in "$WORK/$tag.$k.csr" -pubkey -noout)" = "$(cat "$WORK/$k.pub.pem")" ] \
      || fail "$tag: the $k CSR does not carry the token's key"
  done
  pass "$tag: req -new with the token's RSA and EC keys"

  # pkcs11-provider registers X25519 key management whatever the token has;
  # first in line, it takes the key share and fails (tpmtoken has no
  # Montgomery curves). With P-256 the ephemeral key is made in the TPM.
  groups=()
  [ "$tag" = pkcs11-first ] && groups=(-groups P-256)
  for k in rsa ec; do
    out=$(printf 'GET / HTTP/1.0\r\n\r\n' | P s_client -connect "127.0.0.1:$port" -tls1_3 "${groups[@]}" -CAfile "$WORK/ca.pem" \
      -cert "$WORK/$k.pem" -key "$(uri $k-key)" -ign_eof 2>&1) || fail "$tag: s_client $k: $out"
    grep -q 'Protocol  *: TLSv1.3' <<<"$out" && grep -q 'Verification: OK' <<<"$out" \
      || fail "$tag: s_client $k TLS 1.3: $out"
  done
  pass "$tag: s_client mutual TLS 1.3 with the token's RSA and EC keys"

  P pkeyutl -derive -inkey "$(uri ec-key)" -peerkey "$WORK/peer.pub.pem" -out "$WORK/$tag.z" 2>"$WORK/err" \
    || fail "$tag: ECDH derive: $(cat "$WORK/err")"
  cmp -s "$WORK/$tag.z" "$WORK/z.openssl" || fail "$tag: the derived secret differs from OpenSSL's"
  pass "$tag: ECDH derive equals OpenSSL's"

  provider_conf "$WORK/$tag.wrong.cnf" "$order" "$WORK/wrong-pin"
  out=$(PKCS11_PROVIDER_DEBUG=file:/dev/stderr OPENSSL_CONF="$WORK/$tag.wrong.cnf" timeout 60 openssl pkeyutl -sign -inkey "$(uri ec-key)" \
    -in "$WORK/msg.sha256" -out "$WORK/x.sig" 2>&1) && fail "$tag: signed with a wrong PIN"
  # OpenSSL only says it could not load the key; the provider's debug log
  # names the cause: 160 is CKR_PIN_INCORRECT.
  grep -q 'Could not read private key' <<<"$out" && grep -q 'Error 160 returned by C_Login' <<<"$out" \
    || fail "$tag: a wrong PIN: $out"
  pass "$tag: refused: a wrong PIN (C_Login: CKR_PIN_INCORRECT)"
done
