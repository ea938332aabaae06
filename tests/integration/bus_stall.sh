#!/usr/bin/env bash
# Every TPM call has a timeout (issue 8 item 3): a proxy between the module
# and swtpm sends half of one TPM2_GetRandom answer and then stalls. With
# tpm_timeout = 2 s the call fails with CKR_DEVICE_ERROR (0x30) within the
# timeout and a line naming it; the next call in the same process works over
# a new connection.
source "$(dirname "$0")/lib.sh"
fixture_start
H=${BUS_HELPER:?BUS_HELPER must name the bus_helper binary}
init_token bus 12345678 1234

bus_proxy 17b 1 stall
export TPMTOKEN_TPM_TIMEOUT=2

out=$(TPMTOKEN_LOG=error timeout 30 "$H" random "$MODULE" 3 2>"$WORK/err") || fail "helper: $(cat "$WORK/err")"
echo "$out"
grep -q stalled "$WORK/proxy.log" || fail "the proxy stalled nothing"
read -r rv ms <<<"$(sed -n 1p <<<"$out")"
[ "$rv" = 0x30 ] || fail "the stalled call returned $rv, not CKR_DEVICE_ERROR"
[ "$ms" -ge 1500 ] && [ "$ms" -le 6000 ] || fail "the stalled call took $ms ms (timeout 2 s)"
grep -q "did not answer within 2 s" "$WORK/err" || fail "no line names the timeout: $(cat "$WORK/err")"
sed -n '2,3p' <<<"$out" | grep -qv '^0x0 ' && fail "calls after the stall failed: $out"
pass "a half-sent answer: CKR_DEVICE_ERROR after $ms ms with the timeout named; the next calls work"
