#!/usr/bin/env bash
# What the hook adds to a container start, as podman sees it: `podman run ...
# true` with and without podhook registered (agent up), alternating, RUNS
# runs each after a warm-up, medians and their ratio. A benchmark: it asserts
# nothing. Usage: podman-overhead.sh BIN_DIR [RUNS]
set -euo pipefail
bin=$(cd "$1" && pwd) runs=${2:-20}
image=localhost/podhook-e2e-busybox:latest
work=$(mktemp -d /tmp/podhook-bench.XXXXXX)
agent_pid=
cleanup() { [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

if ! podman image exists "$image"; then
	mkdir -p "$work/rootfs/bin"
	cp /bin/busybox "$work/rootfs/bin/"
	ln -s busybox "$work/rootfs/bin/true"
	tar -C "$work/rootfs" -c . | podman import - "$image" >/dev/null
fi
mkdir -p "$work/hooks" "$work/empty"
for stage in createRuntime poststop; do
	"$bin/podhook" hooks-json --path "$bin/podhook" --stage "$stage" \
		--arg=--agent-address --arg="unix://$work/agent.sock" --arg=--log-file --arg="$work/podhook.log" \
		> "$work/hooks/podhook-$stage.json"
done
"$bin/podhook-agent" --socket "$work/agent.sock" --events /dev/null 2>/dev/null &
agent_pid=$!
for _ in $(seq 100); do [ -S "$work/agent.sock" ] && break; sleep 0.05; done

start() { # hooks dir -> milliseconds for one podman run
	local t0 t1
	t0=$(date +%s%N)
	podman --runtime runc --hooks-dir "$1" run --rm --network none \
		--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
		--annotation io.container.manager=cri-o --annotation io.kubernetes.pod.namespace=bench \
		--annotation io.kubernetes.pod.name=bench --annotation io.kubernetes.pod.uid=3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b \
		--annotation io.kubernetes.container.name=bench "$image" true
	t1=$(date +%s%N)
	echo $(( (t1 - t0) / 1000 ))
}
for _ in 1 2 3; do start "$work/hooks" >/dev/null; start "$work/empty" >/dev/null; done
: > "$work/with"; : > "$work/without"
for _ in $(seq "$runs"); do
	start "$work/hooks" >> "$work/with"
	start "$work/empty" >> "$work/without"
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)/1000}'; }
with=$(median "$work/with") without=$(median "$work/without")
records=$(wc -l < "$work/podhook.log")
printf 'podman run ... true, %d runs each, alternating (runc, --network none)\n' "$runs"
printf '  without podhook: median %7.1f ms\n' "$without"
printf '  with podhook:    median %7.1f ms  (createRuntime + poststop, agent up; %d log records)\n' "$with" "$records"
awk -v a="$with" -v b="$without" 'BEGIN {printf "  ratio with/without: %.3f  (+%.1f ms)\n", a/b, a-b}'
