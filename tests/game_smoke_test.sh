#!/usr/bin/env bash
# The FlatBuffers game example for real: server up on an ephemeral port with two loops and two
# workers, two clients join and move at once; each must see itself arrive and exit 0; SIGTERM
# then stops the server with exit code 0.
#   game_smoke_test.sh SERVER_BINARY CLIENT_BINARY
source "$(dirname "$0")/smoke_lib.sh"
server=$1
client=$2
smoke_start_server "$server" --io-threads 2 --workers 2
alice=$smoke_work/alice.out
bob=$smoke_work/bob.out
timeout 20 "$client" --port "$server_port" --name alice --moves 3 >"$alice" 2>"$smoke_work/alice.err" &
alice_pid=$!
smoke_pids+=("$alice_pid")
rc=0
timeout 20 "$client" --port "$server_port" --name bob --moves 5 >"$bob" 2>"$smoke_work/bob.err" ||
  rc=$?
[ "$rc" -eq 0 ] || smoke_fail "bob exited with $rc"
wait "$alice_pid" || rc=$?
[ "$rc" -eq 0 ] || smoke_fail "alice exited with $rc"
cat "$alice" "$bob"
grep -q '^alice reached (3,0)$' "$alice" || smoke_fail "alice did not arrive"
grep -q '^bob reached (5,0)$' "$bob" || smoke_fail "bob did not arrive"
grep -Eq '^tick [0-9]+:.* alice\(3,0\)' "$alice" || smoke_fail "no state shows alice"
smoke_stop_server
