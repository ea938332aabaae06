#!/usr/bin/env bash
# Issue 7 item 7: "Signatures are not logged one by one: each key keeps a use
# count and last use, without adding a TPM command or a durable write to each
# signature." N signatures in one process leave the store file untouched
# until the logout, then `tpmtoken key list` shows N uses and a last use; a
# second process adds its own; a decryption counts; an unused key shows 0;
# the audit chain gets no entry per signature and still verifies.
source "$(dirname "$0")/lib.sh"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
S=$TPMTOKEN_STORE
echo 87654321 >"$WORK/so"
echo 123456 >"$WORK/pin"
export TPMTOKEN_PIN=123456
N=25

"$T" token init --label dev --so-pin-file "$WORK/so" --pin-file "$WORK/pin" >/dev/null || fail "token init"
"$T" key generate --key used --type ec:p256 >/dev/null || fail "key generate used"
"$T" key generate --key idle --type ec:p256 >/dev/null || fail "key generate idle"
audit_before=$("$T" audit | wc -l)

# N signatures through the C ABI in one process (ctypes: no PKCS#11 binding
# is installed). Between the first and the last signature the store file and
# its WAL must not change: no durable write per signature.
python3 - "$MODULE" "$S" "$N" >"$WORK/sign.out" 2>&1 <<'PY' || fail "signing process: $(cat "$WORK/sign.out")"
import ctypes as C, hashlib, os, sys
lib = C.CDLL(sys.argv[1]); store = sys.argv[2]; n = int(sys.argv[3])
UL = C.c_ulong
class Attr(C.Structure): _fields_ = [("type", UL), ("p", C.c_void_p), ("len", UL)]
class Mech(C.Structure): _fields_ = [("mech", UL), ("p", C.c_void_p), ("len", UL)]
def ck(rv, what):
    if rv != 0: sys.exit("%s: CKR 0x%x" % (what, rv))
def state():
    h = hashlib.sha256()
    for f in (store, store + "-wal"):
        if os.path.exists(f): h.update(open(f, "rb").read())
    return h.hexdigest()
ck(lib.C_Initialize(None), "C_Initialize")
slots = (UL * 8)(); count = UL(8)
ck(lib.C_GetSlotList(C.c_ubyte(1), slots, C.byref(count)), "C_GetSlotList")
slot = None
for i in range(count.value):  # CK_TOKEN_INFO starts with the 32-byte label
    info = (C.c_ubyte * 1024)()
    if lib.C_GetTokenInfo(slots[i], info) == 0 and bytes(info[:4]) == b"dev ": slot = slots[i]
if slot is None: sys.exit("token 'dev' not found")
sess = UL()
ck(lib.C_OpenSession(UL(slot), UL(6), None, None, C.byref(sess)), "C_OpenSession")  # RW|SERIAL
ck(lib.C_Login(sess, UL(1), b"123456", UL(6)), "C_Login")
cls = UL(3); label = b"used"  # CKO_PRIVATE_KEY, CKA_LABEL
tmpl = (Attr * 2)(Attr(0, C.cast(C.byref(cls), C.c_void_p), C.sizeof(cls)),
                  Attr(3, C.cast(C.c_char_p(label), C.c_void_p), len(label)))
ck(lib.C_FindObjectsInit(sess, tmpl, UL(2)), "C_FindObjectsInit")
key = UL(); found = UL()
ck(lib.C_FindObjects(sess, C.byref(key), UL(1), C.byref(found)), "C_FindObjects")
ck(lib.C_FindObjectsFinal(sess), "C_FindObjectsFinal")
if found.value != 1: sys.exit("key 'used' not found")
mech = Mech(0x1041, None, 0)  # CKM_ECDSA
digest = hashlib.sha256(b"use count").digest()
before = None
for i in range(n):
    ck(lib.C_SignInit(sess, C.byref(mech), key), "C_SignInit")
    sig = (C.c_ubyte * 256)(); siglen = UL(256)
    ck(lib.C_Sign(sess, digest, UL(len(digest)), sig, C.byref(siglen)), "C_Sign")
    if i == 0: before = state()
if state() != before: sys.exit("the store changed while signing: a durable write per signature")
ck(lib.C_Logout(sess), "C_Logout")
ck(lib.C_CloseSession(sess), "C_CloseSession")
ck(lib.C_Finalize(None), "C_Finalize")
print("signed", n)
PY
pass "$N signatures in one process: the store file and WAL unchanged from the first to the last"

"$T" key list >"$WORK/list" || fail "key list"
grep -q "^used.*uses $N, last 20" "$WORK/list" || fail "key list after $N signatures: $(cat "$WORK/list")"
grep -q "^idle.*uses 0$" "$WORK/list" || fail "key list, unused key: $(cat "$WORK/list")"
pass "key list shows $N uses and a last use for the signing key, 0 for the other"

# A second process (pkcs11-tool, one signature) adds to the count.
echo "more" >"$WORK/msg"
p11 --token-label dev --login --pin 123456 --sign --mechanism ECDSA-SHA256 --label used \
  -i "$WORK/msg" -o "$WORK/sig" >/dev/null 2>&1 || fail "pkcs11-tool --sign"
"$T" --json key list >"$WORK/json" || fail "key list --json"
python3 - "$WORK/json" "$((N + 1))" <<'PY' || fail "key list --json after a second process: $(cat "$WORK/json")"
import json, sys
keys = {k["label"]: k for k in json.load(open(sys.argv[1]))}
assert keys["used"]["uses"] == int(sys.argv[2]), keys["used"]
assert keys["used"]["last_use"].startswith("20"), keys["used"]
assert keys["idle"]["uses"] == 0 and keys["idle"]["last_use"] is None, keys["idle"]
PY
pass "a second process adds its signature: $((N + 1)) uses (--json)"

audit_after=$("$T" audit | wc -l)
# Only the logins of the processes above may add entries, never a signature.
[ $((audit_after - audit_before)) -lt 10 ] || fail "the audit log grew by $((audit_after - audit_before)) entries"
"$T" audit verify >/dev/null || fail "audit verify after counting"
pass "no audit entry per signature ($((audit_after - audit_before)) new entries, logins); verify passes"

# A decryption counts as a use of its key too (another process again).
p11 --token-label dev --login --pin 123456 --keypairgen --key-type rsa:2048 --label dec --id 30 \
  >/dev/null 2>&1 || fail "keypairgen dec"
p11 --token-label dev --read-object --type pubkey --label dec -o "$WORK/dec.der" >/dev/null 2>&1 \
  || fail "export the public key of dec"
echo "secret" | openssl pkeyutl -encrypt -pubin -keyform DER -inkey "$WORK/dec.der" \
  -pkeyopt rsa_padding_mode:pkcs1 -out "$WORK/ct" || fail "openssl encrypt"
p11 --token-label dev --login --pin 123456 --decrypt --mechanism RSA-PKCS --id 30 \
  -i "$WORK/ct" -o "$WORK/pt" >"$WORK/dec.log" 2>&1 || fail "pkcs11-tool --decrypt: $(cat "$WORK/dec.log")"
[ "$(cat "$WORK/pt")" = secret ] || fail "decrypted: $(cat "$WORK/pt")"
"$T" key list | grep -q "^dec.*uses 1, last 20" || fail "key list after a decryption: $("$T" key list)"
pass "a decryption counts one use"

# Deleting the key removes its count.
"$T" key delete --key used >/dev/null || fail "key delete"
left=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from key_use").fetchone()[0])' "$S")
[ "$left" = 1 ] || fail "key_use keeps $left rows, want 1 (dec's): a deleted key's row stays"
pass "a deleted key's count goes with it"

# A nonsense retention is refused with a line naming the setting.
echo "audit_retention = 5" >"$WORK/bad.conf"
rc=0; TPMTOKEN_CONF="$WORK/bad.conf" "$T" key list >"$WORK/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q "audit_retention must be between 100" "$WORK/out" \
  || fail "audit_retention = 5: exit $rc: $(cat "$WORK/out")"
pass "audit_retention = 5 refused: $(head -1 "$WORK/out")"
