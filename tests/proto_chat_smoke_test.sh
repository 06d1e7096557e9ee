#!/usr/bin/env bash
# The Protobuf chat example for real: a client pipes two lines in and must print both back as
# the server stamped them (#seq name: text); SIGTERM then stops the server cleanly.
#   proto_chat_smoke_test.sh SERVER_BINARY CLIENT_BINARY
set -euo pipefail
server=$1
client=$2
work=$(mktemp -d)
"$server" --host 127.0.0.1 --port 0 --io-threads 1 >"$work/out.log" 2>"$work/err.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=""
for _ in $(seq 1 200); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/out.log" | head -n 1)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "server did not start"; cat "$work/err.log"; exit 1; }
out=$(printf 'hello there\nsecond line\n' | timeout 20 "$client" --port "$port" --name bob)
echo "$out"
[ "$(sed -n 1p <<<"$out")" = "#1 bob: hello there" ] || { echo "first line wrong"; exit 1; }
[ "$(sed -n 2p <<<"$out")" = "#2 bob: second line" ] || { echo "second line wrong"; exit 1; }
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
trap - EXIT
rm -rf "$work"
[ "$rc" -eq 0 ] || { echo "server exited with $rc"; exit 1; }
