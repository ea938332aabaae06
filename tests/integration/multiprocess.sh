#!/usr/bin/env bash
# Several processes on one store and one simulated TPM at once: each creates
# objects while the others do; every object lands and all see all of them.
source "$(dirname "$0")/lib.sh"
fixture_start_shared
init_token shared 12345678 1234
echo "payload" >"$WORK/payload.txt"

writer() {
  local who=$1
  for i in 1 2 3 4 5; do
    p11 --token-label shared --login --pin 1234 --write-object "$WORK/payload.txt" --type data \
      --label "w$who-$i" >/dev/null 2>&1 || { echo "writer $who object $i failed" >&2; return 1; }
  done
}
pids=()
for w in 1 2 3; do writer "$w" & pids+=($!); done
for pid in "${pids[@]}"; do wait "$pid" || fail "a concurrent writer failed"; done

count=$(p11 --token-label shared -O 2>/dev/null | grep -c "label: *'w[0-9]-[0-9]'")
[ "$count" -eq 15 ] || fail "expected 15 objects, found $count"
pass "three concurrent writers, fifteen objects"

# Several processes signing with the same TPM keys at once (each with its
# own sessions through the resource manager).
p11 --token-label shared --login --pin 1234 --keypairgen --key-type EC:prime256v1 --id 01 \
  >/dev/null 2>&1 || fail "keypairgen"
p11 --token-label shared --login --pin 1234 --keypairgen --key-type rsa:2048 --id 02 \
  >/dev/null 2>&1 || fail "keypairgen"
signer() {
  for i in 1 2 3; do
    p11 --token-label shared --login --pin 1234 --sign -m ECDSA-SHA256 --id 01 \
      -i "$WORK/payload.txt" -o "$WORK/sig.$1.$i" >/dev/null 2>&1 || return 1
    p11 --token-label shared --login --pin 1234 --sign -m SHA256-RSA-PKCS-PSS --id 02 \
      -i "$WORK/payload.txt" -o "$WORK/pss.$1.$i" >/dev/null 2>&1 || return 1
  done
}
pids=()
for w in 1 2 3; do signer "$w" & pids+=($!); done
for pid in "${pids[@]}"; do wait "$pid" || fail "a concurrent signer failed"; done
pass "three processes signing at once"
