#!/usr/bin/env bash
# The main job: install what is missing, build, start the chat server demo on 127.0.0.1:12345.
# Join it from a second terminal with: build/release/examples/tao-chat-client
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target tao-chat-server tao-chat-client
echo
echo "Starting the chat server. From a second terminal, join with:"
echo "    $(pwd)/build/release/examples/tao-chat-client --host 127.0.0.1 --port 12345"
echo "Type lines to chat, 'bye' to leave. Ctrl-C here stops the server."
echo
exec build/release/examples/tao-chat-server --host 127.0.0.1 --port 12345 "$@"
