# A hostile bus for a test: tests/integration/lib.sh's swtpm with the
# response-mutating proxy (tpmproxy.py) in front of it.
#   source tests/hostile/lib.sh; fixture_start; proxy_start
# then TPMTOKEN_TCTI goes through the proxy, DIRECT_TCTI straight to swtpm,
# PROXY_LOG is the bus log and rules "JSON" rewrites the control file.
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
HOSTILE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# pyenv's shim costs seconds per start; the system interpreter is enough.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

proxy_start() {
  export DIRECT_TCTI=$TPMTOKEN_TCTI
  PROXY_LOG=$WORK/bus.log
  PROXY_CTL=$WORK/bus.rules
  : >"$PROXY_CTL"
  "$PY" "$HOSTILE_DIR/tpmproxy.py" --tpm-port "${DIRECT_TCTI##*port=}" --log "$PROXY_LOG" \
    --control "$PROXY_CTL" --port-file "$WORK/proxy.port" "$@" >"$WORK/proxy.out" 2>&1 &
  PROXY_PID=$!
  CLEANUP_PIDS+=("$PROXY_PID")
  for _ in $(seq 100); do
    [ -s "$WORK/proxy.port" ] && break
    kill -0 "$PROXY_PID" 2>/dev/null || fail "the proxy did not start: $(cat "$WORK/proxy.out")"
    sleep 0.1
  done
  [ -s "$WORK/proxy.port" ] || fail "the proxy did not start in 10 s"
  export PROXY_TCTI="swtpm:host=127.0.0.1,port=$(cat "$WORK/proxy.port")"
  export TPMTOKEN_TCTI=$PROXY_TCTI
}

# rules JSON: the proxy applies these from its next response on (counters reset).
rules() {
  printf '%s\n' "$1" >"$PROXY_CTL.tmp"
  mv "$PROXY_CTL.tmp" "$PROXY_CTL"
}

# mark TEXT: a line in the bus log, to cut it into steps.
mark() { echo "# mark $1" >>"$PROXY_LOG"; }

# since MARK: the bus log after that mark. (Never fails: "since M | grep -q"
# closes the pipe early, and pipefail would count awk's SIGPIPE.)
since() { awk -v m="# mark $1" 'f; $0 == m { f = 1 }' "$PROXY_LOG" || true; }

# direct CMD...: CMD straight to swtpm, around the proxy.
direct() { TPMTOKEN_TCTI=$DIRECT_TCTI "$@"; }

# pin_counters: "INDEX PINCOUNT" for each TPM_NT_PIN_FAIL index, read straight
# from swtpm. (tpm2_nvreadpublic prints the type only as "nt" in its friendly
# attributes: the type is bits 4-7 of the attribute value, 8 = PIN_FAIL.)
pin_counters() {
  local idx value hex
  for idx in $(tpm2_getcap -T "$DIRECT_TCTI" handles-nv-index | sed -n 's/^- //p'); do
    value=$(tpm2_nvreadpublic -T "$DIRECT_TCTI" "$idx" | awk '/attributes:/ { a = 1 } a && /value:/ { print $2; exit }')
    [ $(( (value >> 4) & 0xF )) -eq 8 ] || continue
    hex=$(tpm2_nvread -T "$DIRECT_TCTI" -C o -s 4 "$idx" | xxd -p)
    echo "$idx $((0x$hex))"
  done
}
