#!/usr/bin/env bash
# The token lifecycle through the real pkcs11-tool: info, slots, init, PINs,
# objects (certificate DER and data, public and private), read back, delete,
# re-initialization with the SO PIN.
source "$(dirname "$0")/lib.sh"
fixture_start

p11 -I | grep -q 'tpmtoken project' || fail "-I does not show the manufacturer"
p11 -L | grep -q 'uninitialized' || fail "no free slot before init"
pass "info and slots"

init_token dev1 12345678 1234
p11 -L | grep -q 'token label *: dev1' || fail "token dev1 not listed"
p11 -L | grep -q 'uninitialized' || fail "no free slot after init"
serial=$(p11 -L | awk '/serial num/ { print $4; exit }')
[ ${#serial} -eq 16 ] || fail "serial '$serial' is not 16 characters"
init_token dev2 87654321 5678
serial2=$(p11 -L | awk '/serial num/ { print $4 }' | sed -n 2p)
[ "$serial" != "$serial2" ] || fail "two tokens share serial $serial"
[ "$(p11 -L | grep -c '^Slot')" -eq 3 ] || fail "expected two tokens and one free slot"
pass "two tokens with distinct serials and a free slot"

p11 --token-label dev1 -T 2>&1 | grep -q 'PIN initialized' || fail "-T flags"
pass "-T"

p11 --token-label dev1 --login --pin 1234 --change-pin --new-pin 4321 >/dev/null 2>&1 || fail "change user PIN"
expect_fail CKR_PIN_INCORRECT p11 --token-label dev1 --login --pin 1234 -O
p11 --token-label dev1 --login --pin 4321 -O >/dev/null 2>&1 || fail "login with the new user PIN"
p11 --token-label dev1 --login --login-type so --so-pin 12345678 --change-pin --new-pin 11112222 \
  >/dev/null 2>&1 || fail "change SO PIN"
expect_fail CKR_PIN_INCORRECT p11 --token-label dev1 --login --login-type so --so-pin 12345678 --session-rw -O
p11 --token-label dev1 --login --login-type so --so-pin 11112222 --session-rw -O >/dev/null 2>&1 || fail "SO login with new PIN"
expect_fail CKR_PIN_LEN_RANGE p11 --token-label dev1 --login --pin 4321 --change-pin --new-pin 12
pass "change-pin user and SO"

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=lifecycle/O=tpmtoken" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
openssl x509 -in "$WORK/cert.pem" -outform DER -out "$WORK/cert.der"
p11 --token-label dev1 --login --pin 4321 --write-object "$WORK/cert.der" --type cert \
  --label mycert --id a1b2 >/dev/null 2>&1 || fail "write certificate"
head -c 300 /dev/urandom >"$WORK/blob.bin"
p11 --token-label dev1 --login --pin 4321 --write-object "$WORK/blob.bin" --type data \
  --label secret-blob --private >/dev/null 2>&1 || fail "write private data"
echo "public note" >"$WORK/note.txt"
p11 --token-label dev1 --login --pin 4321 --write-object "$WORK/note.txt" --type data \
  --label note >/dev/null 2>&1 || fail "write public data"

p11 --token-label dev1 --read-object --type cert --label mycert -o "$WORK/cert.out" >/dev/null 2>&1 \
  || fail "read certificate without login"
cmp -s "$WORK/cert.der" "$WORK/cert.out" || fail "certificate read back differs"
p11 --token-label dev1 -O 2>/dev/null | grep -q 'subject: *DN: CN=lifecycle' || fail "subject not filled from the DER value"
p11 --token-label dev1 -O 2>/dev/null | grep -q 'secret-blob' && fail "private object visible without login"
p11 --token-label dev1 --login --pin 4321 --read-object --type data --label secret-blob \
  -o "$WORK/blob.out" >/dev/null 2>&1 || fail "read private data"
cmp -s "$WORK/blob.bin" "$WORK/blob.out" || fail "private data read back differs"
p11 --token-label dev1 --read-object --type data --label note -o "$WORK/note.out" >/dev/null 2>&1 \
  || fail "read public data"
cmp -s "$WORK/note.txt" "$WORK/note.out" || fail "public data differs"
p11 --token-label dev2 -O 2>/dev/null | grep -q mycert && fail "dev1's object visible on dev2"
pass "write and read certificate and data objects"

p11 --token-label dev1 --login --pin 4321 --delete-object --type data --label note >/dev/null 2>&1 \
  || fail "delete data object"
p11 --token-label dev1 -O 2>/dev/null | grep -q "note" && fail "deleted object still listed"
p11 --token-label dev1 --login --pin 4321 --delete-object --type cert --label mycert >/dev/null 2>&1 \
  || fail "delete certificate"
pass "delete objects"

expect_fail CKR_PIN_INCORRECT p11 --token-label dev1 --init-token --label dev1 --so-pin 99999999
p11 --token-label dev1 --init-token --label dev1b --so-pin 11112222 >/dev/null 2>&1 || fail "re-init with SO PIN"
p11 -L | grep -q 'token label *: dev1b' || fail "re-initialized label"
p11 -L | grep -A8 'label *: dev1b' | grep -q "serial num *: $serial" || fail "serial changed on re-init"
token_flags dev1b | grep -q 'PIN initialized' && fail "user PIN survived re-init: $(token_flags dev1b)"
p11 --token-label dev1b --login --login-type so --so-pin 11112222 --init-pin --pin 2468 >/dev/null 2>&1 \
  || fail "init-pin after re-init"
p11 --token-label dev1b --login --pin 2468 -O 2>/dev/null | grep -q 'secret-blob' && fail "objects survived re-init"
p11 --token-label dev2 --login --pin 5678 -O >/dev/null 2>&1 || fail "dev2 harmed by dev1's re-init"
pass "re-initialization"

# The SO may not log in while a read-only session exists (2.40, 5.6).
expect_fail CKR_SESSION_READ_ONLY_EXISTS p11 --token-label dev2 --login --login-type so --so-pin 87654321 -O
pass "SO login refused in a read-only session"

# A bare TPM (no resource manager) keeps whatever a process leaves loaded.
left=$(tpm2_getcap -T "$TPMTOKEN_TCTI" handles-transient; tpm2_getcap -T "$TPMTOKEN_TCTI" handles-loaded-session)
[ -z "$left" ] || fail "objects or sessions left loaded in the TPM: $left"
pass "nothing left loaded in the TPM"
