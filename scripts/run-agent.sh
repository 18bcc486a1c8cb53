#!/usr/bin/env bash
# Runs one triage agent for nightcrier: the chosen agent CLI, inside a container (or on this
# host), against one cluster. The agent must write its report to output/investigation.md in
# the workspace.
#
# Usage: run-agent.sh --workspace DIR --kubeconfig FILE --model M --agent CLI
#                     --allowed-tools T --timeout SECS [--system-prompt-file F] PROMPT
#
#   --agent          claude | codex | gemini | goose
#   --model          a model the CLI serves; auto lets the CLI (goose: this script) choose
#   --allowed-tools  tools the CLI may use without asking (claude; the others run with
#                    auto-approval, confined by the container or their own sandbox)
#   --timeout        seconds; past it the CLI is stopped and the script exits 124
#
# Environment (set by nightcrier): INCIDENT_ID, CLUSTER_NAME, KUBECONFIG.
# Model API keys and endpoints, read from this environment:
#   claude  ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL
#   gemini  GEMINI_API_KEY, GOOGLE_GEMINI_BASE_URL (or Vertex AI: GOOGLE_GENAI_USE_VERTEXAI,
#           GOOGLE_API_KEY, GOOGLE_CLOUD_PROJECT, GOOGLE_CLOUD_LOCATION)
#   codex   CODEX_API_KEY (else OPENAI_API_KEY), OPENAI_BASE_URL
#   goose   GOOSE_PROVIDER (default: from the key that is set: ANTHROPIC_API_KEY,
#           OPENAI_API_KEY, GOOGLE_API_KEY or GEMINI_API_KEY, OPENROUTER_API_KEY)
# Every CLI runs with a fresh HOME, .agent-home in the workspace (its settings, sessions and
# temporary files stay with the incident), with auto-update, telemetry and other traffic
# besides the model API turned off.
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
#                   the container is the sandbox; workspace-write on the host, with network
#                   access for kubectl)
#
# In the container: the workspace is /workspace (read-write), the kubeconfig is
# /run/nightcrier/kubeconfig and incident_cluster_permissions.json stays read-only,
# KUBECONFIG points at it, and API keys (ANTHROPIC_API_KEY, OPENAI_API_KEY,
# GEMINI_API_KEY, ...) are passed through by name when set, never on the command line.
#
# Exit codes: 0 the CLI finished (nightcrier then checks the report), 2 bad arguments,
# 124 timed out, 125 the container could not be run, 127 CLI or container runtime not
# found, anything else the CLI's own. When the CLI fails, the last line on stderr is the
# CLI's own last error line (from its stdout or stderr), which nightcrier records as the
# failure reason.
set -euo pipefail

# The script is one compound command, which bash reads whole before running it: replacing
# this file (an upgrade) while agents run cannot change the rest of a running one.
{
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

# The CLI's HOME: fresh for every run and kept with the incident, so no run sees another's
# sessions or settings, and the CLI's temporary files stay out of the shared /tmp.
HOME_DIR=.agent-home
mkdir -p -m 0700 "$workspace/$HOME_DIR" "$workspace/$HOME_DIR/tmp"

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
	agent_home=/workspace/$HOME_DIR
	;;
none)
	command -v "$agent" >/dev/null 2>&1 || {
		echo "run-agent: $agent CLI not found on PATH" >&2
		exit 127
	}
	report_dir=$workspace/output
	kube_path=$kubeconfig
	prompt_path=$system_prompt_file
	agent_home=$workspace/$HOME_DIR
	;;
*) die "unknown AGENT_RUNTIME '$runtime' (expected auto, docker, podman or none)" ;;
esac

# gemini's settings in the CLI's HOME: with GOOGLE_GEMINI_BASE_URL set, gemini 0.61 selects
# an auth type its own validator rejects (exit 41) unless the settings name one; usage
# statistics, telemetry and update checks off.
write_gemini_settings() {
	local file=$1 auth=""
	[ -e "$file" ] && return 0
	if [ -n "${GEMINI_API_KEY:-}" ]; then
		auth=gemini-api-key
	elif [ "${GOOGLE_GENAI_USE_VERTEXAI:-}" = true ]; then
		auth=vertex-ai
	fi
	mkdir -p "$(dirname "$file")"
	{
		printf '{\n'
		if [ -n "$auth" ]; then
			printf '  "security": {"auth": {"selectedType": "%s"}},\n' "$auth"
		fi
		printf '  "privacy": {"usageStatisticsEnabled": false},\n'
		printf '  "telemetry": {"enabled": false},\n'
		printf '  "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false}\n'
		printf '}\n'
	} >"$file"
}

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

# Settings the CLI gets (NAME=value, none secret), on top of the incident's variables.
agent_env=("HOME=$agent_home" "TMPDIR=$agent_home/tmp")
set_env() {
	agent_env+=("$1=$2")
}
# A key under the name the CLI reads: exported, and passed into a container by name.
secret_env=()
set_secret_env() {
	export "$1=$2"
	secret_env+=("$1")
}

cli=()
case "$agent" in
claude)
	# --allowedTools takes a list: `--` keeps it from swallowing the prompt.
	cli=(claude --print --output-format text)
	if [ "$model" != auto ]; then
		cli+=(--model "$model")
	fi
	cli+=(--allowedTools "$allowed_tools")
	if [ -n "$system_text" ]; then
		cli+=(--append-system-prompt "$system_text")
	fi
	cli+=(-- "$task")
	set_env DISABLE_AUTOUPDATER 1
	set_env DISABLE_TELEMETRY 1
	set_env DISABLE_ERROR_REPORTING 1
	set_env CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC 1
	;;
codex)
	if [ "$runtime" = none ]; then
		sandbox=${CODEX_SANDBOX:-workspace-write}
	else
		sandbox=${CODEX_SANDBOX:-danger-full-access}
	fi
	# codex exec reads its key from CODEX_API_KEY only.
	if [ -z "${CODEX_API_KEY:-}" ] && [ -n "${OPENAI_API_KEY:-}" ]; then
		set_secret_env CODEX_API_KEY "$OPENAI_API_KEY"
	fi
	cli=(codex exec --skip-git-repo-check --sandbox "$sandbox"
		-c check_for_update_on_startup=false -c analytics.enabled=false
		-c features.plugins=false -c features.remote_plugin=false)
	if [ "$model" != auto ]; then
		cli+=(--model "$model")
	fi
	if [ "$sandbox" = workspace-write ]; then
		# kubectl must reach the cluster from inside codex's sandbox.
		cli+=(-c sandbox_workspace_write.network_access=true)
	fi
	if [ -n "${OPENAI_BASE_URL:-}" ]; then
		# codex ignores OPENAI_BASE_URL. Another endpoint (a gateway, a proxy) gets its own
		# provider entry, spoken to over plain HTTP(S): codex would first try a Responses
		# WebSocket, which such endpoints rarely serve, and fall back only after retries.
		cli+=(-c model_provider=openai-base-url
			-c model_providers.openai-base-url.name=openai-base-url
			-c "model_providers.openai-base-url.base_url=\"$OPENAI_BASE_URL\""
			-c model_providers.openai-base-url.env_key=CODEX_API_KEY
			-c model_providers.openai-base-url.wire_api=responses
			-c model_providers.openai-base-url.supports_websockets=false)
	fi
	cli+=(-- "$task_with_system")
	;;
gemini)
	# A new folder is untrusted to gemini (exit 55, yolo ignored) until --skip-trust.
	cli=(gemini)
	if [ "$model" != auto ]; then
		cli+=(--model "$model")
	fi
	cli+=(--skip-trust --approval-mode yolo --prompt "$task_with_system")
	write_gemini_settings "$workspace/$HOME_DIR/.gemini/settings.json"
	;;
goose)
	provider=${GOOSE_PROVIDER:-}
	if [ -z "$provider" ]; then
		if [ -n "${ANTHROPIC_API_KEY:-}" ]; then
			provider=anthropic
		elif [ -n "${OPENAI_API_KEY:-}" ]; then
			provider=openai
		elif [ -n "${GOOGLE_API_KEY:-}" ] || [ -n "${GEMINI_API_KEY:-}" ]; then
			provider=google
		elif [ -n "${OPENROUTER_API_KEY:-}" ]; then
			provider=openrouter
		else
			die "goose needs GOOSE_PROVIDER or one of ANTHROPIC_API_KEY, OPENAI_API_KEY, GOOGLE_API_KEY, GEMINI_API_KEY, OPENROUTER_API_KEY"
		fi
	fi
	if [ "$provider" = google ] && [ -z "${GOOGLE_API_KEY:-}" ] && [ -n "${GEMINI_API_KEY:-}" ]; then
		set_secret_env GOOGLE_API_KEY "$GEMINI_API_KEY"
	fi
	if [ "$model" = auto ]; then
		case "$provider" in
		anthropic) model=claude-sonnet-4-5 ;;
		openai) model=gpt-5.5 ;;
		google) model=gemini-2.5-pro ;;
		openrouter) model=anthropic/claude-sonnet-4.5 ;;
		*) die "goose provider $provider has no default model here; set agent.model" ;;
		esac
	fi
	set_env GOOSE_PROVIDER "$provider"
	set_env GOOSE_MODEL "$model"
	set_env GOOSE_MODE auto
	set_env GOOSE_DISABLE_KEYRING 1
	set_env GOOSE_TELEMETRY_ENABLED false
	set_env GOOSE_TELEMETRY_OFF 1
	# The developer extension is goose's shell and file tool.
	cli=(goose run --no-session --with-builtin developer --text "$task_with_system")
	;;
esac

# Variables passed into the container by name (value from this environment, if set).
pass_env=(
	ANTHROPIC_API_KEY ANTHROPIC_BASE_URL CLAUDE_CODE_USE_BEDROCK CLAUDE_CODE_USE_VERTEX
	OPENAI_API_KEY OPENAI_BASE_URL CODEX_API_KEY
	GEMINI_API_KEY GOOGLE_GEMINI_BASE_URL GOOGLE_API_KEY GOOGLE_CLOUD_PROJECT GOOGLE_CLOUD_LOCATION
	GOOGLE_GENAI_USE_VERTEXAI
	OPENROUTER_API_KEY
	HTTPS_PROXY HTTP_PROXY NO_PROXY https_proxy http_proxy no_proxy
	"${secret_env[@]}"
)
read -r -a extra_env <<<"${AGENT_EXTRA_ENV:-}"
for name in "${extra_env[@]}"; do
	[[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "AGENT_EXTRA_ENV: '$name' is not a variable name"
done
pass_env+=("${extra_env[@]}")

# The CLI's own last error line, read back from the end of this script's stdout and stderr
# (the CLI writes straight to them; nightcrier opens them as files). claude prints its errors
# on stdout, the others on stderr. Stack frames, bare punctuation and "[object Object]" are
# skipped, and so are gemini's report paths (nightcrier keeps 300 characters); a line that
# names an error wins over any other line.
cli_error_line() {
	local fds=(2 1) fd pick file line
	if [ "$agent" = claude ]; then
		fds=(1 2)
	fi
	for pick in error last; do
		for fd in "${fds[@]}"; do
			file=/proc/$$/fd/$fd
			# Only a regular file can be read back; a pipe or terminal cannot.
			[ -f "$file" ] || continue
			line=$(tail -c 65536 "$file" 2>/dev/null | tr -d '\r' |
				sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/Full report available at: [^ ]* *//' |
				awk -v pick="$pick" '
				{ sub(/^[ \t]+/, ""); sub(/[ \t]+$/, "") }
				$0 == "" || /^at / || /^[][{}(),;]+$/ || /\[object Object\]/ || /^run-agent: / { next }
				{ last = $0 }
				tolower($0) ~ /error|fail|denied|refused|invalid|unauthori|forbidden|not found|exceeded|quota|cannot|could not|unable/ { err = $0 }
				END { print (pick == "error" ? err : last) }')
			if [ -n "$line" ]; then
				printf '%s\n' "${line:0:1000}"
				return 0
			fi
		done
	done
}

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
	(cd "$workspace" && exec env "KUBECONFIG=$kubeconfig" "${agent_env[@]}" \
		timeout --kill-after=10 "$timeout" "${cli[@]}" </dev/null) &
else
	for path in "$workspace" "$kubeconfig" "$system_prompt_file"; do
		case "$path" in *,*) die "path '$path' contains a comma, which $runtime --mount cannot express" ;; esac
	done
	container="nightcrier-$(printf '%s' "${INCIDENT_ID:-$$}" | tr -c 'A-Za-z0-9_.-' '_')"
	run=("$runtime" run --rm --init --name "$container"
		--workdir /workspace
		--mount "type=bind,src=$workspace,dst=/workspace"
		--mount "type=bind,src=$kubeconfig,dst=$kube_path,readonly"
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
	for setting in "${agent_env[@]}"; do
		run+=(--env "$setting")
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
	reason=$(cli_error_line)
	if [ -n "$reason" ]; then
		printf '%s: %s\n' "$agent" "$reason" >&2
	fi
fi
exit "$status"
}
