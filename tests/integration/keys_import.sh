#!/usr/bin/env bash
# Private keys imported with the real pkcs11-tool (--write-object --type
# privkey) go through TPM2_Import: they sign, the signatures verify with the
# original key, and no part of the private key is in the store.
source "$(dirname "$0")/lib.sh"
fixture_start
init_token imports 12345678 1234
login=(--token-label imports --login --pin 1234)
echo "imported key message" >"$WORK/msg"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/rsa.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/ec.pem" 2>/dev/null
for k in rsa ec; do
  openssl pkey -in "$WORK/$k.pem" -outform DER -out "$WORK/$k.der"
  openssl pkey -in "$WORK/$k.pem" -pubout -out "$WORK/$k.pub"
done
p11 "${login[@]}" --write-object "$WORK/rsa.der" --type privkey --label imp-rsa --id 51 >/dev/null 2>&1 \
  || fail "import RSA"
p11 "${login[@]}" --write-object "$WORK/ec.der" --type privkey --label imp-ec --id 52 >/dev/null 2>&1 \
  || fail "import EC"

p11 "${login[@]}" --sign -m SHA256-RSA-PKCS --id 51 -i "$WORK/msg" -o "$WORK/s1" >/dev/null 2>&1 || fail "sign RSA"
openssl dgst -sha256 -verify "$WORK/rsa.pub" -signature "$WORK/s1" "$WORK/msg" >/dev/null \
  || fail "RSA signature does not verify with the original key"
p11 "${login[@]}" --sign -m ECDSA-SHA256 --signature-format openssl --id 52 -i "$WORK/msg" \
  -o "$WORK/s2" >/dev/null 2>&1 || fail "sign EC"
openssl dgst -sha256 -verify "$WORK/ec.pub" -signature "$WORK/s2" "$WORK/msg" >/dev/null \
  || fail "EC signature does not verify with the original key"
pass "imported RSA and EC keys sign; the original public keys verify"

printf 'secret for the imported key' >"$WORK/plain"
openssl pkeyutl -encrypt -pubin -inkey "$WORK/rsa.pub" -in "$WORK/plain" -out "$WORK/c" \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
p11 "${login[@]}" --decrypt -m RSA-PKCS-OAEP --hash-algorithm SHA256 --mgf MGF1-SHA256 --id 51 \
  -i "$WORK/c" -o "$WORK/p" >/dev/null 2>&1 || fail "decrypt with the imported key"
cmp -s "$WORK/plain" "$WORK/p" || fail "imported key decrypts wrongly"
pass "imported RSA key decrypts"

attrs=$(p11 "${login[@]}" --list-objects --type privkey 2>/dev/null)
grep -q 'never extractable' <<<"$attrs" && fail "an imported key claims never extractable: $attrs"
grep -q 'local' <<<"$attrs" && fail "an imported key claims local: $attrs"
pass "imported keys are neither local nor never-extractable"

# Neither the EC scalar nor any RSA prime or exponent appears in the store.
hexdump_store=$(cat "$TPMTOKEN_STORE"* | xxd -p | tr -d '\n')
ec_priv=$(openssl pkey -in "$WORK/ec.pem" -text -noout | awk '/^priv:/ { on = 1; next } /^pub:/ { on = 0 } on' | tr -d ' :\n')
[ ${#ec_priv} -ge 60 ] || fail "could not read the EC scalar"
grep -q "${ec_priv: -48}" <<<"$hexdump_store" && fail "the EC private scalar is in the store"
for part in privateExponent prime1 prime2; do
  v=$(openssl pkey -in "$WORK/rsa.pem" -text -noout | awk -v p="$part:" '$1 == p { on = 1; next } /^[a-zA-Z]/ { on = 0 } on' | tr -d ' :\n')
  [ ${#v} -ge 64 ] || fail "could not read $part"
  grep -q "${v:8:48}" <<<"$hexdump_store" && fail "the RSA $part is in the store"
done
pass "no private key material in the store"
