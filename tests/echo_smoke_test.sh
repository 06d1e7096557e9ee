#!/usr/bin/env bash
# The echo example for real: server up on an ephemeral port, the client sends 5 messages and must
# print 5 echoes and exit 0; SIGTERM then stops the server with exit code 0.
#   echo_smoke_test.sh SERVER_BINARY CLIENT_BINARY
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
out=$(timeout 20 "$client" --host 127.0.0.1 --port "$port" --count 5 --text "smoke test")
echo "$out"
[ "$(grep -c '^echo: smoke test$' <<<"$out")" -eq 5 ] || { echo "expected 5 echoes"; exit 1; }
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
trap - EXIT
rm -rf "$work"
[ "$rc" -eq 0 ] || { echo "server exited with $rc"; exit 1; }
