#!/usr/bin/env bash
# The whole job on one machine: podhook runs as the runtime would run it, on
# a container captured from a real CRI-O, against the reference agent, then
# with the agent stopped. Usage: demo.sh BIN_DIR FIXTURE_DIR
set -euo pipefail
bin=$(cd "$1" && pwd) fixtures=$(cd "$2" && pwd)
work=$(mktemp -d /tmp/podhook-demo.XXXXXX)
agent_pid=
cleanup() { [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# A bundle holding the captured config.json, and the captured state with its
# bundle pointed there (the state names the bundle; podhook never guesses it).
mkdir -p "$work/bundle"
cp "$fixtures/config.json" "$work/bundle/"
sed -E "s#\"bundle\":\"[^\"]*\"#\"bundle\":\"$work/bundle\"#" "$fixtures/state-createRuntime.json" > "$work/state.json"
sock="$work/agent.sock" log="$work/podhook.log" events="$work/events.jsonl"
hook() { "$bin/podhook" createRuntime --agent-address "unix://$sock" --log-file "$log" "$@" < "$work/state.json"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Indented JSON for a person; python3 when there is one, the line as is
# otherwise. Every pipe into it ends in a reader that reads to the end.
pretty() { if command -v python3 >/dev/null; then python3 -m json.tool; else cat; fi; }
start_agent() {
	"$bin/podhook-agent" --socket "$sock" --events "$events" "$@" 2>/dev/null &
	agent_pid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
}
stop_agent() { kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=; }

step "start podhook-agent on $sock"
start_agent
"$bin/podhook" check --agent-address "unix://$sock"

step "1. agent up: podhook createRuntime on the CRI-O container payments/checkout"
start=$(date +%s%N); rc=0; hook || rc=$?; end=$(date +%s%N)
echo "exit $rc (0: the container starts) in $(( (end - start) / 1000000 )) ms, whole process"
echo "   (one cold run, timed by this shell: process start, page cache and the"
echo "   agent's first connection included; make bench times 200 runs each of the"
echo "   hook and a grpc-go floor, interleaved, and reports medians of a few ms)"
echo "-- the hook's log record:"; tail -n 1 "$log" | pretty
# Through files, never a pipe into head: head exits after its lines, and a
# writer still writing into the closed pipe would fail the demo (pipefail).
echo "-- what the agent received (its event, the request indented):"
tail -n 1 "$events" > "$work/event.json"; pretty < "$work/event.json" > "$work/event.txt"
head -n 40 "$work/event.txt"; echo "   ..."

step "2. the agent denies namespace payments (podhook-agent --deny-namespace payments)"
stop_agent; start_agent --deny-namespace payments
rc=0; hook || rc=$?
echo "exit $rc (1: the runtime stops the container; the line above is what kubectl describe shows)"
echo "-- the hook's log record:"; tail -n 1 "$log" | pretty

step "stop the agent"
stop_agent

step "3. agent down, namespace payments not on the fail-allow list (default: kube-system): fails closed"
start=$(date +%s%N); rc=0; hook || rc=$?; end=$(date +%s%N)
echo "exit $rc (1: the runtime stops the container; the line above is what kubectl describe shows) in $(( (end - start) / 1000000 )) ms"
echo "-- the hook's log record:"; tail -n 1 "$log" | pretty

step "4. agent down, payments allowed to fail open (--fail-allow-namespaces kube-system,payments)"
rc=0; hook --fail-allow-namespaces kube-system,payments || rc=$?
echo "exit $rc (0: the container starts)"
echo "-- the hook's log record:"; tail -n 1 "$log" | pretty

step "5. what the hook would send, without contacting anything (--dry-run), first lines"
hook --dry-run > "$work/dry-run.txt"
head -n 12 "$work/dry-run.txt"; echo "  ..."; tail -n 1 "$work/dry-run.txt"
