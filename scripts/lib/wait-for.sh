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
