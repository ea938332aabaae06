# Shared by procs_bare.sh and procs_abrmd.sh (issue 10 item 1): a token
# "procs" with two EC keys (CKA_ID 01 and 02), and kill rounds.
SIGNER=${SIGNER:?SIGNER must name the signer test client}
procs_setup() {
  init_token procs 12345678 1234
  for id in 01 02; do
    p11 --token-label procs --login --pin 1234 --keypairgen --key-type EC:prime256v1 --id "$id" \
      >/dev/null 2>&1 || fail "keypairgen $id"
  done
  echo payload >"$WORK/data"
}

# kill_rounds N: N times, a signer is killed with SIGKILL 0.3-0.7 s into its
# signatures (mid-signature), and a new pkcs11-tool process must sign at once.
kill_rounds() {
  local round victim out
  for round in $(seq "$1"); do
    "$SIGNER" procs 1234 100000 01 02 >/dev/null 2>&1 &
    victim=$!
    sleep "0.$((RANDOM % 5 + 3))"
    kill -9 "$victim"
    wait "$victim" 2>/dev/null || true
    out=$(TPMTOKEN_LOG=info p11 --token-label procs --login --pin 1234 --sign -m ECDSA-SHA256 \
      --id 0$((round % 2 + 1)) -i "$WORK/data" -o "$WORK/after$round" 2>&1) ||
      fail "round $round: after kill -9 the next process failed: $out"
  done
}
