//go:build containerd

package containerd

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/crinode"
)

// checkIdentity asserts the agent saw p's true identity, from the runtime.
func checkIdentity(t *testing.T, ev event, p crinode.Pod, container string) {
	t.Helper()
	r := ev.Request
	if r.Pod.Namespace != p.Namespace || r.Pod.Name != p.Name || r.Pod.UID != p.UID || r.Pod.SandboxID != p.ID ||
		r.Container.Name != container || r.Container.Runtime != "containerd" || r.Container.Image != image ||
		!r.Identity.Trusted || r.Identity.Source != "runtime" {
		t.Fatalf("the agent received %+v\nwant pod %s/%s uid %s sandbox %s, container %s, trusted, from the runtime", r, p.Namespace, p.Name, p.UID, p.ID, container)
	}
}

// TestAllowAndPoststop: a pod starts; the agent sees its true identity at
// create and again at poststop.
func TestAllowAndPoststop(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent("--deny-namespace", "ledger")
	p := w.RunPod(crinode.PodSpec{Name: "web", Namespace: "tenant-a"})
	id := w.create(p, "app")
	w.mustStart(id)
	evs := w.Received(id, "CreateContainer")
	if len(evs) != 1 {
		t.Fatalf("agent received %d creates, want 1", len(evs))
	}
	checkIdentity(t, evs[0], p, "app")
	if evs[0].Request.Stage != "createRuntime" {
		t.Fatalf("stage %q", evs[0].Request.Stage)
	}
	// Under NRI the pod's sandbox (pause) container never gets the hook.
	if evs := w.Received(p.ID, "CreateContainer"); len(evs) != 0 {
		t.Fatalf("the sandbox got the hook: %+v", evs)
	}
	rec := w.Record(id, "createRuntime")
	// gomaxprocs: the hook podhook-nri added carried the registration's
	// env (GOMAXPROCS=1) through containerd.
	if rec["decision"] != "allow" || rec["identity_trusted"] != true || rec["identity_source"] != "runtime" || rec["runtime"] != "containerd" || rec["gomaxprocs"] != 1.0 {
		t.Fatalf("record %v", rec)
	}

	w.Stop(id)
	checkIdentity(t, w.WaitReceived(id, "StopContainer"), p, "app")
	if rec := w.Record(id, "poststop"); rec["decision"] != "allow" {
		t.Fatalf("poststop record %v", rec)
	}
}

// TestDeny: the agent's DENY stops the container; its reason is in the
// start error, as kubectl describe shows it.
func TestDeny(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent("--deny-namespace", "ledger")
	p := w.RunPod(crinode.PodSpec{Name: "books", Namespace: "ledger"})
	id := w.create(p, "app")
	w.mustFail(id, `denied by agent: namespace \"ledger\" is denied by podhook-agent`)
	evs := w.Received(id, "CreateContainer")
	if len(evs) != 1 || evs[0].Response.Verdict != "VERDICT_DENY" {
		t.Fatalf("agent events %+v", evs)
	}
	checkIdentity(t, evs[0], p, "app")
}

// TestAgentDown: with no agent, a tenant fails closed and kube-system
// (on the fail-allow list) fails open.
func TestAgentDown(t *testing.T) {
	w := newWorld(t, map[string]any{"fail_allow_namespaces": []string{"kube-system"}})
	tenant := w.RunPod(crinode.PodSpec{Name: "web", Namespace: "tenant-a"})
	id := w.create(tenant, "app")
	w.mustFail(id, `namespace \"tenant-a\" is not on the fail-allow list: failing closed`)
	if rec := w.Record(id, "createRuntime"); rec["error_kind"] != "unreachable" || rec["fail_open"] != false {
		t.Fatalf("record %v", rec)
	}

	system := w.RunPod(crinode.PodSpec{Name: "kube-proxy", Namespace: "kube-system"})
	sid := w.create(system, "proxy")
	w.mustStart(sid)
	if rec := w.Record(sid, "createRuntime"); rec["fail_open"] != true || rec["pod_namespace"] != "kube-system" || rec["identity_trusted"] != true {
		t.Fatalf("record %v", rec)
	}
}

// TestAgentHung: an agent that accepts and never answers costs the
// deadline, then the fail check decides.
func TestAgentHung(t *testing.T) {
	w := newWorld(t, map[string]any{"fail_allow_namespaces": []string{"kube-system"}, "timeout": "1s"})
	w.HangAgent()
	tenant := w.RunPod(crinode.PodSpec{Name: "web", Namespace: "tenant-a"})
	id := w.create(tenant, "app")
	w.mustFail(id, "agent deadline exceeded")
	rec := w.Record(id, "createRuntime")
	if rec["error_kind"] != "deadline" {
		t.Fatalf("record %v", rec)
	}
	// Bounded by the deadline, far from the runtime's 10 s hook timeout.
	if ms, _ := rec["agent_ms"].(float64); ms < 1000 || ms > 5000 {
		t.Fatalf("agent call took %v ms, want about the 1 s deadline", rec["agent_ms"])
	}
	system := w.RunPod(crinode.PodSpec{Name: "kube-proxy", Namespace: "kube-system"})
	sid := w.create(system, "proxy")
	w.mustStart(sid)
	if rec := w.Record(sid, "createRuntime"); rec["fail_open"] != true || rec["error_kind"] != "deadline" {
		t.Fatalf("record %v", rec)
	}
}

// TestContainerdRestart: containerd restarts under the plugin; the plugin
// reconnects, does not report the container that got the hook before the
// restart, and the next container gets the hook again.
func TestContainerdRestart(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent()
	p := w.RunPod(crinode.PodSpec{Name: "web", Namespace: "tenant-a"})
	before := w.create(p, "before")
	w.mustStart(before)

	syncs := n.countNRI("synchronized")
	n.ctrd.Stop()
	if err := n.waitNRI("not connected to the runtime, retrying", 1); err != nil {
		t.Fatal(err)
	}
	if err := n.startContainerd(); err != nil {
		t.Fatal(err)
	}
	if err := n.waitNRI("synchronized", syncs+1); err != nil {
		t.Fatal(err)
	}
	if err := n.waitInjected(); err != nil {
		t.Fatal(err)
	}
	if s := n.State(before); s != "CONTAINER_RUNNING" {
		t.Fatalf("container from before the restart is %s", s)
	}
	if r := n.withoutHook()[before]; r != nil {
		t.Fatalf("a container that got the hook was reported without it: %v", r)
	}
	after := w.create(p, "after")
	w.mustStart(after)
	checkIdentity(t, w.WaitReceived(after, "CreateContainer"), p, "after")
}

// TestPluginRestart: a container created while podhook-nri is away runs
// without the hook and is reported when the plugin comes back; the one
// that got the hook before is not.
func TestPluginRestart(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent()
	p := w.RunPod(crinode.PodSpec{Name: "web", Namespace: "tenant-a"})
	hooked := w.create(p, "hooked")
	w.mustStart(hooked)

	n.stopPlugin()
	gap := w.create(p, "gap")
	w.mustStart(gap)
	if evs := w.Received(gap, "CreateContainer"); len(evs) != 0 {
		t.Fatalf("the agent heard of a container created without the plugin: %+v", evs)
	}
	if err := n.startPlugin(); err != nil {
		t.Fatal(err)
	}
	reported := n.withoutHook()
	if r := reported[gap]; r != nil && (r["pod_namespace"] != "tenant-a" || r["container_name"] != "gap") {
		t.Fatalf("gap container reported as %v", r)
	}
	if reported[gap] == nil || reported[hooked] != nil {
		t.Fatalf("reported without the hook: %v; want %s and not %s", reported, gap, hooked)
	}
	// The plugin delivers the gap container to the agent, with the
	// identity the runtime gave it.
	checkSynced(t, w.WaitReceived(gap, "CreateContainer"), p, "gap", "runtime")
	if evs := w.Received(hooked, "CreateContainer"); len(evs) != 1 {
		t.Fatalf("the hooked container was reported again: %+v", evs)
	}
	next := w.create(p, "next")
	w.mustStart(next)
	checkIdentity(t, w.WaitReceived(next, "CreateContainer"), p, "next")
}

// withoutHook returns podhook-nri's "created without the hook" records by
// container id.
func (n *node) withoutHook() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, r := range n.nriRecords() {
		if msg, _ := r["msg"].(string); strings.Contains(msg, "without the hook") {
			id, _ := r["container_id"].(string)
			out[id] = r
		}
	}
	return out
}

// TestDefaultValidatorGap measures NRI's default validator with podhook as
// a required plugin: after the plugin dies, the first container created
// still runs without the hook (NRI learns the plugin is gone only when it
// calls it for that container); the next create is rejected. The plugin
// reports the first one when it is back.
func TestDefaultValidatorGap(t *testing.T) {
	if err := n.restartContainerd(true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n.plugin == nil {
			n.startPlugin()
		}
		if err := n.restartContainerd(false); err != nil {
			t.Error(err)
		}
	})
	w := newWorld(t, nil)
	w.StartAgent()
	p := w.RunPod(crinode.PodSpec{Name: "web", Namespace: "tenant-a"})
	hooked := w.create(p, "hooked")
	w.mustStart(hooked)

	n.stopPlugin()
	first, err := n.Create(p, "first", "/bin/sleep", "3600")
	if err != nil {
		t.Fatalf("first create after the plugin died: %v", err)
	}
	w.mustStart(first)
	if evs := w.Received(first, "CreateContainer"); len(evs) != 0 {
		t.Fatalf("the agent heard of %s: %+v", first, evs)
	}
	if _, err := n.Create(p, "second", "/bin/sleep", "3600"); err == nil || !strings.Contains(err.Error(), "podhook") {
		t.Fatalf("second create after the plugin died: %v, want a rejection naming the required plugin", err)
	} else {
		t.Logf("second create rejected: %s", err)
	}

	if err := n.startPlugin(); err != nil {
		t.Fatal(err)
	}
	if reported := n.withoutHook(); reported[first] == nil || reported[hooked] != nil {
		t.Fatalf("reported without the hook: %v; want %s, not %s", reported, first, hooked)
	}
}

// TestTetragonProtocol: on containerd, podhook-nri's hook speaks Tetragon's
// RuntimeHook to a server built from Tetragon's API module, with the
// identity the runtime gave the plugin; a forging pod is stopped by podhook
// and never reaches Tetragon.
func TestTetragonProtocol(t *testing.T) {
	w := newWorld(t, map[string]any{"agent_protocol": "tetragon"})
	events := filepath.Join(w.Dir, "tetragon.jsonl")
	agent := exec.Command(filepath.Join(filepath.Dir(n.podhook), "tetragonagent"), "-socket", w.Socket, "-events", events)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { agent.Process.Signal(syscall.SIGTERM); agent.Wait() }()
	for i := 0; !crinode.Dialable(w.Socket); i++ {
		if i == 500 {
			t.Fatal("tetragon agent did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	received := func() []map[string]any {
		var out []map[string]any
		for _, r := range crinode.ReadLines(events) {
			if cc, ok := r["createContainer"].(map[string]any); ok {
				out = append(out, cc)
			}
		}
		return out
	}
	p := w.RunPod(crinode.PodSpec{Name: "web", Namespace: "tenant-a"})
	id := w.create(p, "app")
	w.mustStart(id)
	got := received()
	if len(got) != 1 || got[0]["containerID"] != id || got[0]["podNamespace"] != "tenant-a" || got[0]["podName"] != p.Name ||
		got[0]["podUID"] != p.UID || got[0]["containerName"] != "app" || got[0]["containerImage"] != image {
		t.Fatalf("Tetragon received %v", got)
	}
	if cg, _ := got[0]["cgroupsPath"].(string); !strings.HasSuffix(cg, id) {
		t.Fatalf("cgroupsPath %q", cg)
	}
	if root, _ := got[0]["rootDir"].(string); !filepath.IsAbs(root) || !strings.Contains(root, id) {
		t.Fatalf("rootDir %q", root)
	}

	forger := w.RunPod(crinode.PodSpec{Name: "books", Namespace: "ledger", Annotations: forgeries["io.container.manager + io.kubernetes.pod.*"]})
	fid := w.create(forger, "app")
	w.mustFail(fid, "denied by podhook: pod identity not trusted")
	if len(received()) != 1 {
		t.Fatalf("Tetragon received the forging pod: %v", received())
	}
}
