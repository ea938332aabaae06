#!/usr/bin/env bash
# `./run demo` end to end: it must succeed, show the message received, the
# rotated certificate in use and the update step, and leave nothing it
# started running. When the
# suite runs from ./run's own build directory (as `./run test` does) the test
# calls `./run demo` itself (its package check and build are no-ops then);
# from any other build directory it runs the demo's last step,
# scripts/demo.sh, on that build, rather than building ./run's tree.
source "$(dirname "$0")/lib.sh"
unset TPMTOKEN_TCTI TPMTOKEN_STORE
root=$(cd "$(dirname "$0")/../.." && pwd)
demo_dir="$WORK/demo"
if [ "$MODULE" -ef "$root/build/src/libtpmtoken.so" ]; then
  demo=("$root/run" demo)
else
  demo=(bash "$root/scripts/demo.sh")
fi
TPMTOKEN_DEMO_DIR="$demo_dir" TOOL="$TOOL" MODULE="$MODULE" timeout 600 "${demo[@]}" \
  >"$WORK/demo.out" 2>&1 || fail "the demo failed (${demo[*]}): $(tail -20 "$WORK/demo.out")"
grep -q 'the dashboard received: {"temperature": 21.5}' "$WORK/demo.out" || fail "no MQTT message"
grep -q 'Protocol : TLSv1.3' "$WORK/demo.out" || fail "no HTTPS over TLS 1.3"
grep -q 'the next connection uses serial' "$WORK/demo.out" || fail "no rotation"
# The update step (issue 11): anchor, verified and tampered update, an
# authorized reboot that keeps the credentials, an unauthorized one refused.
grep -q "update verified against the anchor 'vendor'" "$WORK/demo.out" || fail "no verified update"
grep -q 'tampered update refused' "$WORK/demo.out" || fail "the tampered update was not refused"
grep -q 'the credentials still work after the reboot' "$WORK/demo.out" || fail "no authorized reboot"
grep -q 'approves this boot state' "$WORK/demo.out" || fail "no refusal naming the boot state"
grep -q 'unauthorized boot state refused' "$WORK/demo.out" || fail "no unauthorized boot state"
grep -q 'Stopped everything the demo started.' "$WORK/demo.out" || fail "no cleanup message"
sleep 0.5
if pgrep -f "$demo_dir" >/dev/null; then
  fail "left running: $(pgrep -af "$demo_dir")"
fi
[ ! -e "$demo_dir" ] || fail "the demo left its directory behind"
pass "${demo[*]} runs end to end and leaves nothing running"
