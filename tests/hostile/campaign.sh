#!/usr/bin/env bash
# Runs the mutation campaign (campaign.cc) on its own swtpm behind tpmproxy.py
# in random mode, then checks what only a path around the proxy can see: no
# PIN try was used by a correct PIN (each PIN counter's pinCount read with
# tpm2_nvread straight from swtpm) and the token signs without the proxy.
# CI=true: a fixed seed; otherwise a new one, printed (CAMPAIGN_SEED repeats a
# run). CAMPAIGN_SECONDS (60) and CAMPAIGN_OPS bound it; CAMPAIGN_RATE (0.3)
# is the fraction of TPM answers mutated. TPMTOKEN_TPM_TIMEOUT is 2 s here.
# --long (or CAMPAIGN_LONG=1): the long run the suite does not do, until
# CAMPAIGN_MUTATED (default 5000) operations met a mutated answer, with no
# time bound; run it on the
# sanitizer build (README, "The mutation campaign"):
#   MODULE=build-asan/src/libtpmtoken.so TOOL=build-asan/tools/tpmtoken \
#   CAMPAIGN=build-asan/tests/hostile_campaign tests/hostile/campaign.sh --long
[ "${1:-}" = --long ] && CAMPAIGN_LONG=1
source "$(dirname "$0")/lib.sh"
: "${CAMPAIGN:?CAMPAIGN must name the campaign binary}"
fixture_start
tpm() { tpm2_"$1" -T "$DIRECT_TCTI" "${@:2}"; }
# A forged answer can make the module's next HMAC wrong, which the TPM counts
# against its dictionary-attack limit (3 on a fresh swtpm): a lockout would
# end the campaign, not test the module, so the limit is raised here.
tpm2_dictionarylockout -T "$TPMTOKEN_TCTI" -s -n 100000 -t 1 -l 1 >/dev/null || fail "dictionarylockout"
export TPMTOKEN_TPM_TIMEOUT=${TPMTOKEN_TPM_TIMEOUT:-2}
# A module without a timeout waits on a stalled answer until the proxy gives
# up on it, past the campaign's hang threshold (a timeout for each unanswered
# command, one more and 3 s).
proxy_start --stall-max $((3 * TPMTOKEN_TPM_TIMEOUT + 6))
if [ -z "${CAMPAIGN_SEED:-}" ]; then
  if [ "${CI:-}" = true ]; then CAMPAIGN_SEED=20261130; else CAMPAIGN_SEED=$(( (RANDOM << 15) | RANDOM )); fi
fi
# Bounded by time (about a minute) rather than by count: the count an
# operation costs depends on how often the bus breaks the module's recovery.
if [ "${CAMPAIGN_LONG:-}" = 1 ]; then
  export CAMPAIGN_SECONDS=${CAMPAIGN_SECONDS:-86400} CAMPAIGN_OPS=${CAMPAIGN_OPS:-100000}
  export CAMPAIGN_MUTATED=${CAMPAIGN_MUTATED:-5000}
else
  export CAMPAIGN_SECONDS=${CAMPAIGN_SECONDS:-60} CAMPAIGN_OPS=${CAMPAIGN_OPS:-100000}
fi
export CAMPAIGN_RATE=${CAMPAIGN_RATE:-0.3}
export CAMPAIGN_SEED PROXY_CTL PROXY_MUTATIONS="$PROXY_LOG.mutations"
export NV_COUNT_CMD="tpm2_getcap -T '$DIRECT_TCTI' handles-nv-index | grep -c '^- '"
echo "campaign seed $CAMPAIGN_SEED (CAMPAIGN_SEED=$CAMPAIGN_SEED repeats it)"
rc=0
"$CAMPAIGN" >"$WORK/campaign.out" 2>&1 || rc=$?
grep -v '^$' "$WORK/campaign.out" | tail -n 40
# Slow operations are listed wherever they fell in the run (the tail above
# may not reach them), with the mutations of the bus around them in the
# proxy's log.
grep '^HANG' "$WORK/campaign.out" || true
# CKR_GENERAL_ERROR means an exception the module did not map: the module's
# line just above names it.
grep -B2 '^GENERAL_ERROR\|^PIN_INCORRECT for the correct PIN' "$WORK/campaign.out" || true
if [ "$rc" -gt 128 ]; then
  fail "the campaign process died of signal $((rc - 128)) (a memory error in the module it loaded); seed $CAMPAIGN_SEED; the last mutations: $(tail -n 3 "$PROXY_MUTATIONS" | tr '\n' ' ')"
fi
# A watchdog abort (3) leaves the token mid-operation; other failures are
# counted, and the token must still be whole: checked before failing.
[ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] || fail "the campaign reported failures (exit $rc); seed $CAMPAIGN_SEED"
# Checked after a crash or an abort, which are named first: tpm2-tss's
# "called in the wrong order" means a system API context left mid-command
# by an answer that never came, or a malformed answer passed on as is.
if grep -q "called in the wrong order" "$WORK/campaign.out"; then
  fail "a TPM call failed as 'called in the wrong order' (a context left mid-command, or a malformed answer misreported): $(grep -m3 -B2 "called in the wrong order" "$WORK/campaign.out" | tr '\n' ' ')"
fi

# An exception the module did not map, or a correct PIN called wrong (a
# forged code believed): each line names the operation.
if grep -q '^GENERAL_ERROR from\|^PIN_INCORRECT for the correct PIN' "$WORK/campaign.out"; then
  fail "misreported outcomes: $(grep -B1 '^GENERAL_ERROR from\|^PIN_INCORRECT for the correct PIN' "$WORK/campaign.out" | head -n 6 | tr '\n' ' ')"
fi

deliberate=$(sed -n 's/.*deliberate_wrong_tries=\([0-9]*\).*/\1/p' "$WORK/campaign.out")
used=0
counters=$(pin_counters)
[ -n "$counters" ] || fail "no PIN counter found in the TPM (tpm2_getcap handles-nv-index: $(tpm getcap handles-nv-index | tr '\n' ' '))"
while read -r _ n; do used=$((used + n)); done <<<"$counters"
[ "$used" -le "${deliberate:-0}" ] || fail "PIN counters show $used tries used, $deliberate deliberate: a correct PIN consumed tries"
pass "PIN counters ($(wc -l <<<"$counters")): $used tries used, ${deliberate:-0} deliberate"
export TPMTOKEN_TCTI=$DIRECT_TCTI
echo campaign >"$WORK/msg"
pin=$(sed -n 's/.*final_pin=\([0-9]*\).*/\1/p' "$WORK/campaign.out")
out=$(p11 --token-label campaign --login --pin "$pin" --sign -m ECDSA-SHA256 --id ec \
  -i "$WORK/msg" -o "$WORK/sig" 2>&1) || fail "the token does not sign without the proxy after the campaign: $out"
pass "the token signs without the proxy afterwards"
tail -n 1 "$WORK/campaign.out"
[ "$rc" -eq 0 ] || fail "the campaign reported failures (exit $rc); seed $CAMPAIGN_SEED"
