#!/usr/bin/env bash
# Issue 10 item 1: many processes on a TPM with no resource manager (a bare
# swtpm: three object slots, three loaded sessions). Processes take turns
# through the registry file (src/tpm/coord.h): none flushes a handle a live
# process loaded without telling it, and what a killed process left is
# reclaimed by the next one. SIGNS signatures per process (200 by default).
source "$(dirname "$0")/lib.sh"
swtpm_only "it needs a TPM without a resource manager"
fixture_start
export TPMTOKEN_RUN_DIR="$WORK/run"
source "$(dirname "$0")/procs_lib.sh"
T=${TOOL:?TOOL must name the tpmtoken binary}
SIGNS=${SIGNS:-200}
procs_setup
transient() { tpm2_getcap -T "$TPMTOKEN_TCTI" handles-transient | count_lines '^-'; }

# 1. Four processes, each SIGNS signatures alternating two keys, at once.
t0=$(date +%s%N)
pids=()
for w in 1 2 3 4; do "$SIGNER" procs 1234 "$SIGNS" 01 02 >"$WORK/s$w.out" 2>"$WORK/s$w.err" & pids+=($!); done
bad=0
for i in "${!pids[@]}"; do wait "${pids[$i]}" || bad=$((bad + 1)); done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
for w in 1 2 3 4; do
  grep -q "^signed $SIGNS failed 0$" "$WORK/s$w.out" ||
    fail "signer $w: $(cat "$WORK/s$w.out") $(head -5 "$WORK/s$w.err")"
done
[ "$bad" -eq 0 ] || fail "$bad signer(s) failed"
pass "4 processes x $SIGNS signatures with two keys at once on a bare TPM: 0 failures ($ms ms)"

# 2. A long-lived signer keeps working while other processes list, ask for
# the status and sign around it.
export STOP_FILE="$WORK/stop"
"$SIGNER" procs 1234 0 01 02 >"$WORK/long.out" 2>"$WORK/long.err" &
long=$!
CLEANUP_PIDS+=("$long")
sleep 0.5
for i in 1 2 3; do
  p11 -L >/dev/null 2>&1 || fail "pkcs11-tool -L beside the long-lived signer"
  "$T" status >/dev/null 2>&1 || fail "tpmtoken status beside the long-lived signer: $("$T" status 2>&1 | tail -3)"
  p11 --token-label procs --login --pin 1234 --sign -m ECDSA-SHA256 --id 0$(( i % 2 + 1 )) \
    -i "$WORK/data" -o "$WORK/sig$i" >/dev/null 2>&1 || fail "a signature beside the long-lived signer"
done
touch "$STOP_FILE"
wait "$long" || fail "the long-lived signer failed: $(cat "$WORK/long.out") $(head -5 "$WORK/long.err")"
unset STOP_FILE
grep -q "failed 0$" "$WORK/long.out" || fail "long-lived signer: $(cat "$WORK/long.out")"
grep -q "^signed 0 " "$WORK/long.out" && fail "the long-lived signer signed nothing"
pass "a long-lived signer kept working beside pkcs11-tool -L, tpmtoken status and signatures ($(cat "$WORK/long.out"))"

# 2b. ssh-agent holding the token (`ssh-add -s`) signs, with the key handles
# it took at the start, while other processes list, ask for the status and
# sign around it. (Before the registry, one `pkcs11-tool -L` elsewhere
# flushed the agent's objects and it answered "agent refused operation" for
# good.) The agent signs through `ssh-keygen -Y sign` with the public key
# alone; `ssh-keygen -Y verify` checks each signature.
if command -v ssh-agent >/dev/null && command -v ssh-keygen >/dev/null; then
  export SSH_AUTH_SOCK="$WORK/agent.sock"
  ssh-agent -d -a "$SSH_AUTH_SOCK" -P "$(dirname "$MODULE")/*" >"$WORK/agent.log" 2>&1 &
  CLEANUP_PIDS+=($!)
  for _ in $(seq 50); do [ -S "$SSH_AUTH_SOCK" ] && break; sleep 0.1; done
  [ -S "$SSH_AUTH_SOCK" ] || fail "ssh-agent did not start: $(cat "$WORK/agent.log")"
  printf '#!/bin/sh\necho 1234\n' >"$WORK/askpass" && chmod +x "$WORK/askpass"
  out=$(SSH_ASKPASS="$WORK/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=none timeout 60 \
    ssh-add -s "$MODULE" </dev/null 2>&1) || fail "ssh-add -s: $out"
  ssh-add -L >"$WORK/agent.pub" || fail "ssh-add -L"
  [ "$(count_lines '^ecdsa-sha2-nistp256 ' <"$WORK/agent.pub")" -eq 2 ] \
    || fail "the agent does not hold the two token keys: $(cat "$WORK/agent.pub")"
  head -1 "$WORK/agent.pub" >"$WORK/agent1.pub"
  echo "tester $(cut -d' ' -f1,2 "$WORK/agent1.pub")" >"$WORK/allowed_signers"
  for i in 1 2 3; do
    p11 -L >/dev/null 2>&1 || fail "pkcs11-tool -L beside ssh-agent"
    "$T" status >/dev/null 2>&1 || fail "tpmtoken status beside ssh-agent: $("$T" status 2>&1 | tail -3)"
    p11 --token-label procs --login --pin 1234 --sign -m ECDSA-SHA256 --id 0$(( i % 2 + 1 )) \
      -i "$WORK/data" -o "$WORK/psig$i" >/dev/null 2>&1 || fail "a signature beside ssh-agent"
    rm -f "$WORK/data.sig"
    out=$(ssh-keygen -Y sign -f "$WORK/agent1.pub" -n procs "$WORK/data" 2>&1) \
      || fail "round $i: ssh-agent did not sign beside the other processes: $out; agent: $(tail -3 "$WORK/agent.log")"
    ssh-keygen -Y verify -f "$WORK/allowed_signers" -I tester -n procs -s "$WORK/data.sig" \
      <"$WORK/data" >/dev/null 2>&1 || fail "round $i: the agent's signature does not verify"
  done
  ssh-add -e "$MODULE" >/dev/null 2>&1 || fail "ssh-add -e"
  unset SSH_AUTH_SOCK
  pass "ssh-agent (ssh-add -s) signed 3 times between pkcs11-tool -L, tpmtoken status and signatures"
else
  fail "ssh-agent or ssh-keygen is missing (Debian package openssh-client; ./run installs it)"
fi

# 3. A process killed mid-signature: the next one works at once, and what
# the killed one left does not pile up.
kill_rounds 3
n=$(transient)
[ "$n" -le 3 ] || fail "$n transient objects left in the TPM"
"$SIGNER" procs 1234 20 01 02 >"$WORK/last.out" 2>&1 || fail "after the kills: $(cat "$WORK/last.out")"
pass "3 processes killed mid-signature; the next process signed at once each time"
