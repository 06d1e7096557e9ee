#!/usr/bin/env bash
# The Protobuf chat example for real: a client pipes two lines in and must print both back as
# the server stamped them (#seq name: text) and exit 0; SIGTERM then stops the server with exit
# code 0.
#   proto_chat_smoke_test.sh SERVER_BINARY CLIENT_BINARY
source "$(dirname "$0")/smoke_lib.sh"
server=$1
client=$2
smoke_start_server "$server"
out=$(printf 'hello there\nsecond line\n' |
  timeout 20 "$client" --port "$server_port" --name bob 2>"$smoke_work/client.err") ||
  smoke_fail "client exited with $?: $out"
echo "$out"
[ "$(sed -n 1p <<<"$out")" = "#1 bob: hello there" ] || smoke_fail "first line wrong"
[ "$(sed -n 2p <<<"$out")" = "#2 bob: second line" ] || smoke_fail "second line wrong"
smoke_stop_server
