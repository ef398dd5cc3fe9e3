//go:build crio

package crio

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podhook/podhook/test/crinode"
	"github.com/podhook/podhook/test/harness"
)

// The images: crinode's, built from local files.
const (
	image = crinode.Image
)

// The suite's node: one CRI-O for every test, its hooks dir holding
// podhook's registrations as `podhook install` writes them. Each test
// points the hook at its own agent and log by rewriting the installed
// config file, which the hook reads at every invocation.
var n *node

func TestMain(m *testing.M) {
	os.Exit(crinode.Main(m, "CRI-O", newNode, &n))
}

type node struct {
	crinode.CRI
	crio     crinode.CRIO
	dir      string // short: unix socket paths are limited to 108 bytes
	podhook  string
	agentBin string
	hooksDir string
	install  string // the install dir: binary and config
	hookCfg  string
}

func (n *node) sock() string { return filepath.Join(n.dir, "crio.sock") }

func newNode() (*node, error) {
	dir, err := os.MkdirTemp("", "phx-")
	if err != nil {
		return nil, err
	}
	n := &node{dir: dir, hooksDir: filepath.Join(dir, "hooks.d"), install: filepath.Join(dir, "opt")}
	n.hookCfg = filepath.Join(n.install, "podhook-config.json")
	n.CRI = crinode.CRI{Endpoint: n.sock(), Dir: dir, Image: image}
	n.crio = crinode.CRIO{Dir: dir, Bin: os.Getenv("PODHOOK_CRIO_BIN"), Listen: n.sock(), HooksDirs: []string{n.hooksDir}}
	if n.Crictl, err = exec.LookPath(os.Getenv("PODHOOK_CRICTL")); err != nil {
		return n, fmt.Errorf("crictl (PODHOOK_CRICTL; make e2e-crio builds it): %w", err)
	}
	if _, err := exec.LookPath("podman"); err != nil {
		return n, fmt.Errorf("podman: %w (apt-get install podman; it writes the images into CRI-O's store)", err)
	}
	bin := filepath.Join(dir, "bin")
	n.podhook, n.agentBin = filepath.Join(bin, "podhook"), filepath.Join(bin, "podhook-agent")
	if err := harness.Build(map[string]string{n.podhook: "../../cmd/podhook", n.agentBin: "../../cmd/podhook-agent",
		filepath.Join(bin, "podhook-sync"): "../../cmd/podhook-sync"}); err != nil {
		return n, err
	}
	if err := n.crio.WriteConfig(); err != nil {
		return n, err
	}
	if err := n.WriteConfig(); err != nil {
		return n, err
	}
	if err := n.crio.ImportImages(); err != nil {
		return n, err
	}
	if err := n.startCRIO(); err != nil {
		return n, err
	}
	// podhook arrives while CRI-O runs, as a DaemonSet's installer does:
	// CRI-O watches its hooks dir and the next container gets the hook.
	if err := n.installHook(); err != nil {
		return n, err
	}
	return n, n.waitHooked()
}

// startCRIO starts CRI-O and waits until its CRI answers.
func (n *node) startCRIO() error {
	return n.crio.Start(func() error { _, err := n.Run("info"); return err })
}

func (n *node) stopCRIO() { n.crio.Stop() }

// installHook runs `podhook install` into the node's install and hooks
// dirs, as an operator or the DaemonSet's init container does.
func (n *node) installHook() error {
	cfg := filepath.Join(n.dir, "config-source.json")
	if err := os.WriteFile(cfg, []byte(`{"log_file":"none"}`), 0o600); err != nil {
		return err
	}
	out, err := exec.Command(n.podhook, "install", "--install-dir", n.install, "--hooks-dir", n.hooksDir, "--config-from", cfg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("podhook install: %v\n%s", err, out)
	}
	return nil
}

// waitHooked creates probe containers until CRI-O gives one podhook's
// hook: CRI-O reloads its hooks dir on a file event, a moment after the
// install's rename.
func (n *node) waitHooked() error {
	pod, err := n.RunPod(crinode.PodSpec{Name: "probe", Namespace: "probe", Kubelet: true})
	if err != nil {
		return err
	}
	defer n.Run("rmp", "-f", pod.ID)
	w := filepath.Join(n.dir, "probe.log")
	if err := crinode.WriteJSON(n.hookCfg, map[string]any{"log_file": w, "agent_address": "unix://" + filepath.Join(n.dir, "none.sock"),
		"fail_allow_namespaces": []string{"probe"}}); err != nil {
		return err
	}
	for i := 0; i < 300; i++ {
		cid, err := n.Create(pod, fmt.Sprintf("probe-%d", i), "/bin/true")
		if err != nil {
			return err
		}
		n.Run("rm", "-f", cid)
		for _, r := range crinode.ReadLines(w) {
			if r["container_id"] == cid {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("CRI-O never ran podhook's hook")
}

func (n *node) Close() {
	if n.crio.Running() {
		n.RemoveAllPods()
	}
	n.stopCRIO()
	n.crio.Unmount()
	os.RemoveAll(n.dir)
}

// Dump prints the tail of CRI-O's log, for a failing run.
func (n *node) Dump() { fmt.Fprintf(os.Stderr, "--- crio.log (tail)\n%s\n", n.crio.Log(12000)) }

// newWorld points the installed hook at a new agent and log.
func newWorld(t *testing.T, settings map[string]any) *world {
	return &world{crinode.NewWorld(t, &n.CRI, n.agentBin, n.hookCfg, settings)}
}

type world struct{ *crinode.World }

// create creates a long-running container in p. Under CRI-O the hook runs
// here: runc runs createRuntime when CRI-O creates the container.
func (w *world) create(p crinode.Pod, name string) (string, error) {
	return n.Create(p, name, "/bin/sleep", "3600")
}

// mustCreate creates a container the hook lets through.
func (w *world) mustCreate(p crinode.Pod, name string) string {
	w.T.Helper()
	id, err := w.create(p, name)
	if err != nil {
		w.T.Fatalf("create %s in %s: %v", name, p, err)
	}
	return id
}

// mustFail creates a container that the hook must stop; CRI-O's error
// must hold want (what the kubelet shows in the pod's events).
func (w *world) mustFail(p crinode.Pod, name, want string) string {
	w.T.Helper()
	id, err := w.create(p, name)
	if err == nil {
		w.T.Fatalf("container %s created in %s; want it stopped with %q", id, p, want)
	}
	if !strings.Contains(err.Error(), want) {
		w.T.Fatalf("create error lacks %q:\n%v", want, err)
	}
	return id
}

// recordFor returns the hook's create record for the pod's container
// name: a container CRI-O failed to create has no ID crictl returned.
func (w *world) recordFor(p crinode.Pod, container string) map[string]any {
	w.T.Helper()
	for _, r := range crinode.ReadLines(w.Log) {
		if r["pod_uid"] == p.UID && r["container_name"] == container && r["stage"] == "createRuntime" {
			return r
		}
	}
	w.T.Fatalf("no create record for %s/%s in %s", p, container, w.Log)
	return nil
}

// receivedFor returns the agent's creates for the pod's container name.
func (w *world) receivedFor(p crinode.Pod, container string) []crinode.Event {
	evs, err := harness.ReadEvents(w.Events)
	if err != nil {
		w.T.Fatal(err)
	}
	var out []crinode.Event
	for _, ev := range evs {
		if ev.RPC == "CreateContainer" && ev.Request.Pod.UID == p.UID && ev.Request.Container.Name == container {
			out = append(out, ev)
		}
	}
	return out
}
