#!/usr/bin/env bash
# What a user meets first, before any client works: the library description
# whole (under 32 characters, blank-padded) and each slot naming its token;
# the tool's --token, --json and PIN options before or after the subcommand;
# TPMTOKEN_STORE naming a directory or a file; tpm2-tss's own log lines
# silent unless TPMTOKEN_LOG=debug or TSS2_LOG asks for them; exit code 3
# when there is no token.
source "$(dirname "$0")/lib.sh"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
echo 87654321 >"$WORK/so"
echo 123456 >"$WORK/pin"
expect_exit() {  # expect_exit CODE CMD...: output in $WORK/out, $WORK/err
  local want=$1 rc=0
  shift
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "exit $rc (want $want) from $*: $(cat "$WORK/err")"
}

# No token yet: the documented "no such token" code, 3, with its fix.
expect_exit 3 "$T" key list
grep -q 'there is no token: create one with `tpmtoken token init`' "$WORK/err" || fail "no token: $(cat "$WORK/err")"
pass "no token: exit 3 and the command that makes one"

# The raw CK_INFO and CK_SLOT_INFO fields, through Debian's PyKCS11 when
# present, else pkcs11-tool's (trimmed) view.
"$T" token init --label device --so-pin-file "$WORK/so" --pin-file "$WORK/pin" >/dev/null || fail "token init"
long=abcdefghijklmnopqrstuvwxyz012345   # 32 characters, the most a label holds
"$T" token init --label "$long" --so-pin-file "$WORK/so" --pin-file "$WORK/pin" >/dev/null || fail "token init (long label)"
if /usr/bin/python3 -c 'import PyKCS11' 2>/dev/null; then
  /usr/bin/python3 - "$MODULE" >"$WORK/fields" <<'PY' || fail "PyKCS11: $(cat "$WORK/fields")"
import sys, PyKCS11
from PyKCS11 import LowLevel
lib = PyKCS11.PyKCS11Lib(); lib.load(sys.argv[1])
ll = lib.lib
info = LowLevel.CK_INFO(); assert ll.C_GetInfo(info) == 0
print("library|%s|" % info.GetLibraryDescription())
for slot in lib.getSlotList():
    si = LowLevel.CK_SLOT_INFO(); assert ll.C_GetSlotInfo(slot, si) == 0
    print("slot|%s|" % si.GetSlotDescription())
PY
else
  p11 -I 2>/dev/null | sed -n 's/^Library *\(.*\) (ver.*/library|\1|/p' >"$WORK/fields"
  p11 -L 2>/dev/null | sed -n 's/^Slot [0-9]* ([^)]*): \(.*\)$/slot|\1|/p' >>"$WORK/fields"
fi
grep -q '^library|tpmtoken TPM 2.0 PKCS#11 token *|$' "$WORK/fields" || fail "library description: $(cat "$WORK/fields")"
# The field is 32 bytes, blank-padded: the text itself is shorter, so no
# client cuts it.
desc=$(sed -n 's/^library|\(.*\)|$/\1/p' "$WORK/fields")
shopt -s extglob
trimmed=${desc%%+( )}
[ "${#trimmed}" -lt 32 ] || fail "library description fills the field: '$desc'"
grep -q '^slot|tpmtoken device *|$' "$WORK/fields" || fail "no slot names the token 'device': $(cat "$WORK/fields")"
serial=$("$T" --json token list | python3 -c 'import json,sys; print([t["serial"] for t in json.load(sys.stdin) if t["label"]=="'"$long"'"][0])') \
  || fail "token list --json"
grep -q "^slot|tpmtoken serial $serial *|\$" "$WORK/fields" || fail "the long-labelled token's slot does not name its serial: $(cat "$WORK/fields")"
grep -q '^slot|tpmtoken free slot (no token) *|$' "$WORK/fields" || fail "free slot: $(cat "$WORK/fields")"
[ "$(cut -d'|' -f2 "$WORK/fields" | sed 's/ *$//' | sort | uniq -d)" = "" ] || fail "two fields read the same: $(cat "$WORK/fields")"
pass "library description whole and padded; each slot names its token (label, or serial when the label is long)"

# Options before or after the subcommand (two tokens: --token is needed).
export TPMTOKEN_PIN=123456
"$T" --token device key generate --key k1 >/dev/null || fail "--token before the subcommand"
"$T" key generate --key k2 --token device >/dev/null || fail "--token after the subcommand"
"$T" key generate --token device --key k3 --type ec:p256 >/dev/null || fail "--token between options"
unset TPMTOKEN_PIN
for form in "--token device --json --pin-file $WORK/pin key list" "key list --token device --json --pin-file $WORK/pin" \
  "--json key list --pin-file $WORK/pin --token device" "--pin-file $WORK/pin --token device key list --json"; do
  # shellcheck disable=SC2086
  out=$("$T" $form 2>&1) || fail "tpmtoken $form: $out"
  for k in k1 k2 k3; do grep -q "\"label\":\"$k\"" <<<"$out" || fail "tpmtoken $form: $out"; done
done
expect_exit 2 "$T" key list --pin-file "$WORK/pin"
grep -q 'there are several tokens: name one with --token' "$WORK/err" || fail "several tokens: $(cat "$WORK/err")"
pass "--token, --json and --pin-file before or after the subcommand"

# A wrong PIN: the tool's one line, and tpm2-tss says nothing of its own...
echo 000000 >"$WORK/wrong"
expect_exit 4 "$T" --token device key list --pin-file "$WORK/wrong"
grep -q "login to 'device': wrong PIN" "$WORK/err" || fail "wrong PIN: $(cat "$WORK/err")"
[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "more than one line for a wrong PIN: $(cat "$WORK/err")"
# No TPM where TPMTOKEN_TCTI points: the tool's one line naming the cause
# and the fix, from the tool and from the module; tpm2-tss's own lines only
# with TPMTOKEN_LOG=debug or the user's TSS2_LOG.
TPMTOKEN_TCTI=device:/nonexistent expect_exit 5 "$T" status
grep -q "^tpmtoken: cannot reach the TPM through 'device:/nonexistent'.*(set TPMTOKEN_TCTI" "$WORK/err" \
  && [ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "no TPM: $(cat "$WORK/err")"
out=$(TPMTOKEN_TCTI=device:/nonexistent p11 -L 2>&1) && fail "the module initialized without a TPM"
grep -q 'ERROR:tcti' <<<"$out" && fail "tpm2-tss logged through the module: $out"
grep -q "cannot reach the TPM through 'device:/nonexistent'" <<<"$out" || fail "the module's line: $out"
# (A resource manager's device goes through tpm2-tss's device TCTI; a bare
# device such as /nonexistent is spoken by the module itself.)
TPMTOKEN_LOG=debug TPMTOKEN_TCTI=device:/nonexistent/tpmrm0 expect_exit 5 "$T" status
grep -q 'ERROR:tcti:.*Failed to open specified TCTI device file /nonexistent/tpmrm0' "$WORK/err" \
  || fail "TPMTOKEN_LOG=debug hides tpm2-tss: $(cat "$WORK/err")"
TSS2_LOG=tcti+error TPMTOKEN_TCTI=device:/nonexistent/tpmrm0 expect_exit 5 "$T" status
grep -q 'ERROR:tcti:.*Failed to open specified TCTI device file /nonexistent/tpmrm0' "$WORK/err" \
  || fail "the user's TSS2_LOG was overridden: $(cat "$WORK/err")"
"$T" pin unlock --token device --so-pin-file "$WORK/so" --new-pin-file "$WORK/pin" >/dev/null 2>&1 || fail "pin unlock"
pass "tpm2-tss silent by default; on with TPMTOKEN_LOG=debug or the user's TSS2_LOG"

# TPMTOKEN_STORE naming a directory: the store file is made inside it.
mkdir "$WORK/dirstore"
TPMTOKEN_STORE="$WORK/dirstore" "$T" token init --label in-dir --so-pin-file "$WORK/so" --pin-file "$WORK/pin" \
  >/dev/null 2>"$WORK/err" || fail "store in a directory: $(cat "$WORK/err")"
[ -f "$WORK/dirstore/tpmtoken.sqlite3" ] || fail "no tpmtoken.sqlite3 in the directory: $(ls "$WORK/dirstore")"
TPMTOKEN_STORE="$WORK/dirstore/" p11 -L 2>/dev/null | grep -q 'token label *: in-dir' || fail "the module does not open the directory's store"
TPMTOKEN_STORE="$WORK/dirstore/tpmtoken.sqlite3" "$T" token list | grep -q in-dir || fail "the same store named as a file"
pass "TPMTOKEN_STORE may name a directory (the store file is made inside it) or the file"
