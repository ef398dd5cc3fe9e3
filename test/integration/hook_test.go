package integration

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podhook/podhook/test/harness"
)

// hookArgs are the flags every case passes: a fresh log, the agent address.
func hookArgs(t *testing.T, stage, address string, extra ...string) ([]string, string) {
	log := filepath.Join(t.TempDir(), "log", "podhook.log")
	return append([]string{stage, "--agent-address", address, "--log-file", log}, extra...), log
}

func TestAllow(t *testing.T) {
	a := startAgent(t)
	state, dir := bundle(t, "createRuntime", nil)
	args, log := hookArgs(t, "createRuntime", a.address())
	r := runHook(t, state, args...)
	if r.code != 0 || r.stderr != "" || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	evs := a.readEvents(t)
	if len(evs) != 1 || evs[0].RPC != "CreateContainer" {
		t.Fatalf("events %+v", evs)
	}
	req := evs[0].Request
	c, p := req.Container, req.Pod
	if p.Namespace != "payments" || p.Name != "checkout-6c9d8b7f5-x2x9q" || p.UID != "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b" ||
		p.SandboxID != "54802f9ec5b9fd4ecc6d62b4bc9646b7aed42c168c3583e71e4ea7ea3e106bb5" ||
		c.Name != "checkout" || c.ID != fixtureID || c.Pid != 21437 || c.Bundle != dir || c.Runtime != "cri-o" ||
		c.Image != "localhost/busybox:latest" || c.Type != "container" || len(c.Mounts) != 11 || req.Stage != "createRuntime" ||
		!strings.HasPrefix(c.CgroupsPath, "/kubepods/besteffort/pod3f2b9c1e") || c.CgroupsPathExpanded != c.CgroupsPath {
		t.Fatalf("request %+v", req)
	}
	rec := oneRecord(t, log)
	if rec["decision"] != "allow" || rec["msg"] != "container allowed" || rec["level"] != "INFO" || rec["pod_namespace"] != "payments" ||
		rec["container_id"] != fixtureID || rec["fail_open"] != false {
		t.Fatalf("log record %v", rec)
	}
	fi, err := os.Stat(log)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("log mode %v, %v", fi.Mode(), err)
	}
}

func TestDeny(t *testing.T) {
	a := startAgent(t, "--deny-namespace", "payments")
	state, _ := bundle(t, "createRuntime", nil)
	args, log := hookArgs(t, "createRuntime", a.address(), "--fail-allow-namespaces", "payments")
	r := runHook(t, state, args...)
	line := oneLine(t, r.stderr)
	if r.code != 1 || line != `podhook: denied by agent: namespace "payments" is denied by podhook-agent` {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	rec := oneRecord(t, log)
	if rec["decision"] != "deny" || rec["msg"] != "container denied by agent" || rec["level"] != "WARN" || rec["error_kind"] != "denied" {
		t.Fatalf("log record %v", rec)
	}

	a = startAgent(t, "--deny-image", `^localhost/busy`)
	args, _ = hookArgs(t, "createRuntime", a.address())
	if r := runHook(t, state, args...); r.code != 1 || !strings.Contains(r.stderr, `image "localhost/busybox:latest" matches denied pattern`) {
		t.Fatalf("deny-image: exit %d, stderr %q", r.code, r.stderr)
	}
}

// staleSocket leaves a socket file that nobody listens on.
func staleSocket(t *testing.T) string {
	path := filepath.Join(shortDir(t), "stale.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("stale socket not left: %v", err)
	}
	return "unix://" + path
}

func TestAgentDown(t *testing.T) {
	state, _ := bundle(t, "createRuntime", nil)
	// The floor: the same invocation answered by a live agent, measured in
	// this run. An absent agent must be decided about as fast, never at the
	// deadline (10 s here).
	live := startAgent(t)
	floorArgs, _ := hookArgs(t, "createRuntime", live.address())
	floor := runHook(t, state, floorArgs...).elapsed
	addresses := map[string]string{
		"missing socket": "unix://" + filepath.Join(shortDir(t), "absent.sock"),
		"stale socket":   staleSocket(t),
	}
	for name, addr := range addresses {
		t.Run(name+", not allowed", func(t *testing.T) {
			args, log := hookArgs(t, "createRuntime", addr, "--timeout", "10s")
			r := runHook(t, state, args...)
			line := oneLine(t, r.stderr)
			if r.code != 1 || !strings.Contains(line, "agent unreachable") || !strings.Contains(line, `namespace "payments" is not on the fail-allow list`) ||
				!strings.Contains(line, "details in "+log) {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if r.elapsed > floor+2*time.Second {
				t.Errorf("decision took %v (%v with a live agent): it waited for the agent", r.elapsed, floor)
			}
			rec := oneRecord(t, log)
			if rec["msg"] != "agent unavailable: failed closed" || rec["error_kind"] != "unreachable" || rec["level"] != "ERROR" {
				t.Fatalf("log record %v", rec)
			}
		})
		for _, allow := range [][]string{
			{"--fail-allow-namespaces", "kube-system,payments"},
			{"--fail-allow-namespace-regex", "pay.*"},
			{"--agent-namespace", "payments"},
		} {
			t.Run(name+", allowed by "+allow[0], func(t *testing.T) {
				args, log := hookArgs(t, "createRuntime", addr, allow...)
				r := runHook(t, state, args...)
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
				}
				rec := oneRecord(t, log)
				if rec["msg"] != "agent unavailable: failed open" || rec["fail_open"] != true || rec["level"] != "WARN" {
					t.Fatalf("log record %v", rec)
				}
			})
		}
	}
	t.Run("pattern is anchored", func(t *testing.T) {
		args, _ := hookArgs(t, "createRuntime", addresses["missing socket"], "--fail-allow-namespace-regex", "pay")
		if r := runHook(t, state, args...); r.code != 1 {
			t.Fatalf("a pattern matching a substring let the container start: %q", r.stderr)
		}
	})
}

// TestAgentHangs: an agent that accepts and never answers costs the
// deadline, not more.
func TestAgentHangs(t *testing.T) {
	path := filepath.Join(shortDir(t), "hang.sock")
	hang, err := harness.NewHangingAgent(path)
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	state, _ := bundle(t, "createRuntime", nil)
	// The floor: the same invocation with no agent at all, in this run.
	floorArgs, _ := hookArgs(t, "createRuntime", "unix://"+filepath.Join(shortDir(t), "absent.sock"))
	floor := runHook(t, state, floorArgs...).elapsed
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		allow string
		code  int
	}{{"kube-system", 1}, {"payments", 0}} {
		args, log := hookArgs(t, "createRuntime", "unix://"+path, "--timeout", timeout.String(), "--fail-allow-namespaces", tc.allow)
		r := runHook(t, state, args...)
		if r.code != tc.code {
			t.Fatalf("allow %s: exit %d, stderr %q", tc.allow, r.code, r.stderr)
		}
		rec := oneRecord(t, log)
		if rec["error_kind"] != "deadline" {
			t.Fatalf("log record %v", rec)
		}
		// It waits the deadline, then decides: far from the next deadline.
		if ms, _ := rec["agent_ms"].(float64); ms < float64(timeout.Milliseconds()) || r.elapsed > floor+timeout+2*time.Second {
			t.Errorf("agent call %v ms, decision after %v (%v without an agent), want the %v deadline", rec["agent_ms"], r.elapsed, floor, timeout)
		}
	}
}

func TestSlowAgentWithinDeadline(t *testing.T) {
	a := startAgent(t, "--delay", "200ms")
	state, _ := bundle(t, "createRuntime", nil)
	args, log := hookArgs(t, "createRuntime", a.address(), "--timeout", "2s")
	if r := runHook(t, state, args...); r.code != 0 || oneRecord(t, log)["decision"] != "allow" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	args, log = hookArgs(t, "createRuntime", a.address(), "--timeout", "50ms")
	if r := runHook(t, state, args...); r.code != 1 || oneRecord(t, log)["error_kind"] != "deadline" {
		t.Fatalf("slower than deadline: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestPoststop(t *testing.T) {
	a := startAgent(t)
	state, _ := bundle(t, "poststop", nil)
	args, log := hookArgs(t, "poststop", a.address())
	if r := runHook(t, state, args...); r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	evs := a.readEvents(t)
	if len(evs) != 1 || evs[0].RPC != "StopContainer" || evs[0].Request.Container.ID != fixtureID || evs[0].Request.Stage != "poststop" {
		t.Fatalf("events %+v", evs)
	}
	if rec := oneRecord(t, log); rec["msg"] != "container stopped" || rec["decision"] != "allow" {
		t.Fatalf("log record %v", rec)
	}
	// Agent down, or state unreadable: poststop still exits 0.
	args, log = hookArgs(t, "poststop", "unix:///nonexistent/agent.sock")
	if r := runHook(t, state, args...); r.code != 0 {
		t.Fatalf("agent down: exit %d", r.code)
	}
	if rec := oneRecord(t, log); rec["level"] != "WARN" || rec["error_kind"] != "unreachable" {
		t.Fatalf("log record %v", rec)
	}
	if r := runHook(t, []byte("garbage"), args...); r.code != 0 {
		t.Fatalf("bad state at poststop: exit %d", r.code)
	}
}

func TestSpoofedNamespaceFailsClosed(t *testing.T) {
	state, _ := bundle(t, "createRuntime", func(a map[string]string) {
		a["io.kubernetes.pod.namespace"] = "tenant-a"
		a["io.kubernetes.cri.sandbox-namespace"] = "kube-system"
	})
	args, log := hookArgs(t, "createRuntime", "unix:///nonexistent/agent.sock", "--fail-allow-namespaces", "kube-system")
	r := runHook(t, state, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "not trusted") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	rec := oneRecord(t, log)
	if rec["pod_namespace"] != "tenant-a" || rec["identity_conflict"] == nil {
		t.Fatalf("log record %v", rec)
	}
}

func TestPeerUIDChecked(t *testing.T) {
	if os.Getuid() == 1234 {
		t.Skip("runs as uid 1234")
	}
	a := startAgent(t)
	state, _ := bundle(t, "createRuntime", nil)
	args, log := hookArgs(t, "createRuntime", a.address(), "--agent-uid", "1234")
	if r := runHook(t, state, args...); r.code != 1 || !strings.Contains(r.stderr, "want uid 1234") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if len(a.readEvents(t)) != 0 {
		t.Fatal("the hook talked to an agent of the wrong uid")
	}
	oneRecord(t, log)
}

func TestBadState(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	inputs := map[string]string{
		"empty":            "",
		"not JSON":         "not json",
		"truncated":        `{"id":"x","bundle":"/tmp`,
		"no bundle":        `{"id":"x"}`,
		"relative bundle":  `{"id":"x","bundle":"userdata"}`,
		"too large":        `{"id":"x","bundle":"/b","a":"` + strings.Repeat("x", 5<<20) + `"}`,
		"bundle not found": `{"id":"x","bundle":"` + missing + `","annotations":{"io.container.manager":"cri-o"}}`,
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			args, log := hookArgs(t, "createRuntime", "unix:///nonexistent/agent.sock", "--fail-allow-namespaces", "kube-system")
			r := runHook(t, []byte(in), args...)
			line := oneLine(t, r.stderr)
			if r.code != 1 || !strings.HasPrefix(line, "podhook: ") {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			rec := oneRecord(t, log)
			if name == "bundle not found" {
				// The state is usable: the hook goes on with its annotations
				// and says config.json could not be loaded.
				if rec["spec_error"] == nil || rec["error_kind"] != "unreachable" {
					t.Fatalf("log record %v", rec)
				}
				return
			}
			if rec["msg"] != "invalid state" || rec["error_kind"] != "invalid_state" || rec["level"] != "ERROR" {
				t.Fatalf("log record %v", rec)
			}
		})
	}
	t.Run("state file missing", func(t *testing.T) {
		args, log := hookArgs(t, "createRuntime", "unix:///nonexistent/agent.sock", "--state-file", missing)
		r := runHook(t, nil, args...)
		if r.code != 1 || !strings.Contains(oneLine(t, r.stderr), "no such file") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if rec := oneRecord(t, log); rec["error_kind"] != "invalid_state" {
			t.Fatalf("log record %v", rec)
		}
	})
	t.Run("unknown stage", func(t *testing.T) {
		r := runHook(t, nil, "startContainer")
		if r.code != 1 || !strings.Contains(oneLine(t, r.stderr), `unknown stage or command "startContainer"`) {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

func TestDryRunContactsNothing(t *testing.T) {
	a := startAgent(t)
	state, _ := bundle(t, "createRuntime", nil)
	args, log := hookArgs(t, "createRuntime", a.address(), "--dry-run", "--fail-allow-namespaces", "payments")
	r := runHook(t, state, args...)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	body, verdict, _ := strings.Cut(r.stdout, "\n}\n")
	var req map[string]any
	if err := json.Unmarshal([]byte(body+"}"), &req); err != nil {
		t.Fatalf("request is not JSON: %v\n%s", err, r.stdout)
	}
	if req["pod"].(map[string]any)["namespace"] != "payments" || !strings.Contains(verdict, "if the agent were unreachable: allow") {
		t.Fatalf("dry run printed %s", r.stdout)
	}
	if len(a.readEvents(t)) != 0 {
		t.Fatal("dry run called the agent")
	}
	if _, err := os.Stat(log); !os.IsNotExist(err) {
		t.Fatal("dry run wrote the log")
	}
}

func TestCaptureAndReplay(t *testing.T) {
	a := startAgent(t)
	state, _ := bundle(t, "createRuntime", nil)
	captures := filepath.Join(t.TempDir(), "captures")
	for range 3 {
		if r := runHook(t, state, "capture", "--dir", captures, "--max-captures", "2"); r.code != 0 {
			t.Fatalf("capture: exit %d, stderr %q", r.code, r.stderr)
		}
	}
	entries, _ := os.ReadDir(captures)
	if len(entries) != 2 {
		t.Fatalf("%d captures kept, want 2", len(entries))
	}
	capDir := filepath.Join(captures, entries[1].Name())
	for _, f := range []string{"state.json", "config.json", "origin.json"} {
		if fi, err := os.Stat(filepath.Join(capDir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	args, _ := hookArgs(t, "createRuntime", a.address(), "--state-file", filepath.Join(capDir, "state.json"))
	if r := runHook(t, nil, args...); r.code != 0 {
		t.Fatalf("replay: exit %d, stderr %q", r.code, r.stderr)
	}
	evs := a.readEvents(t)
	if len(evs) != 1 || evs[0].Request.Container.Bundle != capDir || evs[0].Request.Pod.Namespace != "payments" || evs[0].Request.Container.ID != fixtureID {
		t.Fatalf("replayed event %+v", evs)
	}
	// capture never fails the container, even on garbage.
	if r := runHook(t, []byte("garbage"), "capture", "--dir", captures); r.code != 0 || r.stderr == "" {
		t.Fatalf("capture of garbage: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestCheck(t *testing.T) {
	a := startAgent(t)
	if r := runHook(t, nil, "check", "--agent-address", a.address()); r.code != 0 || !strings.Contains(r.stdout, "is serving") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	a.stop()
	r := runHook(t, nil, "check", "--agent-address", a.address())
	if r.code != 1 || !strings.Contains(oneLine(t, r.stderr), "is not serving") {
		t.Fatalf("agent stopped: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(a.socket); !os.IsNotExist(err) {
		t.Fatalf("agent left its socket behind: %v", err)
	}
}

func TestAgentSocket(t *testing.T) {
	a := startAgent(t)
	fi, err := os.Stat(a.socket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", fi.Mode(), err)
	}
	a.stop()
	// A stale socket at the path is replaced.
	stale := strings.TrimPrefix(staleSocket(t), "unix://")
	b := startAgentAt(t, stale)
	if r := runHook(t, nil, "check", "--agent-address", "unix://"+stale); r.code != 0 {
		t.Fatalf("agent on a replaced stale socket: %q", r.stderr)
	}
	b.stop()
	if b.cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("agent exit %d on SIGTERM", b.cmd.ProcessState.ExitCode())
	}
}

func TestVersion(t *testing.T) {
	if r := runHook(t, nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "podhook ") {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}
}
