#!/usr/bin/env bash
# Run by scripts/images.sh inside the agent-runner image (`bash -s`, host network): one
# simulated fault triaged the way a pod triages it. nightcrier's simulator serves one
# cluster on 127.0.0.1, the daemon runs with the image's launcher and prompt, and the claude
# CLI of the image, started by run-agent.sh as the daemon's child (AGENT_RUNTIME=none),
# talks to the model API stand-in whose address is in ANTHROPIC_BASE_URL. Prints the
# incident's result.json, its report and the daemon's log, and exits non-zero when no
# result came within 150 s. Stops what it started by PID.
set -euo pipefail

work="$(mktemp -d)"
cd "${work}"
sim="" daemon=""
stop() {
    for pid in ${daemon} ${sim}; do
        kill -TERM "${pid}" 2>/dev/null || true
        wait "${pid}" 2>/dev/null || true
    done
    daemon="" sim=""
}
trap stop EXIT

nightcrier simulate --clusters 1 --rate 20 --faults 1 --name-prefix pod \
    --write-config sim.toml >sim.out 2>&1 &
sim=$!
deadline=$((SECONDS + 30))
until grep -q '^ready' sim.out; do
    kill -0 "${sim}" 2>/dev/null || { cat sim.out; exit 1; }
    ((SECONDS < deadline)) || { echo "simulator not ready within 30 s"; exit 1; }
    sleep 0.2
done

# A kubeconfig for an API server that refuses at once: the preflight records that, and the
# agent still runs.
cat >kubeconfig <<'EOF'
apiVersion: v1
kind: Config
clusters:
  - name: pod-000
    cluster:
      server: https://127.0.0.1:1
contexts:
  - name: pod-000
    context:
      cluster: pod-000
      user: triage
current-context: pod-000
users:
  - name: triage
    user:
      token: none
EOF
{
    printf 'workspace_root = "%s/incidents"\nseverity_threshold = "info"\n\n' "${work}"
    cat sim.toml
    printf '[clusters.triage]\nenabled = true\nkubeconfig = "%s/kubeconfig"\n\n' "${work}"
    printf '[health]\nenabled = false\n\n'
    printf '[agent]\ncli = "claude"\nscript = "/usr/local/lib/nightcrier/run-agent.sh"\n'
    printf 'system_prompt_file = "/usr/local/share/nightcrier/triage-system-prompt.md"\n'
} >nightcrier.toml

nightcrier run --config nightcrier.toml 2>daemon.log &
daemon=$!
deadline=$((SECONDS + 150))
result=""
until result="$(find incidents -name result.json 2>/dev/null | head -n 1)" && [[ -n "${result}" ]]; do
    kill -0 "${daemon}" 2>/dev/null || { cat daemon.log; exit 1; }
    ((SECONDS < deadline)) || { cat daemon.log; echo "no result.json within 150 s"; exit 1; }
    sleep 0.5
done
stop
echo "--- result.json"
cat "${result}"
echo "--- investigation.md"
cat "$(dirname "${result}")/output/investigation.md" 2>/dev/null || true
echo "--- daemon log"
cat daemon.log
