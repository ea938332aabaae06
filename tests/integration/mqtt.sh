#!/usr/bin/env bash
# MQTT over mutual TLS: a mosquitto broker on 127.0.0.1 requires client
# certificates; mosquitto_pub signs with the TPM-held key through the libp11
# engine and mosquitto_sub receives the message. Without the token's key the
# broker refuses the client.
source "$(dirname "$0")/lib.sh"
fixture_start
command -v mosquitto >/dev/null || fail "mosquitto is not installed"
init_token device 12345678 1234
p11 --token-label device --login --pin 1234 --keypairgen --key-type EC:prime256v1 --label mqtt-key \
  --id 01 >/dev/null 2>&1 || fail "EC key"
engine_conf "$WORK/openssl.cnf"
make_ca "$WORK"
uri="pkcs11:token=device;object=mqtt-key;type=private;pin-value=1234"
OPENSSL_CONF="$WORK/openssl.cnf" openssl req -new -engine pkcs11 -keyform engine -key "$uri" \
  -subj /CN=thing-42 -out "$WORK/pub.csr" 2>/dev/null || fail "CSR"
sign_csr "$WORK/pub.csr" "$WORK/pub.pem"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=subscriber \
  -keyout "$WORK/sub.key" -out "$WORK/sub.csr" 2>/dev/null
sign_csr "$WORK/sub.csr" "$WORK/sub.pem"

port=$(free_port_pair)
mosquitto_start "$WORK" "$port" "$WORK/ca.pem" "$WORK/srv.pem" "$WORK/srv.key"
CLEANUP_PIDS+=("$MOSQUITTO_PID")
wait_for "$port"

tls=(-h 127.0.0.1 -p "$port" --cafile "$WORK/ca.pem")
mosquitto_sub "${tls[@]}" --cert "$WORK/sub.pem" --key "$WORK/sub.key" -t devices/thing-42/telemetry \
  -C 1 -W 30 >"$WORK/received" 2>"$WORK/sub.err" &
sub=$!
CLEANUP_PIDS+=($sub)
sleep 0.5
# mosquitto 2.0.11 opens --key as a file even with --keyform engine: an
# empty file named like the URI in the working directory gets past it.
(cd "$WORK" && : >"$uri" && OPENSSL_CONF="$WORK/openssl.cnf" timeout 60 mosquitto_pub "${tls[@]}" \
  --cert "$WORK/pub.pem" --tls-engine pkcs11 --keyform engine --key "$uri" \
  -t devices/thing-42/telemetry -m 'temperature=21.5') 2>"$WORK/pub.err" || fail "publish: $(cat "$WORK/pub.err")"
wait "$sub" || fail "the subscriber got nothing: $(cat "$WORK/sub.err")"
grep -qx 'temperature=21.5' "$WORK/received" || fail "received: $(cat "$WORK/received")"
pass "published with the TPM-held key over mutual TLS; the subscriber received it"

if timeout 30 mosquitto_pub "${tls[@]}" -t devices/thing-42/telemetry -m nope 2>/dev/null; then
  fail "the broker accepted a client without a certificate"
fi
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/other.key" 2>/dev/null
if timeout 30 mosquitto_pub "${tls[@]}" --cert "$WORK/pub.pem" --key "$WORK/other.key" \
  -t devices/thing-42/telemetry -m nope 2>/dev/null; then
  fail "the broker accepted the token's certificate with another key"
fi
pass "refused without a certificate, and with another key"
