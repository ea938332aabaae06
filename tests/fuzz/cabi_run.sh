#!/usr/bin/env bash
# Runs the C-ABI fuzz target (cabi_fuzz.cc) on its own bare swtpm (three
# object slots, no resource manager: the hardest case for the key cache).
# Usage: cabi_run.sh BINARY [ROUNDS]
source "$(dirname "$0")/../integration/lib.sh"
fixture_start
# Not exec: the EXIT trap stops this test's swtpm.
"$1" "${2:-300}"
