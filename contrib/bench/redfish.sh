#!/bin/sh
# novabmc's Redfish beside sushy-tools' sushy-emulator (its OpenStack
# driver), both on the same Nova simulator, under the same load client.
#
# For 1, 100 and 1,000 servers in the simulator, each server alone in turn:
#
# - novabmc, the release build, Nova backend, `[redfish]` with one aggregate
#   listener serving every system (as sushy-emulator does): plain HTTP and
#   HTTPS (its self-signed certificate), each with keep-alive and with one
#   connection per request (`Connection: close`, as sushy sends);
# - sushy-emulator (Flask's threaded server) with `SUSHY_EMULATOR_OS_CLOUD`
#   on the simulator, Basic auth from an htpasswd file (bcrypt, cost 5 as
#   `htpasswd -B` writes it): the same four ways (HTTPS with a certificate
#   made here), and plain HTTP keep-alive without the auth file, to show what
#   bcrypt costs it.
#
# The load: wrk, one thread, CONNECTIONS connections, DURATION seconds, GET
# /redfish/v1/Systems/{id} over every system in turn with Basic
# credentials (contrib/bench/redfish.lua). Reported: requests/s answered
# 200, p50 and p99 latency, the server's CPU per request (utime+stime of its
# process from /proc/PID/stat before and after, which counts the threads
# that ended too), the Nova simulator's CPU and the Nova requests per
# request, wrk's own CPU, resident memory after the load, and the time of
# GET /redfish/v1/Systems (curl's time_total, the median of LISTINGS).
#
#   contrib/bench/redfish.sh
#
# Installs what it lacks (Debian: wrk, curl, openssl, python3-venv; a venv
# at target/bench-venv with sushy-tools and openstacksdk pinned). Prints
# the table and keeps the raw results in target/redfish-bench-results.txt.
# Environment: SYSTEMS (default "1 100 1000"), DURATION (s, default 15),
# CONNECTIONS (default 8), LISTINGS (default 7), LIST_BOUND (s, the most
# one listing may take, default 120), SERVERS (default "novabmc sushy").
#
# Everything listens on 127.0.0.0/8; every client call has a time limit;
# exactly the processes started here are stopped, on failure or Ctrl-C too.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
. "$here/lib.sh"

SYSTEMS=${SYSTEMS:-"1 100 1000"}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-8}
LISTINGS=${LISTINGS:-7}
LIST_BOUND=${LIST_BOUND:-120}
SERVERS=${SERVERS:-"novabmc sushy"}
SUSHY_TOOLS_VERSION=2.2.0
OPENSTACKSDK_VERSION=4.22.0
venv=$root/target/bench-venv
bin=$root/target/release/novabmc
sim=127.0.0.71:5171
bmc=127.0.0.72:18443
sushy=127.0.0.73:18000
ipmi_port=16624
basic="Basic $(printf admin:password | base64)"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install() {
    need=""
    for p in wrk curl openssl python3-venv; do
        dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
    done
    if [ -n "$need" ]; then
        echo "installing:$need"
        as_root apt-get update -qq
        # shellcheck disable=SC2086
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
    fi
    [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
    "$venv/bin/python" - "$SUSHY_TOOLS_VERSION" "$OPENSTACKSDK_VERSION" <<'EOF' 2>/dev/null ||
import sys
from importlib.metadata import version
sys.exit(version("sushy-tools") != sys.argv[1] or version("openstacksdk") != sys.argv[2])
EOF
        "$venv/bin/pip" install -q "sushy-tools==$SUSHY_TOOLS_VERSION" "openstacksdk==$OPENSTACKSDK_VERSION"
    cargo build --release --quiet --bin novabmc
}

install
bench_workdir
results=$work/results
: >"$results"
record() { echo "$1 $2 $3 $4" >>"$results"; } # server/mode systems key value

# --- the Nova simulator -----------------------------------------------------

sim_pid=""
start_sim() { # N
    rm -f "$work/clouds.yaml"
    "$bin" --log warn nova-simulator --listen "$sim" --clouds-yaml "$work/clouds.yaml" \
        --servers "$1" --prefix bench 2>"$work/sim.log" &
    sim_pid=$!
    bench_started $sim_pid
    deadline=$(($(date +%s) + 120))
    until [ -s "$work/clouds.yaml" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "simulator did not start" >&2; exit 1; }
        sleep 0.1
    done
    # Every server's system path, by its UUID (the Id both servers give it).
    curl -sf --max-time 30 "http://$sim/_sim/servers" | python3 -c '
import json, sys
for s in json.load(sys.stdin)["servers"]:
    print("/redfish/v1/Systems/" + s["id"])' >"$work/paths"
    [ "$(wc -l <"$work/paths")" = "$1" ] || { echo "simulator lists the wrong count" >&2; exit 1; }
}

nova_requests() {
    curl -sf --max-time 30 "http://$sim/_sim/requests" |
        python3 -c 'import json, sys; print(len(json.load(sys.stdin)["requests"]))'
}

# --- the servers ------------------------------------------------------------
# start_<server> N TLS(true|false) AUTH(true|false) starts it, sets `main`
# to its PID and `url` to its base URL, and returns once it answers.

start_novabmc() {
    {
        printf '[users.admin]\npassword = "password"\n\n'
        printf '[backend]\ntype = "nova"\ncloud = "sim"\nclouds_yaml = "%s"\n' "$work/clouds.yaml"
        printf 'ipxe_image = "ipxe-boot"\nstate_dir = "%s"\n\n' "$work/state"
        printf '[redfish]\nper_node = false\naggregate = "%s"\ntls = %s\n\n' "$bmc" "$2"
        awk -v n="$1" -v p=$ipmi_port 'BEGIN {
            for (i = 0; i < n; i++)
                printf "[nodes.n%d]\naddress = \"127.63.%d.%d\"\nport = %d\nserver = \"bench-%d\"\n",
                    i, int(i / 250), i % 250 + 1, p, i
        }'
    } >"$work/novabmc.toml"
    "$bin" --log warn serve --config "$work/novabmc.toml" 2>"$work/novabmc.log" &
    main=$!
    bench_started $main
    scheme=http
    [ "$2" = true ] && scheme=https
    url=$scheme://$bmc
    wait_systems "$1"
}

start_sushy() {
    mkdir -p "$work/sushy"
    {
        printf "SUSHY_EMULATOR_LISTEN_IP = '%s'\n" "${sushy%:*}"
        printf "SUSHY_EMULATOR_LISTEN_PORT = %s\n" "${sushy#*:}"
        printf "SUSHY_EMULATOR_OS_CLOUD = 'sim'\n"
        [ "$3" = true ] && printf "SUSHY_EMULATOR_AUTH_FILE = '%s'\n" "$work/sushy/htpasswd"
        if [ "$2" = true ]; then
            printf "SUSHY_EMULATOR_SSL_CERT = '%s'\n" "$work/sushy/cert.pem"
            printf "SUSHY_EMULATOR_SSL_KEY = '%s'\n" "$work/sushy/key.pem"
        fi
    } >"$work/sushy/emulator.conf"
    [ -s "$work/sushy/htpasswd" ] || "$venv/bin/python" -c '
import bcrypt
print("admin:" + bcrypt.hashpw(b"password", bcrypt.gensalt(rounds=5, prefix=b"2b")).decode())' \
        >"$work/sushy/htpasswd"
    [ -s "$work/sushy/cert.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
        -subj /CN=127.0.0.73 -keyout "$work/sushy/key.pem" -out "$work/sushy/cert.pem" 2>/dev/null
    OS_CLIENT_CONFIG_FILE=$work/clouds.yaml \
        "$venv/bin/sushy-emulator" --config "$work/sushy/emulator.conf" 2>"$work/sushy.log" &
    main=$!
    bench_started $main
    scheme=http
    [ "$2" = true ] && scheme=https
    url=$scheme://$sushy
    wait_systems "$1"
}

# Until the first system answers 200 (within 120 s, then gives up on
# this server at this count).
wait_systems() { # N
    first=$(head -1 "$work/paths")
    deadline=$(($(date +%s) + 120))
    until [ "$(curl -sk --max-time 30 -o /dev/null -w '%{http_code}' -u admin:password "$url$first")" = 200 ]; do
        if [ "$(date +%s)" -ge "$deadline" ] || ! bench_alive "$main"; then
            echo "$url$first did not answer 200 within 120 s" >&2
            return 1
        fi
        sleep 0.2
    done
}

stop_server() {
    bench_stop "$main"
    bench_forget "$main"
}

# --- the measurements ---------------------------------------------------------

# Runs wrk for DURATION and records its figures under NAME; the server's
# and the simulator's CPU from /proc/PID/stat, wrk's from its parent's
# cutime+cstime once it has been waited for.
load() { # NAME N keep|close
    pids=$(bench_tree "$main" | tr '\n' ' ')
    curl -sf --max-time 30 -X DELETE "http://$sim/_sim/requests" >/dev/null
    # shellcheck disable=SC2086
    c0=$(bench_cpu_us $pids) s0=$(bench_cpu_us "$sim_pid")
    bench_run timeout $((DURATION + 60)) sh -c '
        wrk -t1 -c"$1" -d"$2"s --timeout 30s -s "$3" "$4" -- "$5" "$6" "$7" >"$8" 2>&1 || true
        sed "s/.*) //" /proc/$$/stat | awk -v hz="$(getconf CLK_TCK)" "{ printf \"%d\n\", (\$14 + \$15) * 1000000 / hz }" >"$8.cpu"
    ' sh "$CONNECTIONS" "$DURATION" "$here/redfish.lua" "$url" "$work/paths" "$basic" "$3" "$work/wrk.out" || true
    # shellcheck disable=SC2086
    c1=$(bench_cpu_us $pids) s1=$(bench_cpu_us "$sim_pid")
    nova=$(nova_requests)
    line=$(grep '^RESULT' "$work/wrk.out" || true)
    if [ -z "$line" ]; then
        echo "wrk gave no result for $1 at $2:" >&2
        cat "$work/wrk.out" >&2
        return 0
    fi
    get() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    requests=$(get requests) status=$(get status)
    ok=$((requests - status))
    errors=$(($(get connect) + $(get read) + $(get write) + $(get timeout) + status))
    record "$1" "$2" ok "$ok"
    record "$1" "$2" errors "$errors"
    record "$1" "$2" rps "$(awk -v n="$ok" -v d="$(get duration_us)" 'BEGIN { printf "%.1f", n * 1e6 / d }')"
    record "$1" "$2" p50_ms "$(awk -v v="$(get p50_us)" 'BEGIN { printf "%.2f", v / 1000 }')"
    record "$1" "$2" p99_ms "$(awk -v v="$(get p99_us)" 'BEGIN { printf "%.2f", v / 1000 }')"
    if [ "$ok" -gt 0 ]; then
        record "$1" "$2" cpu_us "$(awk -v a="$c0" -v b="$c1" -v n="$ok" 'BEGIN { printf "%.1f", (b - a) / n }')"
        record "$1" "$2" sim_cpu_us "$(awk -v a="$s0" -v b="$s1" -v n="$ok" 'BEGIN { printf "%.1f", (b - a) / n }')"
        record "$1" "$2" nova_per_get "$(awk -v a="$nova" -v n="$ok" 'BEGIN { printf "%.2f", a / n }')"
        record "$1" "$2" wrk_cpu_us "$(awk -v a="$(cat "$work/wrk.out.cpu")" -v n="$ok" 'BEGIN { printf "%.1f", a / n }')"
    fi
    # shellcheck disable=SC2086
    record "$1" "$2" rss_kb "$(bench_rss_kb $pids)"
    echo "  $1 $2: $(awk -v s="$1" -v n="$2" '$1 == s && $2 == n { printf "%s=%s ", $3, $4 }' "$results")"
}

# GET /redfish/v1/Systems up to LISTINGS times, each within LIST_BOUND,
# stopping after the first that fails or runs out of time; records the
# median time, how many answered 200 with every member, and the slowest.
listing() { # NAME N
    : >"$work/listing"
    i=0
    while [ "$i" -lt "$LISTINGS" ]; do
        out=$(curl -sk --max-time "$LIST_BOUND" -u admin:password -o "$work/listing.json" \
            -w '%{http_code} %{time_total}' "$url/redfish/v1/Systems" || true)
        code=${out% *}
        members=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("Members@odata.count", -1))' \
            "$work/listing.json" 2>/dev/null || echo -1)
        if [ "$code" != 200 ] || [ "$members" != "$2" ]; then
            record "$1" "$2" list_failed "code=${code:-none},members=$members,after=${out#* }s"
            break
        fi
        echo "${out#* }" >>"$work/listing"
        i=$((i + 1))
    done
    record "$1" "$2" list_ok "$i/$LISTINGS"
    if [ "$i" -gt 0 ]; then
        record "$1" "$2" list_ms "$(sort -n "$work/listing" | awk '{ v[NR] = $1 } END { printf "%.1f", 1000 * (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')"
        record "$1" "$2" list_max_ms "$(sort -n "$work/listing" | tail -1 | awk '{ printf "%.1f", $1 * 1000 }')"
    fi
}

# --- the runs ---------------------------------------------------------------

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%MZ)
for n in $SYSTEMS; do
    echo "== $n systems"
    start_sim "$n"
    for s in $SERVERS; do
        # Plain HTTP: the listing, then keep-alive and one connection per
        # request; sushy also without its auth file.
        if "start_$s" "$n" false true; then
            listing "$s" "$n"
            load "$s/http" "$n" keep
            load "$s/http-close" "$n" close
            stop_server
        else
            record "$s/http" "$n" failed start
            stop_server
        fi
        if [ "$s" = sushy ]; then
            if start_sushy "$n" false false; then load "$s/http-noauth" "$n" keep; fi
            stop_server
        fi
        if "start_$s" "$n" true true; then
            load "$s/https" "$n" keep
            load "$s/https-close" "$n" close
        else
            record "$s/https" "$n" failed start
        fi
        stop_server
    done
    bench_stop "$sim_pid"
    bench_forget "$sim_pid"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the report -----------------------------------------------------------------

value() { # NAME N KEY
    awk -v s="$1" -v n="$2" -v k="$3" '$1 == s && $2 == n && $3 == k { v = $4 } END { print (v == "" ? "-" : v) }' "$results"
}
ratio() { # A B: A / B
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.0f", a / b }'
}

{
    echo "Run of \`contrib/bench/redfish.sh\` on $started: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'),"
    echo "$(nproc) cores, Linux $(uname -r); load average $load_before before, $load_after after."
    echo "novabmc $(bench_revision); sushy-tools $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("sushy-tools"))'),"
    echo "openstacksdk $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("openstacksdk"))'),"
    echo "Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2);"
    echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s."
    echo
    echo "| systems | server, transport | GETs answered 200 | errors | req/s | p50 ms | p99 ms | server CPU µs/req | Nova requests/req | simulator CPU µs/req | wrk CPU µs/req | RSS MiB after |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for n in $SYSTEMS; do
        for name in $(awk -v n="$n" '$2 == n { print $1 }' "$results" | awk '!seen[$0]++'); do
            [ "$(value "$name" "$n" rps)" = - ] && continue
            echo "| $n | $name | $(value "$name" "$n" ok) | $(value "$name" "$n" errors) | $(value "$name" "$n" rps) | $(value "$name" "$n" p50_ms) | $(value "$name" "$n" p99_ms) | $(value "$name" "$n" cpu_us) | $(value "$name" "$n" nova_per_get) | $(value "$name" "$n" sim_cpu_us) | $(value "$name" "$n" wrk_cpu_us) | $(awk -v k="$(value "$name" "$n" rss_kb)" 'BEGIN { if (k == "-") print "-"; else printf "%.1f", k / 1024 }') |"
        done
    done
    echo
    echo "GET /redfish/v1/Systems (plain HTTP, curl time_total; each within ${LIST_BOUND} s):"
    echo
    echo "| systems | server | answered | median ms | slowest ms | failed |"
    echo "|---|---|---|---|---|---|"
    for n in $SYSTEMS; do
        for s in $SERVERS; do
            echo "| $n | $s | $(value "$s" "$n" list_ok) | $(value "$s" "$n" list_ms) | $(value "$s" "$n" list_max_ms) | $(value "$s" "$n" list_failed) |"
        done
    done
    echo
    echo "novabmc ÷ sushy-emulator, same transport (req/s ratio; sushy's CPU per request ÷ novabmc's):"
    echo
    echo "| systems | transport | req/s ratio | CPU per request ratio |"
    echo "|---|---|---|---|"
    for n in $SYSTEMS; do
        for t in http http-close https https-close; do
            echo "| $n | $t | $(ratio "$(value "novabmc/$t" "$n" rps)" "$(value "sushy/$t" "$n" rps)") | $(ratio "$(value "sushy/$t" "$n" cpu_us)" "$(value "novabmc/$t" "$n" cpu_us)") |"
        done
    done
} >"$work/report.md"
cp "$results" "$root/target/redfish-bench-results.txt"
cat "$work/report.md"
