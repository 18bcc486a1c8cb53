#!/usr/bin/env bash
# Memory and CPU of the daemon holding N cluster sessions, plain and TLS.
#
#   scripts/load-test.sh [CLUSTERS] [RATE]
#
# Environment: SETTLE_SECONDS (default 8) how long faults flow before measuring;
# HEALTH=on to run the health and metrics server too (on a free port of 127.0.0.1);
# EXTRA_TOML, TOML text appended to the daemon's generated configuration;
# NIGHTCRIER_BIN, the binary to measure (default: the release build of
# scripts/build-release.sh, built or brought up to date first).
#
# Starts `nightcrier simulate` with CLUSTERS simulated kubernetes-mcp-servers on 127.0.0.1
# (RATE faults per second per cluster once subscribed), runs the daemon against them until
# every session is active, lets faults flow for a few seconds, then reads the daemon's
# resident memory (VmRSS, VmHWM) and CPU time from /proc. Runs a 1-cluster baseline too, so
# the cost per connection is (RSS[N] - RSS[1]) / (N - 1). Every process started here is
# stopped by its PID; everything binds to 127.0.0.1 only.
set -euo pipefail

clusters=${1:-100}
rate=${2:-1}
settle=${SETTLE_SECONDS:-8}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${NIGHTCRIER_BIN:-}" ]; then
    bin=$NIGHTCRIER_BIN
else
    # The binary setup builds; `cargo build --release` or `cargo bench` may have replaced
    # it with a dynamically linked one since, and this puts it back (only the link reruns).
    bash "$root/scripts/build-release.sh" >&2
    bin="${CARGO_TARGET_DIR:-$root/target}/release/nightcrier"
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -keyout "$work/ca.key" -out "$work/ca.pem" -subj "/CN=load test CA" \
    -addext basicConstraints=critical,CA:TRUE 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/server.key" -out "$work/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -out "$work/server.pem" -days 1 -extfile "$work/ext" 2>/dev/null

field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$2/status"; }

# wait_for FILE PATTERN COUNT SECONDS: until FILE has COUNT lines matching PATTERN.
wait_for() {
    local deadline=$((SECONDS + $4))
    local found
    while found=$(grep -c -- "$2" "$1" 2>/dev/null) || true; [ "${found:-0}" -lt "$3" ]; do
        if [ $SECONDS -ge "$deadline" ]; then
            echo "timed out waiting for $3 × '$2' in $1" >&2
            tail -5 "$1" >&2
            return 1
        fi
        sleep 0.2
    done
}

rollup() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$2/smaps_rollup"; }

# measure MODE N: prints "MODE N rss_kib anon_kib hwm_kib cpu_ms faults"
measure() {
    local mode=$1 n=$2 tag="$1-$2" sim_args=()
    if [ "$mode" = tls ]; then
        sim_args=(--tls-cert "$work/server.pem" --tls-key "$work/server.key" --ca-file "$work/ca.pem")
    fi
    "$bin" simulate --clusters "$n" --rate "$rate" --name-prefix "$mode" \
        --write-config "$work/$tag.toml" "${sim_args[@]}" > "$work/$tag.sim" 2>&1 &
    local sim=$!
    pids+=("$sim")
    wait_for "$work/$tag.sim" '^ready' 1 60
    if [ "${HEALTH:-off}" = on ]; then
        printf '[health]\nlisten = "127.0.0.1:0"\n%b\n' "${EXTRA_TOML:-}" >> "$work/$tag.toml"
    else
        printf '[health]\nenabled = false\n%b\n' "${EXTRA_TOML:-}" >> "$work/$tag.toml"
    fi
    RUST_LOG=info "$bin" run --config "$work/$tag.toml" > "$work/$tag.log" 2>&1 &
    local daemon=$!
    pids+=("$daemon")
    wait_for "$work/$tag.log" ' subscribed (' "$n" 120
    sleep "$settle"
    local rss anon hwm ticks hz faults
    rss=$(field VmRSS "$daemon")
    anon=$(rollup Anonymous "$daemon")
    hwm=$(field VmHWM "$daemon")
    ticks=$(awk '{ print $14 + $15 }' "/proc/$daemon/stat")
    hz=$(getconf CLK_TCK)
    kill "$daemon"
    wait "$daemon" || true
    faults=$(grep -c ' fault=' "$work/$tag.log" || true)
    kill "$sim"
    wait "$sim" 2>/dev/null || true
    echo "$mode $n $rss $anon $hwm $((ticks * 1000 / hz)) $faults"
}

echo "# clusters=$clusters rate=$rate/s per cluster, settle=${settle}s" >&2
printf '%-5s %8s %10s %10s %10s %8s %8s\n' mode clusters rss_kib anon_kib hwm_kib cpu_ms faults
results=()
for mode in plain tls; do
    for n in 1 "$clusters"; do
        line=$(measure "$mode" "$n")
        results+=("$line")
        # shellcheck disable=SC2086
        printf '%-5s %8s %10s %10s %10s %8s %8s\n' $line
    done
done
for mode in plain tls; do
    printf '%s\n' "${results[@]}" | awk -v m="$mode" -v n="$clusters" '
        $1 == m && $2 == 1 { rss1 = $3; anon1 = $4 }
        $1 == m && $2 == n { rssn = $3; anonn = $4 }
        END {
            printf "%s: %.1f MiB RSS for %d clusters (%.1f MiB private heap); per cluster: %.1f KiB RSS, %.1f KiB heap\n",
                m, rssn / 1024, n, anonn / 1024, (rssn - rss1) / (n - 1), (anonn - anon1) / (n - 1)
        }'
done
