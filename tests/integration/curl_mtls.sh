#!/usr/bin/env bash
# curl mutual TLS with the client key in the token (libp11 engine), against
# openssl s_server -Verify on 127.0.0.1: RSA and EC keys, TLS 1.3 and 1.2,
# a server that only accepts RSA PKCS#1 v1.5 signatures, the certificate
# from the token too; and the refusals: no client certificate, or the
# token's certificate with another key.
source "$(dirname "$0")/lib.sh"
fixture_start
command -v curl >/dev/null || fail "curl is not installed"
init_token device 12345678 1234
login=(--token-label device --login --pin 1234)
p11 "${login[@]}" --keypairgen --key-type rsa:2048 --label rsa-key --id 02 >/dev/null 2>&1 || fail "RSA key"
p11 "${login[@]}" --keypairgen --key-type EC:prime256v1 --label ec-key --id 01 >/dev/null 2>&1 || fail "EC key"
# Only the commands that use the engine see its configuration: with it loaded,
# OpenSSL 3.0 routes even software-key signing through libp11.
engine_conf "$WORK/openssl.cnf"
make_ca "$WORK"
for k in rsa ec; do
  OPENSSL_CONF="$WORK/openssl.cnf" openssl req -new -engine pkcs11 -keyform engine \
    -key "pkcs11:token=device;object=$k-key;type=private;pin-value=1234" -subj "/CN=thing-$k" \
    -out "$WORK/$k.csr" 2>/dev/null || fail "$k CSR"
  sign_csr "$WORK/$k.csr" "$WORK/$k.pem"
done
# The EC certificate also goes onto the token, next to its key.
openssl x509 -in "$WORK/ec.pem" -outform DER -out "$WORK/ec.der"
p11 "${login[@]}" --write-object "$WORK/ec.der" --type cert --label ec-key --id 01 >/dev/null 2>&1 \
  || fail "write certificate"

server() {  # server PORT [s_server options...]
  local port=$1
  shift
  openssl s_server -accept "127.0.0.1:$port" -cert "$WORK/srv.pem" \
    -key "$WORK/srv.key" -CAfile "$WORK/ca.pem" -Verify 2 -verify_return_error -www -quiet "$@" \
    >"$WORK/srv.$port.log" 2>&1 &
  CLEANUP_PIDS+=($!)
  wait_for "$port"
}
request() {  # request PORT [curl options...]: prints the protocol line or the error
  local port=$1
  shift
  OPENSSL_CONF="$WORK/openssl.cnf" timeout 60 curl -sS --cacert "$WORK/ca.pem" "$@" \
    "https://127.0.0.1:$port/" 2>&1 \
    | grep -E -m1 'Protocol *:|curl: \(' || true  # no such line: the caller's check of the output fails
}

p1=$(free_port_pair)
server "$p1"
for k in rsa ec; do
  key=(--engine pkcs11 --key-type ENG --key "pkcs11:token=device;object=$k-key;type=private;pin-value=1234")
  out=$(request "$p1" "${key[@]}" --cert "$WORK/$k.pem")
  grep -q 'TLSv1.3' <<<"$out" || fail "$k TLS 1.3: $out"
  out=$(request "$p1" "${key[@]}" --cert "$WORK/$k.pem" --tls-max 1.2)
  grep -q 'TLSv1.2' <<<"$out" || fail "$k TLS 1.2: $out"
done
pass "RSA and EC client keys in the token over TLS 1.3 and 1.2"

out=$(request "$p1" --engine pkcs11 --key-type ENG --cert-type ENG \
  --key "pkcs11:token=device;object=ec-key;type=private;pin-value=1234" \
  --cert "pkcs11:token=device;object=ec-key;type=cert;pin-value=1234")
grep -q 'TLSv1.3' <<<"$out" || fail "key and certificate from the token: $out"
pass "key and certificate both from the token"

p2=$(free_port_pair)
server "$p2" -client_sigalgs "RSA+SHA256" -tls1_2
out=$(request "$p2" --engine pkcs11 --key-type ENG \
  --key "pkcs11:token=device;object=rsa-key;type=private;pin-value=1234" --cert "$WORK/rsa.pem")
grep -q 'TLSv1.2' <<<"$out" || fail "PKCS#1 v1.5-only server: $out"
pass "a server that accepts only RSA PKCS#1 v1.5 signatures"

out=$(request "$p1")
grep -q 'curl: (' <<<"$out" || fail "no client certificate was accepted: $out"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/other.key" 2>/dev/null
out=$(request "$p1" --cert "$WORK/rsa.pem" --key "$WORK/other.key")
grep -q 'curl: (' <<<"$out" || fail "the token's certificate with another key was accepted: $out"
pass "refused without a client certificate, and with another key"
