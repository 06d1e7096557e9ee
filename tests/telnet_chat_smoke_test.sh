#!/usr/bin/env bash
# The telnet chat example for real, with plain TCP text as nc or telnet would send it (bash's
# /dev/tcp): alice and bob join, alice renames herself and speaks, bob reads her line; a line
# over the maximum closes only its own connection; SIGTERM then stops the server cleanly.
#   telnet_chat_smoke_test.sh SERVER_BINARY
source "$(dirname "$0")/smoke_lib.sh"
server=$1
smoke_start_server "$server" --max-line 100
port=$server_port

# wait_for FD PATTERN: reads lines (CR stripped) from FD until one matches, within 5 s each.
wait_for() {
  local fd=$1 pattern=$2 line
  while IFS= read -r -t 5 -u "$fd" line; do
    line=${line%$'\r'}
    echo "  [$fd] $line"
    [[ $line =~ $pattern ]] && return 0
  done
  smoke_fail "never got /$pattern/ on fd $fd"
}

exec 3<>"/dev/tcp/127.0.0.1/$port"
wait_for 3 '^\* welcome, guest[0-9]+!'
exec 4<>"/dev/tcp/127.0.0.1/$port"
wait_for 4 '^\* welcome, guest[0-9]+!'
wait_for 3 '^\* guest[0-9]+ joined$'
printf '/nick alice\r\n' >&3
wait_for 4 '^\* guest[0-9]+ is now alice$'
printf 'hello from alice\n' >&3 # a bare "\n" works as well as "\r\n"
wait_for 4 '^alice: hello from alice$'
printf '/who\r\n' >&4
wait_for 4 '^\* here:.* alice'
# 200 bytes without a newline: over --max-line, so the server closes that connection only.
exec 5<>"/dev/tcp/127.0.0.1/$port"
wait_for 5 '^\* welcome'
printf '%0200d' 0 >&5
while IFS= read -r -t 5 -u 5 line; do :; done # until EOF (or 5 s)
printf 'still here\r\n' >&4
wait_for 3 '^guest[0-9]+: still here$'
printf '/quit\r\n' >&3
wait_for 3 '^\* bye$'
wait_for 4 '^\* alice left$'
exec 3>&- 4>&- 5>&-
grep -q "frame larger than the maximum" "$smoke_work/server.out" "$smoke_work/server.err" ||
  smoke_fail "the long line was not reported"
smoke_stop_server
