#!/bin/sh
# novabmc against its peers, measured the same way: OpenIPMI's ipmi_sim (N
# management controllers in one process), pyghmi's Bmc (one process per
# node, as OVB's openstackbmc runs it) and virtualbmc (vbmcd with one child
# process per node, on libvirt's test driver), each serving N nodes on
# loopback, then driven by the same neutral clients:
#
# - full sessions: ipmipower fan-out (FreeIPMI as MAAS runs it: auth caps,
#   Open Session, RAKP 1-4, Set Session Privilege, Get Chassis Status,
#   Close Session), 500 hosts per run;
# - in-session commands: `ipmitool exec` running a file of `power status`
#   lines in one session;
#
# and, per server, its CPU (utime+stime of all its processes, from /proc)
# per session and per command, its resident memory at each node count, the
# growth after 10,000 sessions and the time from start until its last node
# answers. Cipher suite 3 throughout (the only one every peer has).
#
#   contrib/bench/peers.sh
#
# Installs what it lacks (Debian: openipmi, ipmitool, freeipmi-tools,
# gnuplot-nox, python3-venv, python3-libvirt; a venv under target/ with
# pyghmi and virtualbmc), writes the figures into BENCHMARKS.md between its
# markers and draws contrib/bench/charts/{cpu-per-session,memory}.svg.
# Environment: NODES (node counts, default "1 100 1000 10000"), PY_MAX
# (most nodes for the one-process-per-node Python peers, default 100),
# SERVERS (default "novabmc ipmi_sim pyghmi virtualbmc"), COMMANDS (per
# ipmitool exec, default 2000).
#
# Everything listens on 127.0.0.0/8; every client call has a time limit;
# exactly the processes started here are stopped, on failure or Ctrl-C too
# (a TERM sent to the script alone takes effect when the client call under
# way returns).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
. "$here/lib.sh"

NODES=${NODES:-"1 100 1000 10000"}
PY_MAX=${PY_MAX:-100}
SERVERS=${SERVERS:-"novabmc ipmi_sim pyghmi virtualbmc"}
COMMANDS=${COMMANDS:-2000}
# ipmi_sim addresses its management controllers on IPMB: 0x20 (the BMC)
# to 0xfe in steps of two, so one process holds at most 112 of them.
SIM_MAX=100
PYGHMI_VERSION=1.6.19
VIRTUALBMC_VERSION=3.3.0
port=16623
venv=$root/target/peers-venv

# --- installation ---------------------------------------------------------

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install() {
    need=""
    for p in openipmi ipmitool freeipmi-tools gnuplot-nox python3-venv python3-libvirt; do
        dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
    done
    if [ -n "$need" ]; then
        echo "installing:$need"
        as_root apt-get update -qq
        # shellcheck disable=SC2086
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
    fi
    # The venv sees Debian's libvirt binding (python3-libvirt), which
    # virtualbmc needs and which would otherwise be built from source.
    [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
    "$venv/bin/python" - "$PYGHMI_VERSION" "$VIRTUALBMC_VERSION" <<'EOF' 2>/dev/null ||
import sys
from importlib.metadata import version
sys.exit(version("pyghmi") != sys.argv[1] or version("virtualbmc") != sys.argv[2])
EOF
        "$venv/bin/pip" install -q "pyghmi==$PYGHMI_VERSION" "virtualbmc==$VIRTUALBMC_VERSION"
    cargo build --release --quiet --bin novabmc
}

# With --charts-only, only the charts are redrawn, from the raw results
# the last run kept (after a change to the charts' look).
charts_only=false
[ "${1:-}" = --charts-only ] && charts_only=true
$charts_only || install

bench_workdir
results=$work/results
: >"$results"
record() { echo "$1 $2 $3 $4" >>"$results"; } # server nodes key value

# --- the servers ----------------------------------------------------------
# start_<server> OCTET N starts it and sets `main` to the PID whose process
# tree is the server.

start_novabmc() {
    bench_novabmc_config "$1" "$2" $port "$work/novabmc.toml"
    target/release/novabmc --log warn serve --config "$work/novabmc.toml" 2>"$work/novabmc.log" &
    main=$!
    bench_started $main
}

start_ipmi_sim() {
    dir=$work/ipmi_sim
    rm -rf "$dir" && mkdir -p "$dir/state"
    # Every controller gets its own LAN channel on its node's address and a
    # VM serial listener: ipmi_sim reads a controller's power through its
    # system interface (channel 15) and fails without one.
    awk -v b="$1" -v n="$2" -v p=$port 'BEGIN {
        print "name \"bench\""
        for (i = 0; i < n; i++) {
            a = sprintf("127.%d.%d.%d", b, int(i / 250), i % 250 + 1)
            printf "set_working_mc 0x%02x\n", 32 + 2 * i
            print "  startlan 1"
            printf "    addr %s %d\n", a, p
            print "    priv_limit admin"
            print "    allowed_auths_callback none md2 md5 straight"
            print "    allowed_auths_user none md2 md5 straight"
            print "    allowed_auths_operator none md2 md5 straight"
            print "    allowed_auths_admin none md2 md5 straight"
            printf "    guid a123456789abcdefa1234567%08x\n", i
            print "  endlan"
            printf "  serial 15 %s %d codec VM\n", a, p + 1
            print "  user 2 true \"admin\" \"password\" admin 10 none md2 md5 straight"
        }
    }' >"$dir/lan.conf"
    awk -v n="$2" 'BEGIN {
        print "mc_setbmc 0x20"
        for (i = 0; i < n; i++) {
            a = sprintf("0x%02x", 32 + 2 * i)
            printf "mc_add %s 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n", a
            printf "mc_enable %s\n", a
        }
    }' >"$dir/sim.emu"
    ipmi_sim -c "$dir/lan.conf" -f "$dir/sim.emu" -s "$dir/state" -n >"$dir/log" 2>&1 &
    main=$!
    bench_started $main
}

# One process per node, each started here; `main` is a subshell that waits
# for them, so they form one process tree.
start_pyghmi() {
    (
        i=0
        while [ "$i" -lt "$2" ]; do
            "$venv/bin/python" "$here/pyghmi_bmc.py" "$(bench_addr "$1" $i)" $port \
                >/dev/null 2>&1 &
            i=$((i + 1))
        done
        wait
    ) &
    main=$!
    bench_started $main
}

# vbmcd as `vbmc add` + `vbmc start` leave it: one config directory per
# domain, each marked active, which vbmcd starts as a child process at
# start-up. Each domain is a libvirt test-driver file of its own.
start_virtualbmc() {
    dir=$work/virtualbmc
    rm -rf "$dir" && mkdir -p "$dir/config" "$dir/domains"
    cat >"$dir/virtualbmc.conf" <<EOF
[default]
config_dir = $dir/config
pid_file = $dir/vbmcd.pid
server_port = 50991
[log]
logfile = $dir/vbmcd.log
EOF
    i=0
    while [ "$i" -lt "$2" ]; do
        printf '<node><domain type="test"><name>bench-%d</name><memory>1048576</memory><vcpu>1</vcpu><os><type>hvm</type><boot dev="hd"/></os></domain></node>\n' \
            $i >"$dir/domains/bench-$i.xml"
        mkdir -p "$dir/config/bench-$i"
        printf '[VirtualBMC]\nusername = admin\npassword = password\naddress = %s\nport = %d\ndomain_name = bench-%d\nlibvirt_uri = test://%s\nactive = True\n' \
            "$(bench_addr "$1" $i)" $port $i "$dir/domains/bench-$i.xml" >"$dir/config/bench-$i/config"
        i=$((i + 1))
    done
    VIRTUALBMC_CONFIG=$dir/virtualbmc.conf "$venv/bin/vbmcd" --foreground >/dev/null 2>&1 &
    main=$!
    bench_started $main
}

# --- the clients ----------------------------------------------------------

# Runs COUNT ipmipower sessions over the N nodes, 500 hosts per run, and
# prints how many reported a power state.
sessions() { # OCTET N COUNT
    done_=0 ok=0 first=0
    while [ "$done_" -lt "$3" ]; do
        chunk=$(($3 - done_))
        [ "$chunk" -gt 500 ] && chunk=500
        [ "$chunk" -gt "$2" ] && chunk=$2
        timeout 300 ipmipower -D LAN_2_0 -W opensesspriv -l OPERATOR -u admin -p password \
            -F 64 --stat -h "$(bench_hostlist "$1" "$2" $port "$first" "$chunk")" \
            >"$work/ipmipower.out" 2>&1 || true
        ok=$((ok + $(grep -cE ': (on|off)$' "$work/ipmipower.out" || true)))
        first=$(((first + chunk) % $2))
        done_=$((done_ + chunk))
    done
    echo "$ok"
}

commands_file=$work/commands
awk -v n="$COMMANDS" 'BEGIN { for (i = 0; i < n; i++) print "power status" }' >"$commands_file"

# One ipmitool session running COMMANDS power status; prints how many
# were answered.
commands() { # HOST
    timeout 600 ipmitool -I lanplus -H "$1" -p $port -U admin -P password -C 3 \
        exec "$commands_file" 2>/dev/null | grep -c '^Chassis Power is' || true
}

value() { # SERVER N KEY
    awk -v s="$1" -v n="$2" -v k="$3" '$1 == s && $2 == n && $3 == k { v = $4 } END { print (v == "" ? "-" : v) }' "$results"
}

# (AFTER - BEFORE) / COUNT / UNIT with one decimal.
per() { awk -v a="$1" -v b="$2" -v n="$3" -v u="$4" 'BEGIN { printf "%.1f", (b - a) / n / u }'; }

server_pids() { bench_tree "$main" | tr '\n' ' '; }

# --- one server at one node count ------------------------------------------

measure() { # SERVER OCTET N LAST(1 if its largest count)
    s=$1 b=$2 n=$3
    t0=$(bench_now_ms)
    "start_$s" "$b" "$n"
    bench_wait_ipmi "$(bench_addr "$b" 0)" $port 600
    bench_wait_ipmi "$(bench_addr "$b" $((n - 1)))" $port 600
    t1=$(bench_now_ms)
    record "$s" "$n" startup_ms $((t1 - t0))
    sleep 2
    pids=$(server_pids)
    # shellcheck disable=SC2086
    {
        record "$s" "$n" processes "$(echo $pids | wc -w)"
        record "$s" "$n" rss_kb "$(bench_rss_kb $pids)"
        record "$s" "$n" pss_kb "$(bench_pss_kb $pids)"
    }

    # Sessions: one per node, at least 1,000 (200 with one node: one
    # ipmipower run each).
    count=$n
    [ "$count" -lt 1000 ] && count=1000
    [ "$n" = 1 ] && count=200
    # shellcheck disable=SC2086
    c0=$(bench_cpu_ns $pids) t0=$(bench_cpu_us $pids) w0=$(bench_now_ms)
    ok=$(sessions "$b" "$n" $count)
    pids=$(server_pids)
    # shellcheck disable=SC2086
    c1=$(bench_cpu_ns $pids) t1=$(bench_cpu_us $pids) w1=$(bench_now_ms)
    record "$s" "$n" sessions "$ok/$count"
    record "$s" "$n" sessions_per_s $((ok * 1000 / (w1 - w0 + 1)))
    if [ "$ok" -gt 0 ]; then
        record "$s" "$n" cpu_us_per_session "$(per "$c0" "$c1" "$ok" 1000)"
        record "$s" "$n" stat_us_per_session "$(per "$t0" "$t1" "$ok" 1)"
    fi
    # Growth at 100 nodes (every server has them) and at the largest
    # count: topped up to 10,000 sessions since start, then 10,000 more,
    # which tells first-use growth from growth per session.
    if [ "$n" = 100 ] || [ "$4" = 1 ]; then
        rss0=$(value "$s" "$n" rss_kb) pss0=$(value "$s" "$n" pss_kb)
        ok=$((ok + $(sessions "$b" "$n" $((10000 - count)))))
        # shellcheck disable=SC2086
        rss1=$(bench_rss_kb $pids) pss1=$(bench_pss_kb $pids)
        ok2=$(sessions "$b" "$n" 10000)
        # shellcheck disable=SC2086
        rss2=$(bench_rss_kb $pids)
        record "$s" "$n" growth_sessions "$ok+$ok2"
        record "$s" "$n" growth_kb $((rss1 - rss0))
        record "$s" "$n" growth_pss_kb $((pss1 - pss0))
        record "$s" "$n" growth2_kb $((rss2 - rss1))
    fi

    # shellcheck disable=SC2086
    c0=$(bench_cpu_ns $pids) t0=$(bench_cpu_us $pids)
    answered=$(commands "$(bench_addr "$b" 0)")
    # shellcheck disable=SC2086
    c1=$(bench_cpu_ns $pids) t1=$(bench_cpu_us $pids)
    record "$s" "$n" commands "$answered/$COMMANDS"
    if [ "$answered" -gt 0 ]; then
        record "$s" "$n" cpu_us_per_command "$(per "$c0" "$c1" "$answered" 1000)"
        record "$s" "$n" stat_us_per_command "$(per "$t0" "$t1" "$answered" 1)"
    fi

    bench_stop "$main"
    bench_forget "$main"
    echo "$s at $n nodes:" $(awk -v s="$s" -v n="$n" '$1 == s && $2 == n { printf "%s=%s ", $3, $4 }' "$results")
}

run_all() {
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    started=$(date -u +%Y-%m-%dT%H:%MZ)
    octet=201
    for s in $SERVERS; do
        max=1000000
        case $s in
        ipmi_sim) max=$SIM_MAX ;;
        pyghmi | virtualbmc) max=$PY_MAX ;;
        esac
        counts=""
        for n in $NODES; do [ "$n" -le "$max" ] && counts="$counts $n"; done
        largest=$(echo $counts | tr ' ' '\n' | tail -1)
        for n in $counts; do
            last=0
            [ "$n" = "$largest" ] && last=1
            measure "$s" $octet "$n" $last
        done
        octet=$((octet + 1))
    done
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
}

# --- the report -------------------------------------------------------------

# The value at the server's largest node count, with that count.
at_largest() { # SERVER KEY
    awk -v s="$1" -v k="$2" '$1 == s && $3 == k { n = $2; v = $4 } END { print (v == "" ? "-" : v " (" n ")") }' "$results"
}

ratio() { # PEER NOVABMC
    awk -v p="$1" -v b="$2" 'BEGIN { if (p == "-" || b == "-" || b == 0) print "-"; else printf "%.1f", p / b }'
}

mib() { awk -v k="$1" 'BEGIN { if (k == "-") print "-"; else printf "%.1f", k / 1024 }'; }

versions() {
    echo "- novabmc $(bench_revision), release build, simulated backend"
    echo "- ipmi_sim (OpenIPMI) $(dpkg-query -W -f '${Version}' openipmi)"
    echo "- pyghmi $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("pyghmi"))'), Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())')"
    echo "- virtualbmc $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("virtualbmc"))') on libvirt $(dpkg-query -W -f '${Version}' libvirt0) (test driver)"
    echo "- clients: $(ipmipower -V | head -1), $(ipmitool -V)"
}

report() {
    cat <<EOF
Generated by \`contrib/bench/peers.sh\` on $started. Machine: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'),
$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r);
load average $load_before before the run and $load_after after it.

$(versions)

Server CPU is the run time of all the server's processes and threads, from
\`/proc/PID/task/TID/schedstat\` (the clock utime+stime are computed from,
without their 10 ms ticks; utime+stime per operation are in the raw results
as \`stat_us_per_*\`), divided by the sessions or commands answered.
Cipher suite 3. Sessions: ipmipower runs of up to 500 hosts, 64 at a time
(\`-F 64\`); commands: one \`ipmitool exec\` of $COMMANDS \`power status\`.

| nodes | server | start-up ms | processes | RSS MiB | PSS MiB | sessions answered | sessions/s | CPU µs/session | CPU µs/command |
|---|---|---|---|---|---|---|---|---|---|
EOF
    for n in $NODES; do
        for s in $SERVERS; do
            [ "$(value "$s" "$n" rss_kb)" = - ] && continue
            echo "| $n | $s | $(value "$s" "$n" startup_ms) | $(value "$s" "$n" processes) | $(mib "$(value "$s" "$n" rss_kb)") | $(mib "$(value "$s" "$n" pss_kb)") | $(value "$s" "$n" sessions) | $(value "$s" "$n" sessions_per_s) | $(value "$s" "$n" cpu_us_per_session) | $(value "$s" "$n" cpu_us_per_command) |"
        done
    done
    cat <<EOF

Memory growth: resident memory after 10,000 sessions since start (all
servers at 100 nodes, novabmc also at 10,000), and after 10,000 more. A
server that keeps something per session grows in both; one that sizes
buffers on a node's first session grows only in the first.

| nodes | server | sessions answered | RSS growth KiB | PSS growth KiB | RSS growth, next 10,000, KiB |
|---|---|---|---|---|---|
EOF
    for n in $NODES; do
        for s in $SERVERS; do
            [ "$(value "$s" "$n" growth_kb)" = - ] && continue
            echo "| $n | $s | $(value "$s" "$n" growth_sessions) | $(value "$s" "$n" growth_kb) | $(value "$s" "$n" growth_pss_kb) | $(value "$s" "$n" growth2_kb) |"
        done
    done
    cat <<EOF

Start-up, from starting the server until its first and last nodes answer
a session, at each server's largest node count:

| server | nodes | start-up ms |
|---|---|---|
EOF
    for s in $SERVERS; do
        echo "| $s | $(at_largest "$s" startup_ms | sed 's/\(.*\) (\(.*\))/\2 | \1/') |"
    done
    cat <<EOF

Each peer against novabmc at the same node count (peer ÷ novabmc; above 1
means novabmc uses less):

| nodes | peer | CPU per session | CPU per command | RSS |
|---|---|---|---|---|
EOF
    for n in $NODES; do
        for s in $SERVERS; do
            [ "$s" = novabmc ] && continue
            [ "$(value "$s" "$n" rss_kb)" = - ] && continue
            echo "| $n | $s | $(ratio "$(value "$s" "$n" cpu_us_per_session)" "$(value novabmc "$n" cpu_us_per_session)") | $(ratio "$(value "$s" "$n" cpu_us_per_command)" "$(value novabmc "$n" cpu_us_per_command)") | $(ratio "$(value "$s" "$n" rss_kb)" "$(value novabmc "$n" rss_kb)") |"
        done
    done
    cat <<EOF

![server CPU per session](contrib/bench/charts/cpu-per-session.svg)
![resident memory](contrib/bench/charts/memory.svg)
EOF
}

charts() {
    mkdir -p "$here/charts"
    for key in cpu_us_per_session rss_kb; do
        {
            echo "# nodes $SERVERS"
            for n in $NODES; do
                line=$n
                for s in $SERVERS; do
                    v=$(value "$s" "$n" $key)
                    [ "$key" = rss_kb ] && [ "$v" != - ] && v=$(mib "$v")
                    line="$line $v"
                done
                echo "$line"
            done
        } >"$work/$key.dat"
    done
    plots() { # DATAFILE
        i=2 sep=""
        for s in $SERVERS; do
            printf '%s"%s" using 1:%d with linespoints lw 2 title "%s"' "$sep" "$1" $i "$s"
            i=$((i + 1)) sep=", "
        done
    }
    gnuplot <<EOF
set terminal svg size 720,440 dynamic noenhanced font "sans,12"
set datafile missing "-"
set logscale xy
set grid
set key outside right
set xlabel "nodes"
set output "$here/charts/cpu-per-session.svg"
set title "Server CPU per full session (ipmipower), log scales"
set ylabel "µs of server CPU per session"
plot $(plots "$work/cpu_us_per_session.dat")
set output "$here/charts/memory.svg"
set title "Resident memory of all the server's processes, log scales"
set ylabel "MiB"
plot $(plots "$work/rss_kb.dat")
EOF
}

if $charts_only; then
    results=$here/charts/peers-results.txt
    charts
    exit 0
fi
run_all
report >"$work/report.md"
charts
# Replace what lies between the markers in BENCHMARKS.md.
awk -v report="$work/report.md" '
    /<!-- peers.sh: begin -->/ { print; while ((getline l < report) > 0) print l; skip = 1; next }
    /<!-- peers.sh: end -->/ { skip = 0 }
    !skip { print }
' BENCHMARKS.md >"$work/BENCHMARKS.md"
cp "$work/BENCHMARKS.md" BENCHMARKS.md
cp "$results" "$here/charts/peers-results.txt"
cat "$work/report.md"
