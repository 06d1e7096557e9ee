#!/usr/bin/env bash
# The echo example for real: server up on an ephemeral port, the client sends 5 messages and must
# print 5 echoes and exit 0; SIGTERM then stops the server with exit code 0.
#   echo_smoke_test.sh SERVER_BINARY CLIENT_BINARY
source "$(dirname "$0")/smoke_lib.sh"
server=$1
client=$2
smoke_start_server "$server"
out=$(timeout 20 "$client" --host 127.0.0.1 --port "$server_port" --count 5 --text "smoke test") ||
  smoke_fail "client exited with $?"
echo "$out"
[ "$(grep -c '^echo: smoke test$' <<<"$out")" -eq 5 ] || smoke_fail "expected 5 echoes"
smoke_stop_server
