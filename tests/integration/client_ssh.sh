#!/usr/bin/env bash
# OpenSSH with the token's keys, against a private sshd in the foreground on a
# free 127.0.0.1 port (its own host key and configuration): `ssh-keygen -D`
# lists the token's public keys; `ssh -I` logs in with the RSA key and with
# the EC key (the PIN through SSH_ASKPASS); ssh-agent takes the token with
# `ssh-add -s` when its -P allow-list names the module, and signs for ssh.
# Refusals, each for its reason: a key not in authorized_keys ("Permission
# denied (publickey)"), a wrong PIN (CKR_PIN_INCORRECT), and an agent whose
# allow-list does not name the module ("agent refused operation", with the
# agent's own line naming the allow-list).
source "$(dirname "$0")/client_lib.sh"
need sshd openssh-server
need ssh openssh-client
client_token

# ssh-keygen -D reads the public keys without a login.
ssh-keygen -D "$MODULE" >"$WORK/token.pub" 2>"$WORK/keygen.err" || fail "ssh-keygen -D: $(cat "$WORK/keygen.err")"
grep -q '^ssh-rsa ' "$WORK/token.pub" && grep -q '^ecdsa-sha2-nistp256 ' "$WORK/token.pub" \
  || fail "ssh-keygen -D does not list both keys: $(cat "$WORK/token.pub")"
pass "ssh-keygen -D lists the RSA and EC public keys"

# A private sshd: its own host key, configuration and authorized_keys.
user=$(id -un)
mkdir -p "$WORK/sshd"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/sshd/host" || fail "host key"
cp "$WORK/token.pub" "$WORK/sshd/authorized_keys"
port=$(free_port_pair)
cat >"$WORK/sshd/config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $WORK/sshd/host
AuthorizedKeysFile $WORK/sshd/authorized_keys
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers $user
LogLevel VERBOSE
CONF
# sshd (as root) wants its privilege-separation directory.
[ "$(id -u)" -ne 0 ] || mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$WORK/sshd/config" >"$WORK/sshd/log" 2>&1 &
CLEANUP_PIDS+=($!)
wait_for "$port"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$WORK/sshd/host.pub")" >"$WORK/known_hosts"

# The PIN prompt goes to SSH_ASKPASS (no terminal here).
askpass() {  # askpass PIN: a helper program that answers every prompt with PIN
  printf '#!/bin/sh\necho %s\n' "$1" >"$WORK/askpass.$1"
  chmod +x "$WORK/askpass.$1"
  echo "$WORK/askpass.$1"
}
# ssh_to PIN [ssh options...]: runs `echo logged-in` on the private sshd. The
# test's options come first: for ssh, the first value of an option wins.
ssh_to() {
  local pin=$1
  shift
  SSH_ASKPASS=$(askpass "$pin") SSH_ASKPASS_REQUIRE=force DISPLAY=none timeout 60 \
    ssh -F none -p "$port" "$@" -o UserKnownHostsFile="$WORK/known_hosts" \
    -o StrictHostKeyChecking=yes -o BatchMode=no -o PasswordAuthentication=no \
    -o KbdInteractiveAuthentication=no -o IdentityFile=none -o IdentityAgent=none \
    -o ConnectTimeout=10 -v "$user@127.0.0.1" \
    echo logged-in </dev/null 2>"$WORK/ssh.err"
}

for alg in rsa-sha2-256 rsa-sha2-512 ecdsa-sha2-nistp256; do
  out=$(ssh_to 1234 -I "$MODULE" -o PubkeyAcceptedAlgorithms="$alg") \
    || fail "ssh -I with $alg: $(tail -5 "$WORK/ssh.err")"
  [ "$out" = logged-in ] || fail "ssh -I with $alg ran nothing: $out"
  grep -q "Server accepts key: .*$([[ $alg == rsa* ]] && echo RSA || echo ECDSA)" "$WORK/ssh.err" \
    || fail "ssh -I with $alg did not use the token's key: $(grep -i 'key' "$WORK/ssh.err" | tail -5)"
  grep -q "Accepted publickey for $user" "$WORK/sshd/log" || fail "sshd did not log the login"
done
pass "ssh -I logs in with the token's RSA key (SHA-256, SHA-512) and its EC key"

# Refusal: the right PIN, but authorized_keys holds another key.
ssh-keygen -q -t ed25519 -N '' -f "$WORK/other" || fail "other key"
cp "$WORK/other.pub" "$WORK/sshd/authorized_keys"
if ssh_to 1234 -I "$MODULE" >/dev/null; then fail "logged in with a key not in authorized_keys"; fi
grep -q 'Permission denied (publickey)' "$WORK/ssh.err" \
  || fail "refusal for a key not in authorized_keys: $(tail -3 "$WORK/ssh.err")"
cp "$WORK/token.pub" "$WORK/sshd/authorized_keys"
# Refusal: a wrong PIN (the token refuses the login; ssh then has no key).
if ssh_to 9999 -I "$MODULE" >/dev/null; then fail "logged in with a wrong PIN"; fi
# (OpenSSH prints CKR_PIN_INCORRECT as "PIN incorrect".)
grep -q 'PKCS#11 login failed: PIN incorrect' "$WORK/ssh.err" \
  || fail "a wrong PIN was not refused as CKR_PIN_INCORRECT: $(grep -i pkcs11 "$WORK/ssh.err" | tail -3)"
grep -q 'Permission denied (publickey)' "$WORK/ssh.err" || fail "a wrong PIN: $(tail -3 "$WORK/ssh.err")"
pass "refused: a key not in authorized_keys; a wrong PIN (CKR_PIN_INCORRECT)"

# ssh-agent: its default allow-list (/usr/lib*/*,/usr/local/lib*/*) does not
# hold a module elsewhere; it refuses, and says so only in its own log.
agent() {  # agent ALLOW-LIST: starts an agent in debug mode, sets SSH_AUTH_SOCK
  local sock="$WORK/agent.$RANDOM.sock"
  ssh-agent -d -a "$sock" -P "$1" >"$WORK/agent.log" 2>&1 &
  CLEANUP_PIDS+=($!)
  for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
  [ -S "$sock" ] || fail "ssh-agent did not start: $(cat "$WORK/agent.log")"
  export SSH_AUTH_SOCK=$sock
}
add_token() {  # add_token PIN: ssh-add -s with the PIN through SSH_ASKPASS
  SSH_ASKPASS=$(askpass "$1") SSH_ASKPASS_REQUIRE=force DISPLAY=none timeout 60 \
    ssh-add -s "$MODULE" </dev/null 2>&1
}
agent '/usr/lib*/*,/usr/local/lib*/*'
if out=$(add_token 1234); then fail "an agent with the default allow-list took $MODULE: $out"; fi
grep -q 'agent refused operation' <<<"$out" || fail "ssh-add -s refusal: $out"
grep -q 'refusing PKCS#11 add of "'"$MODULE"'": provider not allowed' "$WORK/agent.log" \
  || fail "the agent did not name the allow-list as the cause: $(cat "$WORK/agent.log")"
pass "refused: ssh-agent whose -P allow-list does not name the module (its log says why)"

agent "$(dirname "$MODULE")/*"
out=$(add_token 9999) && fail "ssh-add -s took a wrong PIN: $out"
grep -q 'agent refused operation' <<<"$out" || fail "ssh-add -s with a wrong PIN: $out"
out=$(add_token 1234) || fail "ssh-add -s: $out"
grep -q 'Card added' <<<"$out" || fail "ssh-add -s: $out"
listed=$(ssh-add -L) || fail "ssh-add -L"
grep -q '^ssh-rsa ' <<<"$listed" && grep -q '^ecdsa-sha2-nistp256 ' <<<"$listed" \
  || fail "the agent does not hold both token keys: $listed"
for alg in rsa-sha2-256 ecdsa-sha2-nistp256; do
  out=$(ssh_to none -o IdentityAgent="$SSH_AUTH_SOCK" -o PubkeyAcceptedAlgorithms="$alg") \
    || fail "ssh through the agent with $alg: $(tail -5 "$WORK/ssh.err")"
  [ "$out" = logged-in ] || fail "ssh through the agent with $alg: $out"
done
ssh-add -e "$MODULE" >/dev/null 2>&1 || fail "ssh-add -e"
pass "ssh-agent -P naming the module: ssh-add -s, then ssh signs through the agent (RSA, EC)"
