#!/usr/bin/env bash
# Peak memory and CPU time of nightcrier and of the official MCP SDK clients doing the same
# work against the same simulated fleet, one run each.
#
#   scripts/footprint.sh [CLUSTERS] [FAULTS]
#
# For each client in turn: starts `nightcrier simulate` with CLUSTERS clusters that send
# FAULTS distinct faults each (RATE per second per cluster once subscribed), runs the client
# until every fault has arrived, then reads its peak resident memory (VmHWM) and CPU time
# (utime + stime) from /proc and stops it. The clients:
#
#   nightcrier   `nightcrier run` on the configuration the simulator writes (default log
#                level, triage off, health server off), with severity_threshold = "info" so
#                that, like the SDK clients, it takes in every fault
#   python-sdk   scripts/footprint/sdk_client.py with the official MCP Python SDK in
#                .peers/venv (scripts/install-peers.sh installs it)
#   ts-sdk       scripts/footprint/sdk_client.mjs with the official MCP TypeScript SDK
#                (@modelcontextprotocol/sdk, installed here under .peers/ts-sdk with npm)
#
# Each SDK client does what nightcrier does for every cluster, all clusters in one process:
# initialize, logging/setLevel, the GET stream, tools/call events_subscribe, and receiving
# the fault notifications. Prints one line per client and the ratios to nightcrier.
#
# nightcrier runs with its health listener on 127.0.0.1:PORT, where /metrics tells when every
# fault has arrived; it is asked about once a second, from when the simulator can have sent
# them all (FAULTS / RATE seconds after the start) on.
#
# Environment: RATE (default 5), PORT (default 19894), NIGHTCRIER_BIN (default: the release
# build of scripts/build-release.sh, brought up to date first), SKIP_TS=1 leaves the
# TypeScript SDK out, SKIP_SDK=1 both SDK clients, EXTRA_TOML is TOML text appended to
# nightcrier's configuration (e.g. '[connection]\nbatch_window = "off"').
# Every process started here is stopped by its PID; everything binds to 127.0.0.1 only.
set -euo pipefail

clusters=${1:-100}
faults=${2:-200}
rate=${RATE:-5}
ts_sdk_version=1.32.2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python="$root/.peers/venv/bin/python"
[ -x "$python" ] || { echo "footprint: run scripts/install-peers.sh first (no $python)" >&2; exit 1; }
if [ -n "${NIGHTCRIER_BIN:-}" ]; then
    bin=$NIGHTCRIER_BIN
else
    bash "$root/scripts/build-release.sh" >&2
    bin="${CARGO_TARGET_DIR:-$root/target}/release/nightcrier"
fi
ts_dir="$root/.peers/ts-sdk"
if [ "${SKIP_TS:-0}" != 1 ] && [ "${SKIP_SDK:-0}" != 1 ] &&
    [ ! -f "$ts_dir/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
    mkdir -p "$ts_dir"
    npm install --prefix "$ts_dir" --no-audit --no-fund --no-progress --save-exact \
        --loglevel=error "@modelcontextprotocol/sdk@$ts_sdk_version" >&2
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=${PORT:-19894}
# shellcheck source=lib/wait-for.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib/wait-for.sh"

# measure CLIENT: prints "CLIENT hwm_kib cpu_ms user_ms sys_ms seconds"
measure() {
    local client=$1
    "$bin" simulate --clusters "$clusters" --rate "$rate" --faults "$faults" \
        --write-block-timeout none --name-prefix fp \
        --write-config "$work/$client.toml" > "$work/$client.sim" 2>&1 &
    local sim=$!
    pids+=("$sim")
    wait_for "$work/$client.sim" '^ready' 1 60
    grep -v '^ready' "$work/$client.sim" > "$work/$client.endpoints"
    local started=$SECONDS pid done_pattern done_count
    case $client in
        nightcrier)
            # Every fault through to the intake, like the SDK clients that see them all;
            # arrivals are read from /metrics, so the health listener is on.
            {
                printf 'severity_threshold = "info"\n'
                cat "$work/$client.toml"
                printf '[health]\nlisten = "127.0.0.1:%s"\n%b\n' "$port" "${EXTRA_TOML:-}"
            } > "$work/$client.run.toml"
            env -u RUST_LOG "$bin" run --config "$work/$client.run.toml" > "$work/$client.log" 2>&1 &
            pid=$!
            ;;
        python-sdk)
            "$python" "$root/scripts/footprint/sdk_client.py" "$work/$client.endpoints" "$faults" \
                > "$work/$client.log" 2>&1 &
            pid=$!
            done_pattern='^done '
            done_count=1
            ;;
        ts-sdk)
            SDK_DIR="$ts_dir" node "$root/scripts/footprint/sdk_client.mjs" \
                "$work/$client.endpoints" "$faults" > "$work/$client.log" 2>&1 &
            pid=$!
            done_pattern='^done '
            done_count=1
            ;;
    esac
    pids+=("$pid")
    if [ "$client" = nightcrier ]; then
        # Scraping /metrics costs the daemon's health thread CPU the SDK clients do not
        # spend: ask only once the simulator has had the time to send every fault.
        sleep "$(awk -v f="$faults" -v r="$rate" 'BEGIN { print (r > 0 ? f / r : 0) }')"
        wait_for_faults "$port" $((clusters * faults)) 1800 "$pid"
        curl -fsS "http://127.0.0.1:$port/metrics" | awk -v n=$((clusters * faults)) '
            $1 == "nightcrier_loop_wakeups_total" { wakeups = $2 }
            $1 == "nightcrier_loop_batch_waits_total" { waits = $2 }
            END { printf "# nightcrier: %d faults, %d wake-ups of the loop, %d batch waits\n", n, wakeups, waits }' >&2
    else
        wait_for "$work/$client.log" "$done_pattern" "$done_count" 1800 "$pid"
    fi
    local hwm user sys hz
    hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$pid/status")
    # utime and stime; the command name in field 2 has no spaces for these clients.
    user=$(awk '{ print $14 }' "/proc/$pid/stat")
    sys=$(awk '{ print $15 }' "/proc/$pid/stat")
    hz=$(getconf CLK_TCK)
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    kill "$sim"
    wait "$sim" 2>/dev/null || true
    echo "$client $hwm $(((user + sys) * 1000 / hz)) $((user * 1000 / hz)) $((sys * 1000 / hz)) $((SECONDS - started))"
}

clients=(nightcrier)
[ "${SKIP_SDK:-0}" = 1 ] || clients+=(python-sdk)
[ "${SKIP_SDK:-0}" = 1 ] || [ "${SKIP_TS:-0}" = 1 ] || clients+=(ts-sdk)
echo "# $clusters clusters x $faults faults at $rate/s per cluster" >&2
printf '%-11s %10s %8s %8s %8s %8s\n' client hwm_kib cpu_ms user_ms sys_ms seconds
results=()
for client in "${clients[@]}"; do
    # Not in a $(…) subshell: the PIDs it starts must reach `cleanup`.
    measure "$client" > "$work/$client.result"
    line=$(cat "$work/$client.result")
    results+=("$line")
    # shellcheck disable=SC2086
    printf '%-11s %10s %8s %8s %8s %8s\n' $line
done
printf '%s\n' "${results[@]}" | awk '
    $1 == "nightcrier" { hwm = $2; cpu = $3 }
    $1 != "nightcrier" { name[++n] = $1; h[n] = $2; c[n] = $3 }
    END {
        for (i = 1; i <= n; i++)
            printf "%s / nightcrier: %.1fx peak memory, %.1fx CPU time\n", name[i], h[i] / hwm, c[i] / (cpu > 0 ? cpu : 1)
    }'
