#!/bin/sh
# Runs every fuzz target of proto/fuzz in turn, SECONDS each (default 60),
# one process at a time, on the stable toolchain (-s none: coverage-guided,
# no sanitizer). The corpora are seeded first from fixtures/captures (see
# proto/examples/fuzz_seeds.rs); corpora and crash artifacts stay under
# proto/fuzz (ignored by git). Prints executions and crashes per target and
# exits non-zero if any target crashed.
#
# Needs cargo-fuzz: cargo install cargo-fuzz
set -u
cd "$(dirname "$0")/.."
seconds=${1:-60}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz" >&2
    exit 2
fi

cargo run -q -p novabmc-proto --example fuzz_seeds -- proto/fuzz/corpus || exit 2

cd proto/fuzz
cargo fuzz build -s none || exit 2
status=0
summary=""
for target in $(cargo fuzz list); do
    log="target/fuzz-$target.log"
    mkdir -p target
    before=$(find "artifacts/$target" -type f 2>/dev/null | wc -l)
    echo "fuzz.sh: $target for ${seconds}s"
    cargo fuzz run -s none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    after=$(find "artifacts/$target" -type f 2>/dev/null | wc -l)
    crashes=$((after - before))
    if [ "$rc" -ne 0 ]; then
        status=1
        tail -n 30 "$log"
    fi
    summary="$summary$target: ${runs:-?} executions, $crashes new crash artifacts, exit $rc
"
done
printf '\n%s' "$summary"
exit "$status"
