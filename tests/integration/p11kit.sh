#!/usr/bin/env bash
# p11-kit with a module file that names tpmtoken, in a private mount
# namespace (as root p11-kit ignores per-user configuration, so the test
# bind-mounts its own modules directory over the system's): list-modules,
# p11tool, the p11-kit proxy, and p11-kit server with a remote client that
# signs.
source "$(dirname "$0")/lib.sh"
fixture_start
init_token device 12345678 1234
p11 --token-label device --login --pin 1234 --keypairgen --key-type EC:prime256v1 --label dev-key \
  --id 01 >/dev/null 2>&1 || fail "EC key"
mkdir "$WORK/modules"
echo "module: $MODULE" >"$WORK/modules/tpmtoken.module"
isolated() {
  unshare -m bash -c 'mount --bind "$1" /usr/share/p11-kit/modules && shift && exec "$@"' _ \
    "$WORK/modules" "$@"
}
isolated true || fail "cannot make a private mount namespace (unshare -m needs root)"

out=$(isolated p11-kit list-modules 2>&1) || fail "p11-kit list-modules: $out"
grep -q 'tpmtoken' <<<"$out" && grep -q 'device' <<<"$out" || fail "list-modules: $out"
pass "p11-kit list-modules shows the module and its token"

out=$(isolated p11tool --list-tokens 2>&1) || fail "p11tool --list-tokens: $out"
grep -q 'token=device' <<<"$out" || fail "p11tool --list-tokens: $out"
out=$(isolated p11tool --list-all 'pkcs11:token=device' 2>&1) || fail "p11tool --list-all: $out"
grep -q 'dev-key' <<<"$out" || fail "p11tool --list-all: $out"
pass "p11tool lists the token and its objects"

proxy=/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so
echo "through the proxy" >"$WORK/msg"
out=$(isolated pkcs11-tool --module "$proxy" -L 2>&1) || fail "proxy -L: $out"
grep -q 'device' <<<"$out" || fail "the proxy does not show the token: $out"
isolated pkcs11-tool --module "$proxy" --token-label device --login --pin 1234 --sign -m ECDSA-SHA256 \
  --id 01 -i "$WORK/msg" -o "$WORK/sig" >/dev/null 2>&1 || fail "sign through the proxy"
pass "pkcs11-tool through p11-kit-proxy.so signs"

# p11-kit server exports the token; a client through p11-kit-client.so signs.
export XDG_RUNTIME_DIR="$WORK/run"
mkdir -m 700 "$XDG_RUNTIME_DIR"
eval "$(p11-kit server --provider "$MODULE" -s 'pkcs11:token=device' 2>"$WORK/server.err")" \
  || fail "p11-kit server: $(cat "$WORK/server.err")"
CLEANUP_PIDS+=("${P11_KIT_SERVER_PID:?p11-kit server printed no PID}")
client=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
out=$(pkcs11-tool --module "$client" -L 2>&1) || fail "client -L: $out"
grep -q 'device' <<<"$out" || fail "the client does not see the token: $out"
# p11-kit 0.24's RPC forwards only mechanisms it knows how to marshal: raw
# CKM_ECDSA (what OpenSSL's engine and providers use) but not CKM_ECDSA_SHA256.
openssl dgst -sha256 -binary "$WORK/msg" >"$WORK/msg.sha256"
pkcs11-tool --module "$client" --login --pin 1234 --sign -m ECDSA --id 01 -i "$WORK/msg.sha256" \
  -o "$WORK/remote.sig" --signature-format openssl >"$WORK/remote.log" 2>&1 || fail "remote sign: $(cat "$WORK/remote.log")"
p11 --token-label device --read-object --type pubkey --id 01 -o "$WORK/pub.der" >/dev/null 2>&1
openssl dgst -sha256 -verify <(openssl pkey -pubin -inform DER -in "$WORK/pub.der") \
  -signature "$WORK/remote.sig" "$WORK/msg" >/dev/null || fail "the remote signature does not verify"
pass "p11-kit server exports the token; a remote client signs"
