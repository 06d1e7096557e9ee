#!/usr/bin/env bash
# The multi-room chat example for real: bob and alice pick nicknames, alice moves to #rust and
# talks there (bob, in the lobby, must not hear it), /rooms counts the members, bob joins #rust
# and they talk, /who lists them, /leave takes alice back to the lobby; a taken nickname is
# refused. Both leave at end of input with exit code 0; the metrics endpoint (--metrics-port 0)
# counts the 2 connections; SIGTERM stops the server with code 0.
#   rooms_smoke_test.sh SERVER_BINARY CLIENT_BINARY
source "$(dirname "$0")/smoke_lib.sh"
server=$1
client=$2
smoke_start_server "$server" --workers 2 --metrics-port 0
bob=$smoke_work/bob.out
alice=$smoke_work/alice.out

smoke_start_client bob 3 "$client" --port "$server_port"
echo "/nick bob" >&3
smoke_wait_for "$bob" '^\* you are now bob$'
smoke_start_client alice 4 "$client" --port "$server_port"
smoke_wait_for "$alice" '^welcome, guest[0-9]+! /help lists the commands$'
echo "/nick bob" >&4
smoke_wait_for "$alice" '^\* nickname bob is taken$'
echo "/nick alice" >&4
smoke_wait_for "$alice" '^\* you are now alice$'
smoke_wait_for "$bob" '^\* guest[0-9]+ is now known as alice$'

echo "/join rust" >&4
smoke_wait_for "$alice" '^\* alice joined #rust$'
smoke_wait_for "$bob" '^\* alice left #lobby$'
echo "hello rustaceans" >&4
smoke_wait_for "$alice" '^\[rust\] alice: hello rustaceans$'
echo "/rooms" >&3
smoke_wait_for "$bob" '^\* rooms: #lobby \(1\) #rust \(1\)$'

echo "/join rust" >&3
smoke_wait_for "$alice" '^\* bob joined #rust$'
echo "hi alice" >&3
smoke_wait_for "$alice" '^\[rust\] bob: hi alice$'
smoke_wait_for "$bob" '^\[rust\] bob: hi alice$'
echo "/who" >&4
smoke_wait_for "$alice" '^\* in #rust: alice bob$'
echo "/leave" >&4
smoke_wait_for "$bob" '^\* alice left #rust$'
smoke_wait_for "$alice" '^\* alice joined #lobby$'

grep -q 'hello rustaceans' "$bob" && smoke_fail "bob heard #rust from the lobby"
smoke_end_client alice 4
smoke_end_client bob 3
cat "$alice"
smoke_get_metrics
accepted=$(smoke_metric tao_connections_accepted_total)
[ "$accepted" = 2 ] || smoke_fail "tao_connections_accepted_total is '$accepted', not 2"
smoke_stop_server
