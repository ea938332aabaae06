#!/usr/bin/env bash
# Cold start (issue 10 item 4): the TPM commands of one short-lived
# `pkcs11-tool --login --sign`, counted on the bus (tests/hostile/tpmproxy.py
# logs every command), for a store on the module's own primary (made by
# TPM2_CreatePrimary) and for one on the platform's TCG SRK at 0x81000001;
# `tpmtoken status` names which. The store's pin still decides: the store made
# before the SRK appeared keeps its own primary, and an SRK swapped for another
# key is refused with the mismatch line before anything is salted to it.
# The figures asserted are the ones this version reaches (README): with the
# SRK 14 commands up to TPM2_Sign, one salted StartAuthSession (the only
# asymmetric operation before the signature), the PIN's policy session bound
# to the store anchor instead, no GetCapability, one FlushContext (a
# three-slot TPM cannot hold two seals and a key while the SRK takes a slot
# for TPM2_Load).
source "$(dirname "$0")/../hostile/lib.sh"
fixture_start
proxy_start
T=${TOOL:?TOOL must name the tpmtoken binary}
printf 'a message to sign' >"$WORK/msg"

# cold_sign LABEL: one cold login + ECDSA sign; sets TO_SIGN (commands up to
# and with TPM2_Sign), TOTAL (with the flushes at C_Finalize) and CMDS.
RUN=0
cold_sign() {
  RUN=$((RUN + 1))
  mark "cold-$RUN"
  p11 --token-label "$1" --login --pin 1234 --sign -m ECDSA-SHA256 --id 01 -i "$WORK/msg" \
    -o "$WORK/sig" >"$WORK/last" 2>&1 || fail "cold sign on $1: $(tail -n 3 "$WORK/last")"
  CMDS=$(since "cold-$RUN" | awk '/^> / { print $3 }')
  TOTAL=$(wc -l <<<"$CMDS")
  TO_SIGN=$(awk '{ n++ } $0 == "Sign" { print n; exit }' <<<"$CMDS")
  [ -n "$TO_SIGN" ] || fail "no TPM2_Sign on the bus for $1: $(tr '\n' ' ' <<<"$CMDS")"
}
count() { count_lines -x "$1" <<<"$CMDS"; }
# sessions: one line per StartAuthSession of the last cold sign, "salted",
# "bound HANDLE" or "plain", then the session type (0 HMAC, 1 policy), read
# from the command bytes (Part 3, 11.1: tpmKey, bind, nonceCaller,
# encryptedSalt, sessionType).
sessions() {
  since "cold-$RUN" | "$PY" -c '
import sys
for line in sys.stdin:
    f = line.split()
    if len(f) < 4 or f[0] != ">" or f[2] != "StartAuthSession":
        continue
    b = bytes.fromhex(f[3])
    bind = int.from_bytes(b[14:18], "big")
    n = int.from_bytes(b[18:20], "big")
    salt = int.from_bytes(b[20 + n:22 + n], "big")
    kind = "salted" if salt else ("bound %08x" % bind if bind != 0x40000007 else "plain")
    print(kind, b[22 + n + salt])
'
}
setup_token() {
  init_token "$1" 87654321 1234
  p11 --token-label "$1" --login --pin 1234 --keypairgen --key-type EC:prime256v1 --id 01 \
    --label ec >"$WORK/last" 2>&1 || fail "keygen on $1: $(tail -n 3 "$WORK/last")"
}

# check NAME MAX STATUS: the counts every cold start keeps, and the status line.
check() {
  echo "$1: $TO_SIGN commands to the signature, $TOTAL in all: $(tr '\n' ' ' <<<"$CMDS")"
  [ "$(count Startup)" -eq 0 ] || fail "$1: TPM2_Startup sent to a started TPM"
  # 3 C_GetTokenInfo and the login share one read of each PIN counter; with
  # the store anchor's NV_Read that is 3.
  [ "$(count NV_Read)" -le 3 ] || fail "$1: $(count NV_Read) NV_Read (PIN counters re-read)"
  # The store key's session and the PIN's policy session; only the first
  # carries a salt (an asymmetric operation in the TPM). The policy session is
  # bound to the store anchor, an NV index (0x01......) whose auth value only
  # the store holds, so its HMAC over the PIN's seal value is not searchable.
  [ "$(count StartAuthSession)" -eq 2 ] || fail "$1: $(count StartAuthSession) sessions"
  local kinds
  kinds=$(sessions)
  echo "$1: sessions (kind, type): $(tr "\n" ";" <<<"$kinds")"
  [ "$(count_lines '^salted' <<<"$kinds")" -eq 1 ] || fail "$1: salted sessions: $kinds"
  grep -qx 'bound 01[0-9a-f]\{6\} 1' <<<"$kinds" || fail "$1: the PIN's policy session is not bound to an NV index: $kinds"
  [ "$(count GetCapability)" -eq 0 ] || fail "$1: GetCapability at a cold start (cached in the store)"
  [ "$(awk '$0 == "Sign" { exit } $0 == "FlushContext" { n++ } END { print n + 0 }' <<<"$CMDS")" -le 1 ] \
    || fail "$1: more than one FlushContext before the signature"
  [ "$TO_SIGN" -le "$2" ] || fail "$1: $TO_SIGN commands to the signature (expected <= $2)"
  "$T" status | grep -q "^Primary .*$3" || fail "$1: status: $("$T" status)"
}

# ---- no SRK: the module's own primary
setup_token own
cold_sign own
check "own primary" 15 "created by TPM2_CreatePrimary"
[ "$(count CreatePrimary)" -eq 1 ] || fail "own primary: expected one TPM2_CreatePrimary"
pass "own primary: $TO_SIGN commands to the signature ($TOTAL with the flushes); status names it"

# ---- the platform's TCG SRK, persisted as the TCG provisioning guidance makes it
direct tpm2_createprimary -T "$DIRECT_TCTI" -C o -G ecc256:aes128cfb -c "$WORK/srk.ctx" \
  -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' >/dev/null \
  || fail "createprimary (SRK)"
direct tpm2_evictcontrol -T "$DIRECT_TCTI" -C o -c "$WORK/srk.ctx" 0x81000001 >/dev/null \
  || fail "evictcontrol"
direct tpm2_flushcontext -T "$DIRECT_TCTI" -t >/dev/null
# The store made on the module's own primary keeps it (its pin decides).
cold_sign own
[ "$(count CreatePrimary)" -eq 1 ] && [ "$(count ReadPublic)" -eq 0 ] \
  || fail "own store with an SRK present: $(tr '\n' ' ' <<<"$CMDS")"
pass "a store made before the SRK appeared keeps its own primary ($TO_SIGN commands)"

OWN_STORE=$TPMTOKEN_STORE
export TPMTOKEN_STORE=$WORK/srk/tpmtoken.sqlite3
setup_token srk
cold_sign srk
check "TCG SRK" 14 "TCG SRK at 0x81000001"
# Its public point is in the store: neither CreatePrimary nor ReadPublic.
[ "$(count CreatePrimary)" -eq 0 ] && [ "$(count ReadPublic)" -eq 0 ] \
  || fail "TCG SRK: the storage key was created or read: $(tr '\n' ' ' <<<"$CMDS")"
pass "TCG SRK: $TO_SIGN commands to the signature ($TOTAL with the flushes), no CreatePrimary or ReadPublic; status names it"

# ---- the SRK swapped for another storage key: the pin refuses it
direct tpm2_evictcontrol -T "$DIRECT_TCTI" -C o -c 0x81000001 >/dev/null || fail "evict SRK"
# The same template under the endorsement seed: another key, a valid SRK shape.
direct tpm2_createprimary -T "$DIRECT_TCTI" -C e -G ecc256:aes128cfb -c "$WORK/srk2.ctx" \
  -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' >/dev/null \
  || fail "createprimary (other key)"
direct tpm2_evictcontrol -T "$DIRECT_TCTI" -C o -c "$WORK/srk2.ctx" 0x81000001 >/dev/null \
  || fail "evictcontrol (other key)"
direct tpm2_flushcontext -T "$DIRECT_TCTI" -t >/dev/null
expect_fail "storage key does not match the one this store was made with" \
  p11 --token-label srk --login --pin 1234 -O
direct tpm2_evictcontrol -T "$DIRECT_TCTI" -C o -c 0x81000001 >/dev/null || fail "evict"
expect_fail "persistent storage key at 0x81000001, and the TPM holds none there" \
  p11 --token-label srk --login --pin 1234 -O
TPMTOKEN_STORE=$OWN_STORE p11 --token-label own --login --pin 1234 -O >/dev/null 2>&1 \
  || fail "the own-primary store no longer opens"
pass "an SRK swapped or evicted under a store made on it is refused with the line naming it"
