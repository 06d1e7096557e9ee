#!/usr/bin/env bash
# The timer example for real: 2 seconds give 2 ticks and the one-shot timer half way (1000 ms after
# start; its due time is computed, not measured, so only the scheduling itself may add a few ms),
# then exit code 0.
#   timer_smoke_test.sh TIMER_BINARY
source "$(dirname "$0")/smoke_lib.sh"
timer=$1
out=$(timeout 10 "$timer" --seconds 2) || smoke_fail "tao-timer exited with $?"
echo "$out"
grep -Eq '^tick 1 at [0-9:]{8} \([0-9]+ us after its due time\)$' <<<"$out" || smoke_fail "no tick 1"
grep -Eq '^tick 2 at ' <<<"$out" || smoke_fail "no tick 2"
grep -q '^tick 3 ' <<<"$out" && smoke_fail "a third tick in 2 seconds"
grep -Eq '^one-shot timer fired 100[0-9] ms after start$' <<<"$out" || smoke_fail "no one-shot timer"
