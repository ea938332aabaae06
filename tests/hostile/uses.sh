#!/usr/bin/env bash
# The public areas of the secret keys' TPM objects (issue 8 item 4), read on
# the bus: the C-ABI suite Uses (tests/api/uses_test.cc) runs through the
# logging proxy, and every symmetric-cipher and keyed-hash public area the
# TPM made (TPM2_Create answers) or took in (TPM2_Import commands) is decoded
# from the log: its sign and decrypt attributes, its mode or scheme. The
# suite makes: AES keys encrypt-only (4: one generated, three imported,
# among them a wrap-only one), decrypt-only with CTR decryption allowed (1,
# mode NULL), decrypt-only needing no CTR (3: one allowed ECB and CBC only,
# two unwrap-only; fixed to CBC), with both uses (2: one imported, and the
# key unwrapped with its defaults); HMAC keys whose allowed mechanisms name
# one hash, SHA-384 (3: two generated, one imported) and one allowed two.
# (A keyed-hash object with neither use is one of the module's seals.)
source "$(dirname "$0")/lib.sh"
fixture_start
proxy_start
[ -x "${ORACLE_API:-}" ] || fail "ORACLE_API must name the oracle_api_tests binary"
"$ORACLE_API" --gtest_filter='Uses.*' --gtest_brief=1 >"$WORK/gtest.out" 2>&1 \
  || fail "the Uses suite failed through the proxy: $(tail -20 "$WORK/gtest.out")"

"$PY" - "$PROXY_LOG" >"$WORK/publics" <<'PY'
import struct, sys
from collections import Counter

def tpm2b(buf, off):
    (n,) = struct.unpack_from(">H", buf, off)
    return buf[off + 2:off + 2 + n], off + 2 + n

def describe(pub):
    typ, _name_alg, attrs = struct.unpack_from(">HHI", pub, 0)
    _policy, off = tpm2b(pub, 8)
    uses = ("sign" if attrs & 0x40000 else "") + ("+" if attrs & 0x60000 == 0x60000 else "") + \
           ("decrypt" if attrs & 0x20000 else "")
    if typ == 0x25:  # TPM_ALG_SYMCIPHER: algorithm, keyBits, mode
        alg, bits, mode = struct.unpack_from(">HHH", pub, off)
        return "aes %s mode=0x%04x" % (uses or "none", mode)
    if typ == 0x08:  # TPM_ALG_KEYEDHASH: scheme (HMAC: hash)
        (scheme,) = struct.unpack_from(">H", pub, off)
        detail = " hash=0x%04x" % struct.unpack_from(">H", pub, off + 2) if scheme == 0x05 else ""
        return "keyedhash %s scheme=0x%04x%s" % (uses or "none", scheme, detail)
    return None

seen = Counter()
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 4 or parts[0] not in "<>":
        continue
    frame = bytes.fromhex(parts[-1])
    tag, _size, code = struct.unpack_from(">HII", frame, 0)
    try:
        if parts[0] == "<" and parts[2] == "Create" and code == 0:
            off = 10 + (4 if tag == 0x8002 else 0)  # parameterSize
            _private, off = tpm2b(frame, off)
            pub, _ = tpm2b(frame, off)
        elif parts[0] == ">" and parts[2] == "Import":
            off = 14  # header, parentHandle
            (auth_size,) = struct.unpack_from(">I", frame, off)
            _key, off = tpm2b(frame, off + 4 + auth_size)  # encryptionKey
            pub, _ = tpm2b(frame, off)
        else:
            continue
    except struct.error:
        print("unparsed %s %s" % (parts[0], parts[2]))
        continue
    d = describe(pub)
    if d:
        seen["%s %s" % ("created" if parts[0] == "<" else "imported", d)] += 1
for k, n in sorted(seen.items()):
    print("%d %s" % (n, k))
PY
cat "$WORK/publics"
count() { awk -v k="$1" '{ n = $1; $1 = ""; if (substr($0, 2) == k) s += n } END { print s + 0 }' "$WORK/publics"; }
expect() {  # expect N "DESCRIPTION" WHAT
  local got
  got=$(count "$2")
  [ "$got" -eq "$1" ] || fail "$3: $got public area(s) '$2', expected $1"
  pass "$3: $1 x '$2'"
}
# Mode NULL (0x0010): chosen per call; CBC (0x0042): fixed.
expect 1 "created aes sign mode=0x0010" "generated AES key, CKA_ENCRYPT only: sign (encrypt) only"
expect 3 "imported aes sign mode=0x0010" "imported AES keys, encrypt-only and wrap-only: sign only"
expect 1 "imported aes decrypt mode=0x0010" "imported AES key, decrypt-only with CTR allowed: decrypt only"
expect 3 "imported aes decrypt mode=0x0042" "imported AES keys, decrypt-only without CTR and unwrap-only: decrypt only, CBC only"
expect 2 "imported aes sign+decrypt mode=0x0010" "imported and unwrapped AES keys with both uses"
expect 2 "created keyedhash sign scheme=0x0005 hash=0x000c" "generated HMAC keys allowed SHA-384 only: sign only, HMAC-SHA-384"
expect 1 "imported keyedhash sign scheme=0x0005 hash=0x000c" "imported HMAC key allowed SHA-384 only: sign only, HMAC-SHA-384"
expect 1 "imported keyedhash sign+decrypt scheme=0x0010" "imported HMAC key allowed two hashes: NULL scheme (sign and decrypt)"
[ "$(grep -c 'aes\|keyedhash sign' "$WORK/publics" | tr -d ' ')" -eq 8 ] \
  || fail "a secret-key public area this test did not expect: $(cat "$WORK/publics")"
pass "every secret key's TPM object carries only the uses its key has"
