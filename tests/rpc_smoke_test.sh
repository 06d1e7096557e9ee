#!/usr/bin/env bash
# The request/response example for real: 6 requests, every 3rd asks for 900 ms of work and the
# client gives up after 300 ms. So requests 3 and 6 time out (their late replies are recognised by
# id and ignored) and the 4 others are answered, upper-cased, each matched to its id.
#   rpc_smoke_test.sh SERVER_BINARY CLIENT_BINARY
source "$(dirname "$0")/smoke_lib.sh"
server=$1
client=$2
smoke_start_server "$server"
out=$(timeout 20 "$client" --port "$server_port" --count 6 --slow-every 3 --slow-ms 900 \
  --timeout-ms 300 --text ping) || smoke_fail "client exited with $?: $out"
echo "$out"
for i in 1 2 4 5; do
  grep -Eq "^reply $i: PING $i \([0-9.]+ ms\)$" <<<"$out" || smoke_fail "no reply to request $i"
done
for i in 3 6; do
  grep -q "^request $i timed out after 300 ms$" <<<"$out" || smoke_fail "request $i did not time out"
  grep -q "^reply $i arrived after its timeout: ignored$" <<<"$out" ||
    smoke_fail "the late reply to request $i was not recognised"
done
grep -q '^6 requests: 4 answered in time, 2 timed out; 2 late replies ignored$' <<<"$out" ||
  smoke_fail "wrong summary"
smoke_stop_server
