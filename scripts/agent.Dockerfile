# The container nightcrier's run-agent.sh starts for every triage run: kubectl plus the agent
# CLIs, running as an unprivileged user in /workspace.
#
#   docker build -f scripts/agent.Dockerfile -t nightcrier-agent:latest scripts/
#
# run-agent.sh mounts the incident workspace at /workspace (read-write), the cluster's
# kubeconfig and incident_cluster_permissions.json read-only, and sets KUBECONFIG.
# API keys come in as environment variables at run time; none are baked in.

# Debian slim with Node.js 22 (the CLIs need Node 20 or newer).
FROM node:22-bookworm-slim

ARG KUBECTL_VERSION=v1.34.2
# The versions tests/agent_real_clis.rs runs (scripts/install-peers.sh installs the same).
ARG CLAUDE_CODE_VERSION=2.1.197
ARG CODEX_VERSION=0.171.0
ARG GEMINI_CLI_VERSION=0.61.0
# goose ships as a binary, not on npm; set to 1 to install it from its release script.
ARG INSTALL_GOOSE=0

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates curl jq less procps git bzip2 \
    && rm -rf /var/lib/apt/lists/*

# kubectl: a pinned release, checked against its published SHA-256.
RUN set -eux; \
    arch="$(dpkg --print-architecture)"; \
    case "$arch" in amd64|arm64) ;; *) echo "unsupported architecture $arch" >&2; exit 1 ;; esac; \
    base="https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${arch}"; \
    curl -fsSLo /usr/local/bin/kubectl "${base}/kubectl"; \
    echo "$(curl -fsSL "${base}/kubectl.sha256")  /usr/local/bin/kubectl" | sha256sum --check -; \
    chmod 0755 /usr/local/bin/kubectl; \
    kubectl version --client

RUN npm install --global --no-fund --no-audit \
        "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
        "@openai/codex@${CODEX_VERSION}" \
        "@google/gemini-cli@${GEMINI_CLI_VERSION}" \
    && npm cache clean --force

RUN if [ "$INSTALL_GOOSE" = 1 ]; then \
        curl -fsSL https://github.com/block/goose/releases/download/stable/download_cli.sh \
            | CONFIGURE=false GOOSE_BIN_DIR=/usr/local/bin bash; \
    fi

# run-agent.sh runs the container as the caller's uid (docker) or keep-id (podman), with
# HOME in the workspace (/workspace/.agent-home); this user is the default for any other use.
RUN useradd --uid 10001 --create-home --home-dir /home/agent --shell /bin/bash agent \
    && mkdir -p /workspace /run/nightcrier \
    && chown agent:agent /workspace

USER agent
ENV HOME=/home/agent
WORKDIR /workspace
