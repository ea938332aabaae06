#!/usr/bin/env bash
# The first contact anchored to the EK (issue 8 item 1): on a TPM that holds
# an RSA EK certificate (made here by swtpm_setup with a throwaway local CA),
# a new store with ek_ca set confirms its storage key in a session salted to
# the certified EK before pinning it. A bundle that does not verify the
# certificate, a TPM without one, and an altered answer in the EK session are
# each refused with a line naming the cause, and no store key is made.
source "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/ca" "$WORK/tpm"
printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
  "$WORK/ca" "$WORK/ca" "$WORK/ca" "$WORK/ca" >"$WORK/localca.conf"
printf 'create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = /etc/swtpm-localca.options\nactive_pcr_banks = sha256\n' \
  "$WORK/localca.conf" >"$WORK/setup.conf"
swtpm_setup --tpm2 --tpmstate "$WORK/tpm" --create-ek-cert --config "$WORK/setup.conf" \
  >"$WORK/setup.log" 2>&1 || fail "swtpm_setup (see $WORK/setup.log)"
fixture_start
cat "$WORK/ca/issuercert.pem" "$WORK/ca/swtpm-localca-rootca-cert.pem" >"$WORK/ek_ca.pem"
export TPMTOKEN_CONF="$WORK/tpmtoken.conf"
has_store_key() { [ -n "$(sqlite3 "$TPMTOKEN_STORE" "SELECT 1 FROM meta WHERE key = 'sk_seal_pub'" 2>/dev/null)" ]; }

# A bundle of another CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=other \
  -keyout "$WORK/other.key" -out "$WORK/other.pem" 2>/dev/null || fail "other CA"
echo "ek_ca = $WORK/other.pem" >"$TPMTOKEN_CONF"
expect_fail "EK certificate does not verify against ek_ca" p11 -L
has_store_key && fail "a store key was made after a failed EK check"
pass "an ek_ca that does not verify the EK certificate is refused, nothing made"

# An altered answer inside the EK session (the audited TPM2_ReadPublic).
direct=$TPMTOKEN_TCTI
echo "ek_ca = $WORK/ek_ca.pem" >"$TPMTOKEN_CONF"
# The storage primary is the first transient object (0x80000000); its
# ReadPublic in the EK session is the one to alter, whatever reads come first.
bus_proxy 173@80000000 1 flip
expect_fail "could not be confirmed in a session salted to the TPM's certified EK" p11 -L
grep -q "flipped a byte" "$WORK/proxy.log" || fail "the proxy altered nothing"
has_store_key && fail "a store key was made after a failed EK confirmation"
pass "an altered answer in the EK session is refused, nothing made"

export TPMTOKEN_TCTI=$direct
out=$(TPMTOKEN_LOG=info p11 -L 2>&1) || fail "store with ek_ca: $out"
grep -q "confirmed by the TPM's certified EK" <<<"$out" || fail "no EK confirmation: $out"
has_store_key || fail "no store made"
init_token bus 12345678 1234
p11 --token-label bus --login --pin 1234 -O >/dev/null 2>&1 || fail "login"
pass "with ek_ca the first contact is confirmed through the certified EK; the token works"

# With an owner password, TPM2_CreatePrimary is authorized in a session
# salted to the certified EK.
tpm2_changeauth -T "$TPMTOKEN_TCTI" -c o owner-pw-1 >/dev/null || fail "changeauth"
printf 'ek_ca = %s\nowner_auth = owner-pw-1\n' "$WORK/ek_ca.pem" >"$TPMTOKEN_CONF"
export TPMTOKEN_STORE="$WORK/store2/tpmtoken.sqlite3"
out=$(TPMTOKEN_LOG=info p11 -L 2>&1) || fail "store with an owner password and ek_ca: $out"
grep -q "confirmed by the TPM's certified EK" <<<"$out" || fail "no EK confirmation: $out"
init_token bus2 12345678 1234
p11 --token-label bus2 --login --pin 1234 -O >/dev/null 2>&1 || fail "login (owner password, EK)"
pass "with an owner password, the storage key is made in an EK-salted session; the token works"

# No persistent EK and an endorsement hierarchy with a password: the module
# makes the EK with the empty endorsement authorization, which the TPM
# refuses. The line names that hierarchy; it does not advise owner_auth
# (set and right here), and no store key is made.
tpm2_evictcontrol -T "$TPMTOKEN_TCTI" -C o -P owner-pw-1 -c 0x81010001 >/dev/null 2>&1 ||
  fail "evicting the persistent EK"
tpm2_changeauth -T "$TPMTOKEN_TCTI" -c e endorsement-pw-1 >/dev/null || fail "changeauth endorsement"
export TPMTOKEN_STORE="$WORK/store3/tpmtoken.sqlite3"
expect_fail "the endorsement hierarchy has an authorization value; the EK (ek_ca) needs the TCG default" p11 -L
p11 -L 2>&1 | grep -q "owner_auth" && fail "owner_auth advised for the endorsement hierarchy: $(p11 -L 2>&1)"
has_store_key && fail "a store key was made without the EK's confirmation"
pass "an endorsement password and no persistent EK: refused, naming the endorsement hierarchy"
