//go:build e2e

package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podhook/podhook/test/harness"
)

func TestAgentUp(t *testing.T) {
	e := newEnv(t)
	e.startAgent()
	r := e.podman(crio("payments", "checkout-1", "checkout"), "echo", "hello from pod")
	if r.code != 0 || r.out != "hello from pod\n" || r.id == "" {
		t.Fatalf("exit %d, out %q, err %q", r.code, r.out, r.err)
	}
	evs := e.readEvents()
	if len(evs) != 2 || evs[0].RPC != "CreateContainer" || evs[1].RPC != "StopContainer" {
		t.Fatalf("events %+v", evs)
	}
	c, p := evs[0].Request.Container, evs[0].Request.Pod
	if p.Namespace != "payments" || p.Name != "checkout-1" || p.UID != podUID || c.Name != "checkout" ||
		c.ID != r.id || c.Pid <= 0 || c.CgroupsPath == "" || c.CgroupsPathExpanded == "" || c.Runtime != "cri-o" {
		t.Fatalf("create event %+v (podman id %s)", evs[0].Request, r.id)
	}
	if evs[1].Request.Container.ID != r.id || evs[1].Request.Stage != "poststop" {
		t.Fatalf("stop event %+v", evs[1].Request)
	}
	// podman passed the registration's env: the hook ran on one
	// scheduler thread.
	if rec := e.createRecord(r.id); rec["decision"] != "allow" || rec["pod_namespace"] != "payments" || rec["gomaxprocs"] != 1.0 {
		t.Fatalf("record %v", rec)
	}
}

func TestAgentDenies(t *testing.T) {
	e := newEnv(t)
	e.startAgent("--deny-namespace", "payments")
	r := e.podman(crio("payments", "checkout-1", "checkout"), "echo", "ran")
	if r.code == 0 || strings.Contains(r.out, "ran") {
		t.Fatalf("denied container ran: exit %d, out %q", r.code, r.out)
	}
	if !strings.Contains(r.err, `podhook: denied by agent: namespace \"payments\" is denied by podhook-agent`) &&
		!strings.Contains(r.err, `podhook: denied by agent: namespace "payments" is denied by podhook-agent`) {
		t.Fatalf("podman's error lacks the agent's reason: %q", r.err)
	}
	if rec := e.createRecord(r.id); rec["msg"] != "container denied by agent" {
		t.Fatalf("record %v", rec)
	}
}

func TestAgentDown(t *testing.T) {
	cases := map[string]struct {
		hookArgs []string
		stale    bool
		runs     bool
	}{
		"no socket, not allowed":         {nil, false, false},
		"stale socket, not allowed":      {nil, true, false},
		"no socket, allowed exactly":     {[]string{"--fail-allow-namespaces", "kube-system,payments"}, false, true},
		"stale socket, allowed by regex": {[]string{"--fail-allow-namespace-regex", "pay.*"}, true, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, tc.hookArgs...)
			if tc.stale {
				l, err := net.Listen("unix", e.socket)
				if err != nil {
					t.Fatal(err)
				}
				l.(*net.UnixListener).SetUnlinkOnClose(false)
				l.Close()
			}
			r := e.podman(crio("payments", "checkout-1", "checkout"), "echo", "ran")
			rec := e.createRecord(r.id)
			// Decided without waiting for the 2 s deadline; the bound
			// leaves room for a loaded machine.
			if d := rec["duration_ms"].(float64); d >= 1000 {
				t.Errorf("the hook took %.1f ms: it waited for the agent", d)
			}
			if tc.runs {
				if r.code != 0 || r.out != "ran\n" || rec["msg"] != "agent unavailable: failed open" || rec["fail_open"] != true {
					t.Fatalf("exit %d, out %q, err %q, record %v", r.code, r.out, r.err, rec)
				}
				return
			}
			if r.code == 0 || strings.Contains(r.out, "ran") {
				t.Fatalf("container ran with the agent down: %q", r.out)
			}
			if !strings.Contains(r.err, "podhook: agent unreachable") || !strings.Contains(r.err, "is not on the fail-allow list") {
				t.Fatalf("podman's error lacks podhook's reason: %q", r.err)
			}
			if rec["msg"] != "agent unavailable: failed closed" {
				t.Fatalf("record %v", rec)
			}
		})
	}
}

func TestSpoofedNamespace(t *testing.T) {
	e := newEnv(t, "--fail-allow-namespaces", "kube-system")
	r := e.podman(crio("tenant-a", "web-1", "web", "io.kubernetes.cri.sandbox-namespace=kube-system"), "echo", "ran")
	if r.code == 0 || strings.Contains(r.out, "ran") {
		t.Fatalf("spoofed container ran: %q", r.out)
	}
	rec := e.createRecord(r.id)
	if rec["pod_namespace"] != "tenant-a" || rec["identity_conflict"] == nil || rec["decision"] != "deny" {
		t.Fatalf("record %v", rec)
	}
}

// TestAgentHangs: an agent that accepts and never answers; the fail check
// decides within --timeout plus a margin, long before the runtime's 10s.
func TestAgentHangs(t *testing.T) {
	for _, tc := range []struct {
		allow string
		runs  bool
	}{{"kube-system", false}, {"payments", true}} {
		e := newEnv(t, "--timeout", "1s", "--fail-allow-namespaces", tc.allow)
		hang, err := harness.NewHangingAgent(e.socket)
		if err != nil {
			t.Fatal(err)
		}
		r := e.podman(crio("payments", "checkout-1", "checkout"), "echo", "ran")
		hang.Close()
		if got := r.code == 0 && r.out == "ran\n"; got != tc.runs {
			t.Fatalf("allow %s: ran=%v, want %v (err %q)", tc.allow, got, tc.runs, r.err)
		}
		rec := e.createRecord(r.id)
		// Decided at the 1 s deadline, not at the runtime's 10 s hook
		// timeout: the bound leaves room for a loaded machine.
		if a, d := rec["agent_ms"].(float64), rec["duration_ms"].(float64); a < 1000 || d > 5000 {
			t.Errorf("agent call %.0f ms, decided after %.0f ms: want the 1s deadline", a, d)
		}
		if rec["error_kind"] != "deadline" {
			t.Fatalf("record %v", rec)
		}
	}
}

func TestFiftyContainers(t *testing.T) {
	e := newEnv(t)
	e.startAgent()
	ids := map[string]bool{}
	for i := range 50 {
		r := e.podman(crio("payments", "burst", "c"), "true")
		if r.code != 0 {
			t.Fatalf("container %d: exit %d, err %q", i, r.code, r.err)
		}
		ids[r.id] = true
	}
	creates, stops := map[string]int{}, map[string]int{}
	for _, ev := range e.readEvents() {
		switch ev.RPC {
		case "CreateContainer":
			creates[ev.Request.Container.ID]++
		case "StopContainer":
			stops[ev.Request.Container.ID]++
		}
	}
	recs := e.records()
	if len(ids) != 50 || len(creates) != 50 || len(stops) != 50 || len(recs) != 100 {
		t.Fatalf("%d ids, %d create and %d stop events, %d records; want 50, 50, 50, 100", len(ids), len(creates), len(stops), len(recs))
	}
	for id := range ids {
		if creates[id] != 1 || stops[id] != 1 {
			t.Fatalf("container %s: %d creates, %d stops", id, creates[id], stops[id])
		}
	}
	for _, rec := range recs {
		if !ids[rec["container_id"].(string)] || rec["decision"] != "allow" {
			t.Fatalf("record %v", rec)
		}
	}
}

// TestRunc runs the hook from a bundle's config.json with runc alone: the
// runtime contract without podman.
func TestRunc(t *testing.T) {
	e := newEnv(t)
	e.startAgent()
	bundle := filepath.Join(e.dir, "bundle")
	rootfs := filepath.Join(bundle, "rootfs")
	tarball, err := harness.RootfsTar()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(rootfs, 0o755)
	if out, err := run2("tar", tarball, "-C", rootfs, "-x"); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	if out, err := run2("runc", nil, "spec", "--bundle", bundle); err != nil {
		t.Fatalf("runc spec: %v %s", err, out)
	}
	specPath := filepath.Join(bundle, "config.json")
	spec := readJSON(t, specPath)
	spec["process"].(map[string]any)["terminal"] = false
	spec["process"].(map[string]any)["args"] = []string{"echo", "from runc"}
	annotations := map[string]string{}
	for _, a := range crio("payments", "runc-pod", "runc-c") {
		k, v, _ := strings.Cut(a, "=")
		annotations[k] = v
	}
	spec["annotations"] = annotations
	hookArgs := func(stage string) []string {
		return []string{"podhook", stage, "--agent-address", "unix://" + e.socket, "--log-file", e.log}
	}
	spec["hooks"] = map[string]any{
		"createRuntime": []map[string]any{{"path": podhook, "args": hookArgs("createRuntime"), "timeout": 10, "env": []string{"PATH=/usr/bin:/bin"}}},
		"poststop":      []map[string]any{{"path": podhook, "args": hookArgs("poststop"), "timeout": 10, "env": []string{"PATH=/usr/bin:/bin"}}},
	}
	writeJSON(t, specPath, spec)
	id := "podhook-e2e-runc"
	out, err := run2("runc", nil, "run", "--bundle", bundle, id)
	if err != nil || string(out) != "from runc\n" {
		t.Fatalf("runc run: %v, %q", err, out)
	}
	evs := e.readEvents()
	if len(evs) != 2 || evs[0].Request.Container.ID != id || evs[0].Request.Pod.Namespace != "payments" || evs[0].Request.Container.Pid <= 0 ||
		evs[1].RPC != "StopContainer" || evs[1].Request.Container.ID != id {
		t.Fatalf("events %+v", evs)
	}

	// Agent down, namespace not allowed: runc does not start the process.
	e.agent.Process.Kill()
	e.agent.Wait()
	os.Remove(e.socket)
	out, err = run2("runc", nil, "run", "--bundle", bundle, id+"-2")
	run2("runc", nil, "delete", "--force", id+"-2")
	if err == nil || strings.Contains(string(out), "from runc") || !strings.Contains(string(out), "podhook: agent unreachable") {
		t.Fatalf("runc with the agent down: %v, %q", err, out)
	}
}
