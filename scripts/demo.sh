#!/usr/bin/env bash
# Runs nightcrier's built-in demonstration from a checkout:
#
#   scripts/demo.sh [DEMO OPTIONS]      (scripts/demo.sh --help lists them)
#
# Builds the release binary with scripts/build-release.sh when it is missing or out of date
# (cargo's own check: a second run with nothing changed starts at once), then runs
# `nightcrier demo` with this script's arguments, from the current directory. Needs only
# Rust (cargo, and the C compiler and linker every Rust build on Linux needs); installs
# nothing and starts no container: the demo's clusters are simulated on 127.0.0.1 and its
# agent is the stub agent.
set -euo pipefail

root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"

fail() { printf 'demo: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || fail "cargo not found; install Rust first (https://rustup.rs)"
command -v cc >/dev/null 2>&1 ||
    fail "no C compiler (cc) found; Rust needs one to link (Debian: apt-get install gcc libc6-dev)"

bash "${root}/scripts/build-release.sh" >&2 || fail "build failed (scripts/build-release.sh)"

target="${CARGO_TARGET_DIR:-target}"
[[ "${target}" == /* ]] || target="${root}/${target}"
exec "${target}/release/nightcrier" demo "$@"
