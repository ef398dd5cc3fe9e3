//go:build crio

package crio

import (
	"strings"
	"testing"

	"github.com/podhook/podhook/test/crinode"
	"github.com/podhook/podhook/test/harness"
)

// checkIdentity asserts the agent saw p's true identity, from CRI-O's own
// annotation keys.
func checkIdentity(t *testing.T, ev crinode.Event, p crinode.Pod, container string) {
	t.Helper()
	r := ev.Request
	if r.Pod.Namespace != p.Namespace || r.Pod.Name != p.Name || r.Pod.UID != p.UID || r.Pod.SandboxID != p.ID ||
		r.Container.Name != container || r.Container.Runtime != "cri-o" || r.Container.Image != image ||
		!r.Identity.Trusted || r.Identity.Source != "annotations" {
		t.Fatalf("the agent received %+v\nwant pod %s uid %s sandbox %s, container %s, cri-o, trusted, from the annotations", r, p, p.UID, p.ID, container)
	}
}

// TestAllowAndPoststop: a kubelet's pod starts; the agent sees its true
// identity at create and again at poststop.
func TestAllowAndPoststop(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent("--deny-namespace", "ledger")
	p := w.RunPod(crinode.PodSpec{Name: "web", Namespace: "tenant-a", Kubelet: true})
	id := w.mustCreate(p, "app")
	if _, err := n.Run("start", id); err != nil {
		t.Fatal(err)
	}
	if s := n.State(id); s != "CONTAINER_RUNNING" {
		t.Fatalf("container %s is %s", id, s)
	}
	evs := w.Received(id, "CreateContainer")
	if len(evs) != 1 {
		t.Fatalf("agent received %d creates, want 1", len(evs))
	}
	checkIdentity(t, evs[0], p, "app")
	r := evs[0].Request
	if r.Stage != "createRuntime" || r.Container.CgroupsPath == "" || r.Container.Bundle == "" || len(r.Container.Mounts) == 0 {
		t.Fatalf("request %+v", r)
	}
	rec := w.Record(id, "createRuntime")
	// gomaxprocs: CRI-O passed the registration's env (GOMAXPROCS=1).
	if rec["decision"] != "allow" || rec["identity_trusted"] != true || rec["identity_source"] != "annotations" || rec["runtime"] != "cri-o" || rec["gomaxprocs"] != 1.0 {
		t.Fatalf("record %v", rec)
	}
	// runc runs poststop when the container is deleted: CRI-O deletes it
	// at RemoveContainer (the kubelet's after the container exits).
	w.Stop(id)
	if _, err := n.Run("rm", id); err != nil {
		t.Fatal(err)
	}
	checkIdentity(t, w.WaitReceived(id, "StopContainer"), p, "app")
	if rec := w.Record(id, "poststop"); rec["decision"] != "allow" {
		t.Fatalf("poststop record %v", rec)
	}
}

// TestDeny: the agent's DENY stops the container; its reason is in CRI-O's
// error, as the kubelet shows it in the pod's events.
func TestDeny(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent("--deny-namespace", "ledger")
	p := w.RunPod(crinode.PodSpec{Name: "books", Namespace: "ledger", Kubelet: true})
	w.mustFail(p, "app", `denied by agent: namespace \"ledger\" is denied by podhook-agent`)
	evs := w.receivedFor(p, "app")
	if len(evs) != 1 || evs[0].Response.Verdict != "VERDICT_DENY" {
		t.Fatalf("agent events %+v", evs)
	}
	checkIdentity(t, evs[0], p, "app")
}

// TestAgentDown: with no agent, a tenant fails closed and kube-system (on
// the fail-allow list) fails open.
func TestAgentDown(t *testing.T) {
	w := newWorld(t, map[string]any{"fail_allow_namespaces": []string{"kube-system"}})
	tenant := w.RunPod(crinode.PodSpec{Name: "web", Namespace: "tenant-a", Kubelet: true})
	w.mustFail(tenant, "app", `namespace \"tenant-a\" is not on the fail-allow list: failing closed`)
	if rec := w.recordFor(tenant, "app"); rec["error_kind"] != "unreachable" || rec["fail_open"] != false {
		t.Fatalf("record %v", rec)
	}
	system := w.RunPod(crinode.PodSpec{Name: "kube-proxy", Namespace: "kube-system", Kubelet: true})
	sid := w.mustCreate(system, "proxy")
	if rec := w.Record(sid, "createRuntime"); rec["fail_open"] != true || rec["pod_namespace"] != "kube-system" || rec["identity_trusted"] != true {
		t.Fatalf("record %v", rec)
	}
}

// TestAgentHung: an agent that accepts and never answers costs the
// deadline, not the runtime's hook timeout; then the fail check decides.
func TestAgentHung(t *testing.T) {
	w := newWorld(t, map[string]any{"fail_allow_namespaces": []string{"kube-system"}, "timeout": "1s"})
	w.HangAgent()
	tenant := w.RunPod(crinode.PodSpec{Name: "web", Namespace: "tenant-a", Kubelet: true})
	w.mustFail(tenant, "app", "agent deadline exceeded")
	rec := w.recordFor(tenant, "app")
	if ms, _ := rec["agent_ms"].(float64); rec["error_kind"] != "deadline" || ms < 1000 || ms > 5000 {
		t.Fatalf("record %v: want the 1 s deadline", rec)
	}
	system := w.RunPod(crinode.PodSpec{Name: "kube-proxy", Namespace: "kube-system", Kubelet: true})
	sid := w.mustCreate(system, "proxy")
	if rec := w.Record(sid, "createRuntime"); rec["fail_open"] != true || rec["error_kind"] != "deadline" {
		t.Fatalf("record %v", rec)
	}
}

// TestInfraContainerNeverHooked: a pod that shares its PID namespace gets
// an infra (pause) container from CRI-O; CRI-O never runs hooks.d hooks
// for it, only for the pod's workload containers.
func TestInfraContainerNeverHooked(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent()
	p := w.RunPod(crinode.PodSpec{Name: "shared", Namespace: "tenant-a", Kubelet: true, SharePID: true})
	out, err := n.Run("inspectp", "-o", "go-template", "--template", "{{.info.runtimeSpec.process.args}}", p.ID)
	if err != nil || !strings.Contains(out, "trap") {
		t.Fatalf("no infra container running the pause image: %q, %v", out, err)
	}
	id := w.mustCreate(p, "app")
	checkIdentity(t, w.Received(id, "CreateContainer")[0], p, "app")
	evs, _ := harness.ReadEvents(w.Events)
	for _, ev := range evs {
		if ev.Request.Container.ID == p.ID || ev.Request.Container.Type == "sandbox" {
			t.Fatalf("the infra container got the hook: %+v", ev.Request.Container)
		}
	}
	for _, r := range crinode.ReadLines(w.Log) {
		if r["container_id"] == p.ID {
			t.Fatalf("a record for the infra container: %v", r)
		}
	}
	if len(evs) != 1 {
		t.Fatalf("the agent received %d events, want the workload container's create alone", len(evs))
	}
}
