#!/bin/sh
# The Nova side at scale: novabmc serving N nodes (10,000 by default)
# whose servers live in the Nova simulator. Measures the time to resolve
# every server at start (one paginated listing), the time until the
# one-time owner keys are written, resident memory once resolved, and, once
# quiet, the Nova requests per refresh interval (which must be one listing,
# or one per page of a listing) with novabmc's CPU per interval. Release
# build, loopback only; stops what it started.
#
#   contrib/bench/nova-scale.sh [nodes] [refresh_secs]
set -eu
cd "$(dirname "$0")/../.."
. contrib/bench/lib.sh
nodes=${1:-10000}
refresh=${2:-5}
cargo build --release --locked --quiet
bin=$(pwd)/target/release/novabmc
bench_sim_and_daemon

sim=127.0.0.3:5098
t=$(date +%s%3N)
"$bin" --log warn nova-simulator --listen "$sim" --clouds-yaml "$work/clouds.yaml" \
    --servers "$nodes" --prefix scale 2>"$work/sim.log" &
sim_pid=$!
# clouds.yaml is written once every server exists.
until [ -s "$work/clouds.yaml" ]; do sleep 0.1; done
echo "simulator with $nodes servers up in $(( $(date +%s%3N) - t )) ms"

{
    printf '[users.admin]\npassword = "password"\n'
    printf '[backend]\ntype = "nova"\ncloud = "sim"\nclouds_yaml = "%s"\n' "$work/clouds.yaml"
    printf 'refresh_secs = %s\nipxe_image = "ipxe-boot"\nstate_dir = "%s"\n' "$refresh" "$work/state"
    awk -v n="$nodes" 'BEGIN {
        for (i = 0; i < n; i++)
            printf "[nodes.n%d]\naddress = \"127.43.%d.%d\"\nport = 623\nserver = \"scale-%d\"\n",
                i, int(i / 250), i % 250 + 1, i
    }'
} >"$work/novabmc.toml"

t0=$(date +%s%3N)
"$bin" --log info serve --config "$work/novabmc.toml" 2>"$work/bmc.log" &
bmc_pid=$!
until grep -q "servers resolved" "$work/bmc.log"; do
    kill -0 "$bmc_pid" 2>/dev/null || { cat "$work/bmc.log"; exit 1; }
    sleep 0.05
done
t_resolved=$(date +%s%3N)
rss_resolved=$(awk '/VmRSS/ {print $2}' /proc/"$bmc_pid"/status)

owners() {
    curl -sf "http://$sim/_sim/requests" | python3 -c '
import json, sys
reqs = json.load(sys.stdin)["requests"]
print(sum(1 for r in reqs if r["method"] == "PUT" and r["path"].endswith("/metadata/novabmc_owner") and 200 <= r["status"] < 300))'
}
until [ "$(owners)" -ge "$nodes" ]; do sleep 0.5; done
t_owners=$(date +%s%3N)

# Quiet now: count what one refresh interval costs.
sleep "$refresh"
curl -sf -X DELETE "http://$sim/_sim/requests" >/dev/null
cpu0=$(bench_cpu_us "$bmc_pid")
intervals=6
sleep $((refresh * intervals))
cpu1=$(bench_cpu_us "$bmc_pid")
rss_idle=$(awk '/VmRSS/ {print $2}' /proc/"$bmc_pid"/status)
curl -sf "http://$sim/_sim/requests" | python3 -c "
import json, sys
reqs = json.load(sys.stdin)['requests']
listings = [r for r in reqs if r['path'].endswith('/servers/detail')]
others = [r for r in reqs if not r['path'].endswith('/servers/detail')]
since = sum(1 for r in listings if 'changes-since=' in r['query'])
print(f'over {$intervals} intervals of {$refresh} s: {len(listings)} listings '
      f'({since} with changes-since), {len(others)} other requests')
for r in others[:5]:
    print('  other:', r['method'], r['path'])
import os
if os.environ.get('SCALE_DEBUG'):
    for r in listings:
        print('  listing at', round(r['at_ms']), 'ms:', r['query'])
"
echo "nodes: $nodes"
echo "resolved every server: $((t_resolved - t0)) ms after start"
echo "owner keys written (first start only): $((t_owners - t0)) ms after start"
echo "resident memory: ${rss_resolved} KiB when resolved, ${rss_idle} KiB idle"
echo "novabmc CPU per refresh interval: $(( (cpu1 - cpu0) / intervals )) us"
