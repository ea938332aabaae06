#!/usr/bin/env bash
# The store key bound to PCRs (pcr_policy in tpmtoken.conf): the token works
# while the PCRs hold their values, refuses with a log line naming the PCRs
# and the cause once one is extended, changes nothing in the store meanwhile,
# and works again when the boot state is back. Binding can be added to, moved
# on and removed from an existing store by a process that can unseal it.
# Malformed selections are refused with the file and line. PCRs 16 and 23 are
# resettable from locality 0, which stands in for a reboot here.
source "$(dirname "$0")/lib.sh"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
export TPMTOKEN_CONF="$WORK/tpmtoken.conf"
T_() { tpm2_"$1" -T "$TPMTOKEN_TCTI" "${@:2}" >/dev/null 2>&1 || fail "tpm2_$1 ${*:2}"; }
extend() { T_ pcrextend "$1:sha256=$(printf '%064d' 7)"; }
reset_pcr() { T_ pcrreset "$1"; }
dump() { sqlite3 "$TPMTOKEN_STORE" .dump | sha256sum; }

# More than eight PCRs: TPM2_PCR_Read returns them over several calls.
echo "pcr_policy = sha256:0,1,2,3,4,5,6,7,8,9,16" >"$TPMTOKEN_CONF"
init_token bound 12345678 1234
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=pcr \
  -keyout "$WORK/k.pem" -out "$WORK/c.pem" 2>/dev/null
openssl x509 -in "$WORK/c.pem" -outform DER -out "$WORK/c.der"
p11 --token-label bound --login --pin 1234 --write-object "$WORK/c.der" --type cert --label device-cert \
  >/dev/null 2>&1 || fail "write cert"
"$T" status | grep -q 'bound to PCRs sha256:0,1,2,3,4,5,6,7,8,9,16' || fail "status: $("$T" status)"
[ "$("$T" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["store"]["pcr_policy"])')" \
  = "sha256:0,1,2,3,4,5,6,7,8,9,16" ] || fail "status --json pcr_policy"
p11 --token-label bound -O 2>/dev/null | grep -q device-cert || fail "cert not found while bound"
pass "a store bound to eleven PCRs works while they hold their values"

before=$(dump)
extend 16
out=$(p11 -L 2>&1) && fail "the token opened after PCR 16 changed: $out"
grep -q 'bound to PCRs sha256:0,1,2,3,4,5,6,7,8,9,16' <<<"$out" || fail "log line does not name the PCRs: $out"
grep -q 'boot state' <<<"$out" || fail "log line does not name the cause: $out"
grep -q 'CKR_FUNCTION_FAILED' <<<"$out" || fail "expected CKR_FUNCTION_FAILED: $out"
expect_fail 'boot state' "$T" status
[ "$(dump)" = "$before" ] || fail "the store changed while the PCRs did not match"
pass "a changed PCR refuses the store with a log line naming the PCRs; nothing changed"

reset_pcr 16
p11 --token-label bound -O 2>/dev/null | grep -q device-cert || fail "cert not found after the PCR came back"
p11 --token-label bound --login --pin 1234 -O 2>/dev/null | grep -q device-cert || fail "login after the PCR came back"
pass "the same boot state opens it again"

# Unbinding: an open store drops the binding when pcr_policy goes.
echo "# no pcr_policy" >"$TPMTOKEN_CONF"
out=$(p11 -L 2>&1) || fail "unbinding failed: $out"
"$T" status | grep -q 'not bound to PCRs' || fail "status after unbinding: $("$T" status)"
extend 16
p11 --token-label bound -O 2>/dev/null | grep -q device-cert || fail "an unbound store refused a PCR change"
reset_pcr 16
pass "removing pcr_policy unbinds the store key"

# Binding an existing store, then moving the binding to another PCR.
echo "pcr_policy = sha384:23" >"$TPMTOKEN_CONF"
p11 --token-label bound -O 2>/dev/null | grep -q device-cert || fail "binding an existing store"
echo "pcr_policy = sha256:16" >"$TPMTOKEN_CONF"
p11 --token-label bound -O 2>/dev/null | grep -q device-cert || fail "moving the binding"
extend 23
p11 --token-label bound -O 2>/dev/null | grep -q device-cert || fail "the old binding (sha384:23) still applies"
extend 16
expect_fail 'bound to PCRs sha256:16' p11 -L
# A changed boot state cannot be rebound away: editing the file does not help.
echo "# no pcr_policy" >"$TPMTOKEN_CONF"
expect_fail 'bound to PCRs sha256:16' p11 -L
reset_pcr 16
p11 --token-label bound -O 2>/dev/null | grep -q device-cert || fail "after resetting PCR 16"
pass "binding, moving and dropping the binding of an existing store; a changed PCR cannot be rebound"

# Malformed selections: the file and line, and no store is touched.
before=$(dump)
for bad in "sha256:24" "md5:1" "sha256" "sha256:1,,2" "sha256:x"; do
  printf '# line 1\npcr_policy = %s\n' "$bad" >"$TPMTOKEN_CONF"
  expect_fail "tpmtoken.conf:2: pcr_policy" p11 -L
done
[ "$(dump)" = "$before" ] || fail "a malformed pcr_policy changed the store"
pass "malformed pcr_policy values are refused with the file and line"
