# Shared set-up for the client tests (client_*.sh): one token "device" (SO
# PIN 12345678, user PIN 1234) with an RSA-2048 key (id 02, label rsa-key) and
# an EC P-256 key (id 01, label ec-key), a throwaway CA, and each key's
# certificate signed by it and stored on the token beside its key.
# Usage: source client_lib.sh (after lib.sh's variables are set by sourcing it
# here); then client_token; client_certs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# need CMD PACKAGE: skip (meson's 77) when a client program is not installed.
need() {
  command -v "$1" >/dev/null || skip "$1 is not installed (Debian package $2; ./run installs it)"
}

client_token() {
  fixture_start
  init_token device 12345678 1234
  LOGIN=(--token-label device --login --pin 1234)
  p11 "${LOGIN[@]}" --keypairgen --key-type rsa:2048 --label rsa-key --id 02 >/dev/null 2>&1 \
    || fail "RSA key"
  p11 "${LOGIN[@]}" --keypairgen --key-type EC:prime256v1 --label ec-key --id 01 >/dev/null 2>&1 \
    || fail "EC key"
}

# client_certs: $WORK/{ca,srv}.{pem,key} and $WORK/{rsa,ec}.pem, the latter
# from CSRs that the tpmtoken tool has the TPM sign, also stored on the token.
client_certs() {
  make_ca "$WORK"
  local k id
  for k in rsa ec; do
    TPMTOKEN_PIN=1234 "$TOOL" csr --token device --key "$k-key" --subject "/CN=thing-$k" \
      --out "$WORK/$k.csr" 2>"$WORK/$k.csr.err" || fail "$k CSR: $(cat "$WORK/$k.csr.err")"
    sign_csr "$WORK/$k.csr" "$WORK/$k.pem"
    openssl x509 -in "$WORK/$k.pem" -outform DER -out "$WORK/$k.der"
    id=01
    [ "$k" = rsa ] && id=02
    p11 "${LOGIN[@]}" --write-object "$WORK/$k.der" --type cert --label "$k-key" --id "$id" \
      >/dev/null 2>&1 || fail "storing the $k certificate on the token"
  done
}

# tls_server PORT [s_server options...]: openssl s_server on 127.0.0.1 that
# requires a client certificate from the test CA and answers HTTP with the
# session's details (-www); its log is $WORK/srv.PORT.log.
tls_server() {
  local port=$1
  shift
  openssl s_server -accept "127.0.0.1:$port" -cert "$WORK/srv.pem" -key "$WORK/srv.key" \
    -CAfile "$WORK/ca.pem" -Verify 2 -verify_return_error -www "$@" \
    >"$WORK/srv.$port.log" 2>&1 &
  CLEANUP_PIDS+=($!)
  wait_for "$port"
}

# p11kit_isolated CMD...: runs CMD in a private mount namespace where
# p11-kit's module directory holds only tpmtoken (as root, p11-kit ignores
# per-user configuration, so the test cannot register the module otherwise).
p11kit_isolated() {
  if [ ! -d "$WORK/p11kit-modules" ]; then
    mkdir "$WORK/p11kit-modules"
    echo "module: $MODULE" >"$WORK/p11kit-modules/tpmtoken.module"
  fi
  unshare -m bash -c 'mount --bind "$1" /usr/share/p11-kit/modules && shift && exec "$@"' _ \
    "$WORK/p11kit-modules" "$@"
}
