#!/usr/bin/env bash
# The one EK certificate reader (src/tpm/ek.cc) on an NV index that a vendor
# made larger than its certificate: the RSA EK certificate at 0x01c00002 is
# rewritten (platform auth, empty on a fresh swtpm) with 24 zero bytes after
# the DER, in an index of 1,040 bytes, more than one TPM2_NV_Read piece.
# Both users of the reader take it: the storage key is confirmed through the
# certified EK (ek_ca), and the attestation request carries the certificate
# exactly, without the padding.
source "$(dirname "$0")/lib.sh"
T=${TOOL:?TOOL must name the tpmtoken binary}
mkdir -p "$WORK/ca" "$WORK/tpm"
printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
  "$WORK/ca" "$WORK/ca" "$WORK/ca" "$WORK/ca" >"$WORK/localca.conf"
printf 'create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = /etc/swtpm-localca.options\nactive_pcr_banks = sha256\n' \
  "$WORK/localca.conf" >"$WORK/setup.conf"
swtpm_setup --tpm2 --tpmstate "$WORK/tpm" --create-ek-cert --config "$WORK/setup.conf" \
  >"$WORK/setup.log" 2>&1 || fail "swtpm_setup (see $WORK/setup.log)"
unset TPMTOKEN_TCTI
fixture_start
cat "$WORK/ca/issuercert.pem" "$WORK/ca/swtpm-localca-rootca-cert.pem" >"$WORK/ek_ca.pem"

tcti=$TPMTOKEN_TCTI
tpm2_nvread -T "$tcti" 0x01c00002 -C 0x01c00002 -o "$WORK/ek.der" 2>/dev/null || fail "read the EK certificate"
openssl x509 -inform der -in "$WORK/ek.der" -noout 2>/dev/null || fail "swtpm's EK certificate is not DER"
size=$(stat -c %s "$WORK/ek.der")
{ cat "$WORK/ek.der"; head -c 24 /dev/zero; } >"$WORK/padded.bin"
attrs="ppwrite|writedefine|ppread|ownerread|authread|no_da|platformcreate"
tpm2_nvundefine -T "$tcti" -C p 0x01c00002 >/dev/null || fail "nvundefine"
tpm2_nvdefine -T "$tcti" -C p -s $((size + 24)) -a "$attrs" 0x01c00002 >/dev/null || fail "nvdefine"
tpm2_nvwrite -T "$tcti" -C p -i "$WORK/padded.bin" 0x01c00002 >/dev/null || fail "nvwrite"
[ "$(tpm2_nvreadpublic -T "$tcti" 0x01c00002 | awk '/size:/ { print $2 }')" = $((size + 24)) ] \
  || fail "the index is not the padded size"

export TPMTOKEN_CONF="$WORK/tpmtoken.conf"
echo "ek_ca = $WORK/ek_ca.pem" >"$TPMTOKEN_CONF"
out=$(TPMTOKEN_LOG=info p11 -L 2>&1) || fail "store with ek_ca on a padded certificate: $out"
grep -q "confirmed by the TPM's certified EK" <<<"$out" || fail "no EK confirmation: $out"
pass "a padded EK certificate index ($size + 24 bytes) anchors the storage key through the EK"

echo 87654321 >"$WORK/so"
echo 123456 >"$WORK/pin"
"$T" token init --label device --so-pin-file "$WORK/so" --pin-file "$WORK/pin" >/dev/null || fail "token init"
export TPMTOKEN_PIN=123456
"$T" key generate --key ec-key >/dev/null || fail "key generate"
"$T" attest --key ec-key --out "$WORK/req" >"$WORK/out" 2>&1 || fail "attest: $(cat "$WORK/out")"
grep -q "with its certificate" "$WORK/out" || fail "attest did not find the EK certificate: $(cat "$WORK/out")"
python3 - "$WORK/req" "$WORK/ek.der" <<'PY' || fail "the request's EK certificate is not the DER certificate alone"
import base64, json, sys
req = json.load(open(sys.argv[1]))
assert req["ek_certificate_index"] == "0x01c00002", req["ek_certificate_index"]
assert base64.b64decode(req["ek_certificate"]) == open(sys.argv[2], "rb").read()
PY
pass "the attestation request carries the EK certificate without its padding"
