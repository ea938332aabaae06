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

source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/swtpm.sh"

# Starts this test's swtpm and exports TPMTOKEN_TCTI and TPMTOKEN_STORE. With
# TPMTOKEN_TCTI already set (a real TPM), that TPM is used instead.
fixture_start() {
  export TPMTOKEN_STORE="$WORK/store/tpmtoken.sqlite3"
  if [ -n "${TPMTOKEN_TCTI:-}" ]; then return; fi
  swtpm_start "$WORK/tpm" || fail "swtpm did not start (see $WORK/tpm/swtpm.log)"
}

p11() { pkcs11-tool --module "$MODULE" "$@"; }
