#!/usr/bin/env bash
# A working set of keys on a bare TPM (issue 10 item 3): one process signs
# with several keys in turn on a swtpm with three object slots, and the keys
# it brings back into the TPM are counted on the bus (TPM2_ContextLoad and
# TPM2_Load, through tests/hostile/tpmproxy.py). Two keys fit: no reload after
# the first use. Five keys in strict rotation over three slots: an LRU cache
# reloads on every signature; the module's cache (src/tpm/handles.cc,
# KeyToEvict) evicts the key expected to come back last and keeps the ones
# due soonest, so about half the signatures need a reload (the optimum for a
# loop of five over three slots). A hot key used between once-used keys stays
# loaded, and keys the process stopped using leave before the ones it uses
# now.
source "$(dirname "$0")/../hostile/lib.sh"
swtpm_only "it counts the slots of a TPM without a resource manager"
fixture_start
proxy_start
export TPMTOKEN_RUN_DIR="$WORK/run"
SIGNER=${SIGNER:?SIGNER must name the signer test client}
init_token keys 12345678 1234
for id in 01 02 03 04 05 06 07; do
  p11 --token-label keys --login --pin 1234 --keypairgen --key-type EC:prime256v1 --id "$id" \
    >"$WORK/last" 2>&1 || fail "keypairgen $id: $(tail -n 3 "$WORK/last")"
done
slots=$(tpm2_getcap -T "$DIRECT_TCTI" properties-fixed | grep -A1 '^TPM2_PT_HR_TRANSIENT_MIN:' | awk '/raw:/ { print $2 }')
[ "$((slots))" = 3 ] || skip "this TPM has ${slots:-an unknown number of} object slots; the counts below assume 3"

# reloads NAME COUNT ID...: one process signs COUNT times with the keys in
# turn; sets LOADS to the TPM2_Load and TPM2_ContextLoad commands it sent and
# SIGNS to its TPM2_Sign commands.
reloads() {
  local name=$1 count=$2
  shift 2
  mark "$name"
  "$SIGNER" keys 1234 "$count" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
    fail "$name: the signer failed: $(cat "$WORK/$name.out") $(head -n 5 "$WORK/$name.err")"
  grep -qx "signed $count failed 0" "$WORK/$name.out" || fail "$name: $(cat "$WORK/$name.out")"
  local cmds
  cmds=$(since "$name" | awk '/^> / { print $3 }')
  LOADS=$(count_lines -xE 'Load|ContextLoad' <<<"$cmds")
  SIGNS=$(count_lines -x Sign <<<"$cmds")
  [ "$SIGNS" -eq "$count" ] || fail "$name: $SIGNS TPM2_Sign on the bus for $count signatures"
}

# The login's seals and the first use of each key load once per process:
# a run with one key gives what every run pays besides the key switches.
reloads one 100 01
base=$((LOADS - 1))
pass "one key, 100 signatures: $LOADS loads (the login's seals and the key)"

reloads two 100 01 02
extra=$((LOADS - base - 2))
[ "$extra" -le 2 ] || fail "two keys in turn: $extra reloads beyond the first use of each (both fit in three slots)"
pass "two keys in turn, 100 signatures: $extra reloads beyond the first use of each"

reloads five 100 01 02 03 04 05
extra=$((LOADS - base - 5))
# Strict rotation of five keys over three slots: LRU reloads 95 times, the
# optimum 48 (two of every four uses after the first round hit).
[ "$extra" -le 60 ] ||
  fail "five keys in turn: $extra reloads in 95 switches after the first round (LRU's count; at most 60 expected)"
pass "five keys in turn, 100 signatures: $extra reloads beyond the first use of each (LRU: 95)"

# A hot key between keys used once each: 01 02 01 03 01 04 01 05. The hot key
# is used every other signature and never leaves; the others load once each.
reloads hot 8 01 02 01 03 01 04 01 05
extra=$((LOADS - base - 5))
[ "$extra" -eq 0 ] || fail "a hot key between once-used keys: $extra reloads (none expected)"
pass "a hot key between once-used keys: no reload"

# The process moves on: five keys in turn four times, then two other keys in
# turn. The loop's keys, no longer used, leave first once their expected use
# has passed; the new pair then stays (a prediction that never expires would
# keep the old loop's keys and reload the pair on every use: 40 loads).
phase1=$(for _ in 1 2 3 4; do printf '01 02 03 04 05 '; done)
phase2=$(for _ in $(seq 20); do printf '06 07 '; done)
# shellcheck disable=SC2086
reloads phase1 20 $phase1
first=$LOADS
# shellcheck disable=SC2086
reloads phases 60 $phase1 $phase2
second=$((LOADS - first))
[ "$second" -le 6 ] ||
  fail "two new keys after a loop of five: $second loads for their 40 signatures (at most 6 expected)"
pass "two new keys after a loop of five: $second loads for their 40 signatures (2 first loads)"
