#!/usr/bin/env bash
# Issue 7 items 2 and 6: the set of rows is authenticated, not only each row.
# A deleted token or object row, or an old row put back, is refused at open
# with a line naming the token; one corrupted record costs only its object,
# with a line naming it; a corrupted file says "corrupted", not
# "permissions"; a read-only store still serves login and signing and
# refuses changes with CKR_TOKEN_WRITE_PROTECTED.
source "$(dirname "$0")/lib.sh"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
S=$TPMTOKEN_STORE
echo 87654321 >"$WORK/so"
echo 123456 >"$WORK/pin"
export TPMTOKEN_PIN=123456
expect_exit() {  # expect_exit CODE PATTERN CMD...
  local want=$1 pattern=$2 rc=0
  shift 2
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "exit $rc (want $want) from $*: $(cat "$WORK/err")"
  grep -q -- "$pattern" "$WORK/err" "$WORK/out" || fail "no '$pattern' from $*: $(cat "$WORK/err")"
}
sql() { python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); r = c.execute(sys.argv[2]).fetchall(); c.commit(); print(r)' "$S" "$1"; }
save() { cp "$S" "$WORK/$1"; }
restore() { rm -f "$S" "$S-wal" "$S-shm"; cp "$WORK/$1" "$S"; }

"$T" token init --label dev --so-pin-file "$WORK/so" --pin-file "$WORK/pin" >/dev/null || fail "token init"
"$T" key generate --key k1 >/dev/null || fail "key generate k1"
"$T" key generate --key k2 >/dev/null || fail "key generate k2"
save whole

# An object row deleted outside tpmtoken.
sql "DELETE FROM objects WHERE id = (SELECT max(id) FROM objects)" >/dev/null
expect_exit 5 "token 'dev' .* row removed, re-inserted" "$T" key list
out=$(p11 -L 2>&1) && fail "C_Initialize accepted a store with a deleted row"
grep -q "CKR_FUNCTION_FAILED" <<<"$out" || fail "C_Initialize: $out"
pass "a deleted object row is refused, naming the token"

# A token row deleted outside tpmtoken (its objects stay without it).
restore whole
sql "DELETE FROM tokens" >/dev/null
expect_exit 5 "no token row: it was deleted outside tpmtoken" "$T" status
pass "a deleted token row is refused"

# An old row put back after tpmtoken deleted it (the anchor moved on).
restore whole
row=$(sql "SELECT id FROM objects ORDER BY id DESC LIMIT 1" | tr -dc 0-9)
python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
rows = c.execute("SELECT * FROM objects WHERE id = ?", (int(sys.argv[2]),)).fetchall()
open(sys.argv[3], "w").write(repr(rows))' "$S" "$row" "$WORK/row.txt"
"$T" key delete --key k2 >/dev/null || fail "key delete"
python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for r in eval(open(sys.argv[2]).read()):
    c.execute("INSERT INTO objects VALUES (%s)" % ", ".join("?" * len(r)), r)
c.commit()' "$S" "$WORK/row.txt"
expect_exit 5 "token 'dev' .* row removed, re-inserted" "$T" key list
pass "an old row re-inserted is refused"
"$T" store accept-restore --so-pin-file "$WORK/so" >/dev/null 2>&1 || fail "accept-restore"

# One corrupted record: only that object goes, with a line naming it.
restore whole
"$T" store accept-restore --so-pin-file "$WORK/so" >/dev/null 2>&1 || fail "accept-restore (whole)"
pubrow=$(sql "SELECT id FROM objects WHERE private = 0 ORDER BY id LIMIT 1" | tr -dc 0-9)
python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
rec = bytearray(c.execute("SELECT record FROM objects WHERE id = ?", (int(sys.argv[2]),)).fetchone()[0])
rec[20] ^= 1
c.execute("UPDATE objects SET record = ? WHERE id = ?", (bytes(rec), int(sys.argv[2])))
c.commit()' "$S" "$pubrow"
out=$(TPMTOKEN_LOG=error p11 --token-label dev -O 2>&1) || fail "the token does not open with one bad record: $out"
grep -q "object $pubrow in .* fails authentication" <<<"$out" || fail "no line names object $pubrow: $out"
"$T" key list | grep -q k1 || fail "the other keys went with the bad record"
pass "one corrupted record costs only its object, with a line naming it"

# A corrupted file names corruption, not permissions.
restore whole
printf 'garbage%.0s' $(seq 20) | dd of="$S" bs=1 seek=0 conv=notrunc status=none
expect_exit 5 "corrupted" "$T" status
grep -q "permissions" "$WORK/err" && fail "a corrupted store blames permissions: $(cat "$WORK/err")"
pass "a corrupted store is named as such"

# A read-only store (another user, no write permission on the file or its
# directory): login and signing work; changes get CKR_TOKEN_WRITE_PROTECTED.
restore whole
"$T" store accept-restore --so-pin-file "$WORK/so" >/dev/null 2>&1 || fail "accept-restore (whole, read-only test)"
"$T" key list >/dev/null || fail "the store does not open before the read-only test"
chmod 755 "$WORK" "$(dirname "$S")"
chmod 644 "$S"
echo data >"$WORK/msg"
chmod 644 "$WORK/msg"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
out=$(as_nobody pkcs11-tool --module "$MODULE" --token-label dev --login --pin 123456 --sign \
  -m ECDSA-SHA256 --label k1 -i "$WORK/msg" -o /dev/null 2>&1) || fail "signing from a read-only store: $out"
out=$(as_nobody pkcs11-tool --module "$MODULE" --token-label dev --login --pin 123456 \
  --keypairgen --key-type EC:prime256v1 --label k3 2>&1) && fail "a key was made in a read-only store"
grep -q CKR_TOKEN_WRITE_PROTECTED <<<"$out" || fail "keypairgen on a read-only store: $out"
rc=0
as_nobody env TPMTOKEN_PIN=123456 "$T" key generate --key k3 >"$WORK/out" 2>&1 || rc=$?
[ "$rc" -eq 5 ] && grep -q "read-only for this user" "$WORK/out" || fail "tool on a read-only store: $rc $(cat "$WORK/out")"
pass "a read-only store serves login and signing; changes are refused as write-protected"
