#!/usr/bin/env bash
# A copy of the store reveals no label, ID, certificate bytes or data value,
# and no private key material: keys imported from files whose private parts
# the test knows (EC d, RSA d, p and q) are searched for in every store file
# (and -wal), after the imported keys are shown to sign. Swapping two records
# breaks those two objects only, with a log line, and the rest of the token
# stays usable.
source "$(dirname "$0")/lib.sh"
fixture_start
init_token vault-token 12345678 1234

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=secrecy-subject-cn" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
openssl x509 -in "$WORK/cert.pem" -outform DER -out "$WORK/cert.der"
printf 'public-value-marker-%s' {1..3} >"$WORK/public.txt"
printf 'private-value-marker-%s' {1..3} >"$WORK/private.txt"
p11 --token-label vault-token --login --pin 1234 --write-object "$WORK/cert.der" --type cert \
  --label cert-label-marker --id c0ffee42c0ffee42 >/dev/null 2>&1 || fail "write cert"
p11 --token-label vault-token --login --pin 1234 --write-object "$WORK/public.txt" --type data \
  --label public-label-marker >/dev/null 2>&1 || fail "write public data"
p11 --token-label vault-token --login --pin 1234 --write-object "$WORK/private.txt" --type data \
  --label private-label-marker --private >/dev/null 2>&1 || fail "write private data"
p11 --token-label vault-token --login --pin 1234 --write-object "$WORK/public.txt" --type data \
  --label bystander-marker >/dev/null 2>&1 || fail "write bystander"

# Private keys whose secret parts the test knows, imported into the TPM.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/ec.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/rsa.pem" 2>/dev/null
for k in ec rsa; do
  openssl pkey -in "$WORK/$k.pem" -outform DER -out "$WORK/$k.der"
  p11 --token-label vault-token --login --pin 1234 --write-object "$WORK/$k.der" --type privkey \
    --label "imported-$k" --id "$([ $k = ec ] && echo 0e || echo 0a)" >/dev/null 2>&1 || fail "import $k key"
done
# The imported keys work (so their material did go in): signatures verify
# with the original public keys.
echo "imported" >"$WORK/msg"
p11 --token-label vault-token --login --pin 1234 --sign -m ECDSA-SHA256 --id 0e -i "$WORK/msg" \
  -o "$WORK/ec.sig" --signature-format openssl >/dev/null 2>&1 || fail "sign with the imported EC key"
openssl dgst -sha256 -verify <(openssl pkey -in "$WORK/ec.pem" -pubout) -signature "$WORK/ec.sig" "$WORK/msg" \
  >/dev/null || fail "the imported EC key's signature does not verify"
p11 --token-label vault-token --login --pin 1234 --sign -m SHA256-RSA-PKCS --id 0a -i "$WORK/msg" \
  -o "$WORK/rsa.sig" >/dev/null 2>&1 || fail "sign with the imported RSA key"
openssl dgst -sha256 -verify <(openssl pkey -in "$WORK/rsa.pem" -pubout) -signature "$WORK/rsa.sig" "$WORK/msg" \
  >/dev/null || fail "the imported RSA key's signature does not verify"
# field KEY NAME: a private field of the key as plain hex (no leading zero byte).
field() {
  openssl pkey -in "$WORK/$1.pem" -text -noout \
    | awk -v f="$2:" '$1 == f { on = 1; next } /^[a-zA-Z]/ { on = 0 } on' \
    | tr -d ' :\n' | sed 's/^00//'
}

mkdir "$WORK/copy"
cp "$TPMTOKEN_STORE"* "$WORK/copy/"
store_hex=$(cat "$WORK/copy/"* | xxd -p | tr -d '\n')
for secret in ec:priv rsa:privateExponent rsa:prime1 rsa:prime2; do
  hex=$(field "${secret%%:*}" "${secret#*:}")
  [ "${#hex}" -ge 64 ] || fail "could not read $secret from the key file"
  # The search finds it where it is: in the key's own DER file.
  xxd -p "$WORK/${secret%%:*}.der" | tr -d '\n' | grep -q "${hex:0:32}" || fail "the search misses $secret in its key file"
  # Any 16-byte run of the secret, at any offset in the files.
  for ((i = 0; i + 32 <= ${#hex}; i += 32)); do
    if grep -q "${hex:i:32}" <<<"$store_hex"; then fail "bytes of $secret are in the store copy"; fi
  done
done
pass "no private key material (EC d, RSA d, p, q of imported keys) in the store copy"
for needle in vault-token cert-label-marker public-label-marker private-label-marker \
  bystander-marker public-value-marker private-value-marker secrecy-subject-cn; do
  if grep -r -a -q -- "$needle" "$WORK/copy"; then fail "'$needle' found in the store copy"; fi
done
id_hex=$(printf 'c0ffee42c0ffee42' | xxd -r -p)
if grep -r -a -q -F -- "$id_hex" "$WORK/copy"; then fail "the CKA_ID bytes are in the store copy"; fi
# A distinctive run of the certificate's DER (its public key) must not appear either.
cert_chunk=$(tail -c 80 "$WORK/cert.der" | head -c 32 | xxd -p | tr -d '\n')
if xxd -p "$WORK/copy/"* | tr -d '\n' | grep -q "$cert_chunk"; then fail "certificate bytes in the store copy"; fi
pass "no label, ID, certificate or value in the store copy"

# Swap the records of the two public data objects.
ids=$(sqlite3 "$TPMTOKEN_STORE" "SELECT id FROM objects WHERE private = 0 ORDER BY id")
cert_id=$(sed -n 1p <<<"$ids"); a=$(sed -n 2p <<<"$ids"); b=$(sed -n 3p <<<"$ids")
[ -n "$a" ] && [ -n "$b" ] || fail "expected three public objects, got: $ids"
sqlite3 "$TPMTOKEN_STORE" "
  CREATE TEMP TABLE t AS SELECT id, record FROM objects WHERE id IN ($a, $b);
  UPDATE objects SET record = (SELECT record FROM t WHERE t.id = $b) WHERE id = $a;
  UPDATE objects SET record = (SELECT record FROM t WHERE t.id = $a) WHERE id = $b;"

out=$(p11 --token-label vault-token --login --pin 1234 -O 2>&1) || fail "listing after the swap failed: $out"
grep -q 'cert-label-marker' <<<"$out" || fail "certificate lost after the swap"
grep -q 'private-label-marker' <<<"$out" || fail "private object lost after the swap"
grep -q -e 'public-label-marker' -e 'bystander-marker' <<<"$out" && fail "a swapped record was accepted"
grep -q 'fails authentication' <<<"$out" || fail "no log line names the tampered objects: $out"
[ "$(grep -c 'fails authentication' <<<"$out")" -eq 2 ] || fail "expected two log lines: $out"
echo "certificate $cert_id intact; objects $a and $b rejected"
p11 --token-label vault-token --login --pin 1234 --write-object "$WORK/public.txt" --type data \
  --label after-tamper >/dev/null 2>&1 || fail "token not writable after the swap"
pass "swapped records fail alone, the token stays usable"
