//go:build e2e

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// twoAgents registers the hook with a config listing the reference agent
// (on the env's socket, started with refArgs) and the Tetragon stand-in,
// with settings over them; it returns what Tetragon received.
func twoAgents(t *testing.T, settings map[string]any, refArgs ...string) (*env, func() []map[string]any) {
	t.Helper()
	dir := t.TempDir()
	tetSock := filepath.Join(dir, "tetragon.sock")
	cfg := map[string]any{}
	for k, v := range settings {
		cfg[k] = v
	}
	e := emptyEnv(t)
	cfg["agents"] = []map[string]any{
		{"name": "reference", "address": "unix://" + e.socket},
		{"name": "tetragon", "address": "unix://" + tetSock, "protocol": "tetragon"},
	}
	path := filepath.Join(e.dir, "podhook-config.json")
	writeJSON(t, path, cfg)
	e.register([]string{"--config", path, "--log-file", e.log})
	e.startAgent(refArgs...)
	return e, startTetragon(t, tetSock, filepath.Join(dir, "tetragon.jsonl"))
}

// TestTwoAgentsUnderPodman: podman and runc run the hook from hooks.d; it
// shows each container to the reference agent and to the Tetragon
// stand-in at once: both receive the trusted identity, and a DENY from the
// reference agent stops the container, named in podman's error.
func TestTwoAgentsUnderPodman(t *testing.T) {
	e, tetragon := twoAgents(t, nil, "--deny-namespace", "ledger")
	r := e.podman(crio("payments", "checkout-1", "checkout"), "echo", "ran")
	if r.code != 0 || r.out != "ran\n" {
		t.Fatalf("exit %d, out %q, err %q", r.code, r.out, r.err)
	}
	evs := e.readEvents()
	if len(evs) != 2 || evs[0].Request.Container.ID != r.id || evs[0].Request.Pod.Namespace != "payments" || !evs[0].Request.Identity.Trusted {
		t.Fatalf("the reference agent received %+v", evs)
	}
	got := tetragon()
	if len(got) != 1 || got[0]["containerID"] != r.id || got[0]["podNamespace"] != "payments" || got[0]["podUID"] != podUID {
		t.Fatalf("Tetragon received %v", got)
	}
	rec := e.createRecord(r.id)
	t.Logf("container %.12s: reference received %s/%s trusted; Tetragon received %s/%s; record agents %v",
		r.id, evs[0].Request.Pod.Namespace, evs[0].Request.Pod.Name, got[0]["podNamespace"], got[0]["podName"], rec["agents"])

	r = e.podman(crio("ledger", "books-1", "app"), "echo", "ran")
	if r.code == 0 || strings.Contains(r.out, "ran") || !strings.Contains(r.err, `agent \"reference\": denied by agent: namespace \"ledger\"`) &&
		!strings.Contains(r.err, `agent "reference": denied by agent: namespace "ledger"`) {
		t.Fatalf("denied by one agent: exit %d, out %q, err %q", r.code, r.out, r.err)
	}
	if n := len(tetragon()); n != 2 {
		t.Fatalf("Tetragon received %d creates, want 2 (it is shown the denied one too)", n)
	}
}

// TestAuditUnderPodman: in audit, a container the agent denies runs, and
// its record says it would have been stopped; with audit for one namespace,
// another namespace's container is still stopped.
func TestAuditUnderPodman(t *testing.T) {
	e := newEnv(t, "--agent-uid", "-1", "--audit-namespaces", "payments")
	e.startAgent("--deny-namespace", "payments", "--deny-namespace", "ledger")
	r := e.podman(crio("payments", "checkout-1", "checkout"), "echo", "ran")
	if r.code != 0 || r.out != "ran\n" {
		t.Fatalf("audited container: exit %d, out %q, err %q", r.code, r.out, r.err)
	}
	rec := e.createRecord(r.id)
	if rec["decision"] != "allow" || rec["would_deny"] != true || rec["reason"] != `denied by agent: namespace "payments" is denied by podhook-agent` {
		t.Fatalf("record %v", rec)
	}
	r = e.podman(crio("ledger", "books-1", "app"), "echo", "ran")
	if r.code == 0 || strings.Contains(r.out, "ran") {
		t.Fatalf("enforced namespace ran: exit %d, out %q", r.code, r.out)
	}
	if rec := e.createRecord(r.id); rec["decision"] != "deny" || rec["would_deny"] != nil {
		t.Fatalf("record %v", rec)
	}
}

// TestForgeriesReachNeitherAgent: every key family a pod can forge on
// CRI-O, claiming kube-system, with both agents up and kube-system both
// fail-allowed and in audit: no forging container starts (a forged
// identity neither fails open nor audits its way in), the reference agent
// sees ledger untrusted, and Tetragon is never shown it.
func TestForgeriesReachNeitherAgent(t *testing.T) {
	e, tetragon := twoAgents(t, map[string]any{"fail_allow_namespaces": []string{"kube-system"}, "audit_namespaces": []string{"kube-system"}},
		"--deny-namespace", "ledger")
	for family, keys := range crioForgeries {
		r := e.podman(crio("ledger", "books-1", "app", keys...), "echo", "ran")
		if r.code == 0 || strings.Contains(r.out, "ran") {
			t.Errorf("%s: the forging container ran", family)
		}
		if rec := e.createRecord(r.id); rec["would_deny"] != nil || rec["fail_open"] != false || rec["identity_trusted"] != false {
			t.Errorf("%s: record %v", family, rec)
		}
		for _, ev := range e.readEvents() {
			if ev.RPC == "CreateContainer" && ev.Request.Container.ID == r.id && (ev.Request.Identity.Trusted || ev.Request.Pod.Namespace != "ledger") {
				t.Errorf("%s: the reference agent received %+v", family, ev.Request)
			}
		}
	}
	if got := tetragon(); len(got) != 0 {
		t.Fatalf("Tetragon was shown %d forged containers", len(got))
	}
	t.Logf("%d forgery families: none started, none reached either agent as trusted", len(crioForgeries))
}
