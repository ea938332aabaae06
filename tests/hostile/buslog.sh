#!/usr/bin/env bash
# A passive interposer (issue 8 "How it is checked", issue 9 item 8): a full
# session runs through tpmproxy.py, which only logs every command and answer
# in hex. The log must hold none of the secrets that crossed it: the PINs
# (old and new), the bytes C_GenerateRandom returned, the private scalar of
# an imported EC key (pkcs11-tool), a prime of an imported RSA key (tpmtoken
# key import), the value of an imported AES key. For keys generated
# inside the module, whose values the test cannot read, every 32-byte window
# of every logged frame is tried as the key: HMAC-SHA256 for the generated
# generic secret and AES-256 for the generated AES key, compared with what
# the token computed. Each secret is its own check, one line each.
source "$(dirname "$0")/lib.sh"
fixture_start
proxy_start
FAILED=()
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; FAILED+=("$1"); }
login=(--token-label bus --login --pin 1234)

init_token bus 87654321 1234 || fail "init token"
p11 "${login[@]}" --keypairgen --key-type EC:prime256v1 --id 01 --label ec >"$WORK/last" 2>&1 || fail "EC keygen: $(cat "$WORK/last")"
printf 'a message to sign' >"$WORK/msg"
p11 "${login[@]}" --sign -m ECDSA-SHA256 --id 01 -i "$WORK/msg" -o "$WORK/sig" >"$WORK/last" 2>&1 || fail "sign: $(cat "$WORK/last")"
p11 "${login[@]}" --generate-random 64 -o "$WORK/random" >"$WORK/last" 2>&1 || fail "generate random: $(cat "$WORK/last")"
[ "$(stat -c %s "$WORK/random")" -eq 64 ] || fail "C_GenerateRandom gave $(stat -c %s "$WORK/random") bytes"
p11 "${login[@]}" --keygen --key-type GENERIC:32 --id 02 --label gen-secret >"$WORK/last" 2>&1 || fail "generic secret keygen: $(cat "$WORK/last")"
p11 "${login[@]}" --sign -m SHA256-HMAC --id 02 -i "$WORK/msg" -o "$WORK/gen.mac" >"$WORK/last" 2>&1 || fail "HMAC with the generated secret: $(cat "$WORK/last")"
p11 "${login[@]}" --keygen --key-type AES:32 --id 03 --label gen-aes >"$WORK/last" 2>&1 || fail "AES keygen: $(cat "$WORK/last")"
printf 'sixteen byte blk' >"$WORK/block"
p11 "${login[@]}" --encrypt -m AES-ECB --id 03 -i "$WORK/block" -o "$WORK/block.enc" >"$WORK/last" 2>&1 || fail "AES-ECB with the generated key: $(cat "$WORK/last")"
# Imported: an EC private key and an HMAC key whose values the test knows.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/imp.pem" 2>/dev/null || fail "openssl genpkey"
openssl pkey -in "$WORK/imp.pem" -outform DER -out "$WORK/imp.der" 2>/dev/null
scalar=$(openssl pkey -in "$WORK/imp.pem" -text -noout 2>/dev/null | awk '/^priv:/ { f = 1; next } /^pub:/ { f = 0 } f' | tr -d ' :\n')
scalar=$(printf '%064s' "${scalar#00}" | tr ' ' 0)
p11 "${login[@]}" --write-object "$WORK/imp.der" --type privkey --id 04 --label imported >"$WORK/last" 2>&1 || fail "import EC key: $(cat "$WORK/last")"
# (pkcs11-tool writes no generic secret keys: the imported secret is AES.)
head -c 32 /dev/urandom >"$WORK/aes.key"
p11 "${login[@]}" --write-object "$WORK/aes.key" --type secrkey --key-type AES:32 --id 05 --label imp-aes \
  >"$WORK/last" 2>&1 || fail "import AES key: $(cat "$WORK/last")"
p11 "${login[@]}" --encrypt -m AES-ECB --id 05 -i "$WORK/block" -o "$WORK/imp.enc" >"$WORK/last" 2>&1 \
  || fail "AES with the imported key: $(cat "$WORK/last")"
[ "$(xxd -p "$WORK/imp.enc" | head -c 32)" = "$(openssl enc -aes-256-ecb -nopad -K "$(xxd -p -c 32 "$WORK/aes.key")" -in "$WORK/block" | xxd -p)" ] \
  || fail "AES-ECB with the imported key differs from openssl"
# An RSA key through the tool's import.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/rsa.pem" 2>/dev/null || fail "openssl genpkey RSA"
prime=$(openssl pkey -in "$WORK/rsa.pem" -text -noout 2>/dev/null | awk '/^prime1:/ { f = 1; next } /^prime2:/ { f = 0 } f' | tr -d ' :\n')
prime=${prime#00}
TPMTOKEN_PIN=1234 "$TOOL" key import --token bus --key imported-rsa "$WORK/rsa.pem" >"$WORK/last" 2>&1 \
  || fail "tpmtoken key import: $(cat "$WORK/last")"
p11 "${login[@]}" --change-pin --new-pin 9876 >"$WORK/last" 2>&1 || fail "change PIN: $(cat "$WORK/last")"
p11 --token-label bus --login --pin 9876 -O >"$WORK/last" 2>&1 || fail "login with the new PIN: $(cat "$WORK/last")"
frames=$(grep -c '^[<>]' "$PROXY_LOG")
pass "a session of $frames logged frames: init, login, sign, random, keygen (EC, generic, AES), import (EC, AES, RSA through the tool), HMAC, AES, change PIN"

[ ${#scalar} -eq 64 ] || fail "could not read the EC scalar from openssl ($scalar)"
[ ${#prime} -ge 64 ] || fail "could not read the RSA prime from openssl"
hexlog=$WORK/hex
awk '/^[<>]/ { print $NF }' "$PROXY_LOG" >"$hexlog"
absent() {  # absent NAME HEX
  if grep -qi -- "$2" "$hexlog"; then bad "$1" "the bus log holds $1 in clear"
  else ok "the bus log does not hold $1"; fi
}
absent "the user PIN" "$(printf 1234 | xxd -p)"
absent "the SO PIN" "$(printf 87654321 | xxd -p)"
absent "the new user PIN" "$(printf 9876 | xxd -p)"
# C_GenerateRandom (issue 9 item 8): TPM2_GetRandom runs in the salted
# session with response encryption, so no 8-byte piece of its 64 bytes (two
# 32-byte TPM answers) may be on the bus; unsalted, every piece is.
rnd=$(xxd -p -c 64 "$WORK/random")
[ ${#rnd} -eq 128 ] || fail "could not read C_GenerateRandom's output"
seen=0
for i in 0 16 32 48 64 80 96 112; do grep -qi -- "${rnd:$i:16}" "$hexlog" && seen=$((seen + 1)); done
if [ "$seen" -ne 0 ]; then bad "random" "the bus log holds $seen of the 8 8-byte pieces of C_GenerateRandom's output in clear"
else ok "the bus log holds none of the 8 8-byte pieces of C_GenerateRandom's output"; fi
absent "the imported EC private scalar" "$scalar"
absent "the imported AES key" "$(xxd -p -c 32 "$WORK/aes.key")"
absent "the imported RSA key's first prime (first 32 bytes)" "${prime:0:64}"

# Generated secrets: try every 32-byte window of every frame as the key.
"$PY" - "$hexlog" "$WORK/msg" "$WORK/gen.mac" "$WORK/block" "$WORK/block.enc" >"$WORK/windows" <<'PY' || true  # a failed search is caught below (no result line)
import hashlib, hmac, subprocess, sys
frames = [bytes.fromhex(l.strip()) for l in open(sys.argv[1]) if l.strip()]
msg = open(sys.argv[2], "rb").read()
mac = open(sys.argv[3], "rb").read()
block = open(sys.argv[4], "rb").read()
enc = open(sys.argv[5], "rb").read()[:16]
windows = {f[i:i + 32] for f in frames for i in range(0, max(0, len(f) - 31))}
hits = [w for w in windows if hmac.new(w, msg, hashlib.sha256).digest() == mac]
print("hmac-windows %d hits %d" % (len(windows), len(hits)))
# AES-256-ECB of one block under each window (python3-cryptography; the
# check is skipped, and says so, without it).
try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    def aes(k):
        e = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
        return e.update(block) + e.finalize()
except ImportError:
    aes = None
if aes is None:
    print("aes-windows skipped (no AES in this Python)")
else:
    aes_hits = [w for w in windows if aes(w) == enc]
    print("aes-windows %d hits %d" % (len(windows), len(aes_hits)))
PY
read -r _ n hits_word hits < <(grep '^hmac-windows' "$WORK/windows") || true  # (checked next)
if [ -z "${n:-}" ]; then bad "generated-secret" "the window search did not run: $(cat "$WORK/windows")"
elif [ "$hits" -ne 0 ]; then bad "generated-secret" "an HMAC under a 32-byte window of the bus log matches the token's HMAC with its generated generic secret ($hits of $n windows): the key crossed the bus in clear"
else ok "no 32-byte window of the bus log ($n tried) is the generated generic secret"; fi
if grep -q '^aes-windows .* hits' "$WORK/windows"; then
  read -r _ n _ hits < <(grep '^aes-windows' "$WORK/windows")
  if [ "$hits" -ne 0 ]; then bad "generated-aes" "a 32-byte window of the bus log is the generated AES key"
  else ok "no 32-byte window of the bus log ($n tried) is the generated AES key"; fi
else
  echo "skip: AES window search ($(grep aes-windows "$WORK/windows"))"
fi

if [ ${#FAILED[@]} -ne 0 ]; then
  echo "buslog: ${#FAILED[@]} secret(s) crossed the bus in clear: ${FAILED[*]}"
  exit 1
fi
echo "buslog: no secret in the bus log"
