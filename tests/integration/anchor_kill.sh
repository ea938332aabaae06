#!/usr/bin/env bash
# Issue 7 item 4: kill -9 at random points of C_SetPIN, C_InitPIN, C_InitToken
# re-initialization and `tpmtoken rotate --finish` (KILLS kills each, 200 by
# default; the suite runs 50: see tests/meson.build). After every kill the token opens, the role's PIN is the old or
# the new one, and the number of NV indices in the TPM never grows.
source "$(dirname "$0")/lib.sh"
# Through tpm2-abrmd, as in production (/dev/tpmrm0): a killed process's TPM
# handles go with it.
fixture_start_shared
T=${TOOL:?TOOL must name the tpmtoken binary}
KILLS=${KILLS:-200}
# Wrong guesses while finding out which PIN survived must not lock the role.
printf 'user_pin_retries = 1000\nso_pin_retries = 1000\n' >"$WORK/tpmtoken.conf"
export TPMTOKEN_CONF="$WORK/tpmtoken.conf"
SO=87654321
init_token kill "$SO" 1111
nv_count() { tpm2_getcap -T "$TPMTOKEN_TCTI" handles-nv-index | count_lines '^-'; }
base_nv=$(nv_count)
max_nv=$base_nv
user_ok() { p11 --token-label kill --login --pin "$1" -O >/dev/null 2>&1; }
so_ok() { p11 --token-label kill --session-rw --login --login-type so --so-pin "$1" -O >/dev/null 2>&1; }

# run_killed MAXMS CMD...: CMD (a program, not a shell function, so the kill
# reaches it) in the background, kill -9 after a random 0..MAXMS ms (it may
# finish first).
run_killed() {
  local max=$1
  shift
  "$@" >/dev/null 2>&1 &
  local pid=$!
  sleep "$(awk -v r=$RANDOM -v m="$max" 'BEGIN { printf "%.3f", r / 32768 * m * 0.9 / 1000 }')"
  kill -9 "$pid" 2>/dev/null && killed=$((killed + 1))
  wait "$pid" 2>/dev/null || true  # its status is the kill's (or the run's): not a check
}
# Milliseconds one unkilled run of CMD takes.
time_ms() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null 2>&1 || fail "unkilled run failed: $*"
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
debug_state() {
  tpm2_getcap -T "$TPMTOKEN_TCTI" handles-nv-index >&2
  TPMTOKEN_LOG=info p11 --token-label kill --login --pin "$cur" -O 2>&1 | tail -5 >&2
  TPMTOKEN_LOG=info p11 --token-label kill --login --pin "$next" -O 2>&1 | tail -5 >&2
}
check_nv() {
  local n
  n=$(nv_count)
  [ "$n" -le "$((base_nv + 0))" ] || fail "$1: NV indices grew from $base_nv to $n: $(tpm2_getcap -T "$TPMTOKEN_TCTI" handles-nv-index)"
}

# C_SetPIN (pkcs11-tool --change-pin): 1111 <-> 2222.
cur=1111
ms=$(time_ms p11 --token-label kill --login --pin 1111 --change-pin --new-pin 2222)
cur=2222
killed=0
for _ in $(seq $((KILLS * 3))); do
  [ "$killed" -lt "$KILLS" ] || break
  [ "$cur" = 1111 ] && next=2222 || next=1111
  run_killed "$ms" pkcs11-tool --module "$MODULE" --token-label kill --login --pin "$cur" --change-pin --new-pin "$next"
  if user_ok "$next"; then cur=$next; elif ! user_ok "$cur"; then debug_state; fail "C_SetPIN: neither $cur nor $next opens the user role"; fi
  check_nv "C_SetPIN"
done
pass "C_SetPIN: $killed kills, the user PIN is always the old or the new one, NV never grew"

# C_InitPIN by the SO: the user PIN becomes 3333 or 4444.
ms=$(time_ms p11 --token-label kill --login --login-type so --so-pin "$SO" --init-pin --pin 3333)
cur=3333
killed=0
for _ in $(seq $((KILLS * 3))); do
  [ "$killed" -lt "$KILLS" ] || break
  [ "$cur" = 3333 ] && next=4444 || next=3333
  run_killed "$ms" pkcs11-tool --module "$MODULE" --token-label kill --login --login-type so --so-pin "$SO" --init-pin --pin "$next"
  if user_ok "$next"; then cur=$next; elif ! user_ok "$cur"; then debug_state; fail "C_InitPIN: neither $cur nor $next opens the user role"; fi
  check_nv "C_InitPIN"
done
pass "C_InitPIN: $killed kills, the user PIN is always the old or the new one, NV never grew"

# C_InitToken re-initialization: the SO PIN stays, the token always opens.
slot=$(p11 -L 2>/dev/null | awk '/^Slot/ { slot = $3 } /token label *: kill/ { print slot; exit }' | tr -d '()')
[ -n "$slot" ] || fail "no slot for token kill"
ms=$(time_ms p11 --slot "$slot" --init-token --label kill --so-pin "$SO")
killed=0
for _ in $(seq $((KILLS * 3))); do
  [ "$killed" -lt "$KILLS" ] || break
  run_killed "$ms" pkcs11-tool --module "$MODULE" --slot "$slot" --init-token --label kill --so-pin "$SO"
  so_ok "$SO" || fail "C_InitToken re-init: the SO PIN no longer opens the token: $(p11 --token-label kill --session-rw --login --login-type so --so-pin "$SO" -O 2>&1 | tail -3)"
  check_nv "C_InitToken"
done
pass "C_InitToken re-init: $killed kills, the token opens with the SO PIN, NV never grew"

# rotate --finish: the key and its certificate are the old pair or the new.
p11 --token-label kill --login --login-type so --so-pin "$SO" --init-pin --pin 1111 >/dev/null 2>&1 || fail "init-pin"
export TPMTOKEN_PIN=1111
make_ca "$WORK"
"$T" key generate --key dev >/dev/null || fail "key generate"
"$T" csr --key dev --subject /CN=dev --out "$WORK/dev.csr" || fail "csr"
sign_csr "$WORK/dev.csr" "$WORK/dev.pem"
"$T" cert import --key dev "$WORK/dev.pem" >/dev/null || fail "cert import"
echo data >"$WORK/msg"
killed=0
finished=0
ms=0
for i in $(seq $((KILLS * 3))); do
  [ "$killed" -lt "$KILLS" ] || break
  if ! "$T" key list 2>/dev/null | grep -q '^dev.next'; then
    "$T" rotate --key dev --out "$WORK/n.csr" 2>/dev/null || fail "rotate (round $i)"
    sign_csr "$WORK/n.csr" "$WORK/n.pem"
  fi
  [ "$ms" -gt 0 ] || { ms=$(time_ms "$T" rotate --key dev --finish "$WORK/n.pem"); continue; }
  run_killed "$ms" "$T" rotate --key dev --finish "$WORK/n.pem"
  keys=$("$T" key list 2>&1) || fail "rotate --finish: the token does not open: $keys"
  grep -q '^dev\b' <<<"$keys" || fail "rotate --finish: key dev is gone: $keys"
  grep -q '^dev.next' <<<"$keys" || finished=$((finished + 1))
  "$T" cert list 2>/dev/null | grep -q 'subject /CN=dev' || fail "rotate --finish: dev's certificate is gone"
  check_nv "rotate --finish"
done
p11 --token-label kill --login --pin 1111 --sign -m ECDSA-SHA256 --label dev -i "$WORK/msg" -o /dev/null \
  >/dev/null 2>&1 || fail "key dev does not sign after the rotation loop"
pass "rotate --finish: $killed kills ($finished rounds finished), the key is the old or the new one, NV never grew"
