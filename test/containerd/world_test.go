//go:build containerd

package containerd

import (
	"strings"
	"testing"

	"github.com/podhook/podhook/test/crinode"
)

// world is one test's agent, agent events and hook log (crinode.World),
// with what a container's life looks like under NRI: the hook runs at
// start, when containerd creates the task.
type world struct{ *crinode.World }

// newWorld points the injected hook at a new agent and log, with settings
// (timeout, fail_allow_namespaces, ...) over them.
func newWorld(t *testing.T, settings map[string]any) *world {
	return &world{crinode.NewWorld(t, &n.CRI, n.agentBin, n.hookCfg, settings)}
}

// event is what the agent received, as podhook-agent records it.
type event = crinode.Event

// create creates a long-running container in p.
func (w *world) create(p crinode.Pod, name string) string {
	w.T.Helper()
	id, err := n.Create(p, name, "/bin/sleep", "3600")
	if err != nil {
		w.T.Fatal(err)
	}
	return id
}

// start starts a container: runc runs createRuntime as containerd creates
// the task.
func (w *world) start(id string) error {
	_, err := n.Run("start", id)
	return err
}

// mustStart starts a container and fails the test if it does not run.
func (w *world) mustStart(id string) {
	w.T.Helper()
	if err := w.start(id); err != nil {
		w.T.Fatalf("start %s: %v", id, err)
	}
	if s := n.State(id); s != "CONTAINER_RUNNING" {
		w.T.Fatalf("container %s is %s", id, s)
	}
}

// mustFail starts a container that the hook must stop; the start error
// must hold want (what an operator reads in kubectl describe).
func (w *world) mustFail(id, want string) {
	w.T.Helper()
	err := w.start(id)
	if err == nil {
		w.T.Fatalf("container %s started; want it stopped with %q", id, want)
	}
	if !strings.Contains(err.Error(), want) {
		w.T.Fatalf("start error lacks %q:\n%v", want, err)
	}
	if s := n.State(id); s == "CONTAINER_RUNNING" {
		w.T.Fatalf("container %s is running", id)
	}
}
