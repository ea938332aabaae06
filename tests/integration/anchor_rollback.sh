#!/usr/bin/env bash
# Issue 7 item 1, as an attacker with the store file would try it: an old copy
# put back after a key delete, a PIN change and a rotation; the store
# truncated or deleted; the -wal file lost mid-use; the anchor counter
# re-created with a known auth. Each is refused at open with a line naming
# the cause (C_Initialize CKR_FUNCTION_FAILED, the tool exit 5) and nothing
# is written; accept-restore needs the SO PIN or the owner authorization.
source "$(dirname "$0")/lib.sh"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
S=$TPMTOKEN_STORE
echo 87654321 >"$WORK/so"
echo 123456 >"$WORK/pin"
export TPMTOKEN_PIN=123456
tpm() { tpm2_"$1" -T "$TPMTOKEN_TCTI" "${@:2}"; }
expect_exit() {  # expect_exit CODE PATTERN CMD...
  local want=$1 pattern=$2 rc=0
  shift 2
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "exit $rc (want $want) from $*: $(cat "$WORK/err")"
  grep -q -- "$pattern" "$WORK/err" "$WORK/out" || fail "no '$pattern' from $*: $(cat "$WORK/err")"
}
# The store as it is on disk, no process holding it (SQLite checkpoints on close).
save() { rm -f "$1"*; cp "$S" "$1"; [ ! -e "$S-wal" ] || cp "$S-wal" "$1-wal"; }
restore() { rm -f "$S" "$S-wal" "$S-shm"; cp "$1" "$S"; [ ! -e "$1-wal" ] || cp "$1-wal" "$S-wal"; }
keys() { "$T" key list 2>&1 | awk '{ print $1 }' | sort | tr '\n' ' '; }
refused_as_older() {  # refused_as_older WHAT: the tool and C_Initialize refuse, nothing written
  local sum
  sum=$(md5sum "$S" | cut -d' ' -f1)
  expect_exit 5 "older than this TPM's record" "$T" key list
  grep -q "accept-restore" "$WORK/err" || fail "$1: the line does not name the fix: $(cat "$WORK/err")"
  out=$(TPMTOKEN_LOG=error p11 -L 2>&1) && fail "$1: C_Initialize accepted the old copy"
  grep -q CKR_FUNCTION_FAILED <<<"$out" || fail "$1: C_Initialize: $out"
  grep -q "older than this TPM's record" <<<"$out" || fail "$1: no log line: $out"
  [ "$(md5sum "$S" | cut -d' ' -f1)" = "$sum" ] || fail "$1: the refused store was written"
}

"$T" token init --label dev --so-pin-file "$WORK/so" --pin-file "$WORK/pin" >/dev/null || fail "token init"
"$T" key generate --key k1 >/dev/null || fail "key generate k1"
"$T" key generate --key k2 >/dev/null || fail "key generate k2"
anchor=$(tpm getcap handles-nv-index | awk '/0x138/ { print $2 }')
[ -n "$anchor" ] || fail "no anchor counter in the TPM: $(tpm getcap handles-nv-index)"
pub=$(tpm nvreadpublic "$anchor") || fail "nvreadpublic $anchor"
grep -q 'friendly: authwrite|nt=0x1|authread|no_da|written' <<<"$pub" \
  || fail "the anchor is not an auth-protected counter: $pub"

# 1. A key delete, undone by putting the old copy back.
save "$WORK/before-delete"
"$T" key delete --key k1 >/dev/null || fail "key delete"
[ "$(keys)" = "k2 " ] || fail "keys after delete: $(keys)"
restore "$WORK/before-delete"
refused_as_older "key delete"
pass "an old copy after a key delete is refused (tool exit 5, CKR_FUNCTION_FAILED, a line naming it)"

# accept-restore: not with a wrong SO PIN; with the right one the copy is
# bound as it is (the administrator restored it on purpose).
expect_exit 4 "wrong PIN" "$T" store accept-restore --so-pin 00000000
"$T" key list >/dev/null 2>&1 && fail "a wrong SO PIN re-bound the store"
"$T" store accept-restore --so-pin-file "$WORK/so" >/dev/null 2>"$WORK/err" || fail "accept-restore: $(cat "$WORK/err")"
[ "$(keys)" = "k1 k2 " ] || fail "keys after accept-restore: $(keys)"
pass "accept-restore needs the SO PIN, then binds the restored copy"

# 2. A PIN change, undone by an old copy.
save "$WORK/before-pin"
"$T" pin change --pin-file "$WORK/pin" --new-pin 24682468 >/dev/null || fail "pin change"
restore "$WORK/before-pin"
refused_as_older "PIN change"
pass "an old copy after a PIN change is refused"
TPMTOKEN_LOG=warn "$T" store accept-restore --owner >/dev/null 2>"$WORK/err" || fail "accept-restore --owner: $(cat "$WORK/err")"
# The copy's user PIN counter went with the PIN change: the line says so and
# the SO sets a new user PIN.
grep -q "user PIN's counter .* no longer exists; the SO sets a new user PIN" "$WORK/err" \
  || fail "accept-restore does not name the lost user PIN counter: $(cat "$WORK/err")"
"$T" pin unlock --so-pin-file "$WORK/so" --new-pin-file "$WORK/pin" >/dev/null 2>&1 || fail "pin unlock"
"$T" key list >/dev/null || fail "the store does not open after accept-restore --owner"
[ "$(tpm getcap handles-nv-index | grep -c 0x138)" -eq 1 ] || fail "accept-restore --owner left two anchors"
pass "accept-restore --owner re-binds the store to a new counter"

# 3. A rotation, undone by an old copy.
make_ca "$WORK"
"$T" csr --key k2 --subject /CN=k2 --out "$WORK/k2.csr" || fail "csr"
sign_csr "$WORK/k2.csr" "$WORK/k2.pem"
"$T" cert import --key k2 "$WORK/k2.pem" >/dev/null || fail "cert import"
"$T" rotate --key k2 --out "$WORK/n.csr" 2>/dev/null || fail "rotate"
sign_csr "$WORK/n.csr" "$WORK/n.pem"
save "$WORK/before-finish"
"$T" rotate --key k2 --finish "$WORK/n.pem" >/dev/null || fail "rotate --finish"
restore "$WORK/before-finish"
refused_as_older "rotate --finish"
pass "an old copy after rotate --finish is refused"
restore_ok() { "$T" store accept-restore --so-pin-file "$WORK/so" >/dev/null 2>&1 || fail "accept-restore"; }
restore_ok

# 4. The -wal file lost while a process holds the store open: the committed
# delete it held is gone, and the open that follows says so.
mkfifo "$WORK/fifo"
sqlite3 "$S" <"$WORK/fifo" >/dev/null 2>&1 &
holder=$!
CLEANUP_PIDS+=("$holder")
exec 7>"$WORK/fifo"
echo "SELECT count(*) FROM meta;" >&7
sleep 0.3
"$T" key delete --key k1 >/dev/null || fail "key delete with the store held open"
[ -s "$S-wal" ] || fail "no -wal file to lose"
rm -f "$S-wal" "$S-shm"
# The holder dies without a checkpoint (a crash, a kill -9): what only the
# lost -wal file held is gone.
kill -9 "$holder"
wait "$holder" 2>/dev/null || true  # killed above: its status is the signal
exec 7>&-
expect_exit 5 "-wal file was lost" "$T" key list
pass "a lost -wal file is named at the next open"
restore_ok

# 5. Truncated to 0 bytes, then deleted: refused, never made anew.
save "$WORK/whole"
truncate -s 0 "$S"
expect_exit 5 "empty (truncated)" "$T" key list
grep -q "store delete" "$WORK/err" || fail "the truncation line does not name store delete"
out=$(p11 -L 2>&1) && fail "C_Initialize made a new store over a truncated one"
[ "$(stat -c %s "$S")" -eq 0 ] || fail "the truncated store was written"
rm -f "$S" "$S-wal" "$S-shm"
expect_exit 5 "is missing" "$T" status
[ ! -e "$S" ] || fail "a new store was created in place of the deleted one"
pass "a truncated or deleted store is refused, not replaced"
restore "$WORK/whole"
"$T" key list >/dev/null || fail "the store put back does not open"

# 6. The counter undefined and re-created by the owner with a known auth.
tpm nvundefine -C o "$anchor" >/dev/null || fail "nvundefine"
tpm nvdefine -C o -s 8 -a 'authread|authwrite|no_da|nt=counter' -p known "$anchor" >/dev/null || fail "nvdefine"
tpm nvincrement -P known "$anchor" >/dev/null || fail "nvincrement"
expect_exit 5 "does not hold the anchor" "$T" key list
pass "a re-created anchor counter is refused"
"$T" store accept-restore --owner >/dev/null 2>&1 || fail "accept-restore --owner after the re-creation"
"$T" key list >/dev/null || fail "the store does not open after re-binding"

# 7. store delete frees the anchor and the PIN counters; then a new store.
"$T" store delete --yes >"$WORK/out" 2>&1 || fail "store delete: $(cat "$WORK/out")"
# Freed: the anchor and every counter the store references. The counter of
# the PIN set before the copy of step 2 was put back is referenced by no
# store any more (the copy predates it), so it stays: exactly one.
nv=$(tpm getcap handles-nv-index)
[ "$(grep -c '0x138' <<<"$nv")" -eq 0 ] || fail "the anchor is left after store delete: $nv"
[ "$(grep -c '0x13[0-7]' <<<"$nv")" -le 1 ] || fail "PIN counters left after store delete: $nv"
[ ! -e "$S" ] || fail "the store file is still there"
"$T" status >/dev/null || fail "no new store after store delete"
pass "store delete frees the store's TPM state; a new store can be made"
