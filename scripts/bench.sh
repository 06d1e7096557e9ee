#!/usr/bin/env bash
# Network benchmarks: tao's echo and chat servers against a raw Asio and a raw epoll server, in
# the same run, on 127.0.0.1, driven by bench/loadgen.cpp (raw epoll, not tao).
#
# The server is pinned to one core and the load generator to another (taskset), and every server
# is started fresh for every run. Servers alternate within a round (A B C A B C ...) so drift
# (thermal, another process) hits them alike; tables show the median of the rounds and each
# figure as a ratio to the baselines. Every run is bounded (duration + warm-up, and timeouts in
# the load generator); every process started here is stopped by its pid.
#
# Usage: scripts/bench.sh [--quick] [--rounds N] [--duration S] [--warmup S] [--only LIST]
#                         [--no-build] [--jobs N] [--out DIR]
# Later suites (timers, TLS) plug in as one more suite_<name> function and a line in SUITES.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

usage() {
  cat <<'EOF'
scripts/bench.sh: tao network benchmarks against raw Asio and raw epoll echo servers.
  --quick        a small subset with short runs (a smoke run, about a minute)
  --rounds N     alternating rounds per case (default 5, 3 with --quick; medians are reported)
  --duration S   measured seconds per run (default 2, quick 0.5)
  --warmup S     seconds of load before measuring (default 0.5, quick 0.2)
  --only LIST    comma-separated suites: pingpong,memory,broadcast,accept,timers,micro
                 (default all)
  --no-build     use the binaries in build/release as they are
  --jobs N       build parallelism (default 1: the build shares the machine)
  --out DIR      where results, logs and the table go (default build/bench/<date-time>)
Environment: TAO_BENCH_SERVER_CPU (0), TAO_BENCH_CLIENT_CPU (1), TAO_BENCH_PORT (23400).
EOF
}

ARGS="$*" # echoed with the table, so it says how to reproduce it
QUICK=0 ROUNDS="" DURATION="" WARMUP="" ONLY="pingpong,memory,broadcast,accept,timers,micro"
BUILD=1 JOBS=1 OUT=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --no-build) BUILD=0 ;;
    --jobs) JOBS=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

# ---- the matrix -----------------------------------------------------------------------------
# Pingpong cases are connections:payload:in-flight.
if [ "$QUICK" = 1 ]; then
  ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-0.5} WARMUP=${WARMUP:-0.2}
  PINGPONG_CASES=(1:16:1 100:16:1 1000:4096:16)
  MEMORY_CONNS=1000 BROADCAST_CLIENTS=100
else
  ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-2} WARMUP=${WARMUP:-0.5}
  PINGPONG_CASES=()
  for c in 1 100 1000; do
    for s in 16 4096; do
      for k in 1 16; do PINGPONG_CASES+=("$c:$s:$k"); done
    done
  done
  MEMORY_CONNS=10000 BROADCAST_CLIENTS=1000
fi
ECHO_SERVERS=(tao-loop tao-worker asio epoll)
BROADCAST_SERVERS=(tao-chat epoll)
ACCEPT_CONNECTORS=16 ACCEPT_MAX=20000 # under the ephemeral port range even without TIME_WAIT reuse
BROADCAST_SIZE=32 BROADCAST_WINDOW=16

SERVER_CPU=${TAO_BENCH_SERVER_CPU:-0}
CLIENT_CPU=${TAO_BENCH_CLIENT_CPU:-1}
PORT_BASE=${TAO_BENCH_PORT:-23400}
PORT=$PORT_BASE
BIN=$ROOT/build/release
LOADGEN=$BIN/bench/tao-loadgen
OUT=${OUT:-$ROOT/build/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/logs"
RESULTS=$OUT/results.txt NOTES=$OUT/notes.txt
: >"$RESULTS"
: >"$NOTES"

note() { echo "$*" | tee -a "$NOTES" >&2; }

# ---- build ----------------------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  scripts/setup.sh
  [ -f "$BIN/build.ninja" ] || cmake --preset release >/dev/null
  nice -n 10 cmake --build --preset release -j "$JOBS" --target tao-loadgen tao-bench-asio-echo \
    tao-bench-epoll-echo tao-echo-server tao-chat-server tao-timer-precision tao_micro_bench >&2
fi
for b in "$LOADGEN" "$BIN/bench/tao-bench-asio-echo" "$BIN/bench/tao-bench-epoll-echo" \
  "$BIN/examples/tao-echo-server" "$BIN/examples/tao-chat-server"; do
  [ -x "$b" ] || { echo "bench: $b is missing (run without --no-build)" >&2; exit 1; }
done

# ---- limits and pinning ---------------------------------------------------------------------
need_fds=$((MEMORY_CONNS + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$need_fds" ]; then
    echo "bench: $need_fds file descriptors needed, the hard limit is $hard" >&2
    exit 1
  fi
  ulimit -n "$need_fds" # inherited by the servers and the load generator
fi
if [ "$(nproc)" -lt 2 ] || [ "$SERVER_CPU" = "$CLIENT_CPU" ]; then
  note "warning: server and load generator share a core; figures are not comparable"
fi
if [ "$(cat /proc/sys/net/ipv4/tcp_tw_reuse 2>/dev/null || echo 0)" = 0 ]; then
  note "warning: net.ipv4.tcp_tw_reuse is 0; the accept suite may run out of ports"
fi

# ---- processes: every one is tracked by pid and stopped by pid --------------------------------
SERVER_PID="" LOADGEN_PID=""
cleanup() {
  for pid in $LOADGEN_PID $SERVER_PID; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# server_cmd NAME SUITE PORT: the command line of a server, in CMD.
server_cmd() {
  local common=(--host 127.0.0.1 --port "$3")
  case $1:$2 in
    tao-loop:*) CMD=("$BIN/examples/tao-echo-server" "${common[@]}" --io-threads 1 --workers 0 --log-level warn) ;;
    tao-worker:*) CMD=("$BIN/examples/tao-echo-server" "${common[@]}" --io-threads 1 --workers 1 --log-level warn) ;;
    # The chat example's --workers 0 means one per hardware thread: it cannot run on the loop.
    tao-chat:*) CMD=("$BIN/examples/tao-chat-server" "${common[@]}" --io-threads 1 --workers 1 --log-level warn) ;;
    asio:*) CMD=("$BIN/bench/tao-bench-asio-echo" "${common[@]}" --threads 1) ;;
    epoll:broadcast) CMD=("$BIN/bench/tao-bench-epoll-echo" "${common[@]}" --threads 1 --broadcast) ;;
    epoll:*) CMD=("$BIN/bench/tao-bench-epoll-echo" "${common[@]}" --threads 1) ;;
    *) echo "bench: unknown server $1" >&2; exit 2 ;;
  esac
}

# start_server NAME SUITE LOG: starts it pinned, waits for its "listening on" line.
start_server() {
  PORT=$((PORT + 1))
  [ "$PORT" -lt $((PORT_BASE + 500)) ] || PORT=$((PORT_BASE + 1))
  server_cmd "$1" "$2" "$PORT"
  taskset -c "$SERVER_CPU" "${CMD[@]}" >"$3" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 200); do
    grep -q "listening on" "$3" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  note "error: $1 did not start (log: $3)"
  return 1
}

# stop_server NAME: SIGTERM, then SIGKILL after 10 s; a non-zero exit is noted.
stop_server() {
  local pid=$SERVER_PID rc=0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    note "warning: $1 did not stop within 10 s of SIGTERM; killed"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" || rc=$?
  SERVER_PID=""
  [ "$rc" = 0 ] || note "warning: $1 exited with status $rc"
}

# measure SUITE CASE SERVER ROUND LOADGEN-ARGS...: one run, one line in results.txt.
measure() {
  local suite=$1 case=$2 server=$3 round=$4
  shift 4
  local tag="$suite-$case-$server-$round" line rc=0
  local slog=$OUT/logs/$tag.server.log llog=$OUT/logs/$tag.loadgen.log
  if ! start_server "$server" "$suite" "$slog"; then
    echo "suite=$suite case=$case server=$server round=$round status=fail reason=no-server" >>"$RESULTS"
    cleanup
    SERVER_PID=""
    return
  fi
  # timeout bounds the run even if the load generator itself hangs.
  taskset -c "$CLIENT_CPU" timeout -k 5 120 "$LOADGEN" --host 127.0.0.1 --port "$PORT" \
    --server-pid "$SERVER_PID" --label "$server" "$@" >"$llog.out" 2>"$llog" &
  LOADGEN_PID=$!
  wait "$LOADGEN_PID" || rc=$?
  LOADGEN_PID=""
  line=$(tail -n 1 "$llog.out")
  [ -n "$line" ] || line="status=fail reason=loadgen-exit-$rc"
  kill -0 "$SERVER_PID" 2>/dev/null || note "error: $server died during $tag (log: $slog)"
  stop_server "$server"
  echo "suite=$suite case=$case server=$server round=$round $line" >>"$RESULTS"
  local status=${line##*status=}
  status=${status%% *}
  printf '  %-26s %-10s round %s: %s\n' "$suite $case" "$server" "$round" \
    "$(echo "$line" | grep -o 'ops_per_s=[^ ]*\|rss_per_conn_b=[^ ]*\|p99_us=[^ ]*\|status=[^ ]*' | tr '\n' ' ')" >&2
  [ "$status" = ok ] || note "run failed: $tag: $line (loadgen log: $llog)"
  # The load generator writes to stderr only about trouble (mismatches, starved connections).
  [ ! -s "$llog" ] || note "load generator in $tag: $(head -n 2 "$llog" | tr '\n' '|')"
  # Anything the server said beyond its ready line (tao logs only warnings here) is worth a look.
  if [ "$(grep -vc 'listening on\|join from another terminal' "$slog")" != 0 ]; then
    note "server output in $tag: $(grep -v 'listening on\|join from another terminal' "$slog" | head -n 3 | tr '\n' '|')"
  fi
}

# run_alternating SUITE CASE "SERVERS..." LOADGEN-ARGS...: every server once per round, in turn.
run_alternating() {
  local suite=$1 case=$2 servers=$3
  shift 3
  for round in $(seq "$ROUNDS"); do
    for server in $servers; do measure "$suite" "$case" "$server" "$round" "$@"; done
  done
}

# ---- suites -----------------------------------------------------------------------------------
suite_pingpong() {
  for spec in "${PINGPONG_CASES[@]}"; do
    IFS=: read -r c s k <<<"$spec"
    local label=$s
    [ "$s" = 4096 ] && label=4KiB || label=${s}B
    run_alternating pingpong "${c}x${label}x${k}" "${ECHO_SERVERS[*]}" \
      --mode pingpong -c "$c" -s "$s" -k "$k" -d "$DURATION" -w "$WARMUP"
  done
}

suite_memory() {
  run_alternating memory "$MEMORY_CONNS" "${ECHO_SERVERS[*]}" \
    --mode memory -c "$MEMORY_CONNS" -s 16 --timeout 30
}

suite_broadcast() {
  run_alternating broadcast "$BROADCAST_CLIENTS" "${BROADCAST_SERVERS[*]}" \
    --mode broadcast -c "$BROADCAST_CLIENTS" -s "$BROADCAST_SIZE" -k "$BROADCAST_WINDOW" \
    -d "$DURATION" -w "$WARMUP"
}

suite_accept() {
  run_alternating accept "$ACCEPT_CONNECTORS" "${ECHO_SERVERS[*]}" \
    --mode accept -c "$ACCEPT_CONNECTORS" -s 16 --count "$ACCEPT_MAX" -d "$DURATION" -w "$WARMUP"
}

# Timers (issue 5): precision under load and periodic drift, then schedule+cancel cost against
# one asio::steady_timer per timer. Both print their own figures; they go under the tables.
suite_timers() {
  local periods=1000
  [ "$QUICK" = 1 ] && periods=100
  taskset -c "$SERVER_CPU" "$BIN/bench/tao-timer-precision" --periods "$periods" \
    | tee "$OUT/timers.txt" >&2
}

# Micro-benchmarks: worker pool vs a mutex+condvar pool, concurrent map vs mutex+unordered_map,
# timer schedule+cancel vs asio::steady_timer. Google Benchmark; each row's baseline is in the run.
suite_micro() {
  local reps=3
  [ "$QUICK" = 1 ] && reps=1
  taskset -c "$SERVER_CPU,$CLIENT_CPU" "$BIN/bench/tao_micro_bench" \
    --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_format=console 2>/dev/null | grep -E '^(BM_|-|Benchmark)' \
    | grep -Ev '_(mean|stddev|cv) ' | tee "$OUT/micro.txt" >&2
}

start=$(date +%s)
echo "bench: rounds=$ROUNDS duration=${DURATION}s warmup=${WARMUP}s suites=$ONLY, results in $OUT" >&2
for suite in ${ONLY//,/ }; do
  declare -F "suite_$suite" >/dev/null || { echo "bench: unknown suite $suite" >&2; exit 2; }
  echo "bench: suite $suite" >&2
  "suite_$suite"
done

# ---- the table --------------------------------------------------------------------------------
{
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  cxx=$(grep -m1 '^CMAKE_CXX_COMPILER:' "$BIN/CMakeCache.txt" | cut -d= -f2)
  echo "## Network benchmarks"
  echo
  echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, Linux $(uname -r), $($cxx --version | head -n 1)," \
    "RelWithDebInfo (-O2). Server on core $SERVER_CPU, load generator on core $CLIENT_CPU, 127.0.0.1." \
    "Median of $ROUNDS alternating rounds, ${DURATION} s measured after ${WARMUP} s of warm-up." \
    "$(date -u '+%Y-%m-%d %H:%M UTC'), $(($(date +%s) - start)) s in all."
  echo "Command: \`scripts/bench.sh${ARGS:+ $ARGS}\`"
  echo
  [ -s "$RESULTS" ] && awk -f bench/tabulate.awk "$RESULTS"
  if [ -s "$OUT/timers.txt" ]; then
    echo
    echo "### Timers (tao-timer-precision)"
    echo
    echo '```'
    cat "$OUT/timers.txt"
    echo '```'
  fi
  if [ -s "$OUT/micro.txt" ]; then
    echo
    echo "### Micro-benchmarks (tao_micro_bench, median of repetitions)"
    echo
    echo '```'
    cat "$OUT/micro.txt"
    echo '```'
  fi
} >"$OUT/table.md"
cat "$OUT/table.md"
if [ -s "$NOTES" ]; then
  echo
  echo "Notes ($NOTES):"
  sed 's/^/- /' "$NOTES"
fi
echo
echo "bench: raw results in $RESULTS, logs in $OUT/logs" >&2
