#!/bin/sh
# Measures, against the Nova simulator, how long after `ipmitool power on`
# starts the simulated Nova receives the os-start call, and how many Nova
# requests novabmc makes per refresh interval while idle, for 1, 100 and
# 1000 nodes. Uses the release build, loopback only.
#
#   contrib/bench/nova-latency.sh [runs]
set -eu
cd "$(dirname "$0")/../.."
. contrib/bench/lib.sh
runs=${1:-20}
cargo build --release --quiet
bin=target/release/novabmc
bench_sim_and_daemon

sim=127.0.0.2:5099
start_sim() {
    "$bin" nova-simulator --listen "$sim" --clouds-yaml "$work/clouds.yaml" \
        --servers "$1" --prefix bench 2>"$work/sim.log" &
    sim_pid=$!
    until curl -sf "http://$sim/_sim/faults" >/dev/null; do sleep 0.05; done
    curl -sf -X PUT -H 'content-type: application/json' "http://$sim/_sim/timings" \
        -d '{"start_ms":50,"stop_ms":50,"reboot_ms":150,"rebuild_ms":50,"rescue_ms":50}' >/dev/null
}
start_bmc() {
    nodes=$1
    {
        printf '[users.admin]\npassword = "password"\n'
        printf '[backend]\ntype = "nova"\ncloud = "sim"\nclouds_yaml = "%s"\n' "$work/clouds.yaml"
        printf 'refresh_secs = 1\nipxe_image = "ipxe-boot"\nstate_dir = "%s"\n' "$work/state"
        i=0
        while [ "$i" -lt "$nodes" ]; do
            printf '[nodes.n%d]\naddress = "127.0.%d.%d"\nport = 6230\nserver = "bench-%d"\n' \
                "$i" $((i / 250 + 10)) $((i % 250 + 1)) "$i"
            i=$((i + 1))
        done
    } >"$work/novabmc.toml"
    "$bin" --log warn serve --config "$work/novabmc.toml" 2>"$work/bmc.log" &
    bmc_pid=$!
    until ipmitool -I lanplus -H 127.0.10.1 -p 6230 -U admin -P password power status \
        >/dev/null 2>&1; do sleep 0.1; done
}
stop_all() {
    kill "$bmc_pid" "$sim_pid"; wait "$bmc_pid" "$sim_pid" 2>/dev/null || true
    bmc_pid=""; sim_pid=""
}
now_ms() { date +%s%3N; }

echo "== ipmitool power on -> os-start seen by Nova ($runs runs)"
start_sim 1
start_bmc 1
ipmi="ipmitool -I lanplus -H 127.0.10.1 -p 6230 -U admin -P password"
: >"$work/latency"
r=0
while [ "$r" -lt "$runs" ]; do
    $ipmi power off >/dev/null
    # wait until the server is off in Nova and novabmc is idle again
    until curl -sf "http://$sim/_sim/servers" | python3 -c '
import json, sys
s = json.load(sys.stdin)["servers"][0]
sys.exit(0 if s["stable"]["status"] == "SHUTOFF" and not s["busy"] else 1)'; do sleep 0.05; done
    sleep 0.3
    curl -sf -X DELETE "http://$sim/_sim/requests" >/dev/null
    t0=$(now_ms)
    $ipmi power on >/dev/null
    t1=$(now_ms)
    until curl -sf "http://$sim/_sim/requests" | python3 -c '
import json, sys
reqs = json.load(sys.stdin)["requests"]
hit = [r for r in reqs if r["path"].endswith("/action") and (r["body"] or {}).get("os-start", 0) is None]
sys.exit(0 if hit else 1)'; do sleep 0.02; done
    curl -sf "http://$sim/_sim/requests" | python3 -c "
import json, sys
reqs = json.load(sys.stdin)['requests']
hit = [r for r in reqs if r['path'].endswith('/action') and (r['body'] or {}).get('os-start', 0) is None]
print(hit[0]['at_unix_ms'] - $t0, $t1 - $t0)" >>"$work/latency"
    r=$((r + 1))
done
python3 - "$work/latency" <<'EOF'
import statistics, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
nova = sorted(r[0] for r in rows)
tool = sorted(r[1] for r in rows)
print(f"ipmitool start -> os-start at Nova: median {statistics.median(nova)} ms, min {nova[0]}, max {nova[-1]}")
print(f"ipmitool power on wall time:        median {statistics.median(tool)} ms")
EOF
stop_all

for n in 1 100 1000; do
    start_sim "$n"
    start_bmc "$n"
    sleep 2
    curl -sf -X DELETE "http://$sim/_sim/requests" >/dev/null
    sleep 10
    curl -sf "http://$sim/_sim/requests" | python3 -c "
import json, sys
reqs = json.load(sys.stdin)['requests']
lists = [r for r in reqs if r['path'].endswith('/servers/detail')]
print(f'== $n nodes: {len(reqs)} Nova requests in 10 s idle ({len(lists)} server listings), refresh 1 s')"
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$bmc_pid/status")
    echo "   novabmc resident memory: $((rss / 1024)) MiB"
    stop_all
done
