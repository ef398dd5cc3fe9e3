//go:build containerd

package containerd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/harness"
)

// world is one test's agent, agent events and hook log. newWorld points
// the injected hook at them.
type world struct {
	t      *testing.T
	dir    string
	socket string
	events string
	log    string
	agent  *exec.Cmd
}

// newWorld writes the hook's config: the test's agent socket and log, and
// settings (timeout, fail_allow_namespaces, ...) over them.
func newWorld(t *testing.T, settings map[string]any) *world {
	t.Helper()
	dir, err := os.MkdirTemp(n.dir, "w-")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, dir: dir, socket: filepath.Join(dir, "agent.sock"), events: filepath.Join(dir, "events.jsonl"), log: filepath.Join(dir, "podhook.log")}
	cfg := map[string]any{"agent_address": "unix://" + w.socket, "log_file": w.log, "timeout": "2s"}
	for k, v := range settings {
		cfg[k] = v
	}
	if err := writeJSON(n.hookCfg, cfg); err != nil {
		t.Fatal(err)
	}
	return w
}

// startAgent starts podhook-agent on the world's socket.
func (w *world) startAgent(args ...string) {
	w.t.Helper()
	w.agent = exec.Command(n.agentBin, append([]string{"--socket", w.socket, "--events", w.events}, args...)...)
	if err := w.agent.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(w.stopAgent)
	for i := 0; !dialable(w.socket); i++ {
		if i == 500 {
			w.t.Fatal("agent did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *world) stopAgent() {
	if w.agent != nil {
		w.agent.Process.Signal(syscall.SIGTERM)
		w.agent.Wait()
		w.agent = nil
	}
}

// hangAgent serves the socket with an agent that never answers.
func (w *world) hangAgent() {
	w.t.Helper()
	h, err := harness.NewHangingAgent(w.socket)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { h.Close() })
}

// event is what the agent received, as podhook-agent records it.
type event = harness.Event

// received returns the agent's events for container id and rpc.
func (w *world) received(id, rpc string) []event {
	evs, err := harness.ReadEvents(w.events)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []event
	for _, ev := range evs {
		if ev.Request.Container.ID == id && ev.RPC == rpc {
			out = append(out, ev)
		}
	}
	return out
}

// waitReceived waits until the agent has received rpc for id (poststop
// runs when containerd deletes the task, after crictl stop returns).
func (w *world) waitReceived(id, rpc string) event {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if evs := w.received(id, rpc); len(evs) > 0 {
			return evs[0]
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the agent never received %s for %s", rpc, id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// record returns the hook's record of stage for container id.
func (w *world) record(id, stage string) map[string]any {
	w.t.Helper()
	for _, r := range readLines(w.log) {
		if r["container_id"] == id && r["stage"] == stage {
			return r
		}
	}
	w.t.Fatalf("no %s record for %s in %s", stage, id, w.log)
	return nil
}

// runPod runs a pod that the test removes when it ends.
func (w *world) runPod(p podSpec) pod {
	w.t.Helper()
	pd, err := n.runPodE(p)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { n.crictl("rmp", "-f", pd.id) })
	return pd
}

// create creates a long-running container in p.
func (w *world) create(p pod, name string) string {
	w.t.Helper()
	id, err := n.createE(p, name, "/bin/sleep", "3600")
	if err != nil {
		w.t.Fatal(err)
	}
	return id
}

// start starts a container. Under NRI the hook runs at start: runc runs
// createRuntime when containerd creates the task.
func (w *world) start(id string) error {
	_, err := n.crictl("start", id)
	return err
}

// state is the container's state as crictl reports it.
func (w *world) state(id string) string {
	out, _ := n.crictl("inspect", "-o", "go-template", "--template", "{{.status.state}}", id)
	return strings.TrimSpace(out)
}

// mustStart starts a container and fails the test if it does not run.
func (w *world) mustStart(id string) {
	w.t.Helper()
	if err := w.start(id); err != nil {
		w.t.Fatalf("start %s: %v", id, err)
	}
	if s := w.state(id); s != "CONTAINER_RUNNING" {
		w.t.Fatalf("container %s is %s", id, s)
	}
}

// mustFail starts a container that the hook must stop; the start error
// must hold want (what an operator reads in kubectl describe).
func (w *world) mustFail(id, want string) {
	w.t.Helper()
	err := w.start(id)
	if err == nil {
		w.t.Fatalf("container %s started; want it stopped with %q", id, want)
	}
	if !strings.Contains(err.Error(), want) {
		w.t.Fatalf("start error lacks %q:\n%v", want, err)
	}
	if s := w.state(id); s == "CONTAINER_RUNNING" {
		w.t.Fatalf("container %s is running", id)
	}
}

// stop stops a container at once (SIGKILL).
func (w *world) stop(id string) {
	w.t.Helper()
	if _, err := n.crictl("stop", "-t", "0", id); err != nil {
		w.t.Fatal(err)
	}
}

func (p pod) String() string { return fmt.Sprintf("%s/%s", p.namespace, p.name) }
