#!/usr/bin/env bash
# Issue 7 item 7: the audit log. Security events land in the transaction of
# their change; `tpmtoken audit` prints them (--json, --since); `tpmtoken
# audit verify` passes on the intact chain and fails, naming the entry, on a
# cut (at the end or the start), a rewritten entry and a reordered pair. No
# PIN or private label appears in an entry.
source "$(dirname "$0")/lib.sh"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
S=$TPMTOKEN_STORE
echo 87654321 >"$WORK/so"
echo 123456 >"$WORK/pin"
export TPMTOKEN_PIN=123456
sql() { python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()' "$S" "$1"; }

"$T" token init --label dev --so-pin-file "$WORK/so" --pin-file "$WORK/pin" >/dev/null || fail "token init"
"$T" key generate --key k1 >/dev/null || fail "key generate"
"$T" key delete --key k1 >/dev/null || fail "key delete"
"$T" pin change --pin-file "$WORK/pin" --new-pin 24682468 >/dev/null 2>&1 || fail "pin change"
"$T" audit >"$WORK/log" || fail "audit"
for want in "token .* initialized" "user PIN set by the SO" "created private key" \
    "created public key" "destroyed private key" "user PIN changed"; do
  grep -q "$want" "$WORK/log" || fail "no audit entry '$want': $(cat "$WORK/log")"
done
grep -q "123456\|24682468\|87654321\|dev\|k1" "$WORK/log" && fail "a PIN or a label is in the audit log"
"$T" --json audit | python3 -c 'import json, sys; e = json.load(sys.stdin); assert len(e) >= 6 and "event" in e[0]' \
  || fail "audit --json"
[ "$("$T" audit --since 2999-01-01 | wc -l)" -eq 0 ] || fail "audit --since"
"$T" audit verify >/dev/null || fail "audit verify on an intact log"
pass "audit lists token, PIN and key events (no PIN in them); verify passes on the intact chain"

cp "$S" "$WORK/intact"
check() {  # check WHAT PATTERN: verify fails (exit 5) naming the entry
  local rc=0
  "$T" audit verify >"$WORK/out" 2>&1 || rc=$?
  [ "$rc" -eq 5 ] || fail "$1: audit verify exit $rc: $(cat "$WORK/out")"
  grep -q "$2" "$WORK/out" || fail "$1: want '$2': $(cat "$WORK/out")"
  cp "$WORK/intact" "$S"
}
last=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select max(id) from audit").fetchone()[0])' "$S")
sql "DELETE FROM audit WHERE id = $last"
check "a cut at the end" "ends at entry $((last - 1)).*later head"
sql "DELETE FROM audit WHERE id = 1"
check "a cut at the start" "cut before entry 2"
sql "UPDATE audit SET event = 'nothing happened' WHERE id = 3"
check "a rewritten entry" "entry 3 (\"nothing happened\") was rewritten"
sql "UPDATE audit SET id = -2 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 3; UPDATE audit SET id = 3 WHERE id = -2"
check "a reordered pair" "breaks at entry 2"
pass "audit verify names the entry of a cut, a rewrite and a reordering"
