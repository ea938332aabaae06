#!/usr/bin/env bash
# `./run demo` end to end (its last step, scripts/demo.sh, on the built tree:
# ./run itself would rebuild inside the running test): it must succeed, show
# the message received and the rotated certificate in use, and leave nothing
# it started running.
source "$(dirname "$0")/lib.sh"
unset TPMTOKEN_TCTI TPMTOKEN_STORE
root=$(cd "$(dirname "$0")/../.." && pwd)
demo_dir="$WORK/demo"
TPMTOKEN_DEMO_DIR="$demo_dir" TOOL="$TOOL" MODULE="$MODULE" timeout 600 bash "$root/scripts/demo.sh" \
  >"$WORK/demo.out" 2>&1 || fail "the demo failed: $(tail -20 "$WORK/demo.out")"
grep -q 'the dashboard received: {"temperature": 21.5}' "$WORK/demo.out" || fail "no MQTT message"
grep -q 'Protocol : TLSv1.3' "$WORK/demo.out" || fail "no HTTPS over TLS 1.3"
grep -q 'the next connection uses serial' "$WORK/demo.out" || fail "no rotation"
grep -q 'Stopped everything the demo started.' "$WORK/demo.out" || fail "no cleanup message"
sleep 0.5
if pgrep -f "$demo_dir" >/dev/null; then
  fail "left running: $(pgrep -af "$demo_dir")"
fi
[ ! -e "$demo_dir" ] || fail "the demo left its directory behind"
pass "the demo runs end to end and leaves nothing running"
