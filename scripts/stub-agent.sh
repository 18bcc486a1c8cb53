#!/usr/bin/env bash
# Stand-in for run-agent.sh in tests and demos: same arguments and environment, no agent CLI,
# no container. Writes a plausible output/investigation.md built from incident.json.
#
# Usage: stub-agent.sh --workspace DIR --kubeconfig FILE --model M --agent CLI
#                      --allowed-tools T --timeout SECS [--system-prompt-file F] PROMPT
#
# Environment (set by nightcrier): INCIDENT_ID, CLUSTER_NAME, KUBECONFIG.
# Knobs:
#   STUB_AGENT_MODE   ok (default): write the report, exit 0
#                     fail: write to stderr, exit 3
#                     noreport: exit 0 without a report
#                     hang: ignore SIGTERM and sleep, with a background grandchild in the
#                           same process group (exercises the group kill)
#   STUB_AGENT_DELAY  seconds to wait before acting (default 0.2)
#   STUB_AGENT_RESOURCE_STATUS  the report's "Current Status": unhealthy (default), healthy
#                     or unknown
#   STUB_AGENT_READY_FILE  in hang mode, the grandchild's pid is written here once SIGTERM
#                     is ignored (a FIFO lets a test wait for that moment)
set -euo pipefail

die() {
	echo "stub-agent: $*" >&2
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

[ -n "$workspace" ] || die "--workspace is required"
[ -d "$workspace" ] || die "workspace $workspace is not a directory"
[ -n "$kubeconfig" ] || die "--kubeconfig is required"
[ -n "$model" ] || die "--model is required"
[ -n "$agent" ] || die "--agent is required"
[ -n "$allowed_tools" ] || die "--allowed-tools is required"
[[ "$timeout" =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive number of seconds, got '$timeout'"
if [ -n "$system_prompt_file" ] && [ ! -r "$system_prompt_file" ]; then
	die "system prompt file $system_prompt_file is not readable"
fi
case "${STUB_AGENT_RESOURCE_STATUS:-unhealthy}" in
healthy | unhealthy | unknown) ;;
*) die "STUB_AGENT_RESOURCE_STATUS must be healthy, unhealthy or unknown" ;;
esac
[ -n "${INCIDENT_ID:-}" ] || die "INCIDENT_ID is not set"
[ -n "${CLUSTER_NAME:-}" ] || die "CLUSTER_NAME is not set"

sleep "${STUB_AGENT_DELAY:-0.2}"

case "${STUB_AGENT_MODE:-ok}" in
ok) ;;
fail)
	echo "stub-agent: failing as asked (STUB_AGENT_MODE=fail)" >&2
	exit 3
	;;
noreport)
	echo "stub-agent: exiting without a report (STUB_AGENT_MODE=noreport)"
	exit 0
	;;
hang)
	trap '' TERM
	sleep 3600 &
	grandchild=$!
	if [ -n "${STUB_AGENT_READY_FILE:-}" ]; then
		echo "$grandchild" >"$STUB_AGENT_READY_FILE"
	fi
	echo "stub-agent: hanging (STUB_AGENT_MODE=hang), grandchild $grandchild"
	wait "$grandchild"
	exit 0
	;;
*) die "unknown STUB_AGENT_MODE '${STUB_AGENT_MODE}'" ;;
esac

incident="$workspace/incident.json"
[ -r "$incident" ] || die "cannot read $incident"
# incident.json is pretty-printed by nightcrier; flatten it and pick fields with bash only,
# so the stub needs nothing beyond coreutils.
flat=$(tr -s ' \n\t' ' ' <"$incident")
field() {
	local match
	# A JSON string value, escaped quotes included.
	match=$(grep -oE "\"$1\": \"([^\"\\\\]|\\\\.)*\"" <<<"$fault_json" | head -n 1) || true
	match=${match#*: \"}
	printf '%s' "${match%\"}"
}
# The first words of $1 within $2 characters, cut at a space and marked with an ellipsis
# when longer, so no evidence line ends in the middle of a word.
excerpt() {
	local text=$1 max=$2
	if [ "${#text}" -le "$max" ]; then
		printf '%s' "$text"
		return
	fi
	text=${text:0:max}
	[[ "$text" == *" "* ]] && text=${text% *}
	printf '%s …' "$text"
}
fault_json=${flat#*\"fault\": }
fault_json=${fault_json%%, \"status\": *}
fault_type=$(field faultType)
kind=$(field kind)
kind=${kind:-Pod}
name=$(field name)
namespace=$(field namespace)
severity=$(field severity)
fault_id=$(field faultId)
context=$(field context)

mkdir -p "$workspace/output"
report="$workspace/output/investigation.md"
tmp="$workspace/output/.investigation.md.tmp"
cat >"$tmp" <<EOF
# Investigation ${INCIDENT_ID}

## Summary
${fault_type:-Fault} on ${kind} ${namespace:+$namespace/}${name:-unknown} in cluster ${CLUSTER_NAME} (severity ${severity:-unknown}).
This report was written by the stub agent; no model was consulted.

## Root Cause
The workload's container keeps exiting shortly after start; its restarts match the
reported ${fault_type:-fault}. (Stub analysis: derived from the fault alone.)

## Confidence
high

## Current Status
${STUB_AGENT_RESOURCE_STATUS:-unhealthy}: the state the stub reports for the resource.

## Evidence
- Incident: ${INCIDENT_ID}
- Cluster: ${CLUSTER_NAME}
- KUBECONFIG: ${KUBECONFIG:-unset}
- --kubeconfig: ${kubeconfig}
- Agent: ${agent}, model ${model}, allowed tools ${allowed_tools}, timeout ${timeout}s
- Prompt: $(excerpt "$prompt" 200)
- Fault: ${fault_type:-unknown} (${severity:-unknown}) on ${kind} ${namespace:+$namespace/}${name:-unknown}, faultId ${fault_id:-unknown}
- Context: $(excerpt "${context:-none}" 200)

## Recommended Actions
1. Inspect the container's previous logs: \`kubectl logs --previous ${name:-POD}${namespace:+ -n $namespace}\`.
2. Check recent events for the resource: \`kubectl describe ${kind,,} ${name:-POD}${namespace:+ -n $namespace}\`.
3. Roll back the last change to the workload if the failures started with it.
EOF
mv -f "$tmp" "$report"
echo "stub-agent: wrote $report"
