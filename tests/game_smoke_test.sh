#!/usr/bin/env bash
# The FlatBuffers game example for real: server up on an ephemeral port, two clients join and
# move at once; each must see itself arrive and exit 0; SIGTERM then stops the server cleanly.
#   game_smoke_test.sh SERVER_BINARY CLIENT_BINARY
set -euo pipefail
server=$1
client=$2
work=$(mktemp -d)
"$server" --host 127.0.0.1 --port 0 --io-threads 2 --workers 2 >"$work/out.log" 2>"$work/err.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=""
for _ in $(seq 1 200); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/out.log" | head -n 1)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "server did not start"; cat "$work/err.log"; exit 1; }
timeout 20 "$client" --port "$port" --name alice --moves 3 >"$work/alice.log" &
a=$!
timeout 20 "$client" --port "$port" --name bob --moves 5 >"$work/bob.log"
wait "$a"
cat "$work/alice.log" "$work/bob.log"
grep -q '^alice reached (3,0)$' "$work/alice.log" || { echo "alice did not arrive"; exit 1; }
grep -q '^bob reached (5,0)$' "$work/bob.log" || { echo "bob did not arrive"; exit 1; }
grep -Eq '^tick [0-9]+:.* alice\(3,0\)' "$work/alice.log" || { echo "no state shows alice"; exit 1; }
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
trap - EXIT
rm -rf "$work"
[ "$rc" -eq 0 ] || { echo "server exited with $rc"; exit 1; }
