#!/usr/bin/env bash
# Instructions the daemon spends per fault and per session setup, counted by callgrind.
#
#   scripts/cost-per-fault.sh [CLUSTERS] [FAULTS]
#
# Runs `nightcrier simulate` (CLUSTERS simulated kubernetes-mcp-servers on 127.0.0.1, each
# sending FAULTS distinct faults at RATE per second once subscribed) in one process and the
# daemon under `valgrind --tool=callgrind` in another, at the default log level, until every
# fault has arrived; then stops the daemon with SIGTERM and reads its instruction count.
# Four runs (A holds its sessions as long as B, which sends twice as many faults at the
# same rate, so that what goes with time, such as health snapshots and timers, cancels):
#
#   A  CLUSTERS clusters, FAULTS faults each      B  CLUSTERS clusters, 2 × FAULTS each
#   C  CLUSTERS clusters, no faults               D  CLUSTERS / 2 clusters, no faults
#
# and prints
#
#   steady state per fault  = (B − A) / (CLUSTERS × FAULTS)   the marginal fault
#   per session setup       = (C − D) / (CLUSTERS − CLUSTERS/2)
#   everything per fault    = B / (CLUSTERS × 2 × FAULTS)      setup and shutdown included
#
# Pings and subscription audits are moved out to 1 h (their timing would be noise), and `severity_threshold = "info"` lets every simulated fault through to the
# intake; everything else is the default configuration (triage off, as the simulator
# writes it). Arrivals are counted from /metrics (the health listener on 127.0.0.1:PORT),
# scraped once the simulator has had the time to send everything. Instruction counts
# repeat closely but not to the instruction: how many events one read brings depends on
# timing.
#
# Environment: RATE (default 10 faults/s per cluster), PORT (default 19893), NIGHTCRIER_BIN
# (default: the release build of scripts/build-release.sh, brought up to date first),
# KEEP=DIR keeps the callgrind outputs (DIR/A.callgrind … D.callgrind) and logs for
# `callgrind_annotate`.
# Every process started here is stopped by its PID; everything binds to 127.0.0.1 only.
set -euo pipefail

clusters=${1:-100}
faults=${2:-200}
rate=${RATE:-10}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v valgrind >/dev/null || { echo "cost-per-fault: valgrind is required" >&2; exit 1; }
if [ "$clusters" -lt 2 ] || [ "$faults" -lt 1 ]; then
    echo "cost-per-fault: need CLUSTERS >= 2 and FAULTS >= 1" >&2
    exit 1
fi
if [ -n "${NIGHTCRIER_BIN:-}" ]; then
    bin=$NIGHTCRIER_BIN
else
    bash "$root/scripts/build-release.sh" >&2
    bin="${CARGO_TARGET_DIR:-$root/target}/release/nightcrier"
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP"
        cp "$work"/*.callgrind "$work"/*.log "$KEEP"/ 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=lib/wait-for.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib/wait-for.sh"

port=${PORT:-19893}

# run TAG CLUSTERS FAULTS [HOLD]: prints the daemon's instruction count. With faults, the
# sessions are held at least HOLD seconds after the first is subscribed (default: the time
# the simulator takes to send FAULTS).
run() {
    local tag=$1 n=$2 k=$3 hold=${4:-0} sim_rate=$rate sim_faults=()
    if [ "$k" -eq 0 ]; then sim_rate=0; else sim_faults=(--faults "$k"); fi
    "$bin" simulate --clusters "$n" --rate "$sim_rate" "${sim_faults[@]}" \
        --write-block-timeout none --name-prefix "$tag" \
        --write-config "$work/$tag.toml" > "$work/$tag.sim" 2>&1 &
    local sim=$!
    pids+=("$sim")
    wait_for "$work/$tag.sim" '^ready' 1 60
    # Every fault is let through to the intake (the default threshold would filter the
    # simulator's `info` faults before their log line), so each run sees CLUSTERS × FAULTS.
    {
        printf 'severity_threshold = "info"\n'
        cat "$work/$tag.toml"
        printf '[health]\nlisten = "127.0.0.1:%s"\n' "$port"
        printf '[connection]\nping_interval = "1h"\nsubscription_audit_interval = "1h"\n'
    } > "$work/$tag.run.toml"
    env -u RUST_LOG valgrind --tool=callgrind --callgrind-out-file="$work/$tag.callgrind" \
        --log-file="$work/$tag.valgrind" \
        "$bin" run --config "$work/$tag.run.toml" > "$work/$tag.log" 2>&1 &
    local daemon=$!
    pids+=("$daemon")
    wait_for "$work/$tag.log" ' subscribed (' "$n" 600 "$daemon"
    if [ "$k" -gt 0 ]; then
        # The per-fault info line is rate-limited per cluster, so arrivals are read from
        # /metrics; scraping costs instructions too, so only once the simulator has had the
        # time to send everything, and then about once a second until all have arrived.
        local send=$(((k + sim_rate - 1) / sim_rate))
        sleep $((hold > send ? hold : send))
        wait_for_faults "$port" $((n * k)) 1800 "$daemon"
    fi
    kill -TERM "$daemon"
    wait "$daemon" || true
    kill -TERM "$sim"
    wait "$sim" 2>/dev/null || true
    awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$work/$tag.callgrind"
}

half=$((clusters / 2))
echo "# $clusters clusters, $faults and $((2 * faults)) faults each at $rate/s; sessions: $half and $clusters clusters" >&2
# Not in $(…) subshells: the PIDs a run starts must reach `cleanup`.
# A holds its sessions as long as B takes to send twice the faults, so what goes with time
# (health snapshots, timers) is the same in both and B − A is the extra faults alone.
run A "$clusters" "$faults" $(((2 * faults + rate - 1) / rate)) > "$work/A.count"
a=$(cat "$work/A.count")
echo "A $clusters clusters × $faults faults: $a instructions" >&2
run B "$clusters" $((2 * faults)) > "$work/B.count"
b=$(cat "$work/B.count")
echo "B $clusters clusters × $((2 * faults)) faults: $b instructions" >&2
run C "$clusters" 0 > "$work/C.count"
c=$(cat "$work/C.count")
echo "C $clusters clusters, no faults: $c instructions" >&2
run D "$half" 0 > "$work/D.count"
d=$(cat "$work/D.count")
echo "D $half clusters, no faults: $d instructions" >&2

awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v n="$clusters" -v h="$half" -v k="$faults" 'BEGIN {
    printf "steady state per fault: %d instructions\n", (b - a) / (n * k)
    printf "per session setup:      %d instructions\n", (c - d) / (n - h)
    printf "everything per fault:   %d instructions (%d clusters x %d faults, setup and shutdown included)\n", b / (n * 2 * k), n, 2 * k
}'
