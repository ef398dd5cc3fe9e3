//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/harness"
)

const image = "localhost/podhook-e2e-busybox:latest"

var podhook, agentBin, tetragonAgentBin string

func TestMain(m *testing.M) {
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e setup: %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// setup installs podman, runc and busybox-static when missing, builds the
// binaries, and imports a busybox rootfs as a local image (no registry).
func setup() error {
	var missing []string
	for bin, pkg := range map[string]string{"podman": "podman", "runc": "runc", "/bin/busybox": "busybox-static"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq"}, missing...)} {
			cmd := exec.Command("apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("apt-get %v: %v\n%s", args, err, out)
			}
		}
	}
	dir, err := os.MkdirTemp("", "podhook-e2e-bin-")
	if err != nil {
		return err
	}
	podhook, agentBin, tetragonAgentBin = filepath.Join(dir, "podhook"), filepath.Join(dir, "podhook-agent"), filepath.Join(dir, "tetragonagent")
	// As make build lays them out: podhook the hook's own build (the
	// stages), podhook-ctl every command, which podhook runs for the
	// others; podhook-nri and podhook-sync too: the image holds them.
	if err := harness.BuildTagged(map[string]string{podhook: "../../cmd/podhook"}, harness.HookOnly); err != nil {
		return err
	}
	if err := harness.Build(map[string]string{filepath.Join(dir, "podhook-ctl"): "../../cmd/podhook", agentBin: "../../cmd/podhook-agent",
		filepath.Join(dir, "podhook-nri"): "../../cmd/podhook-nri", filepath.Join(dir, "podhook-sync"): "../../cmd/podhook-sync",
		filepath.Join(dir, "podhook-monitor"): "../../cmd/podhook-monitor",
		tetragonAgentBin:                      "../tetragonagent"}); err != nil {
		return err
	}
	rootfs, err := harness.RootfsTar()
	if err != nil {
		return err
	}
	cmd := exec.Command("podman", "import", "-", image)
	cmd.Stdin = bytes.NewReader(rootfs)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("podman import: %v\n%s", err, out)
	}
	return nil
}

// env is one test's world: an agent socket, the agent's events, the hook's
// log and a hooks.d dir pointing at the built binary.
type env struct {
	t        *testing.T
	dir      string
	socket   string
	events   string
	log      string
	hooksDir string
	agent    *exec.Cmd
}

func newEnv(t *testing.T, hookArgs ...string) *env {
	t.Helper()
	e := emptyEnv(t)
	e.register(append([]string{"--agent-address", "unix://" + e.socket, "--log-file", e.log}, hookArgs...))
	return e
}

func emptyEnv(t *testing.T) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "phe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, dir: dir, socket: filepath.Join(dir, "agent.sock"), events: filepath.Join(dir, "events.jsonl"),
		log: filepath.Join(dir, "log", "podhook.log"), hooksDir: filepath.Join(dir, "hooks.d")}
	os.Mkdir(e.hooksDir, 0o700)
	return e
}

// register writes the hooks.d files that run podhook with args.
func (e *env) register(args []string) {
	t := e.t
	t.Helper()
	for _, stage := range []string{"createRuntime", "poststop"} {
		cmdArgs := []string{"hooks-json", "--path", podhook, "--stage", stage}
		for _, a := range args {
			cmdArgs = append(cmdArgs, "--arg="+a)
		}
		out, err := exec.Command(podhook, cmdArgs...).Output()
		if err != nil {
			t.Fatalf("hooks-json: %v", err)
		}
		os.WriteFile(filepath.Join(e.hooksDir, "podhook-"+stage+".json"), out, 0o600)
	}
}

func (e *env) startAgent(args ...string) {
	e.t.Helper()
	e.agent = exec.Command(agentBin, append([]string{"--socket", e.socket, "--events", e.events}, args...)...)
	if err := e.agent.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		e.agent.Process.Signal(syscall.SIGTERM)
		e.agent.Wait()
	})
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("unix", e.socket); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatal("agent did not start")
}

const podUID = "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b"

// crio returns podman annotations that present a container to the hook as
// CRI-O does (keys as in ../shared/fixtures/crio-1.37).
func crio(ns, pod, container string, extra ...string) []string {
	a := []string{
		"io.container.manager=cri-o",
		"io.kubernetes.pod.namespace=" + ns,
		"io.kubernetes.pod.name=" + pod,
		"io.kubernetes.pod.uid=" + podUID,
		"io.kubernetes.container.name=" + container,
		"io.kubernetes.cri-o.ContainerType=container",
	}
	return append(a, extra...)
}

type run struct {
	id      string
	out     string
	err     string
	code    int
	elapsed time.Duration
}

// podman runs a container with the hooks dir, playing CRI-O's annotations.
func (e *env) podman(annotations []string, cmdline ...string) run {
	e.t.Helper()
	cidfile := filepath.Join(e.dir, fmt.Sprintf("cid-%d", time.Now().UnixNano()))
	args := []string{"--runtime", "runc", "--hooks-dir", e.hooksDir, "run", "--rm", "--cidfile", cidfile,
		"--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
	for _, a := range annotations {
		args = append(args, "--annotation", a)
	}
	args = append(append(args, image), cmdline...)
	cmd := exec.Command("podman", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := run{out: out.String(), err: errb.String(), elapsed: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	id, _ := os.ReadFile(cidfile)
	r.id = strings.TrimSpace(string(id))
	return r
}

// event is what the agent received, as podhook-agent records it.
type event = harness.Event

func (e *env) readEvents() []event {
	e.t.Helper()
	evs, err := harness.ReadEvents(e.events)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) records() []map[string]any {
	e.t.Helper()
	var out []map[string]any
	for _, line := range lines(e.t, e.log) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			e.t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

func lines(t *testing.T, path string) []string {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// createRecord returns the create-stage record of container id.
func (e *env) createRecord(id string) map[string]any {
	e.t.Helper()
	for _, rec := range e.records() {
		if rec["container_id"] == id && rec["stage"] == "createRuntime" {
			return rec
		}
	}
	e.t.Fatalf("no createRuntime record for %s in %v", id, e.records())
	return nil
}
