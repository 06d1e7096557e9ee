#!/usr/bin/env bash
# The chat example for real: two clients on one server; a line typed in one arrives in the other;
# both leave at end of input with exit code 0, and SIGTERM stops the server with exit code 0.
#   chat_smoke_test.sh SERVER_BINARY CLIENT_BINARY
source "$(dirname "$0")/smoke_lib.sh"
server=$1
client=$2
smoke_start_server "$server" --workers 1
smoke_start_client bob 3 "$client" --port "$server_port"
echo "bob is here" >&3
smoke_wait_for "$smoke_work/bob.out" '^bob is here$' # bob's own line came back: he is connected
smoke_start_client alice 4 "$client" --port "$server_port"
echo "alice is here" >&4
smoke_wait_for "$smoke_work/alice.out" '^alice is here$'
echo "hello bob, from alice" >&4
smoke_wait_for "$smoke_work/bob.out" '^hello bob, from alice$'
echo "hi alice" >&3
smoke_wait_for "$smoke_work/alice.out" '^hi alice$'
echo "bye" >&4 # "bye" leaves, like end of input
smoke_end_client alice 4
smoke_end_client bob 3
grep -q '^bye$' "$smoke_work/bob.out" && smoke_fail "'bye' was sent to the others"
cat "$smoke_work/bob.out"
smoke_stop_server
