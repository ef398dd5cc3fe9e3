package nriplugin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	nri "github.com/containerd/nri/pkg/adaptation"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/podhook/podhook/internal/hooksd"
	"github.com/podhook/podhook/test/harness"
)

// records parses the plugin's JSON-lines log.
func records(logs *harness.SyncBuffer) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// The runtime side is NRI's own adaptation library (the code containerd and
// CRI-O embed), run in a child process so that a runtime restart is what it
// is on a node: the process dies and its connections close.
const helperEnv = "PODHOOK_NRI_RUNTIME_STATE"

func TestMain(m *testing.M) {
	if state := os.Getenv(helperEnv); state != "" {
		runtimeHelper(state)
		return
	}
	os.Exit(m.Run())
}

type helperState struct {
	Socket string
	Pods   []*nri.PodSandbox
	Ctrs   []*nri.Container
}

// runtimeHelper serves NRI on the socket, reports the given pods and
// containers when a plugin synchronizes, and for each "ID" line on stdin
// creates a container and prints the adjustment as one JSON line.
func runtimeHelper(stateJSON string) {
	var st helperState
	if err := json.Unmarshal([]byte(stateJSON), &st); err != nil {
		panic(err)
	}
	sync := func(ctx context.Context, cb nri.SyncCB) error {
		_, err := cb(ctx, st.Pods, st.Ctrs)
		return err
	}
	update := func(context.Context, []*nri.ContainerUpdate) ([]*nri.ContainerUpdate, error) { return nil, nil }
	dir := filepath.Dir(st.Socket)
	a, err := nri.New("containerd", "v2.1.0", sync, update,
		nri.WithPluginPath(filepath.Join(dir, "plugins")),
		nri.WithPluginConfigPath(filepath.Join(dir, "conf.d")),
		nri.WithSocketPath(st.Socket))
	if err != nil {
		panic(err)
	}
	if err := a.Start(); err != nil {
		panic(err)
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		resp, err := a.CreateContainer(context.Background(), &nri.CreateContainerRequest{
			Pod: st.Pods[0], Container: &nri.Container{Id: sc.Text(), PodSandboxId: st.Pods[0].Id, Name: "web"},
		})
		if err != nil {
			panic(err)
		}
		b, _ := json.Marshal(resp.GetAdjust().GetHooks())
		fmt.Println(string(b))
	}
}

type runtime struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startRuntime(t *testing.T, socket string, pods []*nri.PodSandbox, ctrs []*nri.Container) *runtime {
	t.Helper()
	st, _ := json.Marshal(helperState{Socket: socket, Pods: pods, Ctrs: ctrs})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(st))
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &runtime{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(r.kill)
	return r
}

// create asks the runtime to create a container and returns the hooks the
// plugins added.
func (r *runtime) create(t *testing.T, id string) *nri.Hooks {
	t.Helper()
	fmt.Fprintln(r.in, id)
	if !r.out.Scan() {
		t.Fatalf("runtime helper: %v", r.out.Err())
	}
	var h nri.Hooks
	if err := json.Unmarshal(r.out.Bytes(), &h); err != nil {
		t.Fatalf("%s: %v", r.out.Text(), err)
	}
	return &h
}

// kill ends the runtime the way a restart does.
func (r *runtime) kill() {
	if r.cmd.ProcessState == nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func hasRecord(logs *harness.SyncBuffer, msg string, kv ...any) func() bool {
	return func() bool {
		for _, r := range records(logs) {
			if r["msg"] != msg {
				continue
			}
			ok := true
			for i := 0; i+1 < len(kv); i += 2 {
				if r[kv[i].(string)] != kv[i+1] {
					ok = false
				}
			}
			if ok {
				return true
			}
		}
		return false
	}
}

func TestPluginWithNRIRuntime(t *testing.T) {
	dir, err := os.MkdirTemp("", "nri-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "nri.sock")
	pod := &nri.PodSandbox{Id: "pod-1", Name: "web-0", Namespace: "tenant-a", Uid: "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b"}
	rt := startRuntime(t, socket, []*nri.PodSandbox{pod}, nil)

	logs := &harness.SyncBuffer{}
	metrics := NewMetrics(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			SocketPath: socket,
			Hook:       hooksd.Options{Path: "/opt/podhook/podhook", Args: []string{"--config", "/opt/podhook/podhook-config.json"}, Timeout: 10},
			Log:        slog.New(slog.NewJSONHandler(logs, nil)),
			MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
			Metrics: metrics,
		})
	}()
	waitFor(t, "registration", hasRecord(logs, "registered with the runtime", "runtime", "containerd"))

	check := func(h *nri.Hooks) {
		t.Helper()
		if len(h.GetCreateRuntime()) != 1 || len(h.GetPoststop()) != 1 || len(h.GetPrestart()) != 0 {
			t.Fatalf("hooks %v", h)
		}
		for stage, hook := range map[string]*nri.Hook{"createRuntime": h.CreateRuntime[0], "poststop": h.Poststop[0]} {
			// The runtime's name from Configure and the identity the
			// runtime gave the plugin, each in one argument.
			want := []string{"podhook", stage, "--via=nri", "--config", "/opt/podhook/podhook-config.json", "--runtime=containerd",
				"--pod-namespace=tenant-a", "--pod-name=web-0", "--pod-uid=3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b",
				"--sandbox-id=pod-1", "--container-name=web"}
			if hook.Path != "/opt/podhook/podhook" || !slices.Equal(hook.Args, want) || hook.GetTimeout().GetValue() != 10 ||
				!slices.Equal(hook.Env, hooksd.DefaultEnv) {
				t.Fatalf("%s hook %v, want path /opt/podhook/podhook args %q timeout 10", stage, hook, want)
			}
		}
	}
	// The plugin's Synchronize returns before the runtime counts it in: a
	// create may still miss it for a moment. Probe until one gets the hook.
	ready := func(r *runtime) {
		t.Helper()
		for i := 0; len(r.create(t, fmt.Sprintf("probe-%d", i)).GetCreateRuntime()) == 0; i++ {
			if i == 500 {
				t.Fatal("the runtime never added the plugin's hooks")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ready(rt)
	check(rt.create(t, "ctr-1"))
	waitFor(t, "the injection log", hasRecord(logs, "hook injected", "container_id", "ctr-1", "pod_namespace", "tenant-a"))

	// The runtime restarts. While the plugin is away, ctr-2 is created
	// without it; the runtime reports it when the plugin synchronizes.
	// ctr-0 got podhook's hook from an earlier run of the plugin (its OCI
	// hooks say so): not a container without the hook.
	rt.kill()
	waitFor(t, "the plugin to notice", hasRecord(logs, "not connected to the runtime, retrying"))
	injected := &nri.Hooks{CreateRuntime: []*nri.Hook{{Path: "/opt/podhook/podhook", Args: []string{"podhook", "createRuntime"}}}}
	ctrs := []*nri.Container{
		{Id: "ctr-0", PodSandboxId: pod.Id, Name: "old", State: nri.ContainerState_CONTAINER_RUNNING, Hooks: injected},
		{Id: "ctr-1", PodSandboxId: pod.Id, Name: "web", State: nri.ContainerState_CONTAINER_RUNNING},
		{Id: "ctr-2", PodSandboxId: pod.Id, Name: "sidecar", State: nri.ContainerState_CONTAINER_RUNNING,
			Hooks: &nri.Hooks{CreateRuntime: []*nri.Hook{{Path: "/usr/bin/other-hook"}}}},
	}
	os.Remove(socket)
	rt2 := startRuntime(t, socket, []*nri.PodSandbox{pod}, ctrs)
	waitFor(t, "the missed container in the log", hasRecord(logs, "container created without the hook: the plugin was not connected",
		"container_id", "ctr-2", "pod_namespace", "tenant-a", "container_name", "sidecar"))
	waitFor(t, "the synchronization summary", hasRecord(logs, "synchronized", "containers", float64(3), "without_hook", float64(1)))
	for _, id := range []string{"ctr-0", "ctr-1"} {
		if hasRecord(logs, "container created without the hook: the plugin was not connected", "container_id", id)() {
			t.Fatalf("%s got the hook but was reported without it", id)
		}
	}
	ready(rt2)
	check(rt2.create(t, "ctr-3"))

	// Registered twice (one reconnect), connected now, ctr-2 without the
	// hook, and every create injected (probes included).
	if testutil.ToFloat64(metrics.Connected) != 1 || testutil.ToFloat64(metrics.Reconnects) != 1 ||
		testutil.ToFloat64(metrics.WithoutHook) != 1 || testutil.ToFloat64(metrics.Injected) < 2 {
		t.Fatalf("metrics: connected %v, reconnects %v, without hook %v, injected %v", testutil.ToFloat64(metrics.Connected),
			testutil.ToFloat64(metrics.Reconnects), testutil.ToFloat64(metrics.WithoutHook), testutil.ToFloat64(metrics.Injected))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
	if !hasRecord(logs, "stopped")() {
		t.Fatal("no record of the shutdown")
	}
}
