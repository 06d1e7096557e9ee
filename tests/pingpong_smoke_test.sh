#!/usr/bin/env bash
# The pingpong example for real: 4 connections keep 8 messages of 64 bytes in flight for 1 second;
# the client must report a positive throughput and exit 0 (it fails on a wrong-sized echo). The
# server's metrics endpoint (--metrics-port 0: a free port) must count the 4 connections, at least
# as many frames in as were echoed, and no protocol error.
#   pingpong_smoke_test.sh SERVER_BINARY CLIENT_BINARY
source "$(dirname "$0")/smoke_lib.sh"
server=$1
client=$2
smoke_start_server "$server" --metrics-port 0
out=$(timeout 20 "$client" --port "$server_port" --connections 4 --in-flight 8 --size 64 \
  --seconds 1) || smoke_fail "client exited with $?: $out"
echo "$out"
grep -Eq '^4 connections x 8 in flight x 64 B for 1\.[0-9] s: [1-9][0-9]* messages echoed$' \
  <<<"$out" || smoke_fail "no summary line"
grep -Eq '^[1-9][0-9]* messages/s, [0-9]+\.[0-9]{2} MiB/s$' <<<"$out" || smoke_fail "no throughput"
echoed=$(sed -n 's/.*: \([0-9][0-9]*\) messages echoed$/\1/p' <<<"$out")

smoke_get_metrics
accepted=$(smoke_metric tao_connections_accepted_total)
frames_in=$(smoke_metric tao_frames_in_total)
errors=$(smoke_metric tao_protocol_errors_total)
echo "metrics: $accepted connections accepted, $frames_in frames in, $errors protocol errors"
[ "$accepted" = 4 ] || smoke_fail "tao_connections_accepted_total is '$accepted', not 4"
[ -n "$frames_in" ] && [ "$frames_in" -ge "$echoed" ] ||
  smoke_fail "tao_frames_in_total is '$frames_in', fewer than the $echoed messages echoed"
[ "$errors" = 0 ] || smoke_fail "tao_protocol_errors_total is '$errors', not 0"
smoke_stop_server
