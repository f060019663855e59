#!/bin/sh
# Measures the daemon's CPU per full ipmitool session (auth caps, cipher
# suites, Open Session, RAKP 1-4, six commands, Close Session) and per
# in-session command, from its utime+stime in /proc, with the release build
# and the in-process simulated backend. Loopback only.
#
#   contrib/bench/engine-cpu.sh [sessions] [commands]
set -eu
cd "$(dirname "$0")/../.."
sessions=${1:-500}
commands=${2:-5000}
cargo build --release --quiet
work=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

cat >"$work/novabmc.toml" <<EOF
[users.admin]
password = "password"
[backend]
type = "simulated"
[nodes.bench]
address = "127.0.0.3"
port = 6230
EOF
target/release/novabmc --log warn serve --config "$work/novabmc.toml" 2>"$work/log" &
pid=$!
ipmi="ipmitool -I lanplus -H 127.0.0.3 -p 6230 -U admin -P password"
until $ipmi power status >/dev/null 2>&1; do sleep 0.1; done
hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

for suite in 17 3; do
    t0=$(cpu)
    i=0
    while [ "$i" -lt "$sessions" ]; do
        $ipmi -C "$suite" power status >/dev/null
        i=$((i + 1))
    done
    t1=$(cpu)
    echo "suite $suite: $sessions sessions, daemon CPU $(( (t1 - t0) * 1000000 / hz / sessions )) us per session"
done

# One session, many commands: ipmitool's exec runs a file in one session.
i=0
: >"$work/cmds"
while [ "$i" -lt "$commands" ]; do
    echo "power status" >>"$work/cmds"
    i=$((i + 1))
done
t0=$(cpu)
$ipmi exec "$work/cmds" >/dev/null
t1=$(cpu)
echo "in session: $commands Get Chassis Status, daemon CPU $(( (t1 - t0) * 1000000 / hz / commands )) us per command (suite 17)"
