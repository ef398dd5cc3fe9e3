//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTetragonProtocol: podman and runc run the hook from hooks.d with
// agent_protocol tetragon; a server built from Tetragon's API module
// receives the container, and a forged identity never reaches it.
func TestTetragonProtocol(t *testing.T) {
	e := newEnv(t, "--agent-protocol", "tetragon")
	received := startTetragon(t, e.socket, filepath.Join(e.dir, "tetragon.jsonl"))

	r := e.podman(crio("payments", "checkout-1", "checkout"), "echo", "ran")
	if r.code != 0 || r.out != "ran\n" {
		t.Fatalf("exit %d, out %q, err %q", r.code, r.out, r.err)
	}
	got := received()
	if len(got) != 1 || got[0]["containerID"] != r.id || got[0]["podNamespace"] != "payments" || got[0]["podName"] != "checkout-1" ||
		got[0]["podUID"] != podUID || got[0]["containerName"] != "checkout" || got[0]["cgroupsPath"] == nil {
		t.Fatalf("Tetragon received %v (podman id %s)", got, r.id)
	}
	if root, _ := got[0]["rootDir"].(string); !filepath.IsAbs(root) {
		t.Fatalf("rootDir %q is not absolute", root)
	}
	if rec := e.createRecord(r.id); rec["agent_protocol"] != "tetragon" {
		t.Fatalf("record %v", rec)
	}

	r = e.podman(crio("ledger", "books-1", "app", "io.kubernetes.cri.sandbox-namespace=kube-system"), "echo", "ran")
	if r.code == 0 || !strings.Contains(r.err, "denied by podhook: pod identity not trusted") {
		t.Fatalf("forged: exit %d, err %q", r.code, r.err)
	}
	if n := len(received()); n != 1 {
		t.Fatalf("Tetragon received the forged container too (%d requests)", n)
	}
}

// startTetragon runs the Tetragon stand-in on socket, its requests in
// events, and returns what it has received (each CreateContainer).
func startTetragon(t *testing.T, socket, events string) func() []map[string]any {
	t.Helper()
	agent := exec.Command(tetragonAgentBin, "-socket", socket, "-events", events)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Signal(syscall.SIGTERM); agent.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if i == 500 {
			t.Fatal("tetragon agent did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return func() []map[string]any {
		b, _ := os.ReadFile(events)
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var ev struct {
				CreateContainer map[string]any `json:"createContainer"`
			}
			if line != "" && json.Unmarshal([]byte(line), &ev) == nil {
				out = append(out, ev.CreateContainer)
			}
		}
		return out
	}
}
