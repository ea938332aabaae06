#!/usr/bin/env bash
# Key attestation (issue 12) on a swtpm manufactured with EK certificates
# (swtpm_setup --create-ek-cert, signed by swtpm_localca): the full flow for
# an EC and an RSA key with the verifier where no TPM is reachable, the
# attested key equal to the CSR's, and each refusal with its own cause and
# exit code. Also: the software MakeCredential against the TPM's
# ActivateCredential for an ECC P-256 and an RSA 2048 EK (credential_roundtrip).
source "$(dirname "$0")/lib.sh"
T=${TOOL:?TOOL must name the tpmtoken binary}
ROUNDTRIP=${CREDENTIAL_ROUNDTRIP:?CREDENTIAL_ROUNDTRIP must name the helper}

# A pre-manufactured TPM: swtpm_start keeps the state it finds in the dir.
mkdir -p "$WORK/tpm"
swtpm_setup --tpm2 --tpmstate "$WORK/tpm" --create-ek-cert --create-platform-cert \
  >"$WORK/setup.log" 2>&1 || fail "swtpm_setup (see $WORK/setup.log)"
unset TPMTOKEN_TCTI
fixture_start
LOCALCA=/var/lib/swtpm-localca
cat "$LOCALCA/swtpm-localca-rootca-cert.pem" "$LOCALCA/issuercert.pem" >"$WORK/ekca.pem" \
  || fail "the swtpm local CA is not readable"

expect_exit() {  # expect_exit CODE 'cause text' CMD...
  local want=$1 cause=$2 rc=0
  shift 2
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "exit $rc (want $want) from $*: $(cat "$WORK/err")"
  grep -q -- "$cause" "$WORK/err" || fail "$* exited $want but without '$cause': $(cat "$WORK/err")"
}
# The verifier's side: no TPM reachable (a TCTI pointing at nothing) and no store.
verifier() {
  TPMTOKEN_TCTI="swtpm:host=127.0.0.1,port=9" TPMTOKEN_STORE="$WORK/none/none.sqlite3" "$T" "$@"
}

"$ROUNDTRIP" "$WORK/ecc-ek.pem" >"$WORK/rt.log" 2>&1 || fail "credential round trip: $(cat "$WORK/rt.log")"
pass "software MakeCredential opens in the TPM (ECC P-256 and RSA 2048 EK); wrong name refused"

echo 87654321 >"$WORK/so"
echo 123456 >"$WORK/pin"
"$T" token init --label device --so-pin-file "$WORK/so" --pin-file "$WORK/pin" >/dev/null || fail "token init"
export TPMTOKEN_PIN=123456
"$T" key generate --key ec-key >/dev/null || fail "key generate ec"
"$T" key generate --key rsa-key --type rsa:2048 >/dev/null || fail "key generate rsa"

for key in ec-key rsa-key; do
  d="$WORK/$key"
  mkdir -p "$d"
  "$T" attest --key "$key" --out "$d/req" >"$WORK/out" 2>&1 || fail "attest $key: $(cat "$WORK/out")"
  grep -q "with its certificate" "$WORK/out" || fail "attest did not find the EK certificate"
  verifier attest challenge "$d/req" --ek-ca "$WORK/ekca.pem" --state "$d/state" --out "$d/ch" \
    >/dev/null || fail "challenge $key"
  [ "$(stat -c %a "$d/state")" = 600 ] || fail "the state file is readable by others"
  "$T" attest respond "$d/ch" --key "$key" --out "$d/rsp" >/dev/null || fail "respond $key"
  cp "$d/state" "$d/state.orig"
  verifier attest verify "$d/rsp" --state "$d/state" --pubkey-out "$d/attested.pem" >"$d/verify.out" \
    || fail "verify $key: $(cat "$d/verify.out")"
  grep -q "generated in the TPM" "$d/verify.out" || fail "verify did not say where the key was born"
  # The CSR tie-in: the CSR's public key is the attested one.
  "$T" csr --key "$key" --subject "/CN=$key" --out "$d/csr.pem" || fail "csr $key"
  openssl req -in "$d/csr.pem" -pubkey -noout >"$d/csr-pub.pem" || fail "csr pubkey"
  cmp -s "$d/csr-pub.pem" "$d/attested.pem" || fail "the attested key is not the CSR's ($key)"
  # Replay: the same response again.
  expect_exit 14 "replay" verifier attest verify "$d/rsp" --state "$d/state"
  pass "$key: request, challenge (no TPM), respond, verify; attested key == CSR key; replay refused"
done
cp "$WORK/ec-key/state.orig" "$WORK/s1"
verifier --json attest verify "$WORK/ec-key/rsp" --state "$WORK/s1" --json \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["verified"] and d["born_in_tpm"] and d["ek_trust"]=="certificate"' \
  || fail "verify --json"

# Another challenge's state: the EC response against the RSA challenge's state.
cp "$WORK/rsa-key/state.orig" "$WORK/s2"
expect_exit 13 "answers challenge" verifier attest verify "$WORK/ec-key/rsp" --state "$WORK/s2"
# A response to a second challenge for the same request does not fit the first's state.
verifier attest challenge "$WORK/ec-key/req" --ek-ca "$WORK/ekca.pem" --state "$WORK/s3" \
  --out "$WORK/ch3" >/dev/null || fail "second challenge"
expect_exit 13 "answers challenge" verifier attest verify "$WORK/ec-key/rsp" --state "$WORK/s3"
pass "another challenge's state refused"

# An EK certificate outside the bundle: a foreign CA.
make_ca "$WORK"
expect_exit 11 "does not chain to the CA bundle" \
  verifier attest challenge "$WORK/ec-key/req" --ek-ca "$WORK/ca.pem" --state "$WORK/s4" --out "$WORK/ch4"
[ ! -e "$WORK/ch4" ] || fail "a challenge was written for an untrusted EK"
pass "EK outside the CA bundle refused"

# Corrupted requests: not JSON; a field that is not a public area; an AK
# whose restricted bit was cleared; an EK swapped for another key.
mutate() {  # mutate IN OUT PYTHON-EXPR-ON-d
  python3 - "$1" "$2" "$3" <<'PY'
import base64, json, sys
d = json.load(open(sys.argv[1]))
def b(k): return bytearray(base64.b64decode(d[k]))
def s(k, v): d[k] = base64.b64encode(bytes(v)).decode()
exec(sys.argv[3])
json.dump(d, open(sys.argv[2], "w"))
PY
}
head -c 100 "$WORK/ec-key/req" >"$WORK/bad1"
expect_exit 10 "not a flat JSON object" \
  verifier attest challenge "$WORK/bad1" --ek-ca "$WORK/ekca.pem" --state "$WORK/s5" --out "$WORK/ch5"
mutate "$WORK/ec-key/req" "$WORK/bad2" 'v = b("ak_public"); s("ak_public", v[:-3])'
expect_exit 10 "is not a TPM2B_PUBLIC" \
  verifier attest challenge "$WORK/bad2" --ek-ca "$WORK/ekca.pem" --state "$WORK/s5" --out "$WORK/ch5"
# TPM2B_PUBLIC: size(2) type(2) nameAlg(2) objectAttributes(4): restricted is 0x00010000.
mutate "$WORK/ec-key/req" "$WORK/bad3" 'v = b("ak_public"); v[7] &= 0xFE; s("ak_public", v)'
expect_exit 12 "the AK is not restricted" \
  verifier attest challenge "$WORK/bad3" --ek-ca "$WORK/ekca.pem" --state "$WORK/s5" --out "$WORK/ch5"
mutate "$WORK/ec-key/req" "$WORK/bad4" 'v = b("ak_public"); v[9] &= 0xFD; s("ak_public", v)'
expect_exit 12 "not fixedTPM" \
  verifier attest challenge "$WORK/bad4" --ek-ca "$WORK/ekca.pem" --state "$WORK/s5" --out "$WORK/ch5"
mutate "$WORK/ec-key/req" "$WORK/bad5" 'v = b("ek_public"); v[-10] ^= 1; s("ek_public", v)'
expect_exit 11 "for another key than the EK" \
  verifier attest challenge "$WORK/bad5" --ek-ca "$WORK/ekca.pem" --state "$WORK/s5" --out "$WORK/ch5"
pass "corrupted requests refused (malformed, AK not restricted / not fixedTPM, EK not the certificate's)"

# A challenge altered on the way does not open in the TPM.
mutate "$WORK/ec-key/ch" "$WORK/bad-ch" 'v = b("credential_blob"); v[-1] ^= 1; s("credential_blob", v)'
expect_exit 15 "does not open in this TPM" \
  "$T" attest respond "$WORK/bad-ch" --key ec-key --out "$WORK/bad-rsp"
# A response altered on the way: the AK's signature fails.
cp "$WORK/ec-key/state.orig" "$WORK/s6"
mutate "$WORK/ec-key/rsp" "$WORK/bad-rsp2" 'v = b("attest"); v[-1] ^= 1; s("attest", v)'
expect_exit 16 "signature is not the AK's" verifier attest verify "$WORK/bad-rsp2" --state "$WORK/s6"
pass "altered challenge and altered response refused"

# An AK that is not in the TPM: an attacker's software key dressed as an AK
# (restricted, fixedTPM, ... claimed in its public area). The challenge is
# made for it, but only a TPM holding both the EK and that AK opens it:
# respond fails, and a response the attacker signs himself proves nothing.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/fake.key" 2>/dev/null
openssl pkey -in "$WORK/fake.key" -pubout -outform DER -out "$WORK/fake.spki" 2>/dev/null
mutate "$WORK/ec-key/req" "$WORK/fake.req" '
xy = open(sys.argv[1].rsplit("/", 2)[0] + "/fake.spki", "rb").read()[-64:]
area = bytes.fromhex("0023000b00050472000000100018000b00030010") + b"\x00\x20" + xy[:32] + b"\x00\x20" + xy[32:]
s("ak_public", len(area).to_bytes(2, "big") + area)'
verifier attest challenge "$WORK/fake.req" --ek-ca "$WORK/ekca.pem" --state "$WORK/fake.state" \
  --out "$WORK/fake.ch" >/dev/null || fail "challenge for the fake AK"
expect_exit 15 "does not open in this TPM" "$T" attest respond "$WORK/fake.ch" --key ec-key --out "$WORK/x.rsp"
python3 - "$WORK" <<'PY' || fail "forging the response"
import base64, json, subprocess, sys
w = sys.argv[1]
ch = json.load(open(w + "/fake.ch"))
old = json.load(open(w + "/ec-key/rsp"))
attest = base64.b64decode(old["attest"])  # a real TPMS_ATTEST, another challenge's extraData
open(w + "/fake.attest", "wb").write(attest)
der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", w + "/fake.key", w + "/fake.attest"],
                     check=True, capture_output=True).stdout
def ints(d):  # SEQUENCE { INTEGER r, INTEGER s }
    i, out = 2 if d[1] < 0x80 else 3, []
    while i < len(d):
        n = d[i + 1]; v = d[i + 2:i + 2 + n].lstrip(b"\0"); out.append(v); i += 2 + n
    return out
r, s_ = ints(der)
sig = bytes.fromhex("0018000b") + len(r).to_bytes(2, "big") + r + len(s_).to_bytes(2, "big") + s_
rsp = {"format": "tpmtoken-attest-response-v1", "challenge_id": ch["challenge_id"],
       "attest": old["attest"], "signature": base64.b64encode(sig).decode(), "key_public": old["key_public"]}
json.dump(rsp, open(w + "/fake.rsp", "w"))
PY
expect_exit 15 "does not prove the challenge's secret" verifier attest verify "$WORK/fake.rsp" --state "$WORK/fake.state"
pass "an AK outside the EK's TPM: the challenge does not open, a self-signed response is refused"

# An imported key: refused unless --allow-imported, and never called born in the TPM.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/imp.key" 2>/dev/null
"$T" key import --key imp-key "$WORK/imp.key" >/dev/null || fail "key import"
"$T" attest --key imp-key --out "$WORK/imp.req" >/dev/null 2>&1 || fail "attest imported"
verifier attest challenge "$WORK/imp.req" --ek-ca "$WORK/ekca.pem" --state "$WORK/imp.state" \
  --out "$WORK/imp.ch" >/dev/null || fail "challenge imported"
"$T" attest respond "$WORK/imp.ch" --key imp-key --out "$WORK/imp.rsp" >/dev/null || fail "respond imported"
cp "$WORK/imp.state" "$WORK/imp.state2"
expect_exit 18 "imported into the TPM" verifier attest verify "$WORK/imp.rsp" --state "$WORK/imp.state"
verifier attest verify "$WORK/imp.rsp" --state "$WORK/imp.state2" --allow-imported >"$WORK/out" \
  || fail "--allow-imported"
grep -q IMPORTED "$WORK/out" || fail "an imported key was not reported as imported"
! grep -q "generated in the TPM" "$WORK/out" || fail "an imported key was reported as born in the TPM"
pass "imported key refused (accepted with --allow-imported, reported as imported)"

# The key deleted between challenge and response; then re-created under the
# same label: the new key is not the requested one.
"$T" attest --key ec-key --out "$WORK/del.req" >/dev/null 2>&1 || fail "attest"
verifier attest challenge "$WORK/del.req" --ek-ca "$WORK/ekca.pem" --state "$WORK/del.state" \
  --out "$WORK/del.ch" >/dev/null || fail "challenge"
"$T" key delete --key ec-key >/dev/null || fail "key delete"
expect_exit 3 "ec-key" "$T" attest respond "$WORK/del.ch" --key ec-key --out "$WORK/del.rsp"
"$T" key generate --key ec-key >/dev/null || fail "key re-generate"
"$T" attest respond "$WORK/del.ch" --key ec-key --out "$WORK/del.rsp" >/dev/null || fail "respond"
expect_exit 17 "not the key named in the request" \
  verifier attest verify "$WORK/del.rsp" --state "$WORK/del.state"
pass "key deleted between challenge and response refused (and its replacement is not it)"

# A TPM without EK certificates (removed with the platform authorization):
# attest says so; --ek-ca is refused; an enrolled EK public key works.
tpm2_nvundefine -T "$TPMTOKEN_TCTI" -C p 0x01c00002 >/dev/null 2>&1 || fail "nvundefine"
"$T" attest --key rsa-key --out "$WORK/nc.req" --ek-pem "$WORK/ek.pem" >"$WORK/out" 2>&1 \
  || fail "attest without EK certificate: $(cat "$WORK/out")"
grep -q "has no EK certificate" "$WORK/out" || fail "attest did not say there is no EK certificate"
expect_exit 11 "has no EK certificate" \
  verifier attest challenge "$WORK/nc.req" --ek-ca "$WORK/ekca.pem" --state "$WORK/nc.state" --out "$WORK/nc.ch"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null | openssl pkey -pubout >"$WORK/other.pem"
expect_exit 11 "not the enrolled one" \
  verifier attest challenge "$WORK/nc.req" --ek-pub "$WORK/other.pem" --state "$WORK/nc.state" --out "$WORK/nc.ch"
verifier attest challenge "$WORK/nc.req" --ek-pub "$WORK/ek.pem" --state "$WORK/nc.state" \
  --out "$WORK/nc.ch" >/dev/null || fail "challenge --ek-pub"
"$T" attest respond "$WORK/nc.ch" --key rsa-key --out "$WORK/nc.rsp" >/dev/null || fail "respond (no cert)"
verifier attest verify "$WORK/nc.rsp" --state "$WORK/nc.state" >"$WORK/out" || fail "verify (enrolled EK)"
grep -q "enrolled-public-key" "$WORK/out" || fail "verify did not name the EK's trust"
pass "no EK certificate: said so; --ek-pub enrollment works, another EK refused"

# No secret crosses the bus in clear: a passive log of `respond` (through
# the bus tests' proxy) holds neither the recovered credential secret nor
# the PIN; the response is still good.
"$T" attest --key rsa-key --out "$WORK/bus.req" >/dev/null 2>&1 || fail "attest (bus)"
verifier attest challenge "$WORK/bus.req" --ek-pub "$WORK/ek.pem" --state "$WORK/bus.state" \
  --out "$WORK/bus.ch" >/dev/null || fail "challenge (bus)"
bus_proxy 0 0 log
"$T" attest respond "$WORK/bus.ch" --key rsa-key --out "$WORK/bus.rsp" >/dev/null || fail "respond (bus)"
export TPMTOKEN_TCTI=$BUS_DIRECT
[ -s "$WORK/proxy.port.bus" ] || fail "no bus log"
python3 - "$WORK/proxy.port.bus" "$WORK/bus.state" <<'PY' || fail "a secret crossed the bus in clear"
import base64, json, sys
bus = open(sys.argv[1], "rb").read()
secret = base64.b64decode(json.load(open(sys.argv[2]))["secret"])
for what, value in (("credential secret", secret), ("PIN", b"123456")):
    if value in bus:
        sys.exit(f"the {what} is in the bus log")
PY
verifier attest verify "$WORK/bus.rsp" --state "$WORK/bus.state" >/dev/null || fail "verify (bus)"
pass "respond: the credential secret and the PIN never on the bus ($(stat -c %s "$WORK/proxy.port.bus") bytes logged)"

# An ECC P-256 EK certificate (swtpm 0.7 issues P-384 ones only, at another
# index): the test CA certifies the TPM's P-256 EK and it goes into NV
# 0x01c0000a with the platform authorization. attest then prefers the ECC EK.
# It is made larger than the TPM's TPM2_PT_NV_BUFFER_MAX (1024 on swtpm), so
# attest must read it in pieces.
python3 -c 'print("subjectAltName=" + ",".join("DNS:host-%02d.a-rather-long-domain-name.example" % i for i in range(24)))' \
  >"$WORK/ecc-ek.ext"
openssl x509 -new -force_pubkey "$WORK/ecc-ek.pem" -subj /CN=ecc-ek -CA "$WORK/ca.pem" \
  -CAkey "$WORK/ca.key" -days 2 -extfile "$WORK/ecc-ek.ext" -outform DER -out "$WORK/ecc-ek.der" \
  2>/dev/null || fail "ECC EK certificate"
[ "$(stat -c %s "$WORK/ecc-ek.der")" -gt 1024 ] || fail "the ECC EK certificate is not larger than one NV read"
tpm2_nvdefine -T "$TPMTOKEN_TCTI" -C p -s "$(stat -c %s "$WORK/ecc-ek.der")" \
  -a "ppwrite|ppread|ownerread|authread|platformcreate|no_da" 0x01c0000a >/dev/null 2>&1 || fail "nvdefine"
tpm2_nvwrite -T "$TPMTOKEN_TCTI" -C p -i "$WORK/ecc-ek.der" 0x01c0000a >/dev/null 2>&1 || fail "nvwrite"
"$T" attest --key rsa-key --out "$WORK/ecc.req" >"$WORK/out" 2>&1 || fail "attest (ECC EK): $(cat "$WORK/out")"
grep -q "EK ECC P-256, with its certificate" "$WORK/out" || fail "attest did not use the ECC EK: $(cat "$WORK/out")"
python3 -c 'import base64,json,sys; r=json.load(open(sys.argv[1])); sys.exit(base64.b64decode(r["ek_certificate"]) != open(sys.argv[2],"rb").read())' \
  "$WORK/ecc.req" "$WORK/ecc-ek.der" || fail "the EK certificate read in pieces is not the one written"
expect_exit 11 "does not chain" \
  verifier attest challenge "$WORK/ecc.req" --ek-ca "$WORK/ekca.pem" --state "$WORK/ecc.state" --out "$WORK/ecc.ch"
verifier attest challenge "$WORK/ecc.req" --ek-ca "$WORK/ca.pem" --state "$WORK/ecc.state" \
  --out "$WORK/ecc.ch" >/dev/null || fail "challenge (ECC EK)"
"$T" attest respond "$WORK/ecc.ch" --key rsa-key --out "$WORK/ecc.rsp" >/dev/null || fail "respond (ECC EK)"
verifier attest verify "$WORK/ecc.rsp" --state "$WORK/ecc.state" >/dev/null || fail "verify (ECC EK)"
pass "ECC P-256 EK with its certificate ($(stat -c %s "$WORK/ecc-ek.der") bytes, read in pieces): full flow"

# An endorsement hierarchy with a password: tpmtoken makes the EK and the
# attestation key with the empty endorsement authorization, which the TPM
# then refuses. The line names that hierarchy, and does not advise
# owner_auth (which would change nothing).
tpm2_changeauth -T "$TPMTOKEN_TCTI" -c e endorsement-pw-1 >/dev/null || fail "changeauth endorsement"
expect_exit 5 "the endorsement hierarchy has an authorization value; attestation needs the TCG default (empty)" \
  "$T" attest --key rsa-key --out "$WORK/epw.req"
grep -q "owner_auth" "$WORK/err" && fail "owner_auth advised for the endorsement hierarchy: $(cat "$WORK/err")"
[ -e "$WORK/epw.req" ] && fail "a request was written without the attestation key"
pass "an endorsement password: refused, naming the endorsement hierarchy, not owner_auth"
