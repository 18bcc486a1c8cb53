#!/usr/bin/env bash
# nightcrier's full check, from a fresh clone on a Debian machine with Rust: installs what
# the tests need (scripts/setup.sh: system packages when missing, Node.js 20, the interop
# peers), then runs formatting, lints, every test (unit, integration and interop), a short
# run of every fuzz target, the chaos soak, and builds and smoke-tests the container images.
# A second run installs nothing. Exits non-zero at the first failing step.
set -euo pipefail

root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${root}"

step() { printf '\n==> test: %s (at %d s)\n' "$*" "${SECONDS}"; }

# One build per run: incremental compilation would only add disk (about 1.3 GB).
export CARGO_INCREMENTAL=0
printf '==> test: free disk where the build goes: %s\n' \
    "$(df -h --output=avail . | tail -n 1 | tr -d ' ')"

step "scripts/setup.sh (what the tests need)"
bash scripts/setup.sh

# Node.js 20 from setup, when the system's node is older.
if [[ -d .peers/node/node_modules/.bin ]]; then
    export PATH="${root}/.peers/node/node_modules/.bin:${PATH}"
fi

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets --locked -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test --locked"
cargo test --locked

# A short run of every fuzz target from its committed corpus; see scripts/fuzz.sh.
step "scripts/fuzz.sh --smoke (fuzz targets)"
bash scripts/fuzz.sh --smoke

# --- chaos soak (60 s) -------------------------------------------------------------------
# 100 simulated clusters with kills, cuts, stalls and (as root) network faults; see
# scripts/chaos.sh. Builds the release binary first.
step "scripts/chaos.sh 60 (chaos soak)"
bash scripts/chaos.sh 60
# --- end of chaos soak -------------------------------------------------------------------

# --- container images ----------------------------------------------------------------------
# Builds both images and smoke-tests them (scripts/images.sh; starts dockerd when none runs,
# and stops it again).
step "scripts/images.sh (container images, smoke tests)"
bash scripts/images.sh

step "all checks passed"
