#!/usr/bin/env bash
# The openssl command-line client talks to the tls_chat example server: it sends one chat frame
# and must get the broadcast back byte for byte; then SIGTERM stops the server with exit code 0.
#   tls_s_client_test.sh SERVER_BINARY CA_FILE
set -euo pipefail
server=$1
ca=$2
work=$(mktemp -d)
"$server" --host 127.0.0.1 --port 0 --io-threads 1 --workers 1 >"$work/out.log" 2>"$work/err.log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=""
for _ in $(seq 1 200); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/out.log" | head -n 1)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "server did not start"; cat "$work/err.log"; exit 1; }

# type 1, length 5, "hello"
reply=$({ printf '\001\000\000\000\005\000\000\000hello'; sleep 2; } |
  timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile "$ca" \
    -verify_return_error -quiet -no_ign_eof 2>"$work/s_client.log" | head -c 13 | od -An -tx1 | tr -d ' \n' || true)
echo "reply: $reply"
if [ "$reply" != "010000000500000068656c6c6f" ]; then
  echo "unexpected reply"; cat "$work/s_client.log"; cat "$work/err.log"; exit 1
fi
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
trap - EXIT
rm -rf "$work"
[ "$rc" -eq 0 ] || { echo "server exited with $rc"; exit 1; }
echo "openssl s_client exchanged a frame with the TLS chat server"
