# Shared by the example smoke tests (sourced, not run): a scratch directory, a server started on
# an ephemeral port, clients fed through FIFOs, waiting for output, and cleanup of exactly the
# processes the test started.
#
#   source "$(dirname "$0")/smoke_lib.sh"
#   smoke_start_server "$server_binary" --workers 1   # sets $server_pid and $server_port
#   ...                                                # talk to 127.0.0.1:$server_port
#   smoke_stop_server                                  # SIGTERM; fails unless exit code is 0
#
# A server started with --metrics-port 0 prints where its metrics are; smoke_get_metrics fetches
# them and smoke_metric NAME reads one value.
#
# Every wait is bounded (SMOKE_TIMEOUT seconds, default 8) so a broken example fails the test
# instead of hanging it.
set -euo pipefail

SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-8}
smoke_work=$(mktemp -d)
smoke_pids=()
server_pid=""
server_port=""

smoke_cleanup() {
  local fd
  for fd in "${smoke_fds[@]:-}"; do
    [ -n "$fd" ] && eval "exec $fd>&-" 2>/dev/null || true
  done
  local p
  for p in "${smoke_pids[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  rm -rf "$smoke_work"
}
smoke_fds=()
trap smoke_cleanup EXIT

# Prints what the server and the clients said, then fails the test.
smoke_fail() {
  echo "FAILED: $*"
  local f
  for f in "$smoke_work"/*.out "$smoke_work"/*.err; do
    [ -s "$f" ] || continue
    echo "--- $(basename "$f")"
    cat "$f"
  done
  exit 1
}

# smoke_wait_for FILE REGEX [SECONDS]: waits until a line of FILE matches the extended REGEX.
smoke_wait_for() {
  local file=$1 regex=$2 seconds=${3:-$SMOKE_TIMEOUT}
  local deadline=$((SECONDS + seconds))
  until grep -Eq -- "$regex" "$file" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || smoke_fail "no line matching '$regex' in $(basename "$file")"
    sleep 0.05
  done
}

# smoke_start_process BINARY [ARGS...]: starts BINARY --host 127.0.0.1 --port 0 ARGS, waits for
# its "listening on 127.0.0.1:PORT" line and sets $server_pid and $server_port. Its output goes to
# server.out and server.err in the scratch directory (removed first, so that a test starting
# servers one after another never reads the previous one's line).
smoke_start_process() {
  local binary=$1
  shift
  rm -f "$smoke_work/server.out" "$smoke_work/server.err"
  "$binary" --host 127.0.0.1 --port 0 "$@" >"$smoke_work/server.out" 2>"$smoke_work/server.err" &
  server_pid=$!
  smoke_pids+=("$server_pid")
  smoke_wait_for "$smoke_work/server.out" 'listening on 127\.0\.0\.1:[0-9]+'
  server_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
    "$smoke_work/server.out" | head -n 1)
  [ -n "$server_port" ] || smoke_fail "server did not start"
}

# smoke_start_server BINARY [ARGS...]: a tao server through smoke_start_process, with
# --io-threads 1 unless ARGS has its own.
smoke_start_server() {
  local binary=$1
  shift
  local loops=(--io-threads 1)
  local arg
  for arg in "$@"; do
    [ "$arg" != --io-threads ] || loops=()
  done
  smoke_start_process "$binary" "${loops[@]}" "$@"
}

# smoke_stop_server: SIGTERM to the server; the test fails unless it exits with code 0. Its pid is
# then forgotten, so cleanup never signals a reused pid.
smoke_stop_server() {
  kill -TERM "$server_pid"
  local rc=0
  wait "$server_pid" || rc=$?
  [ "$rc" -eq 0 ] || smoke_fail "server exited with $rc"
  local kept=() p
  for p in "${smoke_pids[@]}"; do
    [ "$p" = "$server_pid" ] || kept+=("$p")
  done
  smoke_pids=("${kept[@]}")
}

# smoke_start_client NAME FD BINARY [ARGS...]: starts an interactive client whose stdin is a FIFO
# held open on file descriptor FD (write lines with `echo text >&FD`) and whose stdout and stderr
# go to NAME.out and NAME.err. Sets ${NAME}_pid.
smoke_start_client() {
  local name=$1 fd=$2 binary=$3
  shift 3
  mkfifo "$smoke_work/$name.in"
  "$binary" "$@" <"$smoke_work/$name.in" >"$smoke_work/$name.out" 2>"$smoke_work/$name.err" &
  local pid=$!
  smoke_pids+=("$pid")
  printf -v "${name}_pid" '%s' "$pid"
  eval "exec $fd>\"\$smoke_work/\$name.in\""
  smoke_fds+=("$fd")
}

# smoke_end_client NAME FD: closes the client's stdin (end of input) and fails unless it exits
# with code 0 within the timeout.
smoke_end_client() {
  local name=$1 fd=$2
  eval "exec $fd>&-"
  local pid_var="${name}_pid"
  local pid=${!pid_var}
  local deadline=$((SECONDS + SMOKE_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || smoke_fail "client $name did not exit at end of input"
    sleep 0.05
  done
  local rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || smoke_fail "client $name exited with $rc"
}

# smoke_get_metrics: GET /metrics from the endpoint the server printed ("metrics on
# http://127.0.0.1:PORT/metrics": start it with --metrics-port 0) into metrics.out, status line
# and headers included; fails unless the answer is 200 within the timeout.
smoke_get_metrics() {
  local line='^metrics on http://127\.0\.0\.1:[0-9]+/metrics$'
  smoke_wait_for "$smoke_work/server.out" "$line"
  local port
  port=$(sed -n 's|^metrics on http://127\.0\.0\.1:\([0-9][0-9]*\)/metrics$|\1|p' \
    "$smoke_work/server.out" | head -n 1)
  timeout "$SMOKE_TIMEOUT" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3 &&
    cat <&3' _ "$port" >"$smoke_work/metrics.out" 2>"$smoke_work/metrics.err" ||
    smoke_fail "GET /metrics on port $port failed"
  head -n 1 "$smoke_work/metrics.out" | grep -q '^HTTP/1\.1 200 OK' ||
    smoke_fail "GET /metrics did not answer 200"
}

# smoke_metric NAME: prints the value of the metric NAME in metrics.out (the last
# smoke_get_metrics), or nothing when there is no such line.
smoke_metric() {
  sed -n "s/^$1 \([0-9][0-9]*\)\$/\1/p" "$smoke_work/metrics.out" | head -n 1
}
