#!/bin/sh
# The operator's tools at scale: `novabmc check` against the Nova simulator
# holding N servers (10,000 by default), in table and JSON form, and one
# scrape of /metrics from `serve` with N nodes (once resolved): its time
# and size. Release build, loopback only; stops what it started.
#
#   contrib/bench/ops-scale.sh [nodes]
set -eu
cd "$(dirname "$0")/../.."
. contrib/bench/lib.sh
nodes=${1:-10000}
cargo build --release --locked --quiet
bin=$(pwd)/target/release/novabmc
bench_sim_and_daemon

ms() { date +%s%3N; }
sim=127.0.0.4:5099
"$bin" --log warn nova-simulator --listen "$sim" --clouds-yaml "$work/clouds.yaml" \
    --servers "$nodes" --prefix ops 2>"$work/sim.log" &
sim_pid=$!
until [ -s "$work/clouds.yaml" ]; do sleep 0.1; done

{
    printf '[users.admin]\npassword = "password"\n'
    printf '[backend]\ntype = "nova"\ncloud = "sim"\nclouds_yaml = "%s"\n' "$work/clouds.yaml"
    printf 'refresh_secs = 5\nipxe_image = "ipxe-boot"\nstate_dir = "%s"\n' "$work/state"
    printf '[metrics]\nlisten = "127.0.0.4:9623"\n'
    awk -v n="$nodes" 'BEGIN {
        for (i = 0; i < n; i++)
            printf "[nodes.n%d]\naddress = \"127.44.%d.%d\"\nport = 623\nserver = \"ops-%d\"\n",
                i, int(i / 250), i % 250 + 1, i
    }'
} >"$work/novabmc.toml"

for format in table json; do
    t=$(ms)
    "$bin" --log warn check --config "$work/novabmc.toml" --format "$format" >"$work/check.$format"
    echo "check ($format), $nodes nodes: $(( $(ms) - t )) ms, $(wc -c <"$work/check.$format") bytes"
done

"$bin" --log info serve --config "$work/novabmc.toml" 2>"$work/bmc.log" &
bmc_pid=$!
until grep -q "servers resolved" "$work/bmc.log" && grep -q "serving nodes=" "$work/bmc.log"; do
    kill -0 "$bmc_pid" 2>/dev/null || { cat "$work/bmc.log"; exit 1; }
    sleep 0.1
done
for i in 1 2 3; do
    curl -s -o "$work/metrics" -w "scrape $i: %{time_total} s, %{size_download} bytes\n" \
        http://127.0.0.4:9623/metrics
done
echo "series: $(grep -vc '^#' "$work/metrics")"
