#!/usr/bin/env bash
# PyKCS11 (Debian's python3-pykcs11) with the token, through
# tests/integration/clients/pykcs11_check.py: RSA PKCS#1 v1.5, RSA-PSS and
# ECDSA signatures that the token and OpenSSL both verify, OAEP-SHA256 with
# OpenSSL's ciphertext and a round trip, ECDH whose shared secret equals
# OpenSSL's; the AWS IoT Device SDK's calls (an exact 2.40 C_GetFunctionList,
# CKM_RSA_PKCS over a DigestInfo, CKM_ECDSA over a hash). Refusals, each by its CKR: a wrong PIN (CKR_PIN_INCORRECT), a
# changed signature (CKR_SIGNATURE_INVALID), a changed ciphertext
# (CKR_ENCRYPTED_DATA_INVALID), a peer point off the curve
# (CKR_MECHANISM_PARAM_INVALID), an EC key with an RSA mechanism
# (CKR_KEY_TYPE_INCONSISTENT).
source "$(dirname "$0")/client_lib.sh"
# Debian's PyKCS11 is for Debian's Python.
py=/usr/bin/python3
"$py" -c 'import PyKCS11' 2>/dev/null || skip "PyKCS11 is not installed for $py (Debian package python3-pykcs11; ./run installs it)"
client_token

p11 --token-label device --read-object --type pubkey --id 02 -o "$WORK/rsa.pub.der" >/dev/null 2>&1 || fail "RSA public key"
p11 --token-label device --read-object --type pubkey --id 01 -o "$WORK/ec.pub.der" >/dev/null 2>&1 || fail "EC public key"
openssl pkey -pubin -inform DER -in "$WORK/rsa.pub.der" -out "$WORK/rsa.pub.pem"
openssl pkey -pubin -inform DER -in "$WORK/ec.pub.der" -out "$WORK/ec.pub.pem"
echo "PyKCS11 and tpmtoken" >"$WORK/msg"
echo "secret for the TPM" >"$WORK/oaep.pt"
openssl pkeyutl -encrypt -pubin -inkey "$WORK/rsa.pub.pem" -pkeyopt rsa_padding_mode:oaep \
  -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in "$WORK/oaep.pt" -out "$WORK/oaep.ct" || fail "OAEP"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/peer.key" 2>/dev/null
# The uncompressed point: the last 65 bytes of the SubjectPublicKeyInfo.
openssl pkey -in "$WORK/peer.key" -pubout -outform DER | tail -c 65 >"$WORK/peer.point"

out=$("$py" "$(dirname "$0")/clients/pykcs11_check.py" "$MODULE" 1234 "$WORK" 2>&1) || fail "PyKCS11: $out"
echo "$out"
for want in 'ok: C_GetFunctionList version 2.40' 'ok: library: tpmtoken TPM 2.0 PKCS#11 token' \
  'ok: signed and verified' 'ok: CKM_RSA_PKCS over a DigestInfo and CKM_ECDSA over a hash' 'ok: OAEP-SHA256' \
  'ok: ECDH derive' 'refused: CKR_PIN_INCORRECT' 'refused: CKR_SIGNATURE_INVALID' \
  'refused: CKR_ENCRYPTED_DATA_INVALID' 'refused: CKR_MECHANISM_PARAM_INVALID' 'refused: CKR_KEY_TYPE_INCONSISTENT'; do
  grep -qF "$want" <<<"$out" || fail "PyKCS11 did not report '$want': $out"
done

openssl dgst -sha256 -verify "$WORK/rsa.pub.pem" -signature "$WORK/rsa.sig" "$WORK/msg" >/dev/null \
  || fail "OpenSSL does not verify the RSA signature"
openssl dgst -sha256 -verify "$WORK/rsa.pub.pem" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
  -signature "$WORK/pss.sig" "$WORK/msg" >/dev/null || fail "OpenSSL does not verify the PSS signature"
openssl dgst -sha256 -verify "$WORK/ec.pub.pem" -signature "$WORK/ec.sig" "$WORK/msg" >/dev/null \
  || fail "OpenSSL does not verify the ECDSA signature"
openssl pkeyutl -derive -inkey "$WORK/peer.key" -peerkey "$WORK/ec.pub.pem" -out "$WORK/z.openssl" || fail "OpenSSL ECDH"
cmp -s "$WORK/z.bin" "$WORK/z.openssl" || fail "the token's ECDH secret differs from OpenSSL's"
pass "PyKCS11: signatures OpenSSL verifies, OAEP, ECDH equal to OpenSSL's, and each refusal by its CKR"
