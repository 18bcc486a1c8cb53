#!/usr/bin/env bash
# Runs one triage agent for nightcrier: the chosen agent CLI, inside a container, against one
# cluster. The agent must write its report to output/investigation.md in the workspace.
#
# Usage: run-agent.sh --workspace DIR --kubeconfig FILE --model M --agent CLI
#                     --allowed-tools T --timeout SECS [--system-prompt-file F] PROMPT
#
#   --agent          claude | codex | gemini | goose
#   --allowed-tools  tools the CLI may use without asking (claude; the others run with
#                    auto-approval, confined by the container)
#   --timeout        seconds; past it the CLI is stopped and the script exits 124
#
# Environment (set by nightcrier): INCIDENT_ID, CLUSTER_NAME, KUBECONFIG.
# Settings:
#   AGENT_RUNTIME   auto (default: docker, else podman) | docker | podman | none
#                   none runs the CLI directly on this host, in the workspace. nightcrier
#                   then starts this script inside a bubblewrap sandbox (agent.confinement):
#                   only the workspace is writable, only this cluster's kubeconfig and the
#                   system and PATH directories are readable, and HOME is the workspace's
#                   home/ (CLI settings and caches go there). With agent.confinement =
#                   "none" the CLI has the daemon user's tools and permissions: then use
#                   it only where the host itself is the sandbox (a dedicated pod or VM).
#   AGENT_IMAGE     container image (default nightcrier-agent:latest, built from
#                   scripts/agent.Dockerfile)
#   AGENT_NETWORK   container network (e.g. host, for a cluster on 127.0.0.1)
#   AGENT_EXTRA_ENV space-separated names of further variables to pass into the container
#   CODEX_SANDBOX   codex --sandbox mode (default: danger-full-access in a container, where
#                   the container is the sandbox; workspace-write on the host)
#
# In the container: the workspace is /workspace (read-write), the kubeconfig is
# /run/nightcrier/kubeconfig and incident_cluster_permissions.json stays read-only,
# KUBECONFIG points at it, and API keys (ANTHROPIC_API_KEY, OPENAI_API_KEY,
# GEMINI_API_KEY, ...) are passed through by name when set, never on the command line.
#
# Exit codes: 0 the CLI finished (nightcrier then checks the report), 2 bad arguments,
# 124 timed out, 125 the container could not be run, 127 CLI or container runtime not
# found, anything else the CLI's own.
set -euo pipefail

die() {
	echo "run-agent: $*" >&2
	exit 2
}

workspace="" kubeconfig="" model="" agent="" allowed_tools="" timeout="" system_prompt_file=""
while [ "$#" -gt 0 ]; do
	case "$1" in
	--workspace | --kubeconfig | --model | --agent | --allowed-tools | --timeout | --system-prompt-file)
		[ "$#" -ge 2 ] || die "$1 needs a value"
		case "$1" in
		--workspace) workspace=$2 ;;
		--kubeconfig) kubeconfig=$2 ;;
		--model) model=$2 ;;
		--agent) agent=$2 ;;
		--allowed-tools) allowed_tools=$2 ;;
		--timeout) timeout=$2 ;;
		--system-prompt-file) system_prompt_file=$2 ;;
		esac
		shift 2
		;;
	--)
		shift
		break
		;;
	--*) die "unknown option $1" ;;
	*) break ;;
	esac
done
[ "$#" -eq 1 ] || die "expected exactly one PROMPT argument after the options, got $#"
prompt=$1
[ -n "$prompt" ] || die "PROMPT is empty"

[ -n "$workspace" ] || die "--workspace is required"
if [ ! -d "$workspace" ] || [ ! -w "$workspace" ]; then
	die "workspace $workspace is not a writable directory"
fi
[ -n "$kubeconfig" ] || die "--kubeconfig is required"
if [ ! -f "$kubeconfig" ] || [ ! -r "$kubeconfig" ]; then
	die "kubeconfig $kubeconfig is not a readable file"
fi
[ -n "$model" ] || die "--model is required"
[ -n "$allowed_tools" ] || die "--allowed-tools is required"
[[ "$timeout" =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive number of seconds, got '$timeout'"
case "$agent" in
claude | codex | gemini | goose) ;;
"") die "--agent is required (claude, codex, gemini or goose)" ;;
*) die "unknown agent '$agent' (expected claude, codex, gemini or goose)" ;;
esac
if [ -n "$system_prompt_file" ] && { [ ! -f "$system_prompt_file" ] || [ ! -r "$system_prompt_file" ]; }; then
	die "system prompt file $system_prompt_file is not readable"
fi
workspace=$(cd "$workspace" && pwd -P)
kubeconfig=$(cd "$(dirname "$kubeconfig")" && pwd -P)/$(basename "$kubeconfig")
mkdir -p "$workspace/output"

runtime=${AGENT_RUNTIME:-auto}
if [ "$runtime" = auto ]; then
	if command -v docker >/dev/null 2>&1; then
		runtime=docker
	elif command -v podman >/dev/null 2>&1; then
		runtime=podman
	else
		echo "run-agent: neither docker nor podman found; install one, or set AGENT_RUNTIME=none to run $agent on this host" >&2
		exit 127
	fi
fi
case "$runtime" in
docker | podman)
	command -v "$runtime" >/dev/null 2>&1 || {
		echo "run-agent: container runtime $runtime not found" >&2
		exit 127
	}
	report_dir=/workspace/output
	kube_path=/run/nightcrier/kubeconfig
	prompt_path=/run/nightcrier/system-prompt.md
	;;
none)
	report_dir=$workspace/output
	kube_path=$kubeconfig
	prompt_path=$system_prompt_file
	;;
*) die "unknown AGENT_RUNTIME '$runtime' (expected auto, docker, podman or none)" ;;
esac

# The report location depends on where the CLI runs, so the script, not the caller, says it.
task="$prompt

Write your final report as Markdown to $report_dir/investigation.md, with the sections
## Summary, ## Root Cause, ## Confidence (low, medium or high), ## Evidence and
## Recommended Actions. The cluster is read through kubectl with KUBECONFIG=$kube_path;
what it is allowed to do is listed in incident_cluster_permissions.json in the workspace."
system_text=""
if [ -n "$system_prompt_file" ]; then
	system_text=$(cat "$system_prompt_file")
fi
# CLIs without a system-prompt flag get the system prompt ahead of the task.
task_with_system=$task
if [ -n "$system_text" ]; then
	task_with_system="$system_text

$task"
fi

cli=()
case "$agent" in
claude)
	cli=(claude --print --output-format text --model "$model" --allowedTools "$allowed_tools")
	if [ -n "$system_text" ]; then
		cli+=(--append-system-prompt "$system_text")
	fi
	cli+=("$task")
	;;
codex)
	if [ "$runtime" = none ]; then
		sandbox=${CODEX_SANDBOX:-workspace-write}
	else
		sandbox=${CODEX_SANDBOX:-danger-full-access}
	fi
	cli=(codex exec --skip-git-repo-check --sandbox "$sandbox" --model "$model" "$task_with_system")
	;;
gemini)
	cli=(gemini --model "$model" --approval-mode yolo --prompt "$task_with_system")
	;;
goose)
	cli=(env "GOOSE_MODEL=$model" GOOSE_MODE=auto goose run --no-session --text "$task_with_system")
	;;
esac

# Variables passed into the container by name (value from this environment, if set).
pass_env=(
	ANTHROPIC_API_KEY ANTHROPIC_BASE_URL ANTHROPIC_MODEL CLAUDE_CODE_USE_BEDROCK CLAUDE_CODE_USE_VERTEX
	OPENAI_API_KEY OPENAI_BASE_URL CODEX_HOME
	GEMINI_API_KEY GOOGLE_API_KEY GOOGLE_CLOUD_PROJECT GOOGLE_CLOUD_LOCATION GOOGLE_GENAI_USE_VERTEXAI
	GOOSE_PROVIDER OPENROUTER_API_KEY
	HTTPS_PROXY HTTP_PROXY NO_PROXY https_proxy http_proxy no_proxy
)
read -r -a extra_env <<<"${AGENT_EXTRA_ENV:-}"
for name in "${extra_env[@]}"; do
	[[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "AGENT_EXTRA_ENV: '$name' is not a variable name"
done
pass_env+=("${extra_env[@]}")

child=""
container=""
# shellcheck disable=SC2317 # invoked by the trap below
stop() {
	# Our process group may get the signal too; make sure the container stops with us.
	if [ -n "$container" ]; then
		"$runtime" kill --signal TERM "$container" >/dev/null 2>&1 || true
	fi
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	exit 143
}
trap stop TERM INT

if [ "$runtime" = none ]; then
	command -v "$agent" >/dev/null 2>&1 || {
		echo "run-agent: $agent CLI not found on PATH" >&2
		exit 127
	}
	(cd "$workspace" && KUBECONFIG=$kubeconfig exec timeout --kill-after=10 "$timeout" "${cli[@]}") &
else
	for path in "$workspace" "$kubeconfig" "$system_prompt_file"; do
		case "$path" in *,*) die "path '$path' contains a comma, which $runtime --mount cannot express" ;; esac
	done
	container="nightcrier-$(printf '%s' "${INCIDENT_ID:-$$}" | tr -c 'A-Za-z0-9_.-' '_')"
	run=("$runtime" run --rm --init --name "$container"
		--workdir /workspace
		--mount "type=bind,src=$workspace,dst=/workspace"
		--mount "type=bind,src=$kubeconfig,dst=$kube_path,readonly"
		--mount "type=tmpfs,dst=/home/agent,tmpfs-mode=1777"
		--env HOME=/home/agent
		--env "KUBECONFIG=$kube_path"
		--env "INCIDENT_ID=${INCIDENT_ID:-}"
		--env "CLUSTER_NAME=${CLUSTER_NAME:-}")
	if [ -e "$workspace/incident_cluster_permissions.json" ]; then
		run+=(--mount "type=bind,src=$workspace/incident_cluster_permissions.json,dst=/workspace/incident_cluster_permissions.json,readonly")
	fi
	if [ -n "$system_prompt_file" ]; then
		run+=(--mount "type=bind,src=$(cd "$(dirname "$system_prompt_file")" && pwd -P)/$(basename "$system_prompt_file"),dst=$prompt_path,readonly")
	fi
	if [ "$runtime" = podman ]; then
		run+=(--userns=keep-id)
	else
		run+=(--user "$(id -u):$(id -g)")
	fi
	if [ -n "${AGENT_NETWORK:-}" ]; then
		run+=(--network "$AGENT_NETWORK")
	fi
	for name in "${pass_env[@]}"; do
		if [ -n "${!name:-}" ]; then
			run+=(--env "$name")
		fi
	done
	# The time limit also runs inside the container, so an orphaned container ends too.
	run+=("${AGENT_IMAGE:-nightcrier-agent:latest}" timeout --kill-after=10 "$timeout" "${cli[@]}")
	# The client gets the same limit plus a margin for pulling and starting the container.
	timeout --kill-after=10 "$((timeout + 60))" "${run[@]}" &
fi
child=$!
status=0
wait "$child" || status=$?
child=""

if [ -n "$container" ] && { [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; }; then
	"$runtime" rm --force "$container" >/dev/null 2>&1 || true
fi
case "$status" in
124)
	echo "run-agent: $agent timed out after ${timeout}s" >&2
	exit 124
	;;
125)
	echo "run-agent: $runtime could not run the container (image ${AGENT_IMAGE:-nightcrier-agent:latest}); exit 125" >&2
	exit 125
	;;
127)
	echo "run-agent: $agent (or the container runtime) could not be started; exit 127" >&2
	exit 127
	;;
esac
if [ "$status" -ne 0 ]; then
	echo "run-agent: $agent exited with status $status" >&2
fi
exit "$status"
