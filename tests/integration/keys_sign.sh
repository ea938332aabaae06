#!/usr/bin/env bash
# TPM key pairs through the real pkcs11-tool: generation for every key type
# the TPM supports, every signature mechanism, each signature checked by
# openssl against the exported public key and by the module's own verify.
source "$(dirname "$0")/lib.sh"
fixture_start
init_token keys 12345678 1234
login=(--token-label keys --login --pin 1234)
head -c 1000 /dev/urandom >"$WORK/msg"

mechs=$(p11 --token-label keys -M 2>/dev/null)
keys=()
grep -q 'RSA-PKCS-KEY-PAIR-GEN' <<<"$mechs" && keys+=(rsa:2048)
grep -q 'RSA-PKCS-KEY-PAIR-GEN.*keySize={2048,[34]' <<<"$mechs" && keys+=(rsa:3072)
grep -q 'EC.*-KEY-PAIR-GEN' <<<"$mechs" && keys+=(EC:prime256v1)
grep -q 'EC.*-KEY-PAIR-GEN.*keySize={256,\(384\|521\)' <<<"$mechs" && keys+=(EC:secp384r1)
[ ${#keys[@]} -ge 2 ] || fail "the TPM offers too few key types: $mechs"

id=10
for kt in "${keys[@]}"; do
  id=$((id + 1))
  p11 "${login[@]}" --keypairgen --key-type "$kt" --label "key-$id" --id "$id" >/dev/null 2>&1 \
    || fail "keypairgen $kt"
  case $kt in
    rsa:*)
      p11 --token-label keys --read-object --type pubkey --id "$id" -o "$WORK/$id.der" >/dev/null 2>&1 \
        || fail "export public key $kt" ;;
    *)
      # pkcs11-tool 0.23 cannot export P-384 keys itself: wrap CKA_EC_POINT in
      # a SubjectPublicKeyInfo by hand (which also checks its encoding).
      # (-O lists every public key whatever --id says: pick ours by its ID.)
      point=$(p11 --token-label keys --list-objects --type pubkey 2>/dev/null \
        | awk -v id="$id" '/EC_POINT:/ { p = $2 } $1 == "ID:" && $2 == id { print p }' \
        | sed 's/^04[0-9a-f][0-9a-f]//')
      case $kt in
        EC:prime256v1) spki=3059301306072a8648ce3d020106082a8648ce3d030107034200 ;;
        EC:secp384r1) spki=3076301006072a8648ce3d020106052b81040022036200 ;;
      esac
      echo "$spki$point" | xxd -r -p >"$WORK/$id.der" ;;
  esac
  openssl pkey -pubin -inform DER -in "$WORK/$id.der" -out "$WORK/$id.pem" || fail "public key $kt unreadable"
  attrs=$(p11 "${login[@]}" --list-objects --type privkey --id "$id" 2>/dev/null)
  grep -q 'never extractable' <<<"$attrs" && grep -q 'always sensitive' <<<"$attrs" \
    && grep -q 'local' <<<"$attrs" || fail "private key $kt attributes: $attrs"
  case $kt in
    rsa:*) sigmechs="RSA-PKCS SHA1-RSA-PKCS SHA224-RSA-PKCS SHA256-RSA-PKCS SHA384-RSA-PKCS SHA512-RSA-PKCS
                     RSA-PKCS-PSS SHA1-RSA-PKCS-PSS SHA256-RSA-PKCS-PSS SHA384-RSA-PKCS-PSS SHA512-RSA-PKCS-PSS" ;;
    *) sigmechs="ECDSA ECDSA-SHA1 ECDSA-SHA224 ECDSA-SHA256 ECDSA-SHA384 ECDSA-SHA512" ;;
  esac
  for m in $sigmechs; do
    hash=sha256
    case $m in SHA1-*|*-SHA1) hash=sha1 ;; SHA224-*|*-SHA224) hash=sha224 ;;
      SHA384-*|*-SHA384) hash=sha384 ;; SHA512-*|*-SHA512) hash=sha512 ;; esac
    input="$WORK/msg"
    if [ "$m" = RSA-PKCS ] || [ "$m" = RSA-PKCS-PSS ] || [ "$m" = ECDSA ]; then
      # Raw mechanisms sign what they are given: hand them the hash.
      openssl dgst -"$hash" -binary "$WORK/msg" >"$WORK/hash"
      input="$WORK/hash"
    fi
    if [ "$m" = RSA-PKCS ]; then
      # Raw PKCS#1 v1.5 over a DigestInfo, as TLS 1.2 and AWS IoT's client use it.
      { printf '\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20'; cat "$WORK/hash"; } >"$WORK/di"
      input="$WORK/di"
    fi
    extra=()
    case $m in ECDSA*) extra=(--signature-format openssl) ;; esac
    case $m in RSA-PKCS-PSS) extra=(--hash-algorithm SHA256 --mgf MGF1-SHA256) ;; esac
    p11 "${login[@]}" --sign -m "$m" --id "$id" -i "$input" -o "$WORK/sig" "${extra[@]}" >/dev/null 2>&1 \
      || fail "$kt $m: sign"
    case $m in
      *PSS) opts=(-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest) ;;
      *) opts=() ;;
    esac
    openssl dgst -"$hash" "${opts[@]}" -verify "$WORK/$id.pem" -signature "$WORK/sig" "$WORK/msg" >/dev/null \
      || fail "$kt $m: openssl rejects the signature"
    if [[ $m != ECDSA* ]]; then
      p11 "${login[@]}" --verify -m "$m" --id "$id" -i "$input" --signature-file "$WORK/sig" \
        "${extra[@]}" >/dev/null 2>&1 || fail "$kt $m: module verify"
      python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[10] ^= 1; open(sys.argv[2], "wb").write(b)' \
        "$WORK/sig" "$WORK/sig.bad"
      if p11 "${login[@]}" --verify -m "$m" --id "$id" -i "$input" --signature-file "$WORK/sig.bad" \
        "${extra[@]}" 2>&1 | grep -q 'Signature is valid'; then
        fail "$kt $m: a corrupted signature verified"
      fi
    fi
  done
  pass "$kt: generated; every signature mechanism verified by openssl"
done

# Without the PIN the private keys are invisible and cannot sign.
ec_id=$(( 10 + $(printf '%s\n' "${keys[@]}" | grep -n '^EC:prime256v1$' | cut -d: -f1) ))
if p11 --token-label keys --sign -m ECDSA-SHA256 --id "$ec_id" -i "$WORK/msg" -o "$WORK/sig" >/dev/null 2>&1; then
  fail "signed without login"
fi
pass "no signature without login"

# pkcs11-tool exits without C_Finalize when an operation fails: the module
# must still leave nothing loaded in a bare TPM.
left=$(tpm2_getcap -T "$TPMTOKEN_TCTI" handles-transient)
[ -z "$left" ] || fail "objects left loaded in the TPM after the process ended: $left"
pass "nothing left loaded in the TPM"

# Decryption in the TPM of what openssl encrypted (PKCS#1 v1.5 and OAEP).
p11 "${login[@]}" --keypairgen --key-type rsa:2048 --label dec --id 30 >/dev/null 2>&1 || fail "keypairgen dec"
p11 --token-label keys --read-object --type pubkey --id 30 -o "$WORK/dec.der" >/dev/null 2>&1
openssl pkey -pubin -inform DER -in "$WORK/dec.der" -out "$WORK/dec.pem"
printf 'the session key' >"$WORK/plain"
openssl pkeyutl -encrypt -pubin -inkey "$WORK/dec.pem" -in "$WORK/plain" -out "$WORK/c"
p11 "${login[@]}" --decrypt -m RSA-PKCS --id 30 -i "$WORK/c" -o "$WORK/p" >/dev/null 2>&1 || fail "decrypt PKCS#1"
cmp -s "$WORK/plain" "$WORK/p" || fail "PKCS#1 v1.5 plaintext differs"
for h in SHA-1 SHA256 SHA384 SHA512; do
  oh=$(tr -d '-' <<<"$h" | tr 'A-Z' 'a-z')
  openssl pkeyutl -encrypt -pubin -inkey "$WORK/dec.pem" -in "$WORK/plain" -out "$WORK/c" \
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:"$oh" -pkeyopt rsa_mgf1_md:"$oh"
  p11 "${login[@]}" --decrypt -m RSA-PKCS-OAEP --hash-algorithm "$h" --mgf "MGF1-$oh" --id 30 \
    -i "$WORK/c" -o "$WORK/p" >/dev/null 2>&1 || fail "decrypt OAEP $h"
  cmp -s "$WORK/plain" "$WORK/p" || fail "OAEP $h plaintext differs"
done
# Random bytes below the modulus: PKCS#1 v1.5 answers a synthetic message,
# the same each time (implicit rejection, no padding oracle); OAEP refuses.
{ printf '\0'; head -c 255 /dev/urandom; } >"$WORK/junk"
p11 "${login[@]}" --decrypt -m RSA-PKCS --id 30 -i "$WORK/junk" -o "$WORK/p1" >/dev/null 2>&1 ||
  fail "random bytes under PKCS#1 v1.5 gave an error (a padding oracle)"
p11 "${login[@]}" --decrypt -m RSA-PKCS --id 30 -i "$WORK/junk" -o "$WORK/p2" >/dev/null 2>&1 ||
  fail "random bytes under PKCS#1 v1.5 gave an error the second time"
cmp -s "$WORK/p1" "$WORK/p2" || fail "implicit rejection is not deterministic"
if p11 "${login[@]}" --decrypt -m RSA-PKCS-OAEP --hash-algorithm SHA256 --mgf MGF1-sha256 --id 30 \
    -i "$WORK/junk" -o "$WORK/p" >/dev/null 2>&1; then
  fail "random bytes decrypted under OAEP"
fi
pass "decryption in the TPM of openssl's PKCS#1 v1.5 and OAEP ciphertexts"

# OpenSC's own self-test over the token's keys.
out=$(p11 "${login[@]}" --test 2>&1) || fail "pkcs11-tool --test: $out"
grep -q 'No errors' <<<"$out" || fail "pkcs11-tool --test: $out"
pass "pkcs11-tool --test --login"

# ECDH: pkcs11-tool --derive with an openssl-made peer; both sides agree.
p11 "${login[@]}" --keypairgen --key-type EC:prime256v1 --label ecdh --id 40 >/dev/null 2>&1 \
  || fail "keypairgen ecdh"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/peer.pem" 2>/dev/null
openssl pkey -in "$WORK/peer.pem" -pubout -outform DER -out "$WORK/peer.der"
p11 "${login[@]}" --derive -m ECDH1-DERIVE --id 40 -i "$WORK/peer.der" -o "$WORK/z.bin" >/dev/null 2>&1 \
  || fail "derive"
point=$(p11 --token-label keys --list-objects --type pubkey 2>/dev/null \
  | awk '/EC_POINT:/ { p = $2 } $1 == "ID:" && $2 == "40" { print p }' | sed 's/^04[0-9a-f][0-9a-f]//')
echo "3059301306072a8648ce3d020106082a8648ce3d030107034200$point" | xxd -r -p >"$WORK/ours.der"
openssl pkeyutl -derive -inkey "$WORK/peer.pem" -peerkey "$WORK/ours.der" -peerform DER -out "$WORK/z2.bin" \
  || fail "openssl derive"
cmp -s "$WORK/z.bin" "$WORK/z2.bin" || fail "the TPM and openssl disagree on the ECDH secret"
pass "ECDH with an openssl peer: both sides agree"
