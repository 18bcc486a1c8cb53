#!/usr/bin/env bash
# nightcrier's full check: formatting, lints, interop peers, and every test
# (unit, integration and interop). Exits non-zero at the first failing step.
set -euo pipefail

root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${root}"

step() { printf '\n==> test: %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets --locked -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "scripts/install-peers.sh (interop peers)"
bash scripts/install-peers.sh >/dev/null

step "cargo test --locked"
cargo test --locked

# --- chaos soak (60 s) -------------------------------------------------------------------
# 100 simulated clusters with kills, cuts, stalls and (as root) network faults; see
# scripts/chaos.sh. Builds the release binary first.
step "scripts/chaos.sh 60 (chaos soak)"
bash scripts/chaos.sh 60
# --- end of chaos soak -------------------------------------------------------------------

step "all checks passed"
