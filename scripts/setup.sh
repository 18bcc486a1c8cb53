#!/usr/bin/env bash
# Prepares a fresh Debian machine (with Rust already installed) for nightcrier's tests
# and demo: the system packages the interop peers need, the peers themselves
# (scripts/install-peers.sh), and a release build. Safe to run again: each step
# checks before it changes anything.
set -euo pipefail

root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${root}"

step() { printf '\n==> setup: %s\n' "$*"; }
fail() { printf 'setup: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || fail "cargo not found; install Rust first (https://rustup.rs)"

# --- system packages ---------------------------------------------------------------
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v bash >/dev/null 2>&1 || missing+=(bash)
# The TLS tests make their certificates with the openssl command line, as operators do.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# bwrap confines agents that run on the host (agent.confinement); its tests need it.
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
if ((${#missing[@]} > 0)); then
    step "installing system packages: ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 \
        || fail "missing ${missing[*]} and apt-get is not available; install them by hand"
    sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || fail "missing ${missing[*]}; run as root or install sudo"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
    step "system packages present (python3, python3-venv, nodejs, npm, openssl, bubblewrap)"
fi

# --- interop peers -------------------------------------------------------------------
[[ -f scripts/install-peers.sh ]] || fail "scripts/install-peers.sh is missing from this checkout"
step "installing interop peers (scripts/install-peers.sh)"
bash scripts/install-peers.sh >/dev/null

# --- build ---------------------------------------------------------------------------
step "building (scripts/build-release.sh)"
bash scripts/build-release.sh

step "done: ${CARGO_TARGET_DIR:-target}/release/nightcrier"
