package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tetragonAgent is the test agent built from Tetragon's own API module.
type tetragonAgent struct {
	socket, events string
	cmd            *exec.Cmd
}

func startTetragon(t *testing.T, args ...string) *tetragonAgent {
	t.Helper()
	dir := shortDir(t)
	a := &tetragonAgent{socket: filepath.Join(dir, "tetragon.sock"), events: filepath.Join(dir, "events.jsonl")}
	a.cmd = exec.Command(tetragonAgentBin, append([]string{"-socket", a.socket, "-events", a.events}, args...)...)
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.cmd.Process.Signal(syscall.SIGTERM); a.cmd.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(a.socket); err == nil {
			return a
		}
		if i == 500 {
			t.Fatal("tetragon agent did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (a *tetragonAgent) address() string { return "unix://" + a.socket }

// tetragonCreate is tetragon.CreateContainer as Tetragon's protojson
// writes it: every field Tetragon's agent reads.
type tetragonCreate struct {
	CgroupsPath    string            `json:"cgroupsPath"`
	RootDir        string            `json:"rootDir"`
	Annotations    map[string]string `json:"annotations"`
	ContainerName  string            `json:"containerName"`
	ContainerID    string            `json:"containerID"`
	PodName        string            `json:"podName"`
	PodUID         string            `json:"podUID"`
	PodNamespace   string            `json:"podNamespace"`
	ContainerImage string            `json:"containerImage"`
}

func (a *tetragonAgent) received(t *testing.T) []tetragonCreate {
	t.Helper()
	b, err := os.ReadFile(a.events)
	if err != nil {
		t.Fatal(err)
	}
	var out []tetragonCreate
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var ev struct {
			CreateContainer tetragonCreate `json:"createContainer"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		out = append(out, ev.CreateContainer)
	}
	return out
}

// TestTetragonProtocol drives the hook with agent_protocol tetragon against
// a server built from Tetragon's API module, and asserts every field
// Tetragon's agent reads.
func TestTetragonProtocol(t *testing.T) {
	tet := []string{"--agent-protocol", "tetragon"}

	t.Run("CRI-O capture", func(t *testing.T) {
		a := startTetragon(t)
		state, _ := bundle(t, "createRuntime", nil)
		args, log := hookArgs(t, "createRuntime", a.address(), tet...)
		if r := runHook(t, state, args...); r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		got := a.received(t)
		want := tetragonCreate{
			CgroupsPath:   "/kubepods/besteffort/pod3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b/crio-" + fixtureID,
			RootDir:       "/var/lib/containers/storage/overlay/bdf2c914933c9ffca0e95bb87c00736cc7d480ad9fe1b7840af71aca8dd4a14c/merged",
			ContainerName: "checkout", ContainerID: fixtureID, PodName: "checkout-6c9d8b7f5-x2x9q",
			PodUID: "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b", PodNamespace: "payments", ContainerImage: "localhost/busybox:latest",
		}
		if len(got) != 1 || len(got[0].Annotations) != 34 {
			t.Fatalf("received %+v", got)
		}
		got[0].Annotations = nil
		if !reflect.DeepEqual(got[0], want) {
			t.Fatalf("received\n%+v\nwant\n%+v", got[0], want)
		}
		if rec := oneRecord(t, log); rec["agent_protocol"] != "tetragon" || rec["decision"] != "allow" {
			t.Fatalf("record %v", rec)
		}
	})

	t.Run("containerd shape, identity from podhook-nri, relative root, systemd cgroup", func(t *testing.T) {
		a := startTetragon(t)
		annotations := map[string]string{
			"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-namespace": "tenant-b",
			"io.kubernetes.cri.sandbox-name": "web-0", "io.kubernetes.cri.sandbox-uid": "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b",
			"io.kubernetes.cri.container-name": "web", "io.kubernetes.cri.image-name": "localhost/web:1",
		}
		state := customBundle(t, "ctrd-1", annotations, "kubepods-besteffort-pod3f2b9c1e_5a4d_4e8f_9b7a_1c2d3e4f5a6b.slice:cri-containerd:ctrd-1")
		var st struct{ Bundle string }
		json.Unmarshal(state, &st)
		args, _ := hookArgs(t, "createRuntime", a.address(), append(tet, "--via=nri", "--runtime=containerd", "--pod-namespace=tenant-b",
			"--pod-name=web-0", "--pod-uid=3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b", "--sandbox-id=sb-1", "--container-name=web")...)
		if r := runHook(t, state, args...); r.code != 0 {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		got := a.received(t)
		if len(got) != 1 {
			t.Fatalf("received %+v", got)
		}
		g := got[0]
		if g.RootDir != filepath.Join(st.Bundle, "rootfs") || !filepath.IsAbs(g.RootDir) ||
			g.CgroupsPath != "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod3f2b9c1e_5a4d_4e8f_9b7a_1c2d3e4f5a6b.slice/cri-containerd-ctrd-1.scope" ||
			g.PodNamespace != "tenant-b" || g.PodName != "web-0" || g.PodUID != "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b" ||
			g.ContainerName != "web" || g.ContainerID != "ctrd-1" || g.ContainerImage != "localhost/web:1" {
			t.Fatalf("received %+v", g)
		}
	})

	forged := func(an map[string]string) {
		an["io.kubernetes.cri.container-type"] = "container"
		an["io.kubernetes.cri.sandbox-namespace"] = "kube-system"
	}
	t.Run("forged identity is stopped by podhook, never sent", func(t *testing.T) {
		a := startTetragon(t)
		state, _ := bundle(t, "createRuntime", forged)
		args, log := hookArgs(t, "createRuntime", a.address(), append(tet, "--fail-allow-namespaces", "kube-system,payments")...)
		r := runHook(t, state, args...)
		if r.code != 1 || !strings.Contains(oneLine(t, r.stderr), "denied by podhook: pod identity not trusted") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if got := a.received(t); len(got) != 0 {
			t.Fatalf("Tetragon received %+v", got)
		}
		if rec := oneRecord(t, log); rec["msg"] != "container denied by podhook" || rec["identity_trusted"] != false {
			t.Fatalf("record %v", rec)
		}
	})

	t.Run("forged identity, send-without-pod", func(t *testing.T) {
		a := startTetragon(t)
		state, _ := bundle(t, "createRuntime", forged)
		args, _ := hookArgs(t, "createRuntime", a.address(), append(tet, "--tetragon-untrusted", "send-without-pod")...)
		if r := runHook(t, state, args...); r.code != 0 {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		got := a.received(t)
		if len(got) != 1 || got[0].PodNamespace != "" || got[0].PodName != "" || got[0].PodUID != "" || got[0].ContainerID != fixtureID || got[0].CgroupsPath == "" {
			t.Fatalf("received %+v", got)
		}
	})

	t.Run("agent error goes to the fail check", func(t *testing.T) {
		a := startTetragon(t, "-error-code", "INTERNAL")
		state, _ := bundle(t, "createRuntime", nil)
		args, log := hookArgs(t, "createRuntime", a.address(), tet...)
		if r := runHook(t, state, args...); r.code != 1 || !strings.Contains(oneLine(t, r.stderr), "failing closed") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if rec := oneRecord(t, log); rec["error_kind"] != "agent_error" || rec["msg"] != "agent error: failed closed" {
			t.Fatalf("record %v", rec)
		}
		args, log = hookArgs(t, "createRuntime", a.address(), append(tet, "--fail-allow-namespaces", "payments")...)
		if r := runHook(t, state, args...); r.code != 0 || oneRecord(t, log)["fail_open"] != true {
			t.Fatalf("allowed namespace: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("agent down goes to the fail check", func(t *testing.T) {
		state, _ := bundle(t, "createRuntime", nil)
		args, log := hookArgs(t, "createRuntime", "unix://"+filepath.Join(shortDir(t), "absent.sock"), tet...)
		if r := runHook(t, state, args...); r.code != 1 || oneRecord(t, log)["error_kind"] != "unreachable" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("poststop makes no call", func(t *testing.T) {
		a := startTetragon(t)
		state, _ := bundle(t, "poststop", nil)
		args, _ := hookArgs(t, "poststop", a.address(), tet...)
		if r := runHook(t, state, args...); r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if got := a.received(t); len(got) != 0 {
			t.Fatalf("received %+v", got)
		}
	})
}

// TestTetragonCheckAndDryRun: under --agent-protocol tetragon, podhook
// check asks Tetragon's own GetVersion (Tetragon serves no health service),
// and --dry-run prints exactly the RuntimeHookRequest the live hook sends,
// as Tetragon's agent decodes it.
func TestTetragonCheckAndDryRun(t *testing.T) {
	a := startTetragon(t)
	none := filepath.Join(t.TempDir(), "none.json")
	os.WriteFile(none, []byte("{}"), 0o600)
	r := runHook(t, nil, "check", "--config", none, "--agent-address", a.address(), "--agent-protocol", "tetragon", "--agent-uid", "-1")
	if r.code != 0 || !strings.Contains(r.stdout, "is serving (Tetragon v1.6.0-tetragonagent") {
		t.Fatalf("check: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// podhook's own protocol asks grpc.health, which Tetragon does not serve.
	if r := runHook(t, nil, "check", "--config", none, "--agent-address", a.address(), "--agent-uid", "-1"); r.code != 1 {
		t.Fatalf("check in podhook.v1 against Tetragon: exit %d, stdout %q", r.code, r.stdout)
	}

	state, _ := bundle(t, "createRuntime", nil)
	args, _ := hookArgs(t, "createRuntime", a.address(), "--agent-protocol", "tetragon")
	dry := runHook(t, state, append(args, "--dry-run")...)
	if dry.code != 0 {
		t.Fatalf("dry run: exit %d, %q", dry.code, dry.stderr)
	}
	end := strings.Index(dry.stdout, "\n}\n")
	if end < 0 {
		t.Fatalf("dry run printed %q", dry.stdout)
	}
	var printed struct {
		CreateContainer tetragonCreate `json:"createContainer"`
	}
	if err := json.Unmarshal([]byte(dry.stdout[:end+2]), &printed); err != nil {
		t.Fatalf("dry run output: %v\n%s", err, dry.stdout)
	}
	if len(a.received(t)) != 0 {
		t.Fatal("the dry run reached the agent")
	}
	if r := runHook(t, state, args...); r.code != 0 {
		t.Fatalf("live: exit %d, %q", r.code, r.stderr)
	}
	got := a.received(t)
	if len(got) != 1 || !reflect.DeepEqual(got[0], printed.CreateContainer) {
		t.Fatalf("the dry run printed\n%+v\nthe agent received\n%+v", printed.CreateContainer, got)
	}
	// An identity podhook cannot send: the dry run says podhook stops it.
	forgedState, _ := bundle(t, "createRuntime", func(an map[string]string) { an["io.kubernetes.cri.container-type"] = "container" })
	if r := runHook(t, forgedState, append(args, "--dry-run")...); r.code != 0 || !strings.Contains(r.stdout, "nothing is sent; exit 1: denied by podhook") {
		t.Fatalf("forged dry run: exit %d, stdout %q", r.code, r.stdout)
	}
}
