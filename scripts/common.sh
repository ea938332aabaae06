# Shell helpers shared by the demo and the integration tests.
#
# swtpm_start DIR: starts a simulated TPM with its state in DIR on a free
# loopback port pair; sets SWTPM_PID and exports TPMTOKEN_TCTI. Returns 1 if
# it cannot start (the log is DIR/swtpm.log).

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

swtpm_start() {
  local dir=$1 port
  mkdir -p "$dir"
  for _ in 1 2 3 4 5; do
    port=$(free_port_pair)
    swtpm socket --tpm2 --tpmstate dir="$dir" \
      --server type=tcp,port="$port",bindaddr=127.0.0.1 \
      --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
      --flags not-need-init,startup-clear >"$dir/swtpm.log" 2>&1 &
    SWTPM_PID=$!
    for _ in $(seq 50); do
      if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
        export TPMTOKEN_TCTI="swtpm:host=127.0.0.1,port=$port"
        return 0
      fi
      kill -0 "$SWTPM_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$SWTPM_PID" 2>/dev/null || true
    wait "$SWTPM_PID" 2>/dev/null || true
    SWTPM_PID=""
  done
  return 1
}

# wait_port PORT: returns once something listens on 127.0.0.1:PORT (1 after 5 s).
wait_port() {
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# engine_conf FILE [EXTRA]: an openssl.cnf that loads the libp11 engine on
# $MODULE; EXTRA lines go into the engine's section (e.g. "PIN = 1234").
engine_conf() {
  cat >"$1" <<CNF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
MODULE_PATH = $MODULE
init = 0
${2:-}
CNF
}

# mosquitto_start DIR PORT CA CERT KEY: an MQTT broker on 127.0.0.1:PORT with
# TLS that requires client certificates issued by CA; its configuration and
# log go in DIR. Sets MOSQUITTO_PID.
mosquitto_start() {
  local dir=$1 port=$2
  cat >"$dir/mosquitto.conf" <<CONF
user $(id -un)
listener $port 127.0.0.1
cafile $3
certfile $4
keyfile $5
require_certificate true
allow_anonymous true
CONF
  mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
  MOSQUITTO_PID=$!
}
