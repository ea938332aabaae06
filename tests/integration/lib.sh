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
  # Cleanup: a process may have ended already; nothing here is a check.
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
# count_lines ARGS...: grep -c ARGS; no match prints 0 and is no failure (grep
# exits 1), an error reading (exit 2) still fails the test.
count_lines() { grep -c "$@" || [ $? -eq 1 ]; }
pass() { echo "ok: $*"; }
# skip REASON: the test cannot run here; meson counts exit 77 as a skip.
skip() { echo "SKIP: $*"; exit 77; }

# swtpm_only WHAT: a test that changes a TPM's lasting state (owner password,
# lockout settings, NV space) runs only on the simulated TPM it starts itself;
# with TPMTOKEN_TCTI naming anything else (a real TPM) it skips, saying why.
swtpm_only() {
  if [ -n "${TPMTOKEN_TCTI:-}" ] && [[ $TPMTOKEN_TCTI != swtpm:* ]]; then
    skip "$1: it would change the TPM at '$TPMTOKEN_TCTI' for good; it runs only on swtpm (unset TPMTOKEN_TCTI)"
  fi
}

source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"

# Starts this test's swtpm and exports TPMTOKEN_TCTI and TPMTOKEN_STORE. With
# TPMTOKEN_TCTI already set (a real TPM), that TPM is used instead.
fixture_start() {
  export TPMTOKEN_STORE="$WORK/store/tpmtoken.sqlite3"
  if [ -n "${TPMTOKEN_TCTI:-}" ]; then return; fi
  swtpm_start "$WORK/tpm" || fail "swtpm did not start (see $WORK/tpm/swtpm.log)"
}

# Like fixture_start, but puts tpm2-abrmd (on a private D-Bus session bus) in
# front of swtpm, for tests where several processes use the TPM at once: a
# bare swtpm serves one connection at a time.
fixture_start_shared() {
  fixture_start
  local tcti=$TPMTOKEN_TCTI
  dbus-daemon --session --fork --nopidfile --print-address=3 --print-pid=4 \
    3>"$WORK/dbus.addr" 4>"$WORK/dbus.pid" || fail "dbus-daemon did not start"
  CLEANUP_PIDS+=("$(cat "$WORK/dbus.pid")")
  export DBUS_SESSION_BUS_ADDRESS=$(cat "$WORK/dbus.addr")
  export DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS
  local name="com.intel.tss2.Tabrmd.t$$"
  tpm2-abrmd --session --allow-root --dbus-name="$name" --tcti="$tcti" \
    >"$WORK/abrmd.log" 2>&1 &
  CLEANUP_PIDS+=($!)
  export TPMTOKEN_TCTI="tabrmd:bus_type=session,bus_name=$name"
  for _ in $(seq 50); do
    if tpm2_getcap -T "$TPMTOKEN_TCTI" properties-fixed >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  fail "tpm2-abrmd did not come up (see $WORK/abrmd.log)"
}

# On a -Db_sanitize=address build the module needs the ASan runtime in the
# uninstrumented client that loads it: it is preloaded into pkcs11-tool
# (with libstdc++: ASan's __cxa_throw interceptor needs the real one at
# start-up, and pkcs11-tool is a C program), without leak checks on the
# client's own allocations. Preloading it into every process of a test
# (tpm2-tools, tpm2-abrmd) hangs them, so tests through openssl, curl,
# mosquitto and p11-kit need an unsanitized build.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(cd "$(dirname "${BASH_SOURCE[0]}")/../sanitizers" && pwd)/lsan.supp}
asan_runtime=$(ldd "$MODULE" 2>/dev/null | awk '/libasan|libstdc\+\+/ { printf "%s ", $3 }')
[[ $asan_runtime == *libasan* ]] || asan_runtime=""
# Full stacks at malloc time, so suppressions match inside libcrypto (built
# without frame pointers). Uninstrumented programs ignore ASAN_OPTIONS.
[ -z "$asan_runtime" ] || export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
p11() {
  if [ -n "$asan_runtime" ]; then
    LD_PRELOAD="$asan_runtime" ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 \
      pkcs11-tool --module "$MODULE" "$@"
  else
    pkcs11-tool --module "$MODULE" "$@"
  fi
}

# expect_fail PATTERN CMD...: CMD must fail and print PATTERN (e.g. a CKR name).
expect_fail() {
  local pattern=$1 out
  shift
  if out=$("$@" 2>&1); then fail "expected failure ($pattern) from: $*"; fi
  grep -q -- "$pattern" <<<"$out" || fail "expected '$pattern' from: $*; got: $out"
}

# token_flags LABEL: the token flags line pkcs11-tool -L prints for LABEL.
token_flags() {
  p11 -L 2>/dev/null | awk -v l="$1" '
    /token label/ { found = ($4 == l) }
    found && /token flags/ { sub(/.*: /, ""); print; exit }'
}

# init_token LABEL SO_PIN USER_PIN: a token on the free slot with a user PIN.
init_token() {
  local free
  free=$(p11 -L 2>/dev/null | awk '/^Slot/ { slot = $3 } /uninitialized/ { print slot; exit }' | tr -d '()')
  [ -n "$free" ] || fail "no free slot"
  p11 --slot "$free" --init-token --label "$1" --so-pin "$2" >/dev/null 2>&1 || fail "init-token $1"
  p11 --token-label "$1" --login --login-type so --so-pin "$2" --init-pin --pin "$3" >/dev/null 2>&1 \
    || fail "init-pin $1"
}

# make_ca DIR: a throwaway CA (DIR/ca.pem, DIR/ca.key) and a server
# certificate for 127.0.0.1 (DIR/srv.pem, DIR/srv.key).
make_ca() {
  local d=$1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null || fail "CA"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$d/srv.key" -out "$d/srv.csr" 2>/dev/null || fail "server key"
  printf 'subjectAltName=IP:127.0.0.1\n' >"$d/srv.ext"
  openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/srv.ext" -out "$d/srv.pem" 2>/dev/null || fail "server certificate"
}

# sign_csr CSR OUT: the throwaway CA signs a client certificate.
sign_csr() {
  openssl x509 -req -in "$1" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial -days 2 \
    -out "$2" 2>/dev/null || fail "signing $1"
}

# wait_for PORT: like wait_port, but fails the test.
wait_for() { wait_port "$1" || fail "nothing listens on 127.0.0.1:$1"; }

# bus_proxy CC[@HANDLE] NTH MODE: (re)starts bus_proxy.py (its modes are in
# its header) between the module and this test's swtpm, the previous one
# stopped, and points TPMTOKEN_TCTI at it. BUS_DIRECT is the TCTI around
# the proxy; the proxy logs to $WORK/proxy.log.
bus_proxy() {
  : "${BUS_DIRECT:=$TPMTOKEN_TCTI}"
  [ -z "${BUS_PROXY_PID:-}" ] || kill "$BUS_PROXY_PID" 2>/dev/null || true
  rm -f "$WORK/proxy.port"
  python3 "$(dirname "${BASH_SOURCE[0]}")/bus_proxy.py" "$WORK/proxy.port" "${BUS_DIRECT##*port=}" \
    "$@" >"$WORK/proxy.log" 2>&1 &
  BUS_PROXY_PID=$!
  CLEANUP_PIDS+=("$BUS_PROXY_PID")
  for _ in $(seq 50); do [ -s "$WORK/proxy.port" ] && break; sleep 0.1; done
  [ -s "$WORK/proxy.port" ] || fail "the proxy ($*) did not start: $(cat "$WORK/proxy.log")"
  export TPMTOKEN_TCTI="swtpm:host=127.0.0.1,port=$(cat "$WORK/proxy.port")"
}
