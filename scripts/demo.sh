#!/usr/bin/env bash
# The tpmtoken demo: a token whose secrets are rooted in a TPM, driven by the
# real pkcs11-tool. Uses a simulated TPM (swtpm) unless TPMTOKEN_TCTI names a
# real one, and a scratch store; stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/swtpm.sh

MODULE=${MODULE:-$PWD/build/src/libtpmtoken.so}
WORK=$(mktemp -d /tmp/tpmtoken-demo.XXXXXX)
SWTPM_PID=""
cleanup() {
  [ -n "$SWTPM_PID" ] && kill "$SWTPM_PID" 2>/dev/null && wait "$SWTPM_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
p11() { pkcs11-tool --module "$MODULE" "$@"; }

export TPMTOKEN_STORE="$WORK/store/tpmtoken.sqlite3"
if [ -n "${TPMTOKEN_TCTI:-}" ]; then
  step "Using the TPM at $TPMTOKEN_TCTI"
else
  swtpm_start "$WORK/tpm" || { echo "demo: swtpm did not start" >&2; exit 1; }
  step "No TPM named in TPMTOKEN_TCTI: started a simulated TPM (swtpm) at $TPMTOKEN_TCTI"
fi

step "Create a token (the SO PIN guards a token key sealed in the TPM)"
p11 --init-token --slot-index 0 --label device --so-pin 87654321

step "Set the user PIN (the TPM counts wrong guesses per token, outside its global lockout)"
p11 --token-label device --login --login-type so --so-pin 87654321 --init-pin --pin 123456

step "Make a device certificate (software key for now: TPM keys arrive with the keys issue)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=thing-42/O=tpmtoken demo" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
openssl x509 -in "$WORK/cert.pem" -outform DER -out "$WORK/cert.der"

step "Store the certificate and a private configuration blob on the token"
p11 --token-label device --login --pin 123456 --write-object "$WORK/cert.der" --type cert \
  --label device-cert --id 01
echo "mqtt-endpoint=127.0.0.1:8883" >"$WORK/config.txt"
p11 --token-label device --login --pin 123456 --write-object "$WORK/config.txt" --type data \
  --label device-config --private

step "What the token holds (the private data object needs the PIN)"
p11 --token-label device --list-objects
p11 --token-label device --login --pin 123456 --list-objects

step "The store on disk holds none of it in clear"
if grep -a -q -e device-cert -e mqtt-endpoint -e thing-42 "$TPMTOKEN_STORE"* ; then
  echo "demo: found clear text in the store" >&2
  exit 1
fi
echo "searched $(ls "$TPMTOKEN_STORE"* | wc -l) store file(s): no label, subject or value in clear"

step "Done; stopping what the demo started"
