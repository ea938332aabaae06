#!/usr/bin/env bash
# Issue 9 item 2: the unattended device key. A key generated with
# `tpmtoken key generate --unattended` (CKA_PRIVATE false, its auth value
# under the store key) signs TLS handshakes for curl and mosquitto_pub
# through the libp11 engine with no PIN anywhere: not in the URI, not in
# openssl.cnf, not in the environment. A PIN-protected key beside it is not
# usable the same way (the test is not vacuous).
source "$(dirname "$0")/lib.sh"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
command -v curl >/dev/null || fail "curl is not installed"
command -v mosquitto >/dev/null || fail "mosquitto is not installed"
echo 87654321 >"$WORK/so"
echo 123456 >"$WORK/pin"
"$T" token init --label device --so-pin-file "$WORK/so" --pin-file "$WORK/pin" >/dev/null \
  || fail "token init"
# Setting up needs the user PIN once; running does not.
TPMTOKEN_PIN=123456 "$T" key generate --key dev-key --unattended >"$WORK/gen.out" \
  || fail "key generate --unattended"
grep -q "unattended" "$WORK/gen.out" || fail "generate said: $(cat "$WORK/gen.out")"
TPMTOKEN_PIN=123456 "$T" key generate --key pinned-key >/dev/null || fail "key generate"
rm -f "$WORK/pin"
unset TPMTOKEN_PIN

engine_conf "$WORK/openssl.cnf"
grep -qi pin "$WORK/openssl.cnf" && fail "the engine configuration names a PIN"
make_ca "$WORK"
uri="pkcs11:token=device;object=dev-key;type=private"
OPENSSL_CONF="$WORK/openssl.cnf" timeout 60 openssl req -new -engine pkcs11 -keyform engine \
  -key "$uri" -subj /CN=device-1 -out "$WORK/dev.csr" </dev/null 2>"$WORK/csr.err" \
  || fail "CSR signed with the unattended key: $(cat "$WORK/csr.err")"
sign_csr "$WORK/dev.csr" "$WORK/dev.pem"

# curl, mutual TLS 1.3.
port=$(free_port_pair)
openssl s_server -accept "127.0.0.1:$port" -cert "$WORK/srv.pem" -key "$WORK/srv.key" \
  -CAfile "$WORK/ca.pem" -Verify 2 -verify_return_error -www -quiet >"$WORK/srv.log" 2>&1 &
CLEANUP_PIDS+=($!)
wait_for "$port"
out=$(OPENSSL_CONF="$WORK/openssl.cnf" timeout 60 curl -sS --cacert "$WORK/ca.pem" \
  --engine pkcs11 --key-type ENG --key "$uri" --cert "$WORK/dev.pem" \
  "https://127.0.0.1:$port/" </dev/null 2>&1 | grep -E -m1 'Protocol *:|curl: \(' || true)  # no such line: the check below fails
grep -q 'TLSv1.3' <<<"$out" || fail "curl with the unattended key: $out"
pass "curl: mutual TLS with the unattended key, no PIN anywhere"

# The PIN-protected key is not found without a PIN: libp11 cannot log in.
OPENSSL_CONF="$WORK/openssl.cnf" timeout 30 openssl req -new -engine pkcs11 -keyform engine \
  -key "pkcs11:token=device;object=pinned-key;type=private" -subj /CN=x -out "$WORK/x.csr" \
  </dev/null >"$WORK/pinned.out" 2>&1 && fail "the PIN-protected key signed with no PIN"
# The reason: libp11 asks for the PIN (none can be given) and finds no key.
grep -q 'Enter PKCS#11 token PIN for device' "$WORK/pinned.out" &&
  grep -q 'private key was not found' "$WORK/pinned.out" ||
  fail "the PIN-protected key failed for another reason: $(cat "$WORK/pinned.out")"
pass "a PIN-protected key beside it still needs the PIN"

# mosquitto_pub through the same engine.
mport=$(free_port_pair)
mosquitto_start "$WORK" "$mport" "$WORK/ca.pem" "$WORK/srv.pem" "$WORK/srv.key"
CLEANUP_PIDS+=("$MOSQUITTO_PID")
wait_for "$mport"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=subscriber \
  -keyout "$WORK/sub.key" -out "$WORK/sub.csr" 2>/dev/null
sign_csr "$WORK/sub.csr" "$WORK/sub.pem"
tls=(-h 127.0.0.1 -p "$mport" --cafile "$WORK/ca.pem")
mosquitto_sub "${tls[@]}" --cert "$WORK/sub.pem" --key "$WORK/sub.key" -t devices/device-1/state \
  -C 1 -W 30 >"$WORK/received" 2>"$WORK/sub.err" &
sub=$!
CLEANUP_PIDS+=($sub)
sleep 0.5
# mosquitto 2.0.11 opens --key as a file even with --keyform engine (mqtt.sh).
(cd "$WORK" && : >"$uri" && OPENSSL_CONF="$WORK/openssl.cnf" timeout 60 mosquitto_pub "${tls[@]}" \
  --cert "$WORK/dev.pem" --tls-engine pkcs11 --keyform engine --key "$uri" \
  -t devices/device-1/state -m 'up' </dev/null) 2>"$WORK/pub.err" \
  || fail "mosquitto_pub with the unattended key: $(cat "$WORK/pub.err")"
wait "$sub" || fail "the subscriber got nothing: $(cat "$WORK/sub.err")"
grep -qx 'up' "$WORK/received" || fail "received: $(cat "$WORK/received")"
pass "mosquitto_pub: published with the unattended key, no PIN anywhere"
