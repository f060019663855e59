#!/bin/sh
# Keystroke round trip over Serial over LAN: `ipmitool sol activate`
# through novabmc to the Nova simulator's serial console websocket and
# back, compared with the same round trip straight to that websocket.
# Prints the median and p99 of N keystrokes (200 by default) for each,
# through novabmc both with the default character accumulate interval
# (10 ms) and with the shortest (5 ms), since a keystroke alone waits it.
# Uses the release build, loopback only; needs curl, python3 (to read
# JSON), ipmitool and script.
#
#   contrib/bench/sol-latency.sh [keystrokes]
set -eu
cd "$(dirname "$0")/../.."
. contrib/bench/lib.sh
n=${1:-200}
cargo build --release --quiet --bin novabmc --example sol_latency
bin=target/release/novabmc
tool=target/release/examples/sol_latency
bench_sim_and_daemon

sim=127.0.0.3:5097
node=127.0.30.1
"$bin" nova-simulator --listen "$sim" --clouds-yaml "$work/clouds.yaml" \
    --servers 1 --prefix bench 2>"$work/sim.log" &
sim_pid=$!
until curl -sf "http://$sim/_sim/faults" >/dev/null; do sleep 0.05; done
{
    printf '[users.admin]\npassword = "password"\n'
    printf '[backend]\ntype = "nova"\ncloud = "sim"\nclouds_yaml = "%s"\n' "$work/clouds.yaml"
    printf 'refresh_secs = 1\nipxe_image = "ipxe-boot"\nstate_dir = "%s"\n' "$work/state"
    printf 'allow_plain_console = true\n'   # the simulator's ws:// console, on loopback
    printf '[nodes.n0]\naddress = "%s"\nport = 6230\nserver = "bench-0"\n' "$node"
} >"$work/novabmc.toml"
"$bin" --log warn serve --config "$work/novabmc.toml" 2>"$work/bmc.log" &
bmc_pid=$!
until ipmitool -I lanplus -H "$node" -p 6230 -U admin -P password power status \
    >/dev/null 2>&1; do sleep 0.1; done

json() { python3 -c "import json,sys; print($1)"; }
server=$(curl -sf "http://$sim/_sim/servers" | json 'json.load(sys.stdin)["servers"][0]["id"]')
token=$(curl -si -X POST -H 'content-type: application/json' \
    "http://$sim/identity/v3/auth/tokens" -d '{"auth": {"identity": {"methods": ["password"],
      "password": {"user": {"name": "novabmc", "password": "novabmc-secret",
      "domain": {"name": "Default"}}}}, "scope": {"project": {"name": "baremetal",
      "domain": {"name": "Default"}}}}}' | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p')
url=$(curl -sf -X POST -H "X-Auth-Token: $token" -H 'OpenStack-API-Version: compute 2.6' \
    -H 'content-type: application/json' \
    "http://$sim/compute/v2.1/servers/$server/remote-consoles" \
    -d '{"remote_console": {"protocol": "serial", "type": "serial"}}' |
    json 'json.load(sys.stdin)["remote_console"]["url"]')

ipmi="ipmitool -I lanplus -H $node -p 6230 -U admin -P password"
echo "== keystroke round trips, $n each ($(nproc) cores)"
"$tool" ws "$url" "$n"
echo "-- character accumulate interval 10 ms (the default)"
"$tool" sol "$ipmi sol activate" "$n"
$ipmi sol set character-accumulate-level 1 >/dev/null
echo "-- character accumulate interval 5 ms (the shortest)"
"$tool" sol "$ipmi sol activate" "$n"
