# Shared helpers of the benchmark scripts (sourced, not run): node
# addresses on loopback, the novabmc configuration for N simulated nodes,
# process accounting from /proc, and a cleanup that stops exactly the
# processes a script started.
#
# Node i of a server whose second octet is B listens on
# 127.B.(i / 250).(1 + i % 250), so up to 64,000 nodes fit in one /16 of
# loopback and no address leaves 127.0.0.0/8.

bench_addr() { # B i
    echo "127.$1.$(($2 / 250)).$(($2 % 250 + 1))"
}

# Writes one address:port per line for nodes 0..N-1.
bench_targets() { # B N PORT FILE
    awk -v b="$1" -v n="$2" -v p="$3" 'BEGIN {
        for (i = 0; i < n; i++) printf "127.%d.%d.%d:%d\n", b, int(i / 250), i % 250 + 1, p
    }' >"$4"
}

# Comma-separated host:port list of nodes FIRST..FIRST+COUNT-1 (mod N),
# for ipmipower's -h.
bench_hostlist() { # B N PORT FIRST COUNT
    awk -v b="$1" -v n="$2" -v p="$3" -v f="$4" -v c="$5" 'BEGIN {
        for (k = 0; k < c; k++) {
            i = (f + k) % n
            printf "%s127.%d.%d.%d:%d", (k ? "," : ""), b, int(i / 250), i % 250 + 1, p
        }
    }'
}

# A novabmc configuration: user admin/password, the simulated backend,
# N nodes. Sessions per node stay at the default.
bench_novabmc_config() { # B N PORT FILE
    {
        printf '[users.admin]\npassword = "password"\n\n[backend]\ntype = "simulated"\n\n'
        awk -v b="$1" -v n="$2" -v p="$3" 'BEGIN {
            for (i = 0; i < n; i++)
                printf "[nodes.n%d]\naddress = \"127.%d.%d.%d\"\nport = %d\n", i, b, int(i / 250), i % 250 + 1, p
        }'
    } >"$4"
}

# The PIDs of a process and all its descendants, from /proc.
bench_tree() { # PID
    echo "$1"
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        bench_tree "$c"
    done
}

# utime+stime of the given processes together, in microseconds. Fields
# are counted after the command name's ')' (names may hold spaces); the
# tick is USER_HZ.
bench_cpu_us() { # PID...
    hz=$(getconf CLK_TCK)
    for p in "$@"; do
        sed 's/.*) //' /proc/"$p"/stat 2>/dev/null || true
    done | awk -v hz="$hz" '{ t += $12 + $13 } END { printf "%d\n", t * 1000000 / hz }'
}

# CPU time of the given processes together, in nanoseconds: the sum of
# their threads' run time from /proc/PID/task/TID/schedstat. It is the
# clock utime+stime are computed from, without their 10 ms ticks, so short
# runs can be measured too.
bench_cpu_ns() { # PID...
    for p in "$@"; do
        cat /proc/"$p"/task/*/schedstat 2>/dev/null || true
    done | awk '{ t += $1 } END { printf "%.0f\n", t }'
}

# Resident set of the given processes together, in KiB (shared pages
# counted once per process, as `ps` does).
bench_rss_kb() { # PID...
    for p in "$@"; do
        awk '/^VmRSS/ { print $2 }' /proc/"$p"/status 2>/dev/null || true
    done | awk '{ t += $1 } END { printf "%d\n", t }'
}

# Proportional set (shared pages divided among their users), in KiB: the
# fair sum for forked or many-process servers.
bench_pss_kb() { # PID...
    for p in "$@"; do
        awk '/^Pss:/ { print $2 }' /proc/"$p"/smaps_rollup 2>/dev/null || true
    done | awk '{ t += $1 } END { printf "%d\n", t }'
}

# Milliseconds since the epoch.
bench_now_ms() { date +%s%3N; }

# Polls until an RMCP+ session to HOST:PORT reports power status, for at
# most SECS seconds; fails after that.
bench_wait_ipmi() { # HOST PORT SECS [SUITE]
    deadline=$(($(date +%s) + $3))
    until timeout 5 ipmitool -I lanplus -H "$1" -p "$2" -U admin -P password -C "${4:-3}" \
        -R 1 -N 1 power status >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "no answer from $1:$2 after $3 s" >&2
            return 1
        fi
        sleep 0.05
    done
}

# Started processes are recorded here and stopped by bench_cleanup: the
# recorded PID and whatever descendants it has at that moment, nothing else.
bench_pids=""
bench_started() { bench_pids="$bench_pids $1"; }
# Drops a process that has been waited for, so that cleanup never signals
# whatever process is given its PID later.
bench_forget() { bench_pids=$(echo "$bench_pids" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' '); }

# Runs a command in the background and waits for it: a signal to the
# script then runs its trap at once instead of after the command.
bench_run() {
    "$@" &
    bench_child=$!
    bench_started $bench_child
    wait $bench_child && rc=0 || rc=$?
    bench_forget $bench_child
    return $rc
}

# Whether a process runs (a zombie waiting to be reaped does not).
bench_alive() { # PID
    [ -r /proc/"$1"/stat ] && ! sed 's/.*) //' /proc/"$1"/stat 2>/dev/null | grep -q '^Z'
}

# Stops the given processes and their descendants: TERM, then KILL after
# two seconds for any still there.
bench_stop() { # PID...
    tree=""
    for p in "$@"; do tree="$tree $(bench_tree "$p" 2>/dev/null | tr '\n' ' ')"; done
    # shellcheck disable=SC2086
    kill $tree 2>/dev/null || true
    alive=$tree
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        alive=""
        for p in $tree; do bench_alive "$p" && alive="$alive $p"; done
        [ -z "$alive" ] && break
        sleep 0.2
    done
    # shellcheck disable=SC2086
    if [ -n "$alive" ]; then kill -9 $alive 2>/dev/null || true; fi
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

bench_stop_all() {
    # shellcheck disable=SC2086
    [ -n "$bench_pids" ] && bench_stop $bench_pids
    bench_pids=""
}

# Makes a temporary directory, $work, removed together with every process
# recorded by bench_started when the script exits, fails or is stopped.
bench_workdir() {
    work=$(mktemp -d)
    trap bench_workdir_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_workdir_cleanup() {
    bench_stop_all
    rm -rf "$work"
}

# The commit the daemon is built from, marked when its code (not the docs
# or these scripts) differs from it.
bench_revision() {
    rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    git diff --quiet HEAD -- src proto novasim Cargo.toml Cargo.lock 2>/dev/null || rev="$rev with local changes"
    echo "$rev"
}

# For a script that runs one Nova simulator and one daemon: a temporary
# directory in $work, their PIDs in $sim_pid and $bmc_pid (set them when
# started), and a trap that stops both and removes the directory on exit
# or Ctrl-C.
bench_sim_and_daemon() {
    work=$(mktemp -d)
    sim_pid=""
    bmc_pid=""
    trap bench_sim_and_daemon_cleanup EXIT INT TERM
}

bench_sim_and_daemon_cleanup() {
    [ -n "$bmc_pid" ] && kill "$bmc_pid" 2>/dev/null || true
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
