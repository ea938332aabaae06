#!/usr/bin/env bash
# OpenVPN 2.6 with the token: `--show-pkcs11-ids` lists the token's
# certificates with their serialized ids, and a client whose key is on the
# token (--pkcs11-providers, --pkcs11-id) completes the TLS handshake of a
# peer-to-peer tunnel against a server on 127.0.0.1, with the RSA key and
# with the EC key. `--dev null` (no tun device, no routes): the control
# channel's TLS handshake, which the token key signs, is what is tested.
# OpenVPN takes a token PIN only from a terminal or its management interface:
# clients/ovpn_pin.py answers there, as a service would. Refusals, each for
# its reason: a wrong PIN (CKR_PIN_INCORRECT in pkcs11-helper's log, asked
# again, then no handshake), and a server that trusts another CA (its VERIFY
# ERROR for the token's certificate).
source "$(dirname "$0")/client_lib.sh"
need openvpn openvpn
openvpn --version 2>/dev/null | grep -q '\[PKCS11\]' || skip "this openvpn is built without PKCS#11"
client_token
client_certs

ids=$(openvpn --show-pkcs11-ids "$MODULE" 2>&1) || fail "--show-pkcs11-ids: $ids"
serialized() {  # serialized CN: the --pkcs11-id of the certificate with that CN
  awk -v cn="CN=$1" '$1 == "DN:" { f = ($2 == cn) } f && /Serialized id:/ { print $3; exit }' <<<"$ids"
}
rsa_id=$(serialized thing-rsa)
ec_id=$(serialized thing-ec)
[[ $rsa_id == */device/02 && $ec_id == */device/01 ]] || fail "--show-pkcs11-ids: $ids"
pass "openvpn --show-pkcs11-ids lists both certificates (ids $ec_id, $rsa_id)"

# tunnel ID PIN CA-OF-SERVER: a server and a client; waits (20 s at most) until
# both say the tunnel is up or the client gives up; logs in $WORK/{server,client,mgmt}.log.
tunnel() {
  local id=$1 pin=$2 ca=$3 port mport pids=()
  port=$(free_port_pair)
  mport=$(free_port_pair)
  openvpn --dev null --tls-server --proto udp4 --local 127.0.0.1 --lport "$port" --ca "$ca" \
    --cert "$WORK/srv.pem" --key "$WORK/srv.key" --dh none --verb 3 >"$WORK/server.log" 2>&1 &
  pids+=($!)
  /usr/bin/python3 "$(dirname "$0")/clients/ovpn_pin.py" "$mport" "$pin" >"$WORK/mgmt.log" 2>&1 &
  pids+=($!)
  openvpn --dev null --tls-client --proto udp4 --remote 127.0.0.1 "$port" --nobind \
    --ca "$WORK/ca.pem" --verify-x509-name 127.0.0.1 name --pkcs11-providers "$MODULE" \
    --pkcs11-id "$id" --management 127.0.0.1 "$mport" --management-query-passwords \
    --hand-window 10 --single-session --verb "${OVPN_VERB:-3}" >"$WORK/client.log" 2>&1 &
  pids+=($!)
  CLEANUP_PIDS+=("${pids[@]}")
  for _ in $(seq 200); do
    grep -q 'Initialization Sequence Completed' "$WORK/client.log" \
      && grep -q 'Initialization Sequence Completed' "$WORK/server.log" && break
    grep -q 'TLS Error: TLS handshake failed' "$WORK/client.log" && break
    sleep 0.1
  done
  # Cleanup: the processes may have ended already; nothing here is a check.
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}

for k in rsa ec; do
  id=${k}_id
  tunnel "${!id}" 1234 "$WORK/ca.pem"
  grep -q "Peer Connection Initiated" "$WORK/server.log" && grep -q "\[thing-$k\] Peer Connection Initiated" "$WORK/server.log" \
    && grep -q 'Initialization Sequence Completed' "$WORK/client.log" \
    || fail "$k tunnel: $(tail -5 "$WORK/client.log"; tail -5 "$WORK/server.log")"
  grep -q "VERIFY OK: depth=0, CN=thing-$k" "$WORK/server.log" || fail "$k: the server did not verify the token's certificate"
  grep -q "Need 'device token' password" "$WORK/mgmt.log" || fail "$k: no PIN request on the management interface"
done
pass "OpenVPN TLS handshakes with the token's RSA and EC keys (PIN through the management interface)"

OVPN_VERB=9 tunnel "$ec_id" 9999 "$WORK/ca.pem"
grep -q 'Peer Connection Initiated' "$WORK/server.log" && fail "a wrong PIN brought the tunnel up"
# (pkcs11-helper names the CKR only at --verb 9; it asks for the PIN three
# times, and each wrong one counts on the token's PIN counter.)
[ "$(grep -c "Need 'device token' password" "$WORK/mgmt.log")" = 3 ] || fail "the PIN was not asked for three times: $(cat "$WORK/mgmt.log")"
grep -q "C_Login rv=160-'CKR_PIN_INCORRECT'" "$WORK/client.log" || fail "a wrong PIN: $(grep -i 'pkcs11\|error' "$WORK/client.log" | tail -5)"
pass "refused: a wrong PIN (CKR_PIN_INCORRECT; no handshake)"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=other-ca \
  -keyout "$WORK/other-ca.key" -out "$WORK/other-ca.pem" 2>/dev/null || fail "other CA"
tunnel "$ec_id" 1234 "$WORK/other-ca.pem"
grep -q 'Peer Connection Initiated' "$WORK/server.log" && fail "a server trusting another CA accepted the token's certificate"
# The client sends its certificate with the test CA above it (OpenSSL builds
# the chain from --ca); the server trusts neither.
grep -q 'VERIFY ERROR: depth=1, error=self-signed certificate in certificate chain: CN=test-ca' "$WORK/server.log" \
  || fail "a server trusting another CA: $(grep -i verify "$WORK/server.log")"
pass "refused: a server that trusts another CA (VERIFY ERROR for the token's certificate)"
