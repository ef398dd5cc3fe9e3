// Package crinode drives a real CRI runtime (containerd, CRI-O) the way a
// kubelet does, through crictl, and holds one test's agent, events and
// hook log: what the end-to-end suites of both runtimes share.
package crinode

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/harness"
)

// CRI is a runtime's CRI socket, reached with crictl.
type CRI struct {
	Crictl   string // the crictl binary
	Endpoint string // unix socket path
	Dir      string // where the config files go (short: socket paths are bounded)
	// Image is what containers run.
	Image string
	seq   atomic.Int64
}

// WriteConfig writes crictl's config for the endpoint.
func (c *CRI) WriteConfig() error {
	cfg := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n", c.Endpoint, c.Endpoint)
	return os.WriteFile(filepath.Join(c.Dir, "crictl.yaml"), []byte(cfg), 0o600)
}

// Run runs crictl with args and returns its trimmed stdout.
func (c *CRI) Run(args ...string) (string, error) {
	cmd := exec.Command(c.Crictl, append([]string{"--config", filepath.Join(c.Dir, "crictl.yaml")}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("crictl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// PodSpec is a pod to run.
type PodSpec struct {
	Name, Namespace string
	Annotations     map[string]string
	// Kubelet adds what a kubelet sends with every sandbox: its labels
	// (io.kubernetes.pod.*) and the pod's cgroup parent under kubepods.
	Kubelet bool
	// SharePID gives the pod one PID namespace (shareProcessNamespace):
	// CRI-O then runs an infra container to hold it.
	SharePID bool
}

// Pod is a running pod sandbox.
type Pod struct {
	ID, UID, Name, Namespace string
	CgroupParent             string
	Cfg                      string // the pod config crictl needs again at create
	Kubelet, SharePID        bool
}

func (p Pod) String() string { return p.Namespace + "/" + p.Name }

// RunPod runs a host-network pod sandbox with a fresh UID.
func (c *CRI) RunPod(p PodSpec) (Pod, error) {
	seq := c.seq.Add(1)
	uid := fmt.Sprintf("0000%04d-5a4d-4e8f-9b7a-1c2d3e4f5a6b", seq)
	name := fmt.Sprintf("%s-%d", p.Name, seq)
	pd := Pod{UID: uid, Name: name, Namespace: p.Namespace, Kubelet: p.Kubelet, SharePID: p.SharePID}
	nsOpts := map[string]any{"network": 2} // NODE
	linux := map[string]any{"security_context": map[string]any{"namespace_options": nsOpts}}
	cfg := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": p.Namespace, "uid": uid, "attempt": 0},
		"annotations":   p.Annotations,
		"log_directory": filepath.Join(c.Dir, "logs", name),
		"linux":         linux,
	}
	if p.Kubelet {
		cfg["labels"] = map[string]string{"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": p.Namespace, "io.kubernetes.pod.uid": uid}
		pd.CgroupParent = "/kubepods/besteffort/pod" + uid
		linux["cgroup_parent"] = pd.CgroupParent
		if !p.SharePID {
			nsOpts["pid"] = 1 // CONTAINER, as a kubelet asks unless the pod shares its process namespace
		}
	}
	pd.Cfg = filepath.Join(c.Dir, "pod-"+name+".json")
	if err := WriteJSON(pd.Cfg, cfg); err != nil {
		return Pod{}, err
	}
	id, err := c.Run("runp", pd.Cfg)
	pd.ID = id
	return pd, err
}

// Create creates a container named name in p running args; a kubelet's
// pod also gets the kubelet's container labels and annotations.
func (c *CRI) Create(p Pod, name string, args ...string) (string, error) {
	cfg := map[string]any{
		"metadata": map[string]any{"name": name},
		"image":    map[string]any{"image": c.Image},
		"command":  args,
		"log_path": name + ".log",
	}
	if p.Kubelet {
		cfg["labels"] = map[string]string{"io.kubernetes.container.name": name, "io.kubernetes.pod.name": p.Name,
			"io.kubernetes.pod.namespace": p.Namespace, "io.kubernetes.pod.uid": p.UID}
		cfg["annotations"] = map[string]string{"io.kubernetes.container.hash": "1a2b3c4d", "io.kubernetes.container.restartCount": "0",
			"io.kubernetes.container.terminationMessagePath": "/dev/termination-log", "io.kubernetes.container.terminationMessagePolicy": "File",
			"io.kubernetes.pod.terminationGracePeriod": "30"}
		pid := 1 // CONTAINER
		if p.SharePID {
			pid = 0 // POD
		}
		cfg["linux"] = map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2, "pid": pid}}}
	}
	path := filepath.Join(c.Dir, "ctr-"+p.Name+"-"+name+".json")
	if err := WriteJSON(path, cfg); err != nil {
		return "", err
	}
	return c.Run("create", p.ID, path, p.Cfg)
}

// State is the container's state as crictl reports it.
func (c *CRI) State(id string) string {
	out, _ := c.Run("inspect", "-o", "go-template", "--template", "{{.status.state}}", id)
	return strings.TrimSpace(out)
}

// RemovePod stops the pod's containers at once (a container's PID 1
// ignores SIGTERM: a graceful stop would wait out the runtime's stop
// timeout), then removes the pod.
func (c *CRI) RemovePod(id string) {
	out, _ := c.Run("ps", "-a", "-q", "--pod", id)
	for _, cid := range strings.Fields(out) {
		c.Run("stop", "-t", "0", cid)
	}
	c.Run("rmp", "-f", id)
}

// RemoveAllPods removes every pod the runtime knows.
func (c *CRI) RemoveAllPods() {
	out, _ := c.Run("pods", "-q")
	for _, id := range strings.Fields(out) {
		c.RemovePod(id)
	}
}

// World is one test's agent, agent events and hook log; NewWorld points
// the hook's config file (read at every invocation) at them.
type World struct {
	T        *testing.T
	CRI      *CRI
	Dir      string
	Socket   string
	Events   string
	Log      string
	agentBin string
	agent    *exec.Cmd
}

// NewWorld writes the hook's config file hookCfg: the world's agent socket
// and log, and settings (timeout, fail_allow_namespaces, ...) over them.
func NewWorld(t *testing.T, c *CRI, agentBin, hookCfg string, settings map[string]any) *World {
	t.Helper()
	dir, err := os.MkdirTemp(c.Dir, "w-")
	if err != nil {
		t.Fatal(err)
	}
	w := &World{T: t, CRI: c, Dir: dir, Socket: filepath.Join(dir, "agent.sock"), Events: filepath.Join(dir, "events.jsonl"),
		Log: filepath.Join(dir, "podhook.log"), agentBin: agentBin}
	cfg := map[string]any{"agent_address": "unix://" + w.Socket, "log_file": w.Log, "timeout": "2s"}
	maps.Copy(cfg, settings)
	if err := WriteJSON(hookCfg, cfg); err != nil {
		t.Fatal(err)
	}
	return w
}

// StartAgent starts podhook-agent on the world's socket.
func (w *World) StartAgent(args ...string) {
	w.T.Helper()
	w.agent = exec.Command(w.agentBin, append([]string{"--socket", w.Socket, "--events", w.Events}, args...)...)
	if err := w.agent.Start(); err != nil {
		w.T.Fatal(err)
	}
	w.T.Cleanup(w.StopAgent)
	for i := 0; !Dialable(w.Socket); i++ {
		if i == 500 {
			w.T.Fatal("agent did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// StopAgent stops the agent, if it runs.
func (w *World) StopAgent() {
	if w.agent != nil {
		w.agent.Process.Signal(syscall.SIGTERM)
		w.agent.Wait()
		w.agent = nil
	}
}

// HangAgent serves the socket with an agent that never answers.
func (w *World) HangAgent() {
	w.T.Helper()
	h, err := harness.NewHangingAgent(w.Socket)
	if err != nil {
		w.T.Fatal(err)
	}
	w.T.Cleanup(func() { h.Close() })
}

// Event is what the agent received, as podhook-agent records it.
type Event = harness.Event

// Received returns the agent's events for container id and rpc.
func (w *World) Received(id, rpc string) []Event {
	evs, err := harness.ReadEvents(w.Events)
	if err != nil {
		w.T.Fatal(err)
	}
	var out []Event
	for _, ev := range evs {
		if ev.Request.Container.ID == id && ev.RPC == rpc {
			out = append(out, ev)
		}
	}
	return out
}

// WaitReceived waits until the agent has received rpc for id.
func (w *World) WaitReceived(id, rpc string) Event {
	w.T.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if evs := w.Received(id, rpc); len(evs) > 0 {
			return evs[0]
		}
		if time.Now().After(deadline) {
			w.T.Fatalf("the agent never received %s for %s", rpc, id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Record returns the hook's record of stage for container id.
func (w *World) Record(id, stage string) map[string]any {
	w.T.Helper()
	for _, r := range ReadLines(w.Log) {
		if r["container_id"] == id && r["stage"] == stage {
			return r
		}
	}
	w.T.Fatalf("no %s record for %s in %s", stage, id, w.Log)
	return nil
}

// RunPod runs a pod that is removed when the test ends.
func (w *World) RunPod(p PodSpec) Pod {
	w.T.Helper()
	pd, err := w.CRI.RunPod(p)
	if err != nil {
		w.T.Fatal(err)
	}
	w.T.Cleanup(func() { w.CRI.RemovePod(pd.ID) })
	return pd
}

// Stop stops a container at once (SIGKILL).
func (w *World) Stop(id string) {
	w.T.Helper()
	if _, err := w.CRI.Run("stop", "-t", "0", id); err != nil {
		w.T.Fatal(err)
	}
}

// WriteJSON writes v as JSON to path, mode 0600.
func WriteJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// ReadLines parses a JSON-lines file; a missing file has none.
func ReadLines(path string) []map[string]any {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var r map[string]any
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// Dialable reports whether a unix socket accepts connections.
func Dialable(path string) bool {
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// Images the suites build from local files (there is no registry): the
// busybox-static rootfs, as a pod's pause image and as the image its
// containers run.
const (
	PauseImage = "localhost/podhook-pause:e2e"
	Image      = "localhost/podhook-busybox:e2e"
)

// Node is a runtime a suite started for all its tests.
type Node interface {
	// Dump prints the tail of the runtime's logs.
	Dump()
	// Close stops what the suite started, by PID, and removes its state.
	Close()
}

// Main runs a suite's tests against the node setup starts (stored in
// *into before the tests run), prints the node's logs when setup or a test
// fails, and always stops the node. It returns the exit code for os.Exit.
func Main[N interface {
	comparable
	Node
}](m *testing.M, name string, setup func() (N, error), into *N) int {
	node, err := setup()
	*into = node
	var none N
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s suite setup: %v\n", name, err)
		if node != none {
			node.Dump()
			node.Close()
		}
		return 1
	}
	code := m.Run()
	if code != 0 {
		node.Dump()
	}
	node.Close()
	return code
}
