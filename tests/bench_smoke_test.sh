#!/usr/bin/env bash
# The benchmark tools for real, briefly: the load generator drives tao's echo server (handlers on
# the loop and on a worker), the raw Asio and raw epoll baselines and the chat server in every
# mode it has, and each run must end with status=ok (every echoed byte verified, nothing lost,
# no stall). Figures are not checked: that is scripts/bench.sh's job, on a quiet machine.
#   bench_smoke_test.sh LOADGEN ASIO_ECHO EPOLL_ECHO TAO_ECHO_SERVER TAO_CHAT_SERVER
source "$(dirname "$0")/smoke_lib.sh"
loadgen=$1 asio=$2 epoll=$3 echo_server=$4 chat_server=$5

# run NAME SERVER-COMMAND... -- LOADGEN-ARGS...: one server, one load-generator run against it.
run() {
  local name=$1
  shift
  local cmd=()
  while [ "$1" != -- ]; do
    cmd+=("$1")
    shift
  done
  shift
  smoke_start_process "${cmd[@]}"
  local line rc=0
  # The load generator's own limits (connect, drain, stall) end a stuck run well within this.
  line=$(timeout 35 "$loadgen" --host 127.0.0.1 --port "$server_port" --server-pid "$server_pid" \
    --timeout 10 --label "$name" "$@" 2>"$smoke_work/loadgen.err" | tail -n 1) || rc=$?
  echo "$name $*: $line"
  [ "$rc" -eq 0 ] && grep -q 'status=ok' <<<"$line" ||
    smoke_fail "$name, loadgen $*: exit code $rc, '$line' ($(cat "$smoke_work/loadgen.err"))"
  smoke_stop_server
}

pingpong=(--mode pingpong -c 20 -k 4 -s 100 -d 0.3 -w 0.1)
large=(--mode pingpong -c 4 -k 2 -s 70000 -d 0.3 -w 0.1)
memory=(--mode memory -c 200 --settle 0.2)
accept=(--mode accept -c 4 -d 0.3 -w 0.1)
for name in tao-loop tao-worker asio epoll; do
  case $name in
    tao-loop) cmd=("$echo_server" --io-threads 1 --workers 0) ;;
    tao-worker) cmd=("$echo_server" --io-threads 1 --workers 1) ;;
    asio) cmd=("$asio" --threads 1) ;;
    epoll) cmd=("$epoll" --threads 1) ;;
  esac
  run "$name" "${cmd[@]}" -- "${pingpong[@]}"
  run "$name" "${cmd[@]}" -- "${large[@]}"
  run "$name" "${cmd[@]}" -- "${memory[@]}"
  run "$name" "${cmd[@]}" -- "${accept[@]}"
done
broadcast=(--mode broadcast -c 20 -k 4 -s 16 -d 0.3 -w 0.1)
run tao-chat "$chat_server" --io-threads 1 --workers 1 -- "${broadcast[@]}"
run epoll-broadcast "$epoll" --threads 1 --broadcast -- "${broadcast[@]}"
