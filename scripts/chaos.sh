#!/usr/bin/env bash
# Chaos soak: nightcrier watching 100 simulated clusters while servers are killed and
# restarted at random, GET streams are cut, servers stall, and the network misbehaves.
#
#   scripts/chaos.sh [SECONDS]          (default 600)
#
# The daemon and the simulator run inside a private network namespace, so the faults on
# its loopback (tc loss and delay, the link taken down) touch nothing else; without the
# rights to make one (not root, or no `ip netns`), the soak runs without network faults
# and says so. Checked at the end (exit status 1 if any fails):
#   - every session is active again;
#   - every fault the servers wrote arrived at most once (no repeat was triaged, with a
#     dedup window of 30 s, so a repeat delivered later would show), and every fault the
#     servers wrote after the chaos stopped arrived exactly once;
#   - the daemon's fd count equals the count before the chaos began;
#   - RSS drifted by at most 1 MiB from the end of the first minute (of the first half,
#     for runs shorter than two minutes) to the end;
#   - every cut of a stream was counted as a stream gap, every kill of a server as a
#     subscription gap.
# The dedup window is 30 s so that its table (one key per fault) has reached its steady
# size within the first minute: RSS growth after that is not the table filling up.
# Environment: NIGHTCRIER_BIN (skip the release build), CLUSTERS (100), SEED (random),
# KEEP=1 (keep the work directory with the logs).
set -euo pipefail

seconds=${1:-600}
clusters=${CLUSTERS:-100}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${NIGHTCRIER_BIN:-}" ]; then
    bin=$NIGHTCRIER_BIN
else
    bash "$root/scripts/build-release.sh" >&2
    bin="${CARGO_TARGET_DIR:-$root/target}/release/nightcrier"
fi
RANDOM=${SEED:-$$}

work=$(mktemp -d)
ns=""
pids=()
say() { printf 'chaos: %s\n' "$*" >&2; }

cleanup() {
    exec 3>&- 2>/dev/null || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$ns" ]; then ip netns del "$ns" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then say "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The network namespace, if this machine lets us make one. `in_ns` is a command prefix,
# so that `$!` is the daemon's own pid (ip netns exec execs it).
in_ns=()
net_faults=none
if [ "$(id -u)" = 0 ] && ! command -v ip >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    say "installing iproute2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1 && ip netns add "nc-chaos-$$" 2>/dev/null; then
    ns="nc-chaos-$$"
    in_ns=(ip netns exec "$ns")
    "${in_ns[@]}" ip link set lo up
    # netem where the kernel has it; otherwise a token bucket, whose queue adds delay and
    # whose overflow drops packets.
    if "${in_ns[@]}" tc qdisc add dev lo root netem delay 20ms 10ms loss 2% 2>/dev/null; then
        "${in_ns[@]}" tc qdisc del dev lo root
        shaping=(netem delay 20ms 10ms loss 2%)
    elif "${in_ns[@]}" tc qdisc add dev lo root tbf rate 4mbit burst 16kb latency 50ms 2>/dev/null; then
        "${in_ns[@]}" tc qdisc del dev lo root
        shaping=(tbf rate 4mbit burst 16kb latency 50ms)
        say "tc netem is not in this kernel; shaping with: ${shaping[*]}"
    else
        shaping=()
        say "no tc qdisc available; links are still taken down"
    fi
    net_faults="namespace $ns: ${shaping[*]:-no shaping}, link down"
else
    say "no network namespace (needs root and iproute2): running without network faults"
fi

# The simulator takes commands on a fifo (kept open here on fd 3).
mkfifo "$work/ctl"
"${in_ns[@]}" "$bin" simulate --control --clusters "$clusters" --rate 0 --name-prefix chaos \
    --write-config "$work/nightcrier.toml" < "$work/ctl" > "$work/sim.out" 2> "$work/sim.err" &
pids+=($!)
exec 3> "$work/ctl"
ctl() { printf '%s\n' "$*" >&3; }

wait_for() { # FILE PATTERN COUNT SECONDS
    local deadline=$((SECONDS + $4)) found
    while found=$(grep -c -- "$2" "$1" 2>/dev/null) || true; [ "${found:-0}" -lt "$3" ]; do
        if [ $SECONDS -ge "$deadline" ]; then
            say "timed out waiting for $3 × '$2' in $1"
            tail -5 "$1" >&2
            return 1
        fi
        sleep 0.2
    done
}
wait_for "$work/sim.out" '^ready' 1 60

cat >> "$work/nightcrier.toml" <<'EOF'

[health]
listen = "127.0.0.1:0"

[reconnect]
initial = "200ms"
max = "3s"

[connection]
connect_timeout = "3s"
subscription_audit_interval = "5s"
# Control connections stay open between audits, so every cluster holds two sockets and
# the fd counts before and after compare like with like.
control_idle_timeout = "600s"

[dedup]
window = "30s"
EOF
RUST_LOG=info,nightcrier::cluster::connection::outputs=debug "${in_ns[@]}" "$bin" run --config "$work/nightcrier.toml" > "$work/daemon.log" 2>&1 &
daemon=$!
pids+=("$daemon")
wait_for "$work/daemon.log" 'health server listening on' 1 30
health=$(grep -o 'health server listening on [0-9.:]*' "$work/daemon.log" | awk '{ print $5 }')
wait_for "$work/daemon.log" ' subscribed (' "$clusters" 120

# HTTP through python3 (which the test setup installs), so the soak needs no curl or jq.
get() {
    "${in_ns[@]}" python3 -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "http://$health$1"
}
active() { get /metrics | awk '$1 == "nightcrier_clusters{state=\"active\"}" { print $2 }'; }
metric_sum() { get /metrics | awk -v m="$1" '$1 ~ "^"m"[{ ]" || $1 == m { s += $2 } END { print s + 0 }'; }
fds() { find "/proc/$daemon/fd" -mindepth 1 -maxdepth 1 | wc -l; }
rss() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$daemon/status"; }

fd_start=$(fds)
rss_start=$(rss)
say "$clusters clusters subscribed; fds $fd_start, RSS $rss_start KiB; chaos for ${seconds}s"

# Per cluster: when it may be disturbed again, and what is pending for it.
declare -a calm_at restore_at restore_cmd kills
for ((i = 0; i < clusters; i++)); do calm_at[i]=0; restore_at[i]=0; restore_cmd[i]=""; kills[i]=0; done
start=$SECONDS
end=$((start + seconds))
rss_ref_at=$((start + (seconds >= 120 ? 60 : seconds / 2)))
rss_ref=""
net_restore_at=0
net_restore=""
next_net=$((start + 20))
n_kill=0 n_cut=0 n_stall=0 n_shape=0 n_down=0 ticks=0
while [ $SECONDS -lt "$end" ]; do
    now=$SECONDS
    ctl "emit all 1"
    ticks=$((ticks + 1))
    for ((i = 0; i < clusters; i++)); do
        if [ -n "${restore_cmd[i]}" ] && [ "${restore_at[i]}" -le "$now" ]; then
            ctl "${restore_cmd[i]} $i"
            restore_cmd[i]=""
        fi
    done
    if [ -n "$net_restore" ] && [ "$net_restore_at" -le "$now" ]; then
        eval "$net_restore"
        net_restore=""
    fi
    # A few disturbances a second, each on a cluster that has been calm for 20 s, so
    # each one is its own gap.
    for _ in 1 2 3; do
        i=$((RANDOM % clusters))
        if [ "${calm_at[i]}" -gt "$now" ]; then continue; fi
        case $((RANDOM % 3)) in
            0)
                ctl "kill $i"
                restore_cmd[i]=restart
                restore_at[i]=$((now + 1 + RANDOM % 5))
                kills[i]=$((kills[i] + 1))
                n_kill=$((n_kill + 1))
                ;;
            1)
                ctl "cut $i"
                n_cut=$((n_cut + 1))
                ;;
            2)
                ctl "stall $i"
                restore_cmd[i]=normal
                restore_at[i]=$((now + 2 + RANDOM % 6))
                n_stall=$((n_stall + 1))
                ;;
        esac
        calm_at[i]=$((now + 20))
    done
    if [ -n "$ns" ] && [ -z "$net_restore" ] && [ "$now" -ge "$next_net" ] && [ "$((now + 15))" -lt "$end" ]; then
        if [ $((RANDOM % 2)) = 0 ] && [ "${#shaping[@]}" -gt 0 ]; then
            "${in_ns[@]}" tc qdisc add dev lo root "${shaping[@]}"
            net_restore="ip netns exec $ns tc qdisc del dev lo root"
            net_restore_at=$((now + 10))
            n_shape=$((n_shape + 1))
        else
            "${in_ns[@]}" ip link set lo down
            net_restore="ip netns exec $ns ip link set lo up"
            net_restore_at=$((now + 3))
            n_down=$((n_down + 1))
        fi
        next_net=$((now + 30 + RANDOM % 30))
    fi
    if [ -z "$rss_ref" ] && [ "$now" -ge "$rss_ref_at" ]; then
        rss_ref=$(rss)
    fi
    sleep 1
done

# Everything back to normal.
for ((i = 0; i < clusters; i++)); do
    if [ -n "${restore_cmd[i]}" ]; then ctl "${restore_cmd[i]} $i"; fi
done
if [ -n "$net_restore" ]; then eval "$net_restore"; fi
rss_ref=${rss_ref:-$(rss)}
say "chaos over: $n_kill kills, $n_cut cuts, $n_stall stalls, $n_shape shaped spells, $n_down links down; waiting for every session"

failed=0
check() { # NAME OK? DETAIL
    if [ "$2" = 1 ]; then say "PASS $1: $3"; else say "FAIL $1: $3"; failed=1; fi
}
deadline=$((SECONDS + 120))
while n=$(active 2>/dev/null) || n=0; [ "${n:-0}" -lt "$clusters" ] && [ $SECONDS -lt "$deadline" ]; do
    sleep 1
done
recovered_after=$((SECONDS - end))
check "sessions active again" "$([ "${n:-0}" = "$clusters" ] && echo 1 || echo 0)" "$n of $clusters active ${recovered_after}s after the chaos"
# Subscriptions a server dropped silently are found by the audit within its interval.
sleep 11

# Faults written now, with nothing disturbed, must all arrive exactly once.
received_before=$(metric_sum nightcrier_faults_received_total)
probe=5
emitted_before=$(grep -c '^ok emitted' "$work/sim.out" || true)
ctl "emit all $probe"
wait_for "$work/sim.out" '^ok emitted' $((emitted_before + 1)) 30 >/dev/null
written=$(grep '^ok emitted' "$work/sim.out" | tail -1 | awk '{ print $3 }')
expected=$((received_before + written))
deadline=$((SECONDS + 60))
while received=$(metric_sum nightcrier_faults_received_total); [ "$received" -lt "$expected" ] && [ $SECONDS -lt "$deadline" ]; do
    sleep 0.5
done
sleep 2
received=$(metric_sum nightcrier_faults_received_total)
check "faults after the chaos arrive exactly once" "$([ "$received" = "$expected" ] && echo 1 || echo 0)" \
    "$((received - received_before)) received of $written written ($((clusters * probe)) started; a subscription the server had just dropped gets none)"

ctl "dump $work/sent.txt"
wait_for "$work/sim.out" '^ok .* fault ids written to' 1 30 >/dev/null
ctl "stats"
sleep 1
# Every fault received is logged with its faultId at debug level, before deduplication
# (the info lines per fault are rate-limited); with triage off, every fault deduplication
# lets through is counted as skipped.
grep -o 'cluster=[^ ]* fault [0-9a-f]\{16\}' "$work/daemon.log" \
    | sed 's/^cluster=//; s/ fault / /' | sort > "$work/received.txt"
sort -u "$work/sent.txt" > "$work/sent.sorted"
sent_n=$(wc -l < "$work/sent.sorted")
received_n=$(sort -u "$work/received.txt" | wc -l)
skipped=$(metric_sum nightcrier_faults_skipped_total)
repeats_triaged=$((skipped > received_n ? skipped - received_n : 0))
unknown=$(comm -13 "$work/sent.sorted" <(sort -u "$work/received.txt") | wc -l)
lost=$(comm -23 "$work/sent.sorted" <(sort -u "$work/received.txt") | wc -l)
deduplicated=$(metric_sum nightcrier_faults_deduplicated_total)
check "no fault triaged twice" "$([ "$repeats_triaged" = 0 ] && echo 1 || echo 0)" \
    "$received_n triaged, $repeats_triaged twice; $deduplicated repeats caught by dedup"
check "nothing received that was not sent" "$([ "$unknown" = 0 ] && echo 1 || echo 0)" "$unknown unknown fault ids"
say "faults written by the servers: $sent_n; arrived: $((sent_n - lost)); lost in flight on broken streams: $lost"
# A written fault can only be lost with the connection that carried it.
get /metrics > "$work/metrics.txt"
undisturbed_losses=0
for name in $(comm -23 "$work/sent.sorted" <(sort -u "$work/received.txt") | awk '{ print $1 }' | sort -u); do
    broke=$(awk -v n="nightcrier_stream_gaps_total{cluster=\"$name\"" 'index($1, n) == 1 { print $2 }' "$work/metrics.txt")
    if [ "${broke:-0}" = 0 ]; then
        undisturbed_losses=$((undisturbed_losses + 1))
        say "  $name lost faults though its stream never broke"
    fi
done
check "faults lost only on streams that broke" "$([ "$undisturbed_losses" = 0 ] && echo 1 || echo 0)" \
    "$lost lost, on $(comm -23 "$work/sent.sorted" <(sort -u "$work/received.txt") | awk '{ print $1 }' | sort -u | wc -l) clusters"

fd_end=$(fds)
check "fd count back to the start" "$([ "$fd_end" = "$fd_start" ] && echo 1 || echo 0)" "start $fd_start, end $fd_end"
rss_end=$(rss)
drift=$((rss_end - rss_ref))
check "RSS drift at most 1 MiB after the first minute" "$([ "$drift" -le 1024 ] && echo 1 || echo 0)" \
    "start $rss_start KiB, after the first minute $rss_ref KiB, end $rss_end KiB (drift $drift KiB)"

# Gaps: every cut of a live stream is a stream gap, every kill a subscription gap.
get /metrics > "$work/metrics.txt"
stats_line=$(grep '^ok [0-9]* clusters;' "$work/sim.out" | tail -1)
series() { awk -v n="$1{cluster=\"$2\"" 'index($1, n) == 1 { print $2 }' "$work/metrics.txt"; }
gap_short=0
gaps_total=0
stream_gaps=0
for ((i = 0; i < clusters; i++)); do
    name=$(printf 'chaos-%03d' "$i")
    cuts=$(printf '%s' "$stats_line" | grep -o "$name sent=[0-9]* streams=[0-9]* sessions=[0-9]* cut=[0-9]*" | sed 's/.*cut=//')
    gaps=$(series nightcrier_subscription_gaps_total "$name")
    streams=$(series nightcrier_stream_gaps_total "$name")
    gaps_total=$((gaps_total + ${gaps:-0}))
    stream_gaps=$((stream_gaps + ${streams:-0}))
    if [ "${gaps:-0}" -lt "${kills[i]}" ] || [ "${streams:-0}" -lt "${cuts:-0}" ]; then
        gap_short=$((gap_short + 1))
        say "  $name: ${gaps:-0} subscription gaps for ${kills[i]} kills, ${streams:-0} stream gaps for ${cuts:-0} cuts"
    fi
done
check "every cut and kill counted as a gap" "$([ "$gap_short" = 0 ] && echo 1 || echo 0)" \
    "$gaps_total subscription gaps, $stream_gaps stream gaps; $gap_short clusters short"

printf 'chaos soak: %ss, %s clusters, network faults: %s\n' "$seconds" "$clusters" "$net_faults"
printf '  disturbances: %s kills, %s cuts, %s stalls, %s shaped spells, %s links down\n' \
    "$n_kill" "$n_cut" "$n_stall" "$n_shape" "$n_down"
printf '  faults: %s written by the servers, %s arrived (%s lost in flight on broken streams), %s repeats caught by dedup, %s triaged twice\n' \
    "$sent_n" "$((sent_n - lost))" "$lost" "$deduplicated" "$repeats_triaged"
printf '  gaps: %s subscription gaps, %s stream gaps\n' "$gaps_total" "$stream_gaps"
printf '  fds: %s at start, %s at end; RSS: %s KiB at start, %s KiB after the first minute, %s KiB at end\n' \
    "$fd_start" "$fd_end" "$rss_start" "$rss_ref" "$rss_end"
if [ "$failed" = 0 ]; then echo "chaos soak passed"; else echo "chaos soak FAILED"; fi
exit "$failed"
