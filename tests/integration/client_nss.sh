#!/usr/bin/env bash
# NSS with the token: `modutil -add` registers the module in an NSS database,
# `certutil -K` lists the token's keys, `certutil -R` makes CSRs with them
# (the key named by its CKA_ID in hex), and `tstclnt` does mutual TLS 1.3
# and 1.2 against `openssl s_server -Verify` with the key and certificate on
# the token. Refusals, each for its reason: `certutil -R -k` with the key's
# label instead of its hex ID (NSS cannot find the key), and tstclnt with a
# wrong PIN ("Incorrect password/PIN entered", then the server's
# certificate_required alert).
source "$(dirname "$0")/client_lib.sh"
need modutil libnss3-tools
need certutil libnss3-tools
need tstclnt libnss3-tools
client_token
client_certs

db="sql:$WORK/nssdb"
mkdir "$WORK/nssdb"
certutil -N -d "$db" --empty-password || fail "certutil -N"
out=$(modutil -dbdir "$db" -add tpmtoken -libfile "$MODULE" -force 2>&1) || fail "modutil -add: $out"
out=$(modutil -dbdir "$db" -list tpmtoken 2>&1) || fail "modutil -list: $out"
grep -q 'Token Name: device' <<<"$out" || fail "modutil -list does not show the token: $out"
pass "modutil -add registers the module; modutil -list shows the token"

echo 1234 >"$WORK/pin"
out=$(certutil -K -d "$db" -h device -f "$WORK/pin" 2>&1) || fail "certutil -K: $out"
# The second column is the key's CKA_ID in hex: what certutil -R -k takes.
grep -q '> rsa  *02  *rsa-key' <<<"$out" && grep -q '> ec  *01  *ec-key' <<<"$out" \
  || fail "certutil -K does not list both keys with their hex IDs: $out"
pass "certutil -K lists the token's RSA and EC keys with their hex IDs"

# certutil -R -k takes a key type or the key's CKA_ID in hex (01, 02 here).
for k in rsa:02 ec:01; do
  certutil -R -d "$db" -h device -f "$WORK/pin" -k "${k#*:}" -s "CN=nss-${k%:*}" -a \
    -o "$WORK/nss-${k%:*}.csr" >"$WORK/certutil.log" 2>&1 || fail "certutil -R ${k%:*}: $(cat "$WORK/certutil.log")"
  openssl req -in "$WORK/nss-${k%:*}.csr" -verify -noout 2>/dev/null || fail "the ${k%:*} CSR does not verify"
  [ "$(openssl req -in "$WORK/nss-${k%:*}.csr" -pubkey -noout)" = "$(openssl x509 -in "$WORK/${k%:*}.pem" -pubkey -noout)" ] \
    || fail "the ${k%:*} CSR does not carry the token's key"
done
pass "certutil -R -k <hex CKA_ID> makes CSRs with the token's RSA and EC keys"

if out=$(certutil -R -d "$db" -h device -f "$WORK/pin" -k ec-key -s CN=x -a -o "$WORK/x.csr" 2>&1); then
  fail "certutil -R -k with a label made a CSR"
fi
grep -q 'ec-key is neither a key-type nor a nickname nor a key-id' <<<"$out" || fail "certutil -R -k LABEL: $out"
pass "refused: certutil -R -k with the key's label instead of its hex ID"

certutil -A -d "$db" -n test-ca -t 'CT,,' -a -i "$WORK/ca.pem" || fail "trusting the test CA"
port=$(free_port_pair)
tls_server "$port"
printf 'GET / HTTP/1.0\r\n\r\n' >"$WORK/request"
connect() {  # connect VERSION NICKNAME PIN: one HTTP request; prints the output
  timeout 60 tstclnt -h 127.0.0.1 -p "$port" -d "$db" -n "$2" -w "$3" -V "$1:$1" \
    -A "$WORK/request" </dev/null 2>&1
}
for k in rsa ec; do
  for v in tls1.3 tls1.2; do
    out=$(connect "$v" "device:$k-key" 1234) || fail "tstclnt $k $v: $out"
    grep -q "Protocol  *: TLSv1\.${v#tls1.}" <<<"$out" || fail "tstclnt $k $v: $out"
  done
done
pass "tstclnt mutual TLS 1.3 and 1.2 with the token's RSA and EC keys and certificates"

if out=$(connect tls1.3 device:ec-key 9999); then
  grep -q 'Protocol  *: TLSv1' <<<"$out" && fail "tstclnt with a wrong PIN completed a handshake"
fi
# NSS asks again after a wrong PIN (each try counts on the token's
# counter); with no client key the server ends the handshake.
grep -q 'Incorrect password/PIN entered' <<<"$out" \
  && grep -q 'SSL_ERROR_RX_CERTIFICATE_REQUIRED_ALERT' <<<"$out" || fail "tstclnt with a wrong PIN: $out"
pass "refused: tstclnt with a wrong PIN"
