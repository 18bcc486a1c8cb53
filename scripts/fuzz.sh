#!/usr/bin/env bash
# Coverage-guided fuzzing of nightcrier's parsers of untrusted input (cargo fuzz, libFuzzer,
# LeakSanitizer, overflow checks and debug assertions). The targets live in
# fuzz/fuzz_targets/; see the "Fuzzing" section of docs/operations.md.
#
#   scripts/fuzz.sh [SECONDS|--runs N|--smoke|--cmin] [TARGET...]
#
#   SECONDS   run each target this long (default 60)
#   --runs N  run each target for N executions
#   --smoke   about 20,000 executions of each target, at most 15 s each (scripts/test.sh)
#   --cmin    fold what runs found into the committed corpus and minimize it (cargo fuzz
#             cmin): the smallest set of inputs that covers everything the two covered
#   TARGET    http_response sse_stream mcp_session fault_event tls_records config_text
#             (default: all, one after another, on one core)
#
# Installs cargo-fuzz when it is missing. Builds with the installed toolchain (nightly
# features through RUSTC_BOOTSTRAP=1, so stable Rust does). Each target starts from its
# committed corpus (fuzz/corpus/TARGET, read only) plus what earlier runs found
# (fuzz/target/corpus/TARGET); a crash, leak or timeout is saved in fuzz/artifacts/TARGET.
# Prints per target the executions, wall seconds, executions per second, crashes, and the
# inputs in the committed corpus and found by runs so far; exits 1 if any target failed.
set -euo pipefail

CARGO_FUZZ_VERSION="0.13.2"
ALL_TARGETS=(http_response sse_stream mcp_session fault_event tls_records config_text)

root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${root}"

fail() { printf 'fuzz: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '5,15s/^# \{0,1\}//p' "$0" >&2; exit 2; }

budget=(-max_total_time=60)
cmin=0
targets=()
while (($# > 0)); do
    case "$1" in
        --smoke) budget=(-runs=20000 -max_total_time=15) ;;
        --cmin) cmin=1 ;;
        --runs)
            [[ "${2:-}" =~ ^[0-9]+$ ]] || usage
            budget=(-runs="$2")
            shift
            ;;
        -h | --help) usage ;;
        *)
            if [[ "$1" =~ ^[0-9]+$ ]]; then
                budget=(-max_total_time="$1")
            elif [[ " ${ALL_TARGETS[*]} " == *" $1 "* ]]; then
                targets+=("$1")
            else
                printf 'fuzz: unknown target or option %q\n' "$1" >&2
                usage
            fi
            ;;
    esac
    shift
done
((${#targets[@]} > 0)) || targets=("${ALL_TARGETS[@]}")

# Longest input per target: long enough for a whole exchange, short enough to stay fast.
max_len() {
    case "$1" in
        fault_event) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

command -v cargo >/dev/null 2>&1 || fail "cargo not found; install Rust first"
command -v c++ >/dev/null 2>&1 || fail "no C++ compiler (libFuzzer needs one): apt-get install g++"
if ! cargo fuzz --version >/dev/null 2>&1; then
    printf '==> fuzz: installing cargo-fuzz %s\n' "${CARGO_FUZZ_VERSION}"
    cargo install cargo-fuzz --locked --version "${CARGO_FUZZ_VERSION}"
fi

# Overflow checks and debug assertions on: an arithmetic overflow is a finding. Leaks are
# found by LeakSanitizer. AddressSanitizer (cargo fuzz's default) would add checks of every
# memory access, which safe Rust cannot get wrong, and the nightcrier code these targets
# reach is safe Rust: `grep -n unsafe` finds nothing but a test's name in net/http.rs,
# net/sse.rs, net/tls.rs, net/tls_session.rs, net/certificate.rs, net/proxy.rs, mcp/,
# events.rs, log_line.rs, log_json.rs, logging.rs, config/, silence/{mod,matcher,window}.rs,
# notify/slack_route.rs, queue.rs, name_map.rs and agent/{workspace,permissions}.rs (the
# unsafe blocks of the crate are in sockets, child processes, fd limits and the incident
# and silence stores, which no target calls). Memory errors inside dependencies (httparse,
# serde_json, toml, rustls, ring) are theirs to find. Several codegen units build faster.
build_flags=(--debug-assertions --codegen-units 16 --sanitizer leak)
printf "==> fuzz: building the fuzz targets\n"
RUSTC_BOOTSTRAP=1 cargo fuzz build "${build_flags[@]}"

if ((cmin)); then
    for target in "${targets[@]}"; do
        found="fuzz/target/corpus/${target}"
        # Tens of thousands of files: more than one command line holds. Inputs are named by
        # the hash of their content, so a file copied over another is the same file.
        if [[ -d "${found}" ]]; then
            find "${found}" -type f -exec cp -t "fuzz/corpus/${target}/" {} +
        fi
        RUSTC_BOOTSTRAP=1 cargo fuzz cmin "${build_flags[@]}" "${target}" -- \
            -max_len="$(max_len "${target}")" -use_counters=0 -rss_limit_mb=2048 -timeout=10 </dev/null \
            >"fuzz/target/${target}.cmin.log" 2>&1 ||
            fail "cmin of ${target} failed; see fuzz/target/${target}.cmin.log"
        printf '%-14s %5d files %8d bytes\n' "${target}" \
            "$(find "fuzz/corpus/${target}" -type f | wc -l)" \
            "$(find "fuzz/corpus/${target}" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')"
    done
    exit 0
fi

host="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="fuzz/target/${host}/release"
results=()
failed=0
for target in "${targets[@]}"; do
    work="fuzz/target/corpus/${target}"
    artifacts="fuzz/artifacts/${target}"
    mkdir -p "${work}" "${artifacts}" "fuzz/corpus/${target}"
    log="fuzz/target/${target}.log"
    printf '==> fuzz: %s (%s)\n' "${target}" "${budget[*]}"
    before="$(find "${artifacts}" -type f | wc -l)"
    status=0
    started="$(date +%s%N)"
    # New inputs go to the first directory, so the committed corpus stays as it is.
    "${bin_dir}/${target}" "${budget[@]}" -max_len="$(max_len "${target}")" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="${artifacts}/" "${work}" "fuzz/corpus/${target}" \
        </dev/null >"${log}" 2>&1 || status=$?
    elapsed_ms=$((($(date +%s%N) - started) / 1000000))
    after="$(find "${artifacts}" -type f | wc -l)"
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}" | tail -1)"
    if [[ -z "${runs}" ]]; then
        # A crash ends the run before the final stats: take the last progress line.
        runs="$(grep -o '^#[0-9]*' "${log}" | tail -1 | tr -d '#')"
    fi
    # Executions per second of the whole run, start-up and corpus loading included
    # (libFuzzer's own figure is in whole seconds, 0 for a run under one second).
    rate="$((${runs:-0} * 1000 / (elapsed_ms > 0 ? elapsed_ms : 1)))"
    crashes=$((after - before))
    if ((status != 0 || crashes > 0)); then
        failed=1
        crashes=$((crashes > 0 ? crashes : 1))
        grep -E 'panicked|ERROR|SUMMARY' "${log}" | head -5 >&2 || true
        printf 'fuzz: %s failed; log %s, inputs in %s\n' "${target}" "${log}" "${artifacts}" >&2
    fi
    corpus_files="$(find "fuzz/corpus/${target}" -type f | wc -l)"
    found_files="$(find "${work}" -type f | wc -l)"
    results+=("$(printf '%-14s %12s %8s %8s %8s %9s %9s' "${target}" "${runs:-?}" \
        "$((elapsed_ms / 1000))" "${rate:-?}" "${crashes}" "${corpus_files}" "${found_files}")")
done

# corpus: inputs in the committed corpus; found: inputs the runs so far have kept.
printf '\n%-14s %12s %8s %8s %8s %9s %9s\n' target executions seconds exec/s crashes corpus found
printf '%s\n' "${results[@]}"
exit "${failed}"
