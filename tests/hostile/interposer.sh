#!/usr/bin/env bash
# An interposer on the TPM bus (issue 8, "How it is checked"): tpmproxy.py
# between the module and swtpm forges answers, and each check below states
# what the module must do about it. Every check prints one line, "ok: ..." or
# "FAIL: ... (reason)", and the test fails if any failed; later checks run on
# their own stores, so one failure does not hide another.
#  a  a substituted storage primary against an existing store: refused before
#     any salt is sent (no StartAuthSession, no session-protected command);
#     the same for a persistent storage key (primary_handle, ReadPublic)
#  b  forged PCR values while a pcr_policy binding is added: no seal bound to
#     them (the store opens afterwards without the proxy)
#  c  a forged NV_ReadPublic name during C_SetPIN: refused, or the new PIN
#     logs in afterwards
#  d  a forged TPM_RC_NV_SPACE on NV_DefineSpace, a forged ownerAuthSet bit:
#     the PIN is not moved to the dictionary-attack fallback without a line
#  e  forged PIN-counter reads: no "locked" flag with CKR_OK, no advice to
#     re-initialize the token
#  f  a stalled answer (none, or half): CKR_DEVICE_ERROR within the module's
#     TPM timeout (TPMTOKEN_TPM_TIMEOUT), and the next call works
#  g  a parameterSize far past the received answer (Unseal, NV_Read, Load,
#     PolicySecret during C_Login): no crash, no sanitizer report
#  h  a forged TPM_RC_LOCKOUT on each command of a C_Login with the correct
#     PIN (PIN-counter NV_Read, Load, PolicySecret, Unseal): CKR_DEVICE_ERROR,
#     never CKR_PIN_LOCKED; no PIN try used; the next login works
#  m  a forged 'authorization failed' on the PIN check (PolicySecret) or the
#     unseal during C_Login with the correct PIN: CKR_DEVICE_ERROR (for the
#     PIN check: the PIN counter, read in a verified session, did not move;
#     the unseal's authorization is the module's own), never
#     CKR_PIN_INCORRECT; a truly wrong PIN still gets CKR_PIN_INCORRECT
#  i  a forged error code on the store anchor's NV_Read: refused as an
#     answer that could not be authenticated, not as a replaced index
#  j  a lost or forged answer to the PIN counter's NV_DefineSpace (after the
#     TPM defined it) during C_InitPIN: no NV index left behind once the
#     store has been opened again
#  l  the answer to the flush of the policy session that wrote a new PIN
#     counter is lost (C_InitPIN): the PIN is set, not "called in the wrong
#     order" (the write's completion used to run after that flush)
#  n  a forged 'wrong mode' or 'attribute not allowed' on an AES key's
#     TPM2_EncryptDecrypt2: CKR_DEVICE_ERROR naming the altered answer (the
#     key's own public area allows the use), not CKR_KEY_FUNCTION_NOT_PERMITTED
#     with advice to make a new key
#  o  a forged 'busy' (TPM_RC_RETRY) on the PIN check after the TPM ran it:
#     the login starts over and succeeds; no PIN try used (a resend with the
#     used nonces failed its HMAC and counted)
#  p  a changed nonce in the answer that starts the PIN's policy session:
#     CKR_DEVICE_ERROR; nothing counted on the PIN counter or the TPM's
#     dictionary-attack counter (the unseal's HMAC failed on the DA-guarded
#     seal)
#  k  a substituted storage primary while a process is running (the TPM
#     restarted under it, so it re-creates the primary): the call gets
#     CKR_DEVICE_ERROR with the mismatch line, nothing is loaded under or
#     salted to that key, and the process signs again once the bus is honest
source "$(dirname "$0")/lib.sh"
fixture_start
proxy_start
T=${TOOL:?TOOL must name the tpmtoken binary}
export TPMTOKEN_CONF="$WORK/tpmtoken.conf"
: >"$TPMTOKEN_CONF"
FAILED=()
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; FAILED+=("$1"); }
# use NAME: a fresh store for the next check.
use() { export TPMTOKEN_STORE="$WORK/$1/tpmtoken.sqlite3"; mkdir -p "$WORK/$1"; rules '[]'; }
status_field() {  # status_field LABEL KEY (status through the direct path)
  direct "$T" --json status 2>/dev/null | "$PY" -c '
import json, sys
for t in json.load(sys.stdin)["tokens"]:
    if t.get("label") == sys.argv[1]:
        print(t.get(sys.argv[2], "")); break' "$1" "$2"
}
logs_in() {  # logs_in LABEL PIN (direct to swtpm)
  direct p11 --token-label "$1" --login --pin "$2" -O >/dev/null 2>&1
}

# ---- a: storage primary substituted against an existing store
use a
direct init_token a 12345678 1234
before=$(sqlite3 "$TPMTOKEN_STORE" .dump | sha256sum)
mark a
rules '[{"kind": "substitute_primary", "cc": "CreatePrimary", "count": 0},
        {"kind": "substitute_primary", "cc": "ReadPublic", "count": 0}]'
out=$(p11 --token-label a --login --pin 1234 -O 2>&1) && rc=0 || rc=$?
rules '[]'
after_sub=$(since a | awk '/^! .* substitute_primary unique point/ { f = 1; next } f && /^> / { print $3 }')
subst=$(since a | count_lines '^! .* substitute_primary unique point')
if [ "$subst" -eq 0 ]; then
  bad a "the proxy substituted nothing (no CreatePrimary/ReadPublic answer seen)"
elif grep -qx StartAuthSession <<<"$after_sub"; then
  bad a "a salt was sent to the substituted key: StartAuthSession followed the forged answer" \
    "(then: $(echo $after_sub | tr ' ' '\n' | sort | uniq -c | tr '\n' ' '))"
elif since a | awk '/substitute_primary unique point/ { f = 1 } f && /^> / && $4 ~ /^8002/ && $3 != "CreatePrimary"' | grep -q .; then
  bad a "a session-protected command followed the forged answer"
elif [ "$rc" -eq 0 ]; then
  bad a "the login succeeded through a substituted storage key"
elif ! grep -qiE 'storage (key|primary).*(does not match|substitut|not the one)' <<<"$out"; then
  bad a "refused, but no line names a mismatched storage key: $(head -c 300 <<<"$out")"
elif [ "$(sqlite3 "$TPMTOKEN_STORE" .dump | sha256sum)" != "$before" ]; then
  bad a "the store changed under the substituted key"
elif ! logs_in a 1234; then
  bad a "the token no longer opens without the proxy"
else
  ok "a: a substituted storage primary is refused before any salt is sent, with a line"
fi

# ---- a2: the same against a store on a persistent storage key (primary_handle)
use a2
direct tpm2_createprimary -T "$DIRECT_TCTI" -C o -G ecc256:aes128cfb -c "$WORK/srk.ctx" \
  -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' >/dev/null 2>&1 \
  && direct tpm2_evictcontrol -T "$DIRECT_TCTI" -C o -c "$WORK/srk.ctx" 0x81000001 >/dev/null 2>&1 \
  && direct tpm2_flushcontext -T "$DIRECT_TCTI" -t >/dev/null 2>&1 || bad a "persisting a storage key"
echo "primary_handle = 0x81000001" >"$TPMTOKEN_CONF"
direct init_token a2 12345678 1234
mark a2
rules '[{"kind": "substitute_primary", "cc": "ReadPublic", "count": 0}]'
out=$(p11 --token-label a2 --login --pin 1234 -O 2>&1) && rc=0 || rc=$?
rules '[]'
after_sub=$(since a2 | awk '/^! .* substitute_primary unique point/ { f = 1; next } f && /^> / { print $3 }')
if ! since a2 | grep -q '^! .* substitute_primary unique point'; then
  bad a "persistent key: the proxy substituted nothing (no ReadPublic answer seen)"
elif grep -qx StartAuthSession <<<"$after_sub"; then
  bad a "persistent key: a salt was sent to the substituted key (StartAuthSession followed the forged ReadPublic)"
elif [ "$rc" -eq 0 ]; then
  bad a "persistent key: the login succeeded through a substituted storage key"
elif ! grep -qiE 'storage (key|primary).*(does not match|substitut|not the one)' <<<"$out"; then
  bad a "persistent key: refused, but no line names a mismatched storage key: $(head -c 300 <<<"$out")"
elif ! logs_in a2 1234; then
  bad a "persistent key: the token no longer opens without the proxy"
else
  ok "a: a substituted persistent storage key (ReadPublic) is refused before any salt is sent"
fi
: >"$TPMTOKEN_CONF"

# ---- b: forged PCR values when the store key is (re)bound to PCRs
use b
direct init_token b 12345678 1234
echo "pcr_policy = sha256:16" >"$TPMTOKEN_CONF"
mark b
# TPM2_PCR_Read's parameters: updateCounter (4), one selection (4+2+1+3),
# digest count (4), digest size (2), then the digest.
rules '[{"kind": "xor", "cc": "PCR_Read", "offset": 20, "hex": "5a5a5a5a", "count": 0}]'
out=$(p11 --token-label b -O 2>&1) && rc=0 || rc=$?
rules '[]'
forged=$(since b | count_lines '^! .* PCR_Read xor')
if [ "$forged" -eq 0 ]; then
  bad b "the module read no PCR through the proxy (nothing forged)"
elif ! out2=$(direct p11 --token-label b --login --pin 1234 -O 2>&1); then
  bad b "after forged PCR values the store no longer opens on the real PCRs (the seal is bound to the forged values): $(grep -m1 -i 'tpmtoken' <<<"$out2")"
elif [ "$(direct "$T" --json status 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["store"]["pcr_policy"])')" != "sha256:16" ]; then
  bad b "the binding was not added by the direct open afterwards"
else
  ok "b: forged PCR values bind no seal (rc=$rc through the proxy; the store opens on the real PCRs)"
fi
: >"$TPMTOKEN_CONF"

# ---- c: forged NV_ReadPublic during C_SetPIN: the name, then the public
# area (TPMA_NV_WRITTEN flipped: parameters are size (2), nvIndex (4),
# nameAlg (2), then the attributes, bit 29 in their first byte)
use c
direct init_token c 12345678 1234
setpin_check() {  # setpin_check WHAT RULE OLD NEW
  mark "c $1"
  rules "$2"
  out=$(p11 --token-label c --login --pin "$3" --change-pin --new-pin "$4" 2>&1) && rc=0 || rc=$?
  rules '[]'
  if ! since "c $1" | grep -q '^! .* NV_ReadPublic xor'; then
    bad c "$1: no NV_ReadPublic crossed the proxy during C_SetPIN (nothing forged)"
  elif [ "$rc" -eq 0 ]; then
    if logs_in c "$4"; then ok "c: C_SetPIN with a forged NV $1: CKR_OK and the new PIN logs in"; PIN_C=$4
    else bad c "C_SetPIN with a forged NV $1 returned CKR_OK but the new PIN can never log in"; fi
  else
    if logs_in c "$3"; then ok "c: C_SetPIN with a forged NV $1 refused; the old PIN still logs in"
    elif logs_in c "$4"; then bad c "C_SetPIN with a forged NV $1 reported failure but the PIN was changed"; PIN_C=$4
    else bad c "C_SetPIN with a forged NV $1 failed and neither PIN logs in"; fi
  fi
}
PIN_C=1234
setpin_check name '[{"kind": "xor", "cc": "NV_ReadPublic", "offset": -1, "hex": "01", "count": 0}]' "$PIN_C" 5678
setpin_check "public area" '[{"kind": "xor", "cc": "NV_ReadPublic", "offset": 8, "hex": "20", "count": 0}]' "$PIN_C" 9012

# ---- d: forged NV_SPACE and ownerAuthSet while a PIN gets its counter
check_no_silent_fallback() {  # check_no_silent_fallback LABEL WHAT RC OUT
  local pc
  pc=$(status_field "$1" pin_counter)
  if [ "$pc" = "dictionary-attack" ]; then
    if [ "$3" -eq 0 ] && ! grep -qiE 'dictionary.attack' <<<"$4"; then
      bad d "$2: the PIN moved to the dictionary-attack fallback silently (CKR_OK, no line)"
    elif [ "$3" -eq 0 ]; then
      bad d "$2: the PIN moved to the dictionary-attack fallback on a forged answer (a line, but no setting asked for it)"
    else
      bad d "$2: the PIN moved to the dictionary-attack fallback although the call failed"
    fi
  elif [ "$3" -ne 0 ] && ! grep -q 'tpmtoken' <<<"$4"; then
    bad d "$2: refused without a line naming the cause"
  else
    ok "d: $2: no silent fallback (rc=$3, pin_counter=${pc:-none})"
  fi
}
use d1
direct p11 --slot-index 0 --init-token --label d1 --so-pin 12345678 >/dev/null 2>&1 || bad d "init-token d1"
mark d1
rules '[{"kind": "rc", "cc": "NV_DefineSpace", "rc": "NV_SPACE", "count": 0}]'
out=$(p11 --token-label d1 --login --login-type so --so-pin 12345678 --init-pin --pin 1234 2>&1) && rc=0 || rc=$?
rules '[]'
if ! since d1 | grep -q '^! .* NV_DefineSpace rc'; then bad d "no NV_DefineSpace crossed the proxy"
else check_no_silent_fallback d1 "forged TPM_RC_NV_SPACE on NV_DefineSpace" "$rc" "$out"; fi
use d2
direct p11 --slot-index 0 --init-token --label d2 --so-pin 12345678 >/dev/null 2>&1 || bad d "init-token d2"
mark d2
# GetCapability(TPM_CAP_TPM_PROPERTIES, TPM_PT_PERMANENT): moreData (1),
# capability (4), count (4), property (4), then TPMA_PERMANENT; bit 0 is
# ownerAuthSet.
rules '[{"kind": "set_bits", "cc": "GetCapability", "match": "0000000600000200", "offset": 13,
         "mask": 1, "count": 0}]'
out=$(p11 --token-label d2 --login --login-type so --so-pin 12345678 --init-pin --pin 1234 2>&1) && rc=0 || rc=$?
rules '[]'
if ! since d2 | grep -q '^! .* GetCapability set_bits'; then
  ok "d: the module did not read ownerAuthSet while setting a PIN (nothing to forge)"
else check_no_silent_fallback d2 "forged ownerAuthSet bit in GetCapability" "$rc" "$out"; fi

# ---- e: forged PIN-counter reads
use e
direct init_token e 12345678 1234
mark e
# TPM2_NV_Read's parameters: size (2), then pinCount (4), pinLimit (4).
rules '[{"kind": "patch", "cc": "NV_Read", "offset": 2, "hex": "0000ffff", "count": 0}]'
out=$(TPMTOKEN_LOG=info p11 -L 2>&1) && rc=0 || rc=$?
flags=$(awk '/token label/ { f = ($4 == "e") } f && /token flags/ { print; exit }' <<<"$out")
rules '[]'
if ! since e | grep -q '^! .* NV_Read patch'; then
  bad e "no NV_Read crossed the proxy for C_GetTokenInfo (nothing forged)"
elif grep -qi 'locked' <<<"$flags"; then
  bad e "C_GetTokenInfo returned CKR_OK with a locked PIN from a forged counter read ($flags)"
elif grep -qiE 'C_InitToken|init-token|re-?initiali[sz]e' <<<"$out"; then
  bad e "a log line advises re-initializing the token: $(grep -m1 -iE 'C_InitToken|init-token|initiali' <<<"$out")"
else
  ok "e: forged PIN-counter reads: no locked flag with CKR_OK, no advice to wipe"
fi
if ! logs_in e 1234; then bad e "the correct PIN no longer logs in after forged counter reads"; fi

# ---- f: stalled answers, on a signature. The call is timed by pkcs11-spy
# between the module and pkcs11-tool: pkcs11-tool itself tries C_Sign and then
# C_SignUpdate/C_SignFinal, so its own run takes two timeouts; each call must
# end within one.
use f
direct init_token f 12345678 1234
direct p11 --token-label f --login --pin 1234 --keypairgen --key-type EC:prime256v1 --id 0f >/dev/null 2>&1 \
  || bad f "EC keygen"
printf 'stall' >"$WORK/f.msg"
export TPMTOKEN_TPM_TIMEOUT=2
SPY=$(ls /usr/lib/*/pkcs11/pkcs11-spy.so /usr/lib/*/pkcs11-spy.so 2>/dev/null | head -1)
[ -n "$SPY" ] || bad f "pkcs11-spy.so (OpenSC) is not installed: the call cannot be timed"
sign_f() {
  rm -f "$WORK/f.spy"
  timeout 30 env ${asan_runtime:+LD_PRELOAD="$asan_runtime" ASAN_OPTIONS=detect_leaks=0:halt_on_error=1} \
    PKCS11SPY="$MODULE" PKCS11SPY_OUTPUT="$WORK/f.spy" \
    pkcs11-tool --module "$SPY" --token-label f --login --pin 1234 --sign -m ECDSA-SHA256 --id 0f \
    -i "$WORK/f.msg" -o "$WORK/f.sig" 2>&1
}
# spy_took CALL: seconds from CALL's entry to the next call's, from the spy log.
spy_took() {
  "$PY" - "$WORK/f.spy" "$1" <<'PY'
import datetime, re, sys
lines = open(sys.argv[1]).read().splitlines()
calls = []
for i, l in enumerate(lines):
    m = re.match(r"^\d+: (C_\w+)$", l)
    if m and i + 1 < len(lines):
        calls.append((m.group(1), datetime.datetime.strptime(lines[i + 1], "%Y-%m-%d %H:%M:%S.%f")))
for (name, t), (_, t2) in zip(calls, calls[1:]):
    if name == sys.argv[2]:
        print(round((t2 - t).total_seconds(), 2)); break
PY
}
for kind in stall stall_half; do
  rules "[{\"kind\": \"$kind\", \"cc\": \"Sign\", \"count\": 0}]"
  out=$(sign_f) && rc=0 || rc=$?
  took=$(spy_took C_Sign)
  rules '[]'
  if [ "$rc" -eq 124 ]; then
    bad f "$kind: C_Sign hung past 30 s (TPMTOKEN_TPM_TIMEOUT=2)"
  elif [ -z "$took" ]; then
    bad f "$kind: no C_Sign in the spy log: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
  elif ! "$PY" -c "import sys; sys.exit(0 if $took <= 2 + 1 else 1)"; then
    bad f "$kind: C_Sign took ${took} s, past the 2 s timeout"
  elif ! grep -q 'C_Sign.*CKR_DEVICE_ERROR' <<<"$out"; then
    bad f "$kind: expected C_Sign to return CKR_DEVICE_ERROR after ${took} s, got: $(grep -v "^tpmtoken" <<<"$out" | tail -n 2 | tr '\n' ' ')"
  elif ! sign_f >/dev/null; then
    bad f "$kind: the next signature through the now honest bus failed"
  else
    ok "f: $kind: C_Sign returned CKR_DEVICE_ERROR after ${took} s; the next call works"
  fi
done
unset TPMTOKEN_TPM_TIMEOUT

# ---- g: a response whose parameterSize claims more than arrived (the
# response-wipe overflow of issue 8): no crash, no sanitizer report (on
# build-asan), and the next login works.
use g
direct init_token g 12345678 1234
# (nth 1: the second Unseal or Load of the process, the token key's for
# C_Login; the first is the store key's at C_Initialize.)
for step in Unseal:0 Unseal:1 NV_Read:0 Load:1 PolicySecret:0; do
  cc=${step%:*}
  mark "g $step"
  rules "[{\"kind\": \"param_size\", \"cc\": \"$cc\", \"nth\": ${step#*:}, \"value\": 4294967280}]"
  out=$(timeout 30 env ${asan_runtime:+LD_PRELOAD="$asan_runtime" ASAN_OPTIONS=detect_leaks=0:halt_on_error=1} \
    pkcs11-tool --module "$MODULE" --token-label g --login --pin 1234 -O 2>&1) && rc=0 || rc=$?
  rules '[]'
  if ! since "g $step" | grep -q "^! .* $cc param_size parameterSize"; then
    ok "g: no $cc answer with a session area crossed the proxy during C_Login (nothing forged)"
  elif [ "$rc" -ge 124 ] || grep -qE 'Sanitizer|runtime error' <<<"$out"; then
    bad g "$cc #${step#*:}: parameterSize 0xfffffff0 in the answer: the process died or a sanitizer reported (exit $rc): $(grep -m2 -E 'Sanitizer|runtime error|SUMMARY' <<<"$out")"
  elif ! logs_in g 1234; then
    bad g "$cc: after a forged parameterSize the correct PIN no longer logs in"
  else
    ok "g: parameterSize 0xfffffff0 in $cc answer #${step#*:}: no crash (exit $rc); the next login works"
  fi
done

# ---- h: response codes carry no HMAC; a "lockout" is believed only from the
# TPM's audited state (TPMA_PERMANENT inLockout), and a PIN counter read with
# the owner authorization (never subject to lockout) that fails is a device
# error.
use h
direct init_token h 12345678 1234
before=$(pin_counters)
[ -n "$before" ] || bad h "no PIN counter found in the TPM"
pin_rules=$(while read -r idx _; do
  printf '{"kind": "rc", "rc": "LOCKOUT", "cc": "NV_Read", "match": "%08x", "count": 0},' "$idx"
done <<<"$before")
# forged_login CHECK STEP RULES CODE FORBIDDEN [CAUSE]: a C_Login with the
# correct PIN while the proxy applies RULES (forging CODE on STEP's command):
# CKR_DEVICE_ERROR, never FORBIDDEN, CAUSE in the output when given, no PIN
# try used (the counters in $before), and the PIN logs in afterwards.
forged_login() {
  local check=$1 step=$2 code=$4 forbidden=$5 cause=${6:-} cc=${2%:*} out
  mark "$check $step"
  rules "$3"
  # (by slot: the token lookup reads the counters too, and would fail first)
  out=$(p11 --slot-index 0 --login --pin 1234 -O 2>&1) || true
  rules '[]'
  if ! since "$check $step" | grep -q "^! .* $cc rc"; then
    bad "$check" "$step: no $cc answer was forged (the login did not reach it)"
  elif grep -q "$forbidden" <<<"$out"; then
    bad "$check" "$step: a forged $code made C_Login return $forbidden for the correct PIN"
  elif ! grep -q 'C_[A-Za-z]*.*CKR_DEVICE_ERROR' <<<"$out"; then
    bad "$check" "$step: expected CKR_DEVICE_ERROR, got: $(grep -v '^tpmtoken' <<<"$out" | tail -n 2 | tr '\n' ' ')"
  elif [ -n "$cause" ] && ! grep -q "$cause" <<<"$out"; then
    bad "$check" "$step: CKR_DEVICE_ERROR without the line naming the cause: $(grep '^tpmtoken' <<<"$out" | tr '\n' ' ')"
  elif [ "$(pin_counters)" != "$before" ]; then
    bad "$check" "$step: a PIN try was used by the correct PIN ($(echo $before) -> $(echo $(pin_counters)))"
  elif ! logs_in "$check" 1234; then
    bad "$check" "$step: the correct PIN no longer logs in"
  else
    ok "$check: forged $code on $step during C_Login: CKR_DEVICE_ERROR${cause:+ naming it}, no try used"
  fi
}
for step in NV_Read Load:1 PolicySecret:0 Unseal:1; do
  cc=${step%:*}
  if [ "$cc" = NV_Read ]; then r="[${pin_rules%,}]"
  else r="[{\"kind\": \"rc\", \"rc\": \"LOCKOUT\", \"cc\": \"$cc\", \"nth\": ${step#*:}}]"; fi
  forged_login h "$step" "$r" TPM_RC_LOCKOUT CKR_PIN_LOCKED
done

# ---- m: a forged "wrong PIN": a PIN_FAIL counter only moves up (nothing
# resets it but a new PIN), so a wrong PIN that did not move it is a forgery.
use m
direct init_token m 12345678 1234
before=$(pin_counters)
for step in PolicySecret:0 Unseal:1; do
  cause=""
  [ "${step%:*}" = PolicySecret ] && cause="answered 'wrong PIN', but the user PIN counter did not move"
  forged_login m "$step" "[{\"kind\": \"rc\", \"rc\": \"0x98e\", \"cc\": \"${step%:*}\", \"nth\": ${step#*:}}]" \
    "'authorization failed'" CKR_PIN_INCORRECT "$cause"
done
out=$(p11 --slot-index 0 --login --pin 9999 -O 2>&1) && bad m "a wrong PIN logged in"
grep -q CKR_PIN_INCORRECT <<<"$out" && ok "m: a truly wrong PIN through the proxy: CKR_PIN_INCORRECT" ||
  bad m "a truly wrong PIN: $(grep -v '^tpmtoken' <<<"$out" | tail -n 2 | tr '\n' ' ')"

# ---- i: a forged error code on the store anchor's NV_Read (the first NV_Read
# of C_Initialize) is an answer that could not be authenticated; the
# "undefined or replaced" line stays for an index really gone (tested in
# anchor_*).
use i
direct init_token i 12345678 1234
for code in AUTH_FAIL NV_AUTHORIZATION HANDLE; do
  mark "i $code"
  rules "[{\"kind\": \"rc\", \"rc\": \"$code\", \"cc\": \"NV_Read\", \"nth\": 0}]"
  out=$(p11 -L 2>&1) && rc=0 || rc=$?
  rules '[]'
  if ! since "i $code" | grep -q '^! .* NV_Read rc'; then
    bad i "$code: the anchor's NV_Read was not forged"
  elif grep -qi 'undefined or replaced' <<<"$out"; then
    bad i "$code: a forged answer is reported as an undefined or replaced anchor: $(grep -m1 -i 'undefined or replaced' <<<"$out" | head -c 300)"
  elif ! grep -qiE 'could not be authenticated|not authenticated' <<<"$out"; then
    bad i "$code: no line says the anchor's answer could not be authenticated: $(grep -m2 '^tpmtoken' <<<"$out" | head -c 400)"
  elif ! logs_in i 1234; then
    bad i "$code: the token does not open afterwards on an honest bus"
  else
    ok "i: forged $code on the anchor's NV_Read: refused as an unauthenticated answer"
  fi
done

# ---- j: the TPM runs NV_DefineSpace, the module gets no answer or a forged
# error: the index it may have made goes, or its intent stays for the next
# open (which reclaims it). Counted around the proxy after one more open.
for kind in drop rc:FAILURE rc:NV_DEFINED; do
  use "j${kind//:/}"
  direct p11 --slot-index 0 --init-token --label j --so-pin 12345678 >/dev/null 2>&1 || bad j "init-token"
  before=$(pin_counters | wc -l)  # (every store's on this swtpm)
  mark "j $kind"
  r="{\"kind\": \"${kind%%:*}\", \"cc\": \"NV_DefineSpace\""
  [ "$kind" = drop ] || r="$r, \"rc\": \"${kind#*:}\""
  rules "[$r}]"
  out=$(p11 --token-label j --login --login-type so --so-pin 12345678 --init-pin --pin 1234 2>&1) && rc=0 || rc=$?
  rules '[]'
  direct p11 -L >/dev/null 2>&1 || bad j "$kind: the store does not open afterwards"
  want=$before
  logs_in j 1234 && want=$((before + 1))
  have=$(pin_counters | wc -l)
  if ! since "j $kind" | grep -q '^! .* NV_DefineSpace'; then
    bad j "$kind: no NV_DefineSpace answer was forged"
  elif [ "$have" -ne "$want" ]; then
    bad j "$kind on NV_DefineSpace: $have PIN counters in the TPM, $want expected (C_InitPIN rc=$rc): an index leaked"
  else
    ok "j: $kind on NV_DefineSpace: no index left ($before PIN counters before, $have after; C_InitPIN rc=$rc)"
  fi
done

# ---- l: the flush after a PIN counter's first write loses its answer
use l
direct p11 --slot-index 0 --init-token --label l --so-pin 12345678 >/dev/null 2>&1 || bad l "init-token"
mark l
rules '[{"kind": "drop", "cc": "FlushContext", "after": "NV_Write"}]'
out=$(p11 --token-label l --login --login-type so --so-pin 12345678 --init-pin --pin 1234 2>&1) && rc=0 || rc=$?
rules '[]'
if ! since l | grep -q '^! .* FlushContext drop'; then
  bad l "no FlushContext answer after an NV_Write was dropped: $(since l | awk '/^> / { print $3 }' | tr '\n' ' ')"
elif grep -q "wrong order" <<<"$out"; then
  bad l "reported as out of order: $(grep "wrong order" <<<"$out")"
elif [ "$rc" -ne 0 ]; then
  bad l "C_InitPIN failed (rc=$rc): $out"
elif ! logs_in l 1234; then
  bad l "C_InitPIN succeeded but the new PIN does not log in"
else
  ok "l: the flush after a PIN counter's first write lost its answer: C_InitPIN succeeded and the PIN logs in"
fi

# ---- n: forged refusals of an AES key's use
use n
direct init_token n 12345678 1234
direct p11 --token-label n --login --pin 1234 --keygen --key-type AES:16 --id 03 --label aes \
  >/dev/null 2>&1 || bad n "AES keygen"
head -c 32 /dev/zero >"$WORK/n.plain"
for code in 0x089:MODE 0x082:ATTRIBUTES; do
  mark "n $code"
  rules "[{\"kind\": \"rc\", \"rc\": \"${code%%:*}\", \"cc\": \"EncryptDecrypt2\", \"count\": 0}]"
  out=$(p11 --token-label n --login --pin 1234 --encrypt -m AES-ECB --id 03 -i "$WORK/n.plain" \
    -o "$WORK/n.enc" 2>&1) && rc=0 || rc=$?
  rules '[]'
  if ! since "n $code" | grep -q '^! .* EncryptDecrypt2 rc'; then
    bad n "${code#*:}: no EncryptDecrypt2 answer was forged: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
  elif grep -q "KEY_FUNCTION_NOT_PERMITTED\|Make a new key" <<<"$out"; then
    bad n "${code#*:}: a forged refusal blamed on the key: $(grep -m1 'KEY_FUNCTION\|new key' <<<"$out")"
  elif ! grep -q "allows this direction and mode, so the answer was altered" <<<"$out"; then
    bad n "${code#*:}: the altered answer is not named: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
  else
    ok "n: a forged TPM_RC_${code#*:} on an AES key's EncryptDecrypt2: the altered answer named (rc=$rc), not the key"
  fi
done
direct p11 --token-label n --login --pin 1234 --encrypt -m AES-ECB --id 03 -i "$WORK/n.plain" \
  -o "$WORK/n.enc" >/dev/null 2>&1 || bad n "the key does not encrypt on an honest bus"

# ---- k: storage primary substituted under a running process
if [ -n "${SIGNER:-}" ]; then
  # A store on the module's own primary: the TCG SRK that check a persisted
  # would be used instead (its point is recorded: nothing to substitute).
  tpm2_evictcontrol -T "$DIRECT_TCTI" -C o -c 0x81000001 >/dev/null 2>&1 || true
  use k
  direct init_token k 12345678 1234
  direct p11 --token-label k --login --pin 1234 --keypairgen --key-type EC:prime256v1 --id 01 \
    >/dev/null 2>&1 || bad k "keypairgen"
  mark "k start"
  STOP_FILE="$WORK/k.stop" TPMTOKEN_LOG=info "$SIGNER" k 1234 0 01 >"$WORK/k.out" 2>"$WORK/k.err" &
  signer=$!
  CLEANUP_PIDS+=("$signer")
  # Signing before the TPM restarts (a restart during its login fails the
  # login, and the signer stops; slow under ASan).
  signs_since() { since "$1" | awk '/^> / && $3 == "Sign" { f = 1 } END { exit !f }'; }
  for _ in $(seq 200); do signs_since "k start" && break; sleep 0.1; done
  signs_since "k start" || bad k "the signer did not sign within 20 s: $(head -n 3 "$WORK/k.err" | tr '\n' ' ')"
  mark k
  rules '[{"kind": "substitute_primary", "cc": "CreatePrimary", "count": 0}]'
  # The TPM restarts under it (power cycle on swtpm's control port, then
  # TPM2_Startup): its objects, sessions and saved contexts are gone, so the
  # signer re-creates the storage primary to reload its key.
  port=${DIRECT_TCTI##*port=}
  swtpm_ioctl --tcp "127.0.0.1:$((port + 1))" -i >/dev/null 2>&1 || bad k "swtpm_ioctl -i"
  tpm2_startup -T "$DIRECT_TCTI" -c >/dev/null 2>&1 || true
  sleep 1
  mark "k honest"
  rules '[]'
  sleep 1
  mark "k after"
  for _ in $(seq 100); do signs_since "k after" && break; sleep 0.1; done
  touch "$WORK/k.stop"
  wait "$signer" || true
  window=$(since k | awk '/^# mark k honest$/ { exit } /^! .* substitute_primary unique point/ { f = 1; next } f && /^> / { print $3 }' | sort -u | tr '\n' ' ')
  if ! since k | grep -q '^! .* substitute_primary unique point'; then
    bad k "no CreatePrimary answer was substituted (the signer never re-created the primary)"
  elif ! grep -q 'C_Sign.*: CKR 0x30$' "$WORK/k.err"; then
    bad k "no call got CKR_DEVICE_ERROR: $(grep -m3 'CKR' "$WORK/k.err" | tr '\n' ' ')"
  elif ! grep -q "does not match the one this store was made with" "$WORK/k.err"; then
    bad k "CKR_DEVICE_ERROR without the mismatch line: $(grep -m3 -i 'error' "$WORK/k.err" | tr '\n' ' ')"
  elif grep -q 'CKR 0x5$' "$WORK/k.err"; then
    bad k "a call got CKR_GENERAL_ERROR: $(grep -m1 'CKR 0x5$' "$WORK/k.err")"
  elif grep -qwE 'Load|StartAuthSession|Sign|Create' <<<"$window"; then
    bad k "after a substituted answer the module sent: $window"
  elif ! signs_since "k after"; then
    bad k "no signature after the bus was honest again: $(tail -n 3 "$WORK/k.err" | tr '\n' ' ')"
  else
    ok "k: a primary substituted under a running process: CKR_DEVICE_ERROR with the mismatch line, commands sent meanwhile: $window; signing again once honest ($(tail -n 1 "$WORK/k.out"))"
  fi
fi

# ---- o: a forged "busy" (TPM_RC_RETRY) on the PIN check after the TPM ran
# it. Resent with the same nonces, the command would fail its HMAC, and the
# PIN_FAIL index counts that: the correct PIN used a try and got
# CKR_PIN_INCORRECT. A PIN's commands are not resent: the use starts over.
use o
direct init_token o 12345678 1234
before=$(pin_counters)
mark o
rules '[{"kind": "rc", "rc": "0x922", "cc": "PolicySecret", "nth": 0}]'
out=$(p11 --slot-index 0 --login --pin 1234 -O 2>&1) && rc=0 || rc=$?
rules '[]'
if ! since o | grep -q '^! .* PolicySecret rc'; then
  bad o "no PolicySecret answer was forged"
elif [ "$(pin_counters)" != "$before" ]; then
  bad o "a PIN try was used by the correct PIN ($(echo $before) -> $(echo $(pin_counters))): $(grep -v '^tpmtoken' <<<"$out" | tail -n 1)"
elif [ "$rc" -ne 0 ]; then
  bad o "the login failed: $(grep -v '^tpmtoken' <<<"$out" | tail -n 2 | tr '\n' ' ')"
else
  ok "o: a forged 'busy' on the PIN check after the TPM ran it: the login started over and succeeded, no try used"
fi

# ---- p: a changed nonce in the answer that starts the PIN's policy session
# (TPM2_StartAuthSession's answer carries no HMAC). The unseal's HMAC, keyed
# with it, would fail on the PIN seal, which the TPM's dictionary-attack
# counter guards: the correct PIN would count there. PolicySecret carries
# the nonce, and the TPM refuses a wrong one before anything counts.
da_failures() {
  echo $(( $(tpm2_getcap -T "$DIRECT_TCTI" properties-variable | awk '/TPM2_PT_LOCKOUT_COUNTER/ { print $2 }') ))
}
use p
direct init_token p 12345678 1234
before=$(pin_counters) da_before=$(da_failures)
mark p
# (the bound policy session: tpmKey TPM_RH_NULL, bind the store's anchor)
rules '[{"kind": "xor", "cc": "StartAuthSession", "match": "0000017640000007", "offset": 2, "hex": "01"}]'
out=$(p11 --slot-index 0 --login --pin 1234 -O 2>&1) || true
rules '[]'
# TPM_RC_NONCE on PolicySecret's nonceTPM (parameter 1): 0x08F + 0x040 + 0x100
after_p=$(since p | awk '/^! .* StartAuthSession xor/ { f = 1 } f && /^> / { print $3 }' | tr '\n' ' ')
if ! since p | grep -q '^! .* StartAuthSession xor'; then
  bad p "no StartAuthSession answer was changed"
elif ! since p | grep -q '^< [0-9]* PolicySecret rc=0x1cf'; then
  bad p "the TPM did not refuse the changed nonce in PolicySecret (TPM_RC_NONCE): $after_p"
elif grep -qw Unseal <<<"$after_p"; then
  bad p "an unseal followed the changed nonce: $after_p"
elif [ "$(da_failures)" -ne "$da_before" ]; then
  bad p "the correct PIN counted on the TPM's dictionary-attack counter ($da_before -> $(da_failures))"
elif [ "$(pin_counters)" != "$before" ]; then
  bad p "a PIN try was used by the correct PIN ($(echo $before) -> $(echo $(pin_counters)))"
elif grep -q CKR_PIN_INCORRECT <<<"$out"; then
  bad p "CKR_PIN_INCORRECT for the correct PIN"
elif ! grep -q 'C_Login.*CKR_DEVICE_ERROR' <<<"$out"; then
  bad p "expected CKR_DEVICE_ERROR, got: $(grep -v '^tpmtoken' <<<"$out" | tail -n 2 | tr '\n' ' ')"
elif ! logs_in p 1234; then
  bad p "the correct PIN no longer logs in"
else
  ok "p: a changed nonce for the PIN's policy session: TPM_RC_NONCE on PolicySecret, no unseal, CKR_DEVICE_ERROR, nothing counted"
fi

if [ ${#FAILED[@]} -ne 0 ]; then
  echo "interposer: ${#FAILED[@]} check(s) failed: ${FAILED[*]} (bus log: KEEP_WORK=1 keeps $WORK)"
  exit 1
fi
echo "interposer: all checks passed"
