#!/usr/bin/env bash
# The openssl command-line client talks to the tls_chat example server: it sends one chat frame
# and must get the broadcast back byte for byte; then SIGTERM stops the server with exit code 0.
#   tls_s_client_test.sh SERVER_BINARY CA_FILE
source "$(dirname "$0")/smoke_lib.sh"
server=$1
ca=$2
smoke_start_server "$server" --workers 1

# type 1, length 5, "hello"
reply=$({ printf '\001\000\000\000\005\000\000\000hello'; sleep 2; } |
  timeout 10 openssl s_client -connect "127.0.0.1:$server_port" -servername localhost -CAfile "$ca" \
    -verify_return_error -quiet -no_ign_eof 2>"$smoke_work/s_client.err" | head -c 13 | od -An -tx1 | tr -d ' \n' || true)
echo "reply: $reply"
[ "$reply" = "010000000500000068656c6c6f" ] || smoke_fail "unexpected reply"
smoke_stop_server
echo "openssl s_client exchanged a frame with the TLS chat server"
