# Sourced by the measurement scripts.
# wait_for FILE PATTERN COUNT SECONDS [PID]: until FILE has COUNT lines matching PATTERN;
# fails at the deadline, or at once when process PID has ended.
wait_for() {
    local deadline=$((SECONDS + $4))
    local found
    while found=$(grep -c -- "$2" "$1" 2>/dev/null) || true; [ "${found:-0}" -lt "$3" ]; do
        if [ -n "${5:-}" ] && ! kill -0 "$5" 2>/dev/null; then
            echo "${0##*/}: process $5 ended while waiting for $3 × '$2' in $1" >&2
            tail -5 "$1" >&2
            return 1
        fi
        if [ $SECONDS -ge "$deadline" ]; then
            echo "${0##*/}: timed out waiting for $3 × '$2' in $1 (have ${found:-0})" >&2
            tail -5 "$1" >&2
            return 1
        fi
        sleep 0.2
    done
}

# received_faults PORT: the faults a daemon whose health listener is on 127.0.0.1:PORT has
# received, summed over its clusters (its per-fault log line is rate-limited, so the log
# cannot count them).
received_faults() {
    curl -fsS "http://127.0.0.1:$1/metrics" |
        awk '$1 ~ /^nightcrier_faults_received_total[{ ]/ { sum += $2 } END { print sum + 0 }'
}

# wait_for_faults PORT COUNT SECONDS PID: until the daemon has received COUNT faults,
# asking about once a second; fails at the deadline, or at once when process PID has ended.
wait_for_faults() {
    local deadline=$((SECONDS + $3)) received
    while :; do
        # Before the listener is up, nothing has arrived.
        received=$(received_faults "$1" 2>/dev/null) || received=0
        [ "$received" -ge "$2" ] && return 0
        if ! kill -0 "$4" 2>/dev/null || [ $SECONDS -ge "$deadline" ]; then
            echo "${0##*/}: $received of $2 faults arrived" >&2
            return 1
        fi
        sleep 1
    done
}
