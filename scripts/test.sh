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

step "all checks passed"
