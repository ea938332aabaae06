#!/usr/bin/env bash
# A TPM device without a resource manager (/dev/tpm0: the kernel admits one
# opener at a time) shared by processes (issue 10 item 1): the module opens
# it only during a turn and closes it at the turn's end, so processes taking
# turns through the registry share it, and it waits (up to tpm_timeout) while
# another program holds it instead of failing. No TPM device exists here: a
# pseudo-terminal in raw mode stands in for it (tests/integration/pty_tpm.py,
# forwarding to this test's swtpm), and a program holding /dev/tpm0 is played
# by a process holding the terminal in exclusive mode (TIOCEXCL), under which
# an open without CAP_SYS_ADMIN gets EBUSY as from /dev/tpm0; the module's
# processes run without capabilities (setpriv) for that reason.
source "$(dirname "$0")/lib.sh"
swtpm_only "it stands a pseudo-terminal in for the TPM device"
command -v setpriv >/dev/null || skip "setpriv (util-linux) is needed to drop capabilities"
fixture_start
SIGNER=${SIGNER:?SIGNER must name the signer test client}
PTY_TPM="$(dirname "$0")/pty_tpm.py"
export TPMTOKEN_RUN_DIR="$WORK/run"
init_token dev 12345678 1234
p11 --token-label dev --login --pin 1234 --keypairgen --key-type EC:prime256v1 --id 01 \
  >"$WORK/last" 2>&1 || fail "keypairgen: $(tail -n 3 "$WORK/last")"
echo payload >"$WORK/data"

python3 "$PTY_TPM" serve --tpm-port "${TPMTOKEN_TCTI##*port=}" --path-file "$WORK/pty" ${PTY_WHOLE:+--whole} \
  >"$WORK/pty.log" 2>&1 &
CLEANUP_PIDS+=($!)
for _ in $(seq 50); do [ -s "$WORK/pty" ] && break; sleep 0.1; done
DEV=$(cat "$WORK/pty" 2>/dev/null) || fail "the pseudo-terminal did not start: $(cat "$WORK/pty.log")"
export TPMTOKEN_TCTI="device:$DEV"
NOCAPS=(setpriv --inh-caps=-all --bounding-set=-all --)
nocaps() { "${NOCAPS[@]}" "$@"; }
sign() { nocaps "$P11_TOOL" --module "$MODULE" --token-label dev --login --pin 1234 \
  --sign -m ECDSA-SHA256 --id 01 -i "$WORK/data" -o "$WORK/sig" "$@"; }
P11_TOOL=$(command -v pkcs11-tool)

# 1. Through the device, as any client.
out=$(sign 2>&1) || fail "a signature through device:$DEV failed: $out"
pass "a signature through a bare TPM device (device:$DEV)"

# 2. Another program holds it for 1.5 s: the module waits, then signs.
rm -f "$WORK/held"
python3 "$PTY_TPM" hold "$DEV" 1.5 "$WORK/held" &
holder=$!
for _ in $(seq 50); do [ -e "$WORK/held" ] && break; sleep 0.05; done
[ -e "$WORK/held" ] || fail "the holder did not take the device"
t0=$(date +%s%N)
out=$(TPMTOKEN_LOG=info sign 2>&1) || fail "signing while another program held the device for 1.5 s: $out"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$holder"
grep -q "waiting for $DEV: another process has it open" <<<"$out" ||
  fail "no line saying what the module waited for: $out"
[ "$ms" -ge 1000 ] || fail "signed in $ms ms while the device was held for 1.5 s: the hold did not take"
pass "the device held by another program for 1.5 s: the module waited and signed ($ms ms)"

# 3. Held past the TPM timeout (2 s): C_Initialize fails within it, naming
# the cause and the fix.
rm -f "$WORK/held"
python3 "$PTY_TPM" hold "$DEV" 4 "$WORK/held" &
holder=$!
for _ in $(seq 50); do [ -e "$WORK/held" ] && break; sleep 0.05; done
t0=$(date +%s%N)
out=$(TPMTOKEN_TPM_TIMEOUT=2 sign 2>&1) && fail "signed while the device was held: $out"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# (Not killed: a terminal left in exclusive mode stays so while the
# stand-in runs; the holder releases it at the end of its 4 s.)
wait "$holder"
grep -q "another process kept it open for 2 s" <<<"$out" &&
  grep -q "admits one opener at a time: use /dev/tpmrm0 or tpm2-abrmd" <<<"$out" ||
  fail "the failure does not name the busy device and the fix: $out"
grep -q "readable by this user" <<<"$out" && fail "a busy device advised as a permission problem: $out"
[ "$ms" -lt 4000 ] || fail "the failure took $ms ms with a 2 s TPM timeout"
pass "the device held past the TPM timeout: refused in $ms ms with the cause and the fix"

# 4. Two processes signing at once (about 2 s) share the device: each opens it only
# during its turn, so they never hold it at the same time (sampled from
# /proc), and neither fails.
export STOP_FILE="$WORK/stop"
# (setpriv and env exec: $! is the signer's pid, which the sampler reads.)
"${NOCAPS[@]}" env MODULE="$MODULE" "$SIGNER" dev 1234 0 01 >"$WORK/a.out" 2>"$WORK/a.err" &
a=$!
"${NOCAPS[@]}" env MODULE="$MODULE" "$SIGNER" dev 1234 0 01 >"$WORK/b.out" 2>"$WORK/b.err" &
b=$!
CLEANUP_PIDS+=("$a" "$b")
sleep 0.5
python3 "$PTY_TPM" overlap 1.5 "$DEV" "$a" "$b" >"$WORK/overlap" 2>&1 || true
touch "$STOP_FILE"
wait "$a" || fail "signer a: $(cat "$WORK/a.out") $(head -n 5 "$WORK/a.err")"
wait "$b" || fail "signer b: $(cat "$WORK/b.out") $(head -n 5 "$WORK/b.err")"
signed_a=$(awk '{ print $2 }' "$WORK/a.out") signed_b=$(awk '{ print $2 }' "$WORK/b.out")
[ "${signed_a:-0}" -gt 0 ] && [ "${signed_b:-0}" -gt 0 ] ||
  fail "a signer did not sign (a: $(cat "$WORK/a.out"), b: $(cat "$WORK/b.out"))"
signed=$((signed_a + signed_b))
read -r _ n _ open_a _ open_b _ both <"$WORK/overlap" || fail "sampler: $(cat "$WORK/overlap")"
[ "$((open_a + open_b))" -gt 0 ] || fail "the sampler never saw the device open ($(cat "$WORK/overlap"))"
# A process that kept the device open would overlap the other in most
# samples; a switch between two reads of /proc can show a rare one.
[ "$((both * 20))" -le "$((open_a + open_b))" ] ||
  fail "both processes held the device at once in $both of $n samples ($(cat "$WORK/overlap"))"
pass "two processes signing at once through the device: $signed signatures, 0 failures; held by both at once in $both of $n samples (a $open_a, b $open_b)"

# 5. A process that forks while it signs (a server forking workers that never
# exec): a child that inherited the device's descriptor from a turn in
# flight would keep /dev/tpm0 busy until it exits, the parent's own next
# turn included. Each child looks through its descriptors first thing: none
# may hold the device.
out=$("${NOCAPS[@]}" env MODULE="$MODULE" FORK_CHECK="$DEV" "$SIGNER" dev 1234 300 01 2>"$WORK/f.err") ||
  fail "the forking signer: $out $(head -n 5 "$WORK/f.err")"
read -r _ forks _ holding < <(grep '^forks' <<<"$out") || fail "no fork count: $out"
[ "$forks" -ge 20 ] || fail "only $forks forks during 300 signatures: $out"
[ "$holding" -eq 0 ] || fail "$holding of $forks children forked during a signature held the TPM device ($DEV)"
pass "a process forking while it signs: 0 of $forks children held the TPM device"
