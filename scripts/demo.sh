#!/usr/bin/env bash
# The tpmtoken demo: a device identity whose private key lives in a TPM, from
# key generation to mutual TLS with an MQTT broker and an HTTPS server, and a
# key rotation. Uses a simulated TPM (swtpm) unless TPMTOKEN_TCTI names a real
# one; keeps everything in a scratch directory and stops all it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

MODULE=${MODULE:-$PWD/build/src/libtpmtoken.so}
TOOL=${TOOL:-$PWD/build/tools/tpmtoken}
WORK=${TPMTOKEN_DEMO_DIR:-$(mktemp -d /tmp/tpmtoken-demo.XXXXXX)}
mkdir -p "$WORK"
PIDS=()
SWTPM_PID=""
cleanup() {
  local rc=$?
  if [ -n "${DELETE_TOKEN:-}" ]; then
    "$TOOL" token delete --token device --so-pin-file "$WORK/so-pin" >/dev/null 2>&1 || true
  fi
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "$SWTPM_PID" ] && kill "$SWTPM_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
  [ "$rc" -eq 0 ] && echo "Stopped everything the demo started." || echo "demo: failed (exit $rc)" >&2
  exit "$rc"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
tpmtoken() { "$TOOL" "$@"; }
free_port() { free_port_pair; }

export TPMTOKEN_STORE="$WORK/store/tpmtoken.sqlite3"
if [ -n "${TPMTOKEN_TCTI:-}" ]; then
  step "Using the TPM at $TPMTOKEN_TCTI (the demo deletes its token at the end)"
  DELETE_TOKEN=1
else
  swtpm_start "$WORK/tpm" || { echo "demo: swtpm did not start" >&2; exit 1; }
  step "No TPM named in TPMTOKEN_TCTI: using a simulated TPM (swtpm) at $TPMTOKEN_TCTI"
fi

step "1. Create a token. Its key is sealed in the TPM behind the SO and user PINs;"
echo "   wrong PINs are counted by the TPM for this token alone."
echo 87654321 >"$WORK/so-pin"
echo 246810 >"$WORK/pin"
chmod 600 "$WORK/so-pin" "$WORK/pin"
tpmtoken token init --label device --so-pin-file "$WORK/so-pin" --pin-file "$WORK/pin"
pin=(--pin-file "$WORK/pin")

step "2. Generate the device key inside the TPM (EC P-256); it never leaves it."
tpmtoken key generate --key thing-42 --type ec:p256 "${pin[@]}"

step "3. Make a certificate request signed by the TPM."
tpmtoken csr --key thing-42 --subject '/CN=thing-42/O=tpmtoken demo' --san 'DNS:thing-42.local' \
  --out "$WORK/thing-42.csr" "${pin[@]}"
openssl req -in "$WORK/thing-42.csr" -noout -subject -verify 2>&1 | sed 's/^/   /'

step "4. A throwaway local CA signs it; the certificate goes onto the token."
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj '/CN=tpmtoken demo CA' -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$WORK/server.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 2 -extfile "$WORK/server.ext" -out "$WORK/server.pem" 2>/dev/null
openssl x509 -req -in "$WORK/thing-42.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 2 -out "$WORK/thing-42.pem" 2>/dev/null
tpmtoken cert import --key thing-42 "$WORK/thing-42.pem" "${pin[@]}"
tpmtoken cert list --token device

engine_conf "$WORK/openssl.cnf"
uri="pkcs11:token=device;object=thing-42;type=private;pin-value=$(cat "$WORK/pin")"
cert_uri="pkcs11:token=device;object=thing-42;type=cert"

step "5. An MQTT broker on 127.0.0.1 that requires client certificates."
mport=$(free_port)
mosquitto_start "$WORK" "$mport" "$WORK/ca.pem" "$WORK/server.pem" "$WORK/server.key"
PIDS+=("$MOSQUITTO_PID")
wait_port "$mport" || { echo "demo: the broker did not start" >&2; exit 1; }
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=dashboard \
  -keyout "$WORK/sub.key" -out "$WORK/sub.csr" 2>/dev/null
openssl x509 -req -in "$WORK/sub.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial -days 2 \
  -out "$WORK/sub.pem" 2>/dev/null
mosquitto_sub -h 127.0.0.1 -p "$mport" --cafile "$WORK/ca.pem" --cert "$WORK/sub.pem" \
  --key "$WORK/sub.key" -t devices/thing-42/telemetry -C 1 -W 30 >"$WORK/received" &
sub=$!
PIDS+=($sub)
sleep 0.5
echo "   thing-42 publishes telemetry, signing the TLS handshake with its TPM key:"
# mosquitto 2.0.11 opens --key as a file even for an engine: an empty file
# named like the URI lets it pass.
(cd "$WORK" && : >"$uri" && OPENSSL_CONF="$WORK/openssl.cnf" mosquitto_pub -h 127.0.0.1 -p "$mport" \
  --cafile "$WORK/ca.pem" --cert "$WORK/thing-42.pem" --tls-engine pkcs11 --keyform engine --key "$uri" \
  -t devices/thing-42/telemetry -m '{"temperature": 21.5}')
wait "$sub"
echo "   the dashboard received: $(cat "$WORK/received")"

step "6. An HTTPS API on 127.0.0.1 that requires client certificates; curl uses the token's key and certificate."
hport=$(free_port)
openssl s_server -accept "127.0.0.1:$hport" -cert "$WORK/server.pem" -key "$WORK/server.key" \
  -CAfile "$WORK/ca.pem" -Verify 2 -verify_return_error -www -quiet >"$WORK/s_server.log" 2>&1 &
PIDS+=($!)
wait_port "$hport" || { echo "demo: the HTTPS server did not start" >&2; exit 1; }
fetch() {
  OPENSSL_CONF="$WORK/openssl.cnf" curl -sS --cacert "$WORK/ca.pem" --engine pkcs11 --key-type ENG \
    --cert-type ENG --key "$uri" --cert "$cert_uri;pin-value=$(cat "$WORK/pin")" "https://127.0.0.1:$hport/"
}
page=$(fetch)
first_serial=$(grep -A1 'Serial Number' <<<"$page" | tail -1 | tr -d ' ')
echo "   $(grep -m1 'Protocol' <<<"$page" | tr -s ' ')"
echo "   the server saw client certificate serial $first_serial"

step "7. Rotate: a new key in the TPM and its CSR; the old credential keeps working meanwhile."
tpmtoken rotate --key thing-42 --out "$WORK/next.csr" "${pin[@]}"
openssl x509 -req -in "$WORK/next.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 2 -out "$WORK/next.pem" 2>/dev/null
page=$(fetch)
echo "   still connecting with serial $(grep -A1 'Serial Number' <<<"$page" | tail -1 | tr -d ' ') before --finish"
tpmtoken rotate --key thing-42 --finish "$WORK/next.pem" "${pin[@]}"
page=$(fetch)
second_serial=$(grep -A1 'Serial Number' <<<"$page" | tail -1 | tr -d ' ')
echo "   the next connection uses serial $second_serial"
if [ "$first_serial" = "$second_serial" ]; then
  echo "demo: the connection still used the old certificate" >&2
  exit 1
fi
tpmtoken key list "${pin[@]}"

step "8. The token's state"
tpmtoken status

# 9-12: an over-the-air update (issue 11). Boot measurements are played by
# PCR 16, which the simulated TPM resets and extends as a reboot would; on a
# real TPM the demo stops here rather than bind its store to PCR 16.
if [ -n "${DELETE_TOKEN:-}" ]; then
  step "9. (The update steps run on the simulated TPM only.)"
  exit 0
fi
so=(--so-pin-file "$WORK/so-pin")
pcr() { tpm2_"$1" -T "$TPMTOKEN_TCTI" "${@:2}" >/dev/null; }
# reboot_into FILE: a reset, then FILE's SHA-256 measured into PCR 16.
reboot_into() {
  pcr pcrreset 16
  pcr pcrextend "16:sha256=$(openssl dgst -sha256 -r "$1" | cut -d' ' -f1)"
}
measured() {  # PCR 16 after reboot_into FILE, computed in software
  { printf '%064d' 0 | xxd -r -p; openssl dgst -sha256 -binary "$1"; } | openssl dgst -sha256 -r | cut -d' ' -f1
}

step "9. The device boots release 1; the store key is sealed to boot states the SO authorizes."
printf 'release 1\n' >"$WORK/release1.bin"
reboot_into "$WORK/release1.bin"
tpmtoken boot bind --authorizer so --pcrs sha256:16 "${so[@]}"

step "10. The vendor's CA becomes a trust anchor on the token; its update is verified against it."
printf '[req]\ndistinguished_name = dn\n[dn]\n[ca]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign\n[code]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = codeSigning\n' \
  >"$WORK/vendor.cnf"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj '/CN=demo vendor CA' \
  -config "$WORK/vendor.cnf" -extensions ca -keyout "$WORK/vendor-ca.key" -out "$WORK/vendor-ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=demo release signer' \
  -config "$WORK/vendor.cnf" -keyout "$WORK/signer.key" -out "$WORK/signer.csr" 2>/dev/null
openssl x509 -req -in "$WORK/signer.csr" -CA "$WORK/vendor-ca.pem" -CAkey "$WORK/vendor-ca.key" \
  -CAcreateserial -days 2 -extfile "$WORK/vendor.cnf" -extensions code -out "$WORK/signer.pem" 2>/dev/null
tpmtoken anchor add --label vendor "${so[@]}" "$WORK/vendor-ca.pem"
printf 'release 2\n' >"$WORK/upd.bin"
openssl cms -sign -binary -in "$WORK/upd.bin" -signer "$WORK/signer.pem" -inkey "$WORK/signer.key" \
  -outform DER -out "$WORK/upd.sig"
tpmtoken verify --anchor vendor --signature "$WORK/upd.sig" "$WORK/upd.bin"
echo "   update verified against the anchor 'vendor'"
printf 'release 2 with a backdoor\n' >"$WORK/tampered.bin"
if tpmtoken verify --anchor vendor --signature "$WORK/upd.sig" "$WORK/tampered.bin"; then
  echo "demo: a tampered update passed verification" >&2
  exit 1
fi
echo "   tampered update refused"

step "11. The SO authorizes the boot state the update will measure; the device reboots into it."
printf '16: %s\n' "$(measured "$WORK/upd.bin")" >"$WORK/release2.values"
tpmtoken boot authorize --pcrs sha256:16 --values "$WORK/release2.values" --out "$WORK/release2.auth" "${so[@]}"
tpmtoken boot install "$WORK/release2.auth"
reboot_into "$WORK/upd.bin"
page=$(fetch)
echo "   after the reboot into release 2: $(grep -m1 'Protocol' <<<"$page" | tr -s ' ')"
echo "   the credentials still work after the reboot"

step "12. A boot state nobody authorized (the tampered release) cannot reach the credentials."
reboot_into "$WORK/tampered.bin"
if out=$(tpmtoken status 2>&1); then
  echo "demo: the store opened in an unauthorized boot state" >&2
  exit 1
fi
fold -s -w 96 <<<"$out" | sed 's/^/   /'
echo "   unauthorized boot state refused"
reboot_into "$WORK/upd.bin"
tpmtoken boot status
