#!/usr/bin/env bash
# Authorized boot states (issue 11 item 3): the store key sealed under
# TPM2_PolicyAuthorize opens in a boot state an authorization approves, is
# refused in any other (store byte-identical), refuses a revoked
# authorization, and opens with one a vendor made with openssl alone (the
# README's commands). PCR 16 is resettable from locality 0: a reset and an
# extend stand in for a reboot into new measurements.
source "$(dirname "$0")/lib.sh"
swtpm_only "it extends and resets PCR 16"
fixture_start
T=${TOOL:?TOOL must name the tpmtoken binary}
export TPMTOKEN_CONF="$WORK/tpmtoken.conf"
: >"$TPMTOKEN_CONF"
export TPMTOKEN_SO_PIN=12345678
DIR="$TPMTOKEN_STORE.boot.d"
T_() { tpm2_"$1" -T "$TPMTOKEN_TCTI" "${@:2}" >/dev/null 2>&1 || fail "tpm2_$1 ${*:2}"; }
EXT=$(printf '%064d' 7)
extend() { T_ pcrextend "16:sha256=$EXT"; }
reset16() { T_ pcrreset 16; }
# PCR 16 after a reset and n extends, computed in software.
pcr16_after() {
  local v n
  v=$(printf '%064d' 0)
  for ((n = 0; n < $1; n++)); do
    v=$(printf '%s%s' "$v" "$EXT" | xxd -r -p | openssl dgst -sha256 -binary | xxd -p -c 64)
  done
  echo "$v"
}
store_bytes() { sha256sum <"$TPMTOKEN_STORE"; sqlite3 "$TPMTOKEN_STORE" .dump | sha256sum; }
opens() { p11 --token-label boot -O 2>/dev/null | grep -q device-cert; }
status_json() { "$T" --json boot status | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

init_token boot 12345678 1234
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=boot \
  -keyout "$WORK/k.pem" -out "$WORK/c.pem" 2>/dev/null
openssl x509 -in "$WORK/c.pem" -outform DER -out "$WORK/c.der"
p11 --token-label boot --login --pin 1234 --write-object "$WORK/c.der" --type cert \
  --label device-cert >/dev/null 2>&1 || fail "write cert"
reset16

# The SO's key: bind to the current value of PCR 16.
expect_fail '--pcrs is needed' "$T" boot bind --authorizer so
rc=0
out=$("$T" boot bind --authorizer so --pcrs sha256:16 --so-pin-file <(echo 87654321) 2>&1) || rc=$?
[ "$rc" = 4 ] && grep -q 'wrong PIN' <<<"$out" || fail "a wrong SO PIN: exit $rc: $out"
[ "$(status_json mode)" = none ] || fail "a refused bind changed the binding"
"$T" boot bind --authorizer so --pcrs sha256:16 >/dev/null || fail "boot bind --authorizer so"
[ "$(status_json mode)" = authorized ] || fail "status: $("$T" boot status)"
[ "$(status_json authorizer)" = so ] || fail "status authorizer"
"$T" status | grep -q 'Store key  sealed to this TPM and to boot states authorized by so' ||
  fail "tpmtoken status: $("$T" status)"
"$T" status | grep -q WARNING && fail "status warns of an unbound store key: $("$T" status)"
opens || fail "the store did not open right after the bind"
E0=$(status_json epoch)
pass "the store key is sealed to SO-authorized boot states (epoch $E0)"

# Authorize the next boot state (PCR 16 extended once) from expected values.
printf 'sha256:\n  16: 0x%s\n' "$(pcr16_after 1 | tr a-f A-F)" >"$WORK/next.values"
"$T" boot authorize --pcrs sha256:16 --values "$WORK/next.values" --out "$WORK/next.auth" \
  >/dev/null || fail "boot authorize"
grep -q "^epoch: $E0$" "$WORK/next.auth" || fail "authorization epoch: $(cat "$WORK/next.auth")"
"$T" boot install "$WORK/next.auth" >/dev/null || fail "boot install"
extend
opens || fail "the authorized boot state did not open the store"
p11 --token-label boot --login --pin 1234 -O 2>/dev/null | grep -q device-cert || fail "login"
pass "new PCR values authorized before the reboot: the store opens"

# An unauthorized boot state: refused with the cause, the store untouched.
extend
before=$(store_bytes)
out=$(p11 -L 2>&1) && fail "the token opened in an unauthorized boot state: $out"
grep -q 'no authorization in .* approves this boot state' <<<"$out" || fail "message: $out"
grep -q 'PCRs sha256:16 hold other values' <<<"$out" || fail "the reason: $out"
grep -q 'CKR_FUNCTION_FAILED' <<<"$out" || fail "expected CKR_FUNCTION_FAILED: $out"
expect_fail 'approves this boot state' "$T" status
[ "$(store_bytes)" = "$before" ] || fail "the store changed in an unauthorized boot state"
pass "an unauthorized boot state is refused, naming the cause; the store is byte-identical"

# Revocation: back in the first state, the SO raises the epoch. The old
# authorization of the second state no longer opens it, even put back by hand.
reset16
opens || fail "the first boot state no longer opens"
"$T" boot revoke >/dev/null || fail "boot revoke"
E1=$(status_json epoch)
[ "$E1" -gt "$E0" ] || fail "epoch did not move: $E0 -> $E1"
opens || fail "the current boot state must stay authorized after a revoke"
out=$("$T" boot install "$WORK/next.auth" 2>&1) && fail "a revoked authorization was installed"
[ "$("$T" boot install "$WORK/next.auth" >/dev/null 2>&1; echo $?)" = 21 ] || fail "exit code for revoked: $out"
grep -q 'revoked' <<<"$out" || fail "install message: $out"
cp "$WORK/next.auth" "$DIR/old.auth"
extend
before=$(store_bytes)
out=$(p11 -L 2>&1) && fail "a revoked authorization opened the store: $out"
grep -q "old.auth: revoked (its epoch $E0 is below the store's boot epoch)" <<<"$out" ||
  fail "the revocation is not named: $out"
[ "$(store_bytes)" = "$before" ] || fail "the store changed under a revoked authorization"
pass "a revoked authorization is refused by the TPM (TPM2_PolicyNV), named in the message"

# A vendor's key installed as a trust anchor (SO-only CKA_TRUSTED): the
# vendor signs boot states offline with openssl (README commands).
reset16
rm -f "$DIR/old.auth"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=vendor \
  -addext basicConstraints=critical,CA:TRUE -keyout "$WORK/vendor.key" -out "$WORK/vendor.pem" 2>/dev/null
p11tool --provider "$MODULE" --login --so-login --set-so-pin 12345678 --write --trusted --ca \
  --label vendor --load-certificate "$WORK/vendor.pem" "pkcs11:token=boot" >/dev/null 2>&1 ||
  GNUTLS_SO_PIN=12345678 p11tool --provider "$MODULE" --so-login --write --trusted --ca --label vendor \
    --load-certificate "$WORK/vendor.pem" "pkcs11:token=boot" >/dev/null 2>&1 || fail "anchor add"
EPOCH=$(status_json epoch)
EPOCH_NAME=$(status_json epoch_name)
# vendor_authorize PCR16_HEX EPOCH OUT: exactly the README's commands.
vendor_authorize() {
  local values=$1 epoch=$2 out=$3 d="$WORK/vendor"
  mkdir -p "$d"
  printf '%s' "$values" | xxd -r -p | openssl dgst -sha256 -binary >"$d/pcrs.bin"
  { printf '%064d' 0 | xxd -r -p; printf '0000017f00000001000b03000001' | xxd -r -p; cat "$d/pcrs.bin"; } |
    openssl dgst -sha256 -binary >"$d/policy_pcr.bin"
  printf '%016x00000009' "$epoch" | xxd -r -p | openssl dgst -sha256 -binary >"$d/args.bin"
  { cat "$d/policy_pcr.bin"; printf '00000149' | xxd -r -p; cat "$d/args.bin"; printf '%s' "$EPOCH_NAME" | xxd -r -p; } |
    openssl dgst -sha256 -binary >"$d/approved.bin"
  { cat "$d/approved.bin"; printf 'tpmtoken-boot'; } | openssl dgst -sha256 -binary >"$d/ahash.bin"
  openssl pkeyutl -sign -inkey "${VENDOR_KEY:-$WORK/vendor.key}" -in "$d/ahash.bin" -out "$d/sig.der" \
    ${VENDOR_RSA:+-pkeyopt digest:sha256}
  printf 'tpmtoken-boot-authorization: 1\npcrs: sha256:16\nvalues: %s\nepoch: %s\nsignature: %s\n' \
    "$values" "$epoch" "$(xxd -p "$d/sig.der" | tr -d '\n')" >"$out"
}
out=$("$T" boot bind --authorizer anchor:vendor 2>&1; echo "rc=$?")
grep -q 'rc=22' <<<"$out" || fail "bind to the vendor without an authorization: $out"
grep -q 'stays bound as it was' <<<"$out" || fail "bind refusal message: $out"
opens || fail "a refused bind changed the binding"
vendor_authorize "$(pcr16_after 0)" "$EPOCH" "$WORK/v0.auth"
"$T" boot bind --authorizer anchor:vendor --authorization "$WORK/v0.auth" >/dev/null ||
  fail "bind to anchor:vendor with its authorization of this boot state"
[ "$(status_json authorizer)" = anchor:vendor ] || fail "authorizer after the vendor bind"
vendor_authorize "$(pcr16_after 1)" "$EPOCH" "$WORK/v1.auth"
# A tampered authorization (another boot state under the same signature).
sed "s/^values: .*/values: $(pcr16_after 2)/" "$WORK/v1.auth" >"$WORK/bad.auth"
[ "$("$T" boot install "$WORK/bad.auth" >/dev/null 2>&1; echo $?)" = 20 ] || fail "a tampered authorization was installed"
# The SO's own authorizations no longer count once the vendor is the authorizer.
[ "$("$T" boot install "$WORK/next.auth" >/dev/null 2>&1; echo $?)" = 20 ] || fail "the SO's authorization was taken for the vendor's"
"$T" boot install "$WORK/v1.auth" >/dev/null || fail "install the vendor's next boot state"
extend
opens || fail "the vendor-authorized boot state did not open the store"
cp "$WORK/bad.auth" "$DIR/bad.auth"  # put in by hand: the TPM refuses the signature
extend
out=$(p11 -L 2>&1) && fail "the tampered authorization opened the store"
grep -q 'bad.auth: not signed by the authorizer (anchor:vendor)' <<<"$out" || fail "tamper reason: $out"
pass "a vendor authorization made with openssl alone opens the store; a tampered one is refused"

# An RSA vendor key (PKCS#1 v1.5, SHA-256): the bind's trial unseal proves
# the TPM accepted the signature.
reset16
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=vendor-rsa \
  -addext basicConstraints=critical,CA:TRUE -keyout "$WORK/vendor-rsa.key" -out "$WORK/vendor-rsa.pem" 2>/dev/null
GNUTLS_SO_PIN=12345678 p11tool --provider "$MODULE" --so-login --write --trusted --ca --label vendor-rsa \
  --load-certificate "$WORK/vendor-rsa.pem" "pkcs11:token=boot" >/dev/null 2>&1 || fail "RSA anchor add"
VENDOR_KEY="$WORK/vendor-rsa.key" VENDOR_RSA=1 vendor_authorize "$(pcr16_after 0)" "$EPOCH" "$WORK/r0.auth"
"$T" boot bind --authorizer anchor:vendor-rsa --authorization "$WORK/r0.auth" >/dev/null ||
  fail "bind to an RSA vendor key"
opens || fail "the RSA vendor's authorization did not open the store"
pass "an RSA vendor key works the same way"

# Back to exact PCRs: the binding is left only from an authorized state.
"$T" boot bind --authorizer none >/dev/null || fail "boot bind --authorizer none"
[ "$(status_json mode)" = none ] || fail "mode after unbinding"
extend
opens || fail "an unbound store refused a PCR change"
pass "boot bind --authorizer none returns the store key to pcr_policy"

# store delete frees the boot epoch counter with the store's other indices.
epoch_index=$("$T" --json boot status | python3 -c "import json,sys; print(json.load(sys.stdin)['epoch_index'])")
[ -n "$epoch_index" ] || fail "no boot epoch index in boot status"
epoch_hex=$(printf '0x%X' "$((16#${epoch_index#0x}))")  # as tpm2_getcap prints it
# No grep -q: it stops reading at the first match, tpm2_getcap (writing
# line by line) then dies of SIGPIPE, and pipefail fails a listed index.
nv_listed() { tpm2_getcap -T "$TPMTOKEN_TCTI" handles-nv-index | grep -ix -- "- $epoch_hex" >/dev/null; }
nv_listed || fail "the boot epoch counter $epoch_index ($epoch_hex) is not in the TPM: $(tpm2_getcap -T "$TPMTOKEN_TCTI" handles-nv-index 2>&1 | tr "\n" " ")"
"$T" store delete --yes >"$WORK/delete.out" 2>&1 || fail "store delete: $(cat "$WORK/delete.out")"
nv_listed && fail "store delete left the boot epoch counter $epoch_index in the TPM"
pass "store delete frees the boot epoch counter"
