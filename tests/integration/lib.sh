# Shared fixture for integration tests: each test gets its own swtpm on a free
# loopback port, its own store and a scratch directory, all removed on exit.
# Usage: source lib.sh; fixture_start; ... ; (cleanup runs from the EXIT trap)
set -euo pipefail

: "${MODULE:?MODULE must name libtpmtoken.so}"
TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tpmtoken-${TEST_NAME}.XXXXXX")
SWTPM_PID=""
CLEANUP_PIDS=()

fixture_cleanup() {
  local rc=$?
  for pid in "${CLEANUP_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$SWTPM_PID" ]; then kill "$SWTPM_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ "$rc" -ne 0 ] && [ -n "${KEEP_WORK:-}" ]; then
    echo "work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap fixture_cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# A free pair of loopback ports (server, server+1 for control).
free_port_pair() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    p = random.randrange(20000, 60000, 2)
    ok = True
    for q in (p, p + 1):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", q))
        except OSError:
            ok = False
        finally:
            s.close()
    if ok:
        print(p)
        break
PY
}

# Starts swtpm and exports TPMTOKEN_TCTI and TPMTOKEN_STORE for this test.
# Set TPMTOKEN_TCTI beforehand to run against a real TPM instead.
fixture_start() {
  export TPMTOKEN_STORE="$WORK/store/tpmtoken.sqlite3"
  if [ -n "${TPMTOKEN_TCTI:-}" ] && [ -z "${FORCE_SWTPM:-}" ]; then return; fi
  mkdir -p "$WORK/tpm"
  local port
  for _ in 1 2 3 4 5; do
    port=$(free_port_pair)
    swtpm socket --tpm2 --tpmstate dir="$WORK/tpm" \
      --server type=tcp,port="$port",bindaddr=127.0.0.1 \
      --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
      --flags not-need-init,startup-clear >"$WORK/swtpm.log" 2>&1 &
    SWTPM_PID=$!
    for _ in $(seq 50); do
      if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
        export TPMTOKEN_TCTI="swtpm:host=127.0.0.1,port=$port"
        return
      fi
      kill -0 "$SWTPM_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$SWTPM_PID" 2>/dev/null || true
    wait "$SWTPM_PID" 2>/dev/null || true
    SWTPM_PID=""
  done
  fail "swtpm did not start (see $WORK/swtpm.log)"
}

p11() { pkcs11-tool --module "$MODULE" "$@"; }
