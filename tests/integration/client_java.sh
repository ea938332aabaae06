#!/usr/bin/env bash
# Java 17's SunPKCS11 provider with the token: keytool lists the token's key
# entries (a private key with its certificate, matched by CKA_ID), and a
# small JSSE client (tests/integration/clients/JsseClient.java, run as a
# single-file program) does mutual TLS 1.3 and 1.2 against `openssl s_server
# -Verify` with the RSA and the EC key. Refusals, each for its reason: a
# wrong PIN (CKR_PIN_INCORRECT in the exception chain), and a server that
# trusts another CA (alert unknown_ca). One JVM runs all four handshakes.
source "$(dirname "$0")/client_lib.sh"
need java default-jdk-headless
need keytool default-jdk-headless
client_token
client_certs

# slotListIndex 0: the token (the free slot comes last in the slot list).
cat >"$WORK/sunpkcs11.cfg" <<CFG
name = tpmtoken
library = $MODULE
slotListIndex = 0
CFG
keytool_list() {  # keytool_list PIN
  timeout 60 keytool -J-XX:TieredStopAtLevel=1 -J-XX:+UseSerialGC -list -keystore NONE -storetype PKCS11 -providerClass sun.security.pkcs11.SunPKCS11 \
    -providerArg "$WORK/sunpkcs11.cfg" -storepass "$1" 2>&1
}
out=$(keytool_list 1234) || fail "keytool -list: $out"
grep -q '^rsa-key, PrivateKeyEntry' <<<"$out" && grep -q '^ec-key, PrivateKeyEntry' <<<"$out" \
  || fail "keytool does not list both key entries: $out"
pass "keytool lists the token's RSA and EC key entries"


client="$(dirname "$0")/clients/JsseClient.java"
jsse() {  # jsse PIN CA PROTOCOL:ALIAS...
  local pin=$1 ca=$2
  shift 2
  # C1 only and the serial GC: a short run starts faster.
  timeout 120 java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "$client" "$WORK/sunpkcs11.cfg" "$pin" "$ca" "$port" "$@" 2>&1
}
port=$(free_port_pair)
tls_server "$port"
out=$(jsse 1234 "$WORK/ca.pem" TLSv1.3:rsa-key TLSv1.2:rsa-key TLSv1.3:ec-key TLSv1.2:ec-key) \
  || fail "JSSE: $out"
for k in rsa ec; do
  for v in TLSv1.3 TLSv1.2; do
    grep -q "^handshake: $v $k-key" <<<"$out" || fail "JSSE $k $v: $out"
  done
done
[ "$(grep -c 'Protocol  *: TLSv1.3' <<<"$out")" = 2 ] && [ "$(grep -c 'Protocol  *: TLSv1.2' <<<"$out")" = 2 ] \
  || fail "the server did not answer each handshake: $out"
pass "a JSSE client does mutual TLS 1.3 and 1.2 with the token's RSA and EC keys"

out=$(jsse 9999 "$WORK/ca.pem" TLSv1.3:ec-key) && fail "the JSSE client logged in with a wrong PIN: $out"
grep -q 'CKR_PIN_INCORRECT' <<<"$out" || fail "JSSE with a wrong PIN: $out"
pass "refused: a wrong PIN (CKR_PIN_INCORRECT)"

# A server that trusts only another CA refuses the token's certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=other-ca \
  -keyout "$WORK/other-ca.key" -out "$WORK/other-ca.pem" 2>/dev/null || fail "other CA"
port=$(free_port_pair)
openssl s_server -accept "127.0.0.1:$port" -cert "$WORK/srv.pem" -key "$WORK/srv.key" \
  -CAfile "$WORK/other-ca.pem" -Verify 2 -verify_return_error -www >"$WORK/srv2.log" 2>&1 &
CLEANUP_PIDS+=($!)
wait_for "$port"
out=$(jsse 1234 "$WORK/ca.pem" TLSv1.3:ec-key) && fail "a server trusting another CA accepted: $out"
grep -q 'Received fatal alert: unknown_ca' <<<"$out" || fail "a server trusting another CA: $out"
pass "refused: a server that trusts another CA (alert unknown_ca)"
