#!/bin/sh
# Drives novabmc (release build, simulated backend, N nodes on loopback)
# at saturation with the project's own load client (proto/examples/load.rs):
# full sessions (Open Session, RAKP 1-4, Get Chassis Status, Close Session)
# and in-session Get Chassis Status, for cipher suites 17 and 3. Prints
# operations per second, p50/p99 latency, and the daemon's CPU per
# operation from /proc/PID/stat before and after each run.
#
#   contrib/bench/load.sh [nodes] [seconds] [in-flight] [client-threads]
#
# With PROFILE=perf the daemon is sampled with `perf record -g` (cpu-clock)
# during the suite-17 runs and a summary of the profile is printed; with
# PROFILE=syscalls its system calls and wake-ups per operation are counted
# during extra suite-17 runs, with perf's kernel tracepoints and with
# `strace -c -f` (whose runs give counts, not speed). NOVABMC=path runs
# that daemon binary instead of building one (to compare two builds).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
. "$here/lib.sh"

nodes=${1:-100}
seconds=${2:-10}
inflight=${3:-64}
threads=${4:-1}
profile=${PROFILE:-}
# A node holds 32 sessions by default; more in flight than half of that per
# node would measure refusals.
[ "$inflight" -gt $((nodes * 16)) ] && inflight=$((nodes * 16))
octet=200
port=16623

if [ -n "${NOVABMC:-}" ]; then
    bin=$NOVABMC
else
    cargo build --release --quiet --bin novabmc
    bin=target/release/novabmc
fi
cargo build --release --quiet -p novabmc-proto --example load
load=target/release/examples/load

bench_workdir

bench_novabmc_config $octet "$nodes" $port "$work/novabmc.toml"
bench_targets $octet "$nodes" $port "$work/targets"
"$bin" --log warn serve --config "$work/novabmc.toml" 2>"$work/novabmc.log" &
pid=$!
bench_started $pid
bench_wait_ipmi "$(bench_addr $octet $((nodes - 1)))" $port 120

echo "== novabmc $(bench_revision), $nodes nodes," \
    "$inflight in flight, $threads client threads, ${seconds} s per run"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

run() { # mode suite [seconds]
    bench_run "$load" --targets "$work/targets" --mode "$1" --suite "$2" --duration "${3:-$seconds}" \
        --concurrency "$inflight" --threads "$threads" --pid "$pid"
}

# The profile in a few lines: where the daemon's samples fall (kernel,
# tokio, engine, crypto, allocation...), by self time, and how much of the
# time is spent under each system call, callees included.
perf_summary() { # perf.data
    echo "   samples by kind (self time):"
    perf report -i "$1" --stdio --no-children --sort dso,sym -g none 2>/dev/null | grep '%' | awk '
        { pct = $1 + 0
          if ($0 ~ /\[k\]/) b = "kernel"
          else if ($0 ~ /sha1|sha2|sha256|Sha|hmac|Hmac|aes|Aes|cbc|compress/) b = "crypto"
          else if ($0 ~ /malloc|free|realloc|_int_|tcache|calloc|alloc::/) b = "allocation"
          else if ($0 ~ /memcpy|memmove|memset/) b = "memcpy/memset"
          else if ($0 ~ /tokio|mio::/) b = "tokio+mio"
          else if ($0 ~ /novabmc_proto/) b = "engine"
          else if ($0 ~ /novabmc::/) b = "daemon"
          else if ($0 ~ /libc/) b = "libc other"
          else b = "other"
          t[b] += pct }
        END { for (b in t) printf "     %-14s %5.1f%%\n", b, t[b] }' | sort -k2 -rn
    echo "   time under each system call (callees included) and in softirq:"
    perf report -i "$1" --stdio --children --sort sym -g none 2>/dev/null |
        grep -E '\[k\] (__x64_sys_[a-z_]+|handle_softirqs|do_syscall_64)$' |
        awk '{ printf "     %-24s %6s\n", $NF, $1 }' | head -12
    echo "   hottest symbols (self):"
    perf report -i "$1" --stdio --no-children --sort dso,sym -g none --percent-limit 0.8 2>/dev/null |
        grep '%' | awk '{ printf "     %6s %s\n", $1, substr($0, index($0, $4)) }' | head -25
}

for suite in 17 3; do
    for mode in sessions commands; do
        echo "-- suite $suite, $mode"
        if [ "$profile" = perf ] && [ "$suite" = 17 ]; then
            perf record -q -e cpu-clock -F 1999 -g -p "$pid" -o "$work/perf.$mode" \
                -- sleep $((seconds + 1)) 2>/dev/null &
            perf_pid=$!
            bench_started $perf_pid
            sleep 0.3
            run "$mode" "$suite"
            wait "$perf_pid" || true
            bench_forget "$perf_pid"
            perf_summary "$work/perf.$mode"
        else
            run "$mode" "$suite"
        fi
    done
done

if [ "$profile" = syscalls ]; then
    for mode in sessions commands; do
        op=${mode%s}
        # Kernel tracepoints count without slowing the daemon down.
        echo "-- system calls and wake-ups per $op (perf stat tracepoints), suite 17"
        events=raw_syscalls:sys_enter,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto
        events=$events,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex
        events=$events,context-switches,sched:sched_wakeup
        perf stat -x, -e "$events" -p "$pid" -o "$work/stat.$mode" -- sleep $((seconds + 1)) &
        stat_pid=$!
        bench_started $stat_pid
        sleep 0.3
        run "$mode" 17 >"$work/load.$mode"
        wait "$stat_pid" || true
            bench_forget "$stat_pid"
        ops=$(sed -n 's/.* ops=\([0-9]*\) .*/\1/p' "$work/load.$mode")
        awk -F, -v ops="$ops" -v op="$op" '$3 != "" && $1 ~ /^[0-9]+$/ {
            printf "   %-32s %10d  %6.2f per %s\n", $3, $1, $1 / ops, op }' "$work/stat.$mode"
        # strace -c as the issue measured it; strace slows the daemon down
        # several times, so epoll_wait batches more than it does unobserved.
        echo "-- strace -c -f, suite 17, $mode (counts only: strace slows the daemon)"
        timeout 60 strace -c -f -q -p "$pid" -o "$work/strace.$mode" &
        strace_pid=$!
        bench_started $strace_pid
        sleep 0.5
        run "$mode" 17 5 >"$work/load.$mode"
        sleep 0.3
        kill -INT "$strace_pid" 2>/dev/null || true
        wait "$strace_pid" 2>/dev/null || true
        bench_forget "$strace_pid"
        ops=$(sed -n 's/.* ops=\([0-9]*\) .*/\1/p' "$work/load.$mode")
        awk -v ops="$ops" -v op="$op" '
            $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
                errors = (NF == 6) ? $5 : 0
                printf "   %-14s %9d calls %8d errors  %6.2f per %s\n", $NF, $4, errors, $4 / ops, op
                total += $4 }
            END { printf "   %-14s %9d calls %17s %6.2f per %s\n", "all", total, "", total / ops, op }
        ' "$work/strace.$mode"
    done
fi
