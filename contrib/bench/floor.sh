#!/bin/sh
# The kernel's floor under novabmc's cost per datagram, next to novabmc's
# own figures at the same operating point. Echo servers that do no
# IPMI work at all (examples/datagram_floor.rs) answer N addresses on
# loopback: one socket per address as the daemon runs (batched receive,
# a sendto per reply), and one wildcard socket for all of them (IP_PKTINFO,
# recvmmsg and sendmmsg across nodes), the per-node sockets again without
# the runtime (one thread in epoll_wait), and that shared socket again with
# no runtime at all (one thread blocking in recvmmsg: the least any server
# can do per datagram here). Then novabmc (release build,
# simulated backend) on the same N nodes with the project's load client.
# An in-session command is one request and one reply, a full session five
# of each, so a server built either way costs at least the echo's CPU per
# command and five times it per session.
#
#   contrib/bench/floor.sh [nodes] [seconds] [in-flight]
#
# NOVABMC=path runs that daemon binary instead of building one.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
. "$here/lib.sh"

nodes=${1:-100}
seconds=${2:-5}
inflight=${3:-64}
octet=201
port=16700

cargo build --release --quiet --example datagram_floor
floor=target/release/examples/datagram_floor

bench_workdir

bench_targets $octet "$nodes" $port "$work/targets"
echo "== datagram floor, $nodes addresses, $inflight in flight, 64-byte datagrams, ${seconds} s per run"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for layout in per-node epoll shared bare; do
    "$floor" serve $layout "$work/targets" 2>"$work/floor.log" &
    pid=$!
    bench_started $pid
    sleep 0.5
    echo "-- $layout"
    bench_run "$floor" client "$work/targets" $pid "$seconds" "$inflight" 64 >"$work/echo.$layout"
    cat "$work/echo.$layout"
    bench_stop $pid
    bench_forget $pid
done

echo "== novabmc on the same $nodes nodes"
NOVABMC=${NOVABMC:-} "$here/load.sh" "$nodes" "$seconds" "$inflight" 1 >"$work/load" 2>&1 ||
    { cat "$work/load"; exit 1; }
grep -E '^(--|RESULT)' "$work/load"

echo "== above the floor (novabmc minus the per-node echo and the bare echo, per datagram pair)"
echo_us=$(sed -n 's/.*server_us_per_echo=\([0-9.]*\).*/\1/p' "$work/echo.per-node")
bare_us=$(sed -n 's/.*server_us_per_echo=\([0-9.]*\).*/\1/p' "$work/echo.bare")
awk -v e="$echo_us" -v b="$bare_us" '/^RESULT/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    pairs = (f["mode"] == "sessions") ? 5 : 1
    printf "   suite %-2s %-8s %7.2f us per %s; per-node floor %6.2f (%d x %.2f), above it %6.2f;" \
        " bare floor %6.2f, above it %6.2f\n",
        f["suite"], f["mode"], f["server_us_per_op"], substr(f["mode"], 1, length(f["mode"]) - 1),
        pairs * e, pairs, e, f["server_us_per_op"] - pairs * e, pairs * b, f["server_us_per_op"] - pairs * b
}' "$work/load"
