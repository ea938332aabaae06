#!/usr/bin/env bash
# Know the TPM you talk to (issue 8 item 1): a store pins its storage
# primary's name when it is made. Opened through another TPM (here another
# swtpm: the same as a cleared TPM or a proxy substituting its own key) it is
# refused with one line, before any session is salted, and nothing is
# written, on the store or in the other TPM. A store made before the pin gets
# it at its next open (trust on first use).
source "$(dirname "$0")/lib.sh"
fixture_start
tpm() { tpm2_"$1" -T "$TPMTOKEN_TCTI" "${@:2}"; }
dump() { sqlite3 "$TPMTOKEN_STORE" .dump | sha256sum; }

init_token bus 12345678 1234
name=$(sqlite3 "$TPMTOKEN_STORE" "SELECT hex(value) FROM meta WHERE key = 'primary_name'")
[ ${#name} -eq 68 ] || fail "no primary_name pinned in the store: '$name'"
pass "the store pins its storage primary's name ($name)"

first_tcti=$TPMTOKEN_TCTI
first_pid=$SWTPM_PID
SWTPM_PID=""
swtpm_start "$WORK/tpm2" || fail "second swtpm"
CLEANUP_PIDS+=("$first_pid")
before=$(dump)
out=$(p11 -L 2>&1) && fail "the store opened through another TPM"
grep -q "the TPM's storage key does not match the one this store was made with" <<<"$out" \
  || fail "mismatch not named: $out"
[ "$(dump)" = "$before" ] || fail "the store changed"
[ "$(tpm getcap handles-nv-index | grep -c '^- ')" -eq 0 ] || fail "NV written on the other TPM"
[ "$(tpm getcap handles-loaded-session | grep -c '^- ')" -eq 0 ] || fail "a session was left"
pass "another TPM: refused with one line naming the cause; the store and that TPM unchanged"

export TPMTOKEN_TCTI=$first_tcti
sqlite3 "$TPMTOKEN_STORE" "DELETE FROM meta WHERE key = 'primary_name'"
p11 --token-label bus --login --pin 1234 -O >/dev/null 2>&1 || fail "login on an unpinned store"
[ "$(sqlite3 "$TPMTOKEN_STORE" "SELECT hex(value) FROM meta WHERE key = 'primary_name'")" = "$name" ] \
  || fail "an unpinned store was not pinned at its next open"
pass "a store made before the pin gets it at the next open (trust on first use)"
