#!/usr/bin/env bash
# A token that services running as their own users share through a group:
# the store's directory is setgid and group-writable (install -d -m 2770
# -g G), so the store and the -wal and -shm files SQLite makes beside it are
# mode 0660 and group G whoever creates them. Two users made here: one in G
# signs with the token's key (and creates a key); the other gets one line
# naming the group and the fix. A TPM device the user may not open is
# named with its group the same way (tss on Debian; here a stand-in file).
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || skip "making users needs root"
for c in useradd groupadd setpriv sqlite3; do command -v "$c" >/dev/null || skip "$c is not installed"; done
fixture_start

g=tts$$
uin=ttin$$
uout=ttout$$
remove_accounts() {
  # Cleanup of what the test made (it may have failed before making it).
  userdel "$uin" 2>/dev/null || true
  userdel "$uout" 2>/dev/null || true
  groupdel "$g" 2>/dev/null || true
}
trap 'rc=$?; remove_accounts; (exit $rc); fixture_cleanup' EXIT
groupadd "$g" || fail "groupadd"
useradd -M -N -g nogroup -G "$g" -s /usr/sbin/nologin "$uin" || fail "useradd $uin"
useradd -M -N -g nogroup -s /usr/sbin/nologin "$uout" || fail "useradd $uout"
# On a real TPM the service's user also needs the device's group (tss).
case "$TPMTOKEN_TCTI" in
  swtpm:*) ;;
  device:*) usermod -a -G "$(stat -c %G "${TPMTOKEN_TCTI#device:}")" "$uin" || fail "adding $uin to the TPM device's group" ;;
  *) skip "the test users cannot be given access to the TPM at '$TPMTOKEN_TCTI' (swtpm or device: only)" ;;
esac
as() {  # as USER CMD...: CMD as USER with its groups, this test's TPM and store
  local u=$1
  shift
  setpriv --reuid "$u" --regid nogroup --init-groups \
    env HOME=/nonexistent TPMTOKEN_TCTI="$TPMTOKEN_TCTI" TPMTOKEN_STORE="$TPMTOKEN_STORE" "$@"
}

chmod 755 "$WORK"
install -d -m 2770 -g "$g" "$WORK/shared"
export TPMTOKEN_STORE="$WORK/shared"           # a directory: the store is made inside
db="$WORK/shared/tpmtoken.sqlite3"
init_token device 12345678 1234
p11 --token-label device --login --pin 1234 --keypairgen --key-type EC:prime256v1 --label svc-key --id 01 \
  >/dev/null 2>&1 || fail "EC key"
[ "$(stat -c '%a %G' "$db")" = "660 $g" ] || fail "the store is $(stat -c '%a %G' "$db"), not 660 $g"
pass "root makes the store in the shared directory: mode 660, group $g"

install -d -m 700 -o "$uin" "$WORK/out"
echo "signed by a service" >"$WORK/msg"
out=$(as "$uin" pkcs11-tool --module "$MODULE" --token-label device --login --pin 1234 --sign -m ECDSA-SHA256 \
  --id 01 -i "$WORK/msg" -o "$WORK/out/sig" --signature-format openssl 2>&1) || fail "$uin cannot sign: $out"
p11 --token-label device --read-object --type pubkey --id 01 -o "$WORK/pub.der" >/dev/null 2>&1
openssl dgst -sha256 -verify <(openssl pkey -pubin -inform DER -in "$WORK/pub.der") -signature "$WORK/out/sig" \
  "$WORK/msg" >/dev/null || fail "the signature made by $uin does not verify"
pass "$uin (in $g) signs with the token's key"

# While a reader as $uin holds the store open, $uin writes (a new key): the
# -wal and -shm files SQLite makes are the group's too.
mkfifo "$WORK/hold"
as "$uin" sqlite3 "$db" <"$WORK/hold" >/dev/null 2>&1 &
CLEANUP_PIDS+=($!)
exec 7>"$WORK/hold"
echo "SELECT count(*) FROM sqlite_master;" >&7
out=$(as "$uin" pkcs11-tool --module "$MODULE" --token-label device --login --pin 1234 --keypairgen \
  --key-type EC:prime256v1 --label made-by-service --id 02 2>&1) || fail "$uin cannot create a key: $out"
for f in "$db-wal" "$db-shm"; do
  [ -f "$f" ] || fail "no $f while the store is in use"
  [ "$(stat -c '%a %G' "$f")" = "660 $g" ] || fail "$f is $(stat -c '%a %G' "$f"), not 660 $g"
done
exec 7>&-
p11 --token-label device -O 2>/dev/null | grep -q made-by-service || fail "root does not see the key $uin made"
pass "-wal and -shm keep mode 660 and group $g; root sees what $uin made"

# A user outside the group: one line naming the group and the fix.
out=$(as "$uout" pkcs11-tool --module "$MODULE" -L 2>&1) && fail "$uout opened the store: $out"
grep -q "cannot open store $db: this user ($uout) is not in group $g, which may use $WORK/shared (mode 2770): add it (adduser $uout $g) and start the program again" <<<"$out" \
  || fail "$uout: $out"
[ "$(grep -c 'tpmtoken' <<<"$out")" -eq 1 ] || fail "more than one line from the module: $out"
pass "$uout (not in $g) is refused with one line naming $g and the fix"

# The TPM device: a file standing in for /dev/tpmrm0 (root:$g, mode 660).
install -m 660 -g "$g" /dev/null "$WORK/tpmrm0"
install -d -m 700 -o "$uout" "$WORK/own"
out=$(as "$uout" env TPMTOKEN_TCTI="device:$WORK/tpmrm0" TPMTOKEN_STORE="$WORK/own" \
  pkcs11-tool --module "$MODULE" -L 2>&1) && fail "$uout opened a device it may not use"
grep -q "cannot reach the TPM through 'device:$WORK/tpmrm0'.*this user ($uout) is not in group $g, which may use $WORK/tpmrm0 (mode 660): add it (adduser $uout $g)" <<<"$out" \
  || fail "device: $out"
pass "a TPM device the user may not open is named with its group"
