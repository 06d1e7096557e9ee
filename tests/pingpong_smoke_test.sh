#!/usr/bin/env bash
# The pingpong example for real: 4 connections keep 8 messages of 64 bytes in flight for 1 second;
# the client must report a positive throughput and exit 0 (it fails on a wrong-sized echo).
#   pingpong_smoke_test.sh SERVER_BINARY CLIENT_BINARY
source "$(dirname "$0")/smoke_lib.sh"
server=$1
client=$2
smoke_start_server "$server"
out=$(timeout 20 "$client" --port "$server_port" --connections 4 --in-flight 8 --size 64 \
  --seconds 1) || smoke_fail "client exited with $?: $out"
echo "$out"
grep -Eq '^4 connections x 8 in flight x 64 B for 1\.[0-9] s: [1-9][0-9]* messages echoed$' \
  <<<"$out" || smoke_fail "no summary line"
grep -Eq '^[1-9][0-9]* messages/s, [0-9]+\.[0-9]{2} MiB/s$' <<<"$out" || smoke_fail "no throughput"
smoke_stop_server
