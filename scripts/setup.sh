#!/usr/bin/env bash
# Installs what nightcrier's tests need on a Debian machine with Rust. scripts/test.sh runs
# it first; run it alone to prepare a machine without running the tests.
#
#   - system packages, through apt-get (with sudo when not root), only those missing:
#     python3, python3-venv, nodejs, npm, openssl, bubblewrap, strace, chromium (with a
#     font), gcc + libc6-dev when there is no C compiler, and g++ when there is no C++
#     compiler (libFuzzer, for scripts/fuzz.sh);
#   - Node.js 20 under .peers/node (the npm package `node`), when the system's node is older
#     than 20 (Debian 12 ships 18); the agent CLIs need 20. scripts/test.sh puts
#     .peers/node/node_modules/.bin first on PATH when it exists;
#   - the interop peers under .peers (scripts/install-peers.sh);
#   - promtool under .peers/prometheus, taken out of Debian's prometheus package (not
#     installed: that would start a Prometheus server), for the alert rules of
#     config/kubernetes; systemd-analyze (package systemd) for config/systemd;
#   - amtool under .peers/alertmanager, taken out of Debian's prometheus-alertmanager
#     package (not installed: that would start an Alertmanager), for the silences API; the
#     tz database (tzdata) for the silences' time zones.
#
# Safe to run again: each step checks before it changes anything, and a second run
# installs nothing and needs no network. The demo needs none of this (scripts/demo.sh).
set -euo pipefail

# NODE_VERSION, shared with the agent-runner image.
# shellcheck source=lib/versions.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib/versions.sh"

root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${root}"

step() { printf '==> setup: %s\n' "$*" >&2; }
fail() { printf 'setup: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || fail "cargo not found; install Rust first (https://rustup.rs)"

node_dir="${root}/.peers/node"
node_bin="${node_dir}/node_modules/.bin"
[[ -d "${node_bin}" ]] && export PATH="${node_bin}:${PATH}"

# --- system packages ---------------------------------------------------------------
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# The TLS tests make their certificates with the openssl command line, as operators do.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# bwrap confines agents that run on the host (agent.confinement); its tests need it.
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
# strace shows which thread writes the workspace files (tests/workspace_writer.rs).
command -v strace >/dev/null 2>&1 || missing+=(strace)
# The incident pages are tested in headless Chromium; its screenshot needs one font.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
# `systemd-analyze verify` checks config/systemd/nightcrier.service.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# scripts/fuzz.sh builds libFuzzer, which is C++.
command -v c++ >/dev/null 2>&1 || missing+=(g++)
# Silences' weekly windows name zones of the system's tz database.
[[ -e /usr/share/zoneinfo/Europe/Berlin ]] || missing+=(tzdata)
if ((${#missing[@]} > 0)); then
    step "installing system packages: ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 ||
        fail "missing ${missing[*]} and apt-get is not available; install them by hand"
    sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || fail "missing ${missing[*]}; run as root or install sudo"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    step "system packages present (python3, python3-venv, nodejs, npm, openssl, bubblewrap, strace, chromium, cc, c++, systemd-analyze, tzdata)"
fi

as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    else
        command -v sudo >/dev/null 2>&1 || fail "$1 needs root; run as root or install sudo"
        sudo "$@"
    fi
}

# --- promtool ----------------------------------------------------------------------
# Only the promtool binary of Debian's prometheus package: installing the package would
# also start a Prometheus server.
promtool="${root}/.peers/prometheus/promtool"
if [[ -x "${promtool}" ]] && "${promtool}" --version >/dev/null 2>&1; then
    step "promtool present (${promtool})"
else
    step "taking promtool out of Debian's prometheus package into .peers/prometheus"
    command -v apt-get >/dev/null 2>&1 || fail "promtool needs apt-get (Debian's prometheus package)"
    work="$(mktemp -d)"
    if ! (cd "${work}" && apt-get download prometheus >/dev/null 2>&1); then
        as_root apt-get update -qq
        (cd "${work}" && apt-get download prometheus >/dev/null) || fail "apt-get download prometheus failed"
    fi
    dpkg-deb -x "${work}"/prometheus_*.deb "${work}/root"
    mkdir -p "${root}/.peers/prometheus"
    install -m 0755 "${work}/root/usr/bin/promtool" "${promtool}"
    rm -rf "${work}"
    "${promtool}" --version >/dev/null 2>&1 || fail "promtool from the prometheus package does not run"
fi

# --- amtool ------------------------------------------------------------------------
# Only the amtool binary of Debian's prometheus-alertmanager package: installing the
# package would also start an Alertmanager.
amtool="${root}/.peers/alertmanager/amtool"
if [[ -x "${amtool}" ]] && "${amtool}" --version >/dev/null 2>&1; then
    step "amtool present (${amtool})"
else
    step "taking amtool out of Debian's prometheus-alertmanager package into .peers/alertmanager"
    command -v apt-get >/dev/null 2>&1 || fail "amtool needs apt-get (Debian's prometheus-alertmanager package)"
    work="$(mktemp -d)"
    if ! (cd "${work}" && apt-get download prometheus-alertmanager >/dev/null 2>&1); then
        as_root apt-get update -qq
        (cd "${work}" && apt-get download prometheus-alertmanager >/dev/null) ||
            fail "apt-get download prometheus-alertmanager failed"
    fi
    dpkg-deb -x "${work}"/prometheus-alertmanager_*.deb "${work}/root"
    mkdir -p "${root}/.peers/alertmanager"
    install -m 0755 "${work}/root/usr/bin/amtool" "${amtool}"
    rm -rf "${work}"
    "${amtool}" --version >/dev/null 2>&1 || fail "amtool from the prometheus-alertmanager package does not run"
fi

# --- Node.js >= 20 -----------------------------------------------------------------
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if (($(node_major) >= 20)); then
    step "node $(node -v) ($(command -v node))"
else
    step "node $(node -v 2>/dev/null || echo none) is older than 20; npm installing node@${NODE_VERSION} under .peers/node"
    mkdir -p "${node_dir}"
    npm install --prefix "${node_dir}" --no-audit --no-fund --no-progress --save-exact \
        --loglevel=error "node@${NODE_VERSION}" >&2
    export PATH="${node_bin}:${PATH}"
    (($(node_major) >= 20)) || fail "node is still older than 20 after installing node@${NODE_VERSION}"
    step "node $(node -v) (${node_bin}/node)"
fi

# --- interop peers -------------------------------------------------------------------
[[ -f scripts/install-peers.sh ]] || fail "scripts/install-peers.sh is missing from this checkout"
step "interop peers (scripts/install-peers.sh)"
bash scripts/install-peers.sh >/dev/null
