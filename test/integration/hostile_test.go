package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/podhook/podhook/agentclient/agentv1"
	"github.com/podhook/podhook/test/harness"
)

// breakouts are fail-allow patterns that, wrapped as ^(?:p)$ without being
// compiled on their own, close the anchoring group and match any
// namespace.
var breakouts = []string{`team-a)|(.*`, `x)|.*|(y`, `a)(.*`, `kube-system)|(`}

// TestPatternBreakoutsRefused: each breakout is refused by the hook (which
// then decides with its safe defaults), validate, install and podhook-nri.
func TestPatternBreakoutsRefused(t *testing.T) {
	state, _ := bundle(t, "createRuntime", nil) // namespace payments
	absent := "unix://" + filepath.Join(shortDir(t), "absent.sock")
	for _, p := range breakouts {
		t.Run(p, func(t *testing.T) {
			args, log := hookArgs(t, "createRuntime", absent, "--fail-allow-namespace-regex", p)
			r := runHook(t, state, args...)
			line := oneLine(t, r.stderr)
			if r.code != 1 || !strings.Contains(line, "invalid fail-allow pattern") {
				t.Fatalf("hook: exit %d, stderr %q", r.code, r.stderr)
			}
			if rec := oneRecord(t, log); rec["decision"] != "deny" || rec["fail_open"] != false || rec["config_error"] == nil {
				t.Fatalf("hook record %v", rec)
			}

			cfg := filepath.Join(t.TempDir(), "podhook-config.json")
			b, _ := json.Marshal(map[string]any{"fail_allow_namespace_regex": []string{p}})
			os.WriteFile(cfg, b, 0o600)
			if r := runHook(t, nil, "validate", "--config", cfg); r.code != 1 || !strings.Contains(oneLine(t, r.stderr), "invalid fail-allow pattern") {
				t.Fatalf("validate: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}

			root := t.TempDir()
			if r := runHook(t, nil, "install", "--host-root", root, "--fail-allow-namespace-regex", p); r.code != 1 || !strings.Contains(r.stderr, "invalid fail-allow pattern") {
				t.Fatalf("install: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Fatalf("install refused the pattern but wrote %v", entries)
			}

			// podhook-nri reads the hook's config to size the hooks: it
			// says the file is invalid before it reaches the runtime.
			host := t.TempDir()
			os.MkdirAll(filepath.Join(host, "etc/podhook"), 0o755)
			os.WriteFile(filepath.Join(host, "etc/podhook/config.json"), b, 0o600)
			rec := nriFirstRecord(t, "--host-root", host, "--config", "/etc/podhook/config.json",
				"--socket", filepath.Join(shortDir(t), "absent-nri.sock"))
			if rec["level"] != "ERROR" || !strings.Contains(rec["config_error"].(string), "invalid fail-allow pattern") {
				t.Fatalf("podhook-nri's first record %v", rec)
			}
		})
	}
}

// nriFirstRecord runs podhook-nri with args until it logs, and returns its
// first record.
func nriFirstRecord(t *testing.T, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command(nriBin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatal("podhook-nri logged nothing")
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("podhook-nri: %q: %v", line, err)
		}
		return rec
	case <-time.After(30 * time.Second):
		t.Fatal("podhook-nri logged nothing in 30 s")
	}
	return nil
}

// verdictAgent answers every create with one verdict and reason.
type verdictAgent struct {
	agentv1.UnimplementedAgentServer
	verdict agentv1.Verdict
	reason  string
	got     chan *agentv1.CreateContainerRequest
}

func (a verdictAgent) CreateContainer(_ context.Context, req *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error) {
	a.got <- req
	return &agentv1.CreateContainerResponse{Verdict: a.verdict, Reason: a.reason}, nil
}

// TestUnknownVerdictDenies: a live agent's verdict podhook does not know
// stops the container in every namespace, exemptions included, and the
// reason names the number.
func TestUnknownVerdictDenies(t *testing.T) {
	a := verdictAgent{verdict: agentv1.Verdict(7), reason: "from a newer agent", got: make(chan *agentv1.CreateContainerRequest, 8)}
	address, _ := harness.ServeAgent(t, a)
	state, _ := bundle(t, "createRuntime", nil) // payments
	for name, allow := range map[string][]string{
		"not allowed":          nil,
		"allowed by name":      {"--fail-allow-namespaces", "payments"},
		"allowed by pattern":   {"--fail-allow-namespace-regex", "pay.*"},
		"the agent's own":      {"--agent-namespace", "payments"},
		"kube-system and more": {"--fail-allow-namespaces", "kube-system,payments"},
	} {
		t.Run(name, func(t *testing.T) {
			args, log := hookArgs(t, "createRuntime", address, allow...)
			r := runHook(t, state, args...)
			line := oneLine(t, r.stderr)
			if r.code != 1 || !strings.Contains(line, "verdict 7") || !strings.Contains(line, "from a newer agent") {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if req := <-a.got; req.GetPod().GetNamespace() != "payments" || !req.GetIdentity().GetTrusted() {
				t.Fatalf("the agent received %v", req.GetPod())
			}
			rec := oneRecord(t, log)
			if rec["decision"] != "deny" || rec["fail_open"] != false || rec["error_kind"] != "denied" || rec["msg"] != "container denied by podhook" {
				t.Fatalf("record %v", rec)
			}
		})
	}
}

// TestSpecErrorReachesAgent: when config.json cannot be used the agent is
// told so in the request (and the reference agent logs it), so empty
// mounts and args are not taken for a container that has none.
func TestSpecErrorReachesAgent(t *testing.T) {
	ag := startAgent(t)
	state, dir := bundle(t, "createRuntime", nil)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{not json"), 0o600)
	args, log := hookArgs(t, "createRuntime", ag.address())
	if r := runHook(t, state, args...); r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	evs := ag.readEvents(t)
	if len(evs) != 1 {
		t.Fatalf("events %+v", evs)
	}
	req := evs[0].Request
	if req.Container.SpecError == "" || !strings.Contains(req.Container.SpecError, "config.json") || len(req.Container.Mounts) != 0 ||
		req.Pod.Namespace != "payments" || !req.Identity.Trusted || req.ProtocolVersion != "PROTOCOL_VERSION_3" {
		t.Fatalf("the agent received %+v", req)
	}
	if s := ag.stderr.String(); !strings.Contains(s, "container "+fixtureID+": podhook did not use its config.json") {
		t.Fatalf("the reference agent's log: %q", s)
	}
	if rec := oneRecord(t, log); rec["spec_error"] == nil {
		t.Fatalf("record %v", rec)
	}

	// A usable config.json: no spec_error.
	state, _ = bundle(t, "createRuntime", nil)
	args, _ = hookArgs(t, "createRuntime", ag.address())
	runHook(t, state, args...)
	if evs := ag.readEvents(t); len(evs) != 2 || evs[1].Request.Container.SpecError != "" || len(evs[1].Request.Container.Mounts) == 0 {
		t.Fatalf("events %+v", evs)
	}
}

// TestTextFromOutsideEscaped: a DENY reason and pod names holding a
// newline, ESC and TAB give one stderr line and one table row, with no
// control character left for the terminal.
func TestTextFromOutsideEscaped(t *testing.T) {
	const forged = "2026-01-01T00:00:00Z  createRuntime  allow  kube-system/x/y"
	a := verdictAgent{verdict: agentv1.Verdict_VERDICT_DENY, reason: "no\n" + forged + "\x1b[2J\tcleared", got: make(chan *agentv1.CreateContainerRequest, 2)}
	address, _ := harness.ServeAgent(t, a)
	state, _ := bundle(t, "createRuntime", func(an map[string]string) {
		an["io.kubernetes.pod.name"] = "web\n" + forged + "\x1b[31m"
		an["io.kubernetes.container.name"] = "app\tshifted\x1b]0;title\x07"
	})
	args, log := hookArgs(t, "createRuntime", address)
	r := runHook(t, state, args...)
	<-a.got
	line := oneLine(t, r.stderr)
	if r.code != 1 || strings.ContainsAny(line, "\x1b\t\r\x07") || !strings.Contains(line, `no\n`+forged+`\x1b[2J\tcleared`) {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	oneRecord(t, log)
	none := filepath.Join(t.TempDir(), "none.json")
	os.WriteFile(none, []byte("{}"), 0o600)
	d := runHook(t, nil, "decisions", "--config", none, "--log-file", log)
	rows := strings.Split(strings.TrimSuffix(d.stdout, "\n"), "\n")
	if d.code != 0 || len(rows) != 2 || strings.ContainsAny(d.stdout, "\x1b\t\r\x07") ||
		!strings.Contains(rows[1], `payments/web\n2026-01-01T00:00:00Z`) || !strings.Contains(rows[1], `app\tshifted\x1b]0;title\a`) {
		t.Fatalf("decisions: exit %d, stderr %q, table:\n%s", d.code, d.stderr, d.stdout)
	}
}

// TestHostileAnnotationsDecidedPromptly: a pod whose identity and
// pass-through keys each carry 64 KB (CgroupParent a 64 KB slice name) is
// decided about as fast as a plain one, both stages write their record,
// stderr stays one line within 1 KiB, and the agent sees the identity
// untrusted.
func TestHostileAnnotationsDecidedPromptly(t *testing.T) {
	ag := startAgent(t)
	plain, _ := bundle(t, "createRuntime", nil)
	floorArgs, _ := hookArgs(t, "createRuntime", ag.address())
	floor := runHook(t, plain, floorArgs...).elapsed
	for _, stage := range []string{"createRuntime", "poststop"} {
		t.Run(stage, func(t *testing.T) {
			state, _ := bundle(t, stage, func(a map[string]string) { maps.Copy(a, harness.HostileAnnotations(64<<10)) })
			for name, address := range map[string]string{"agent up": ag.address(), "agent down": "unix://" + filepath.Join(shortDir(t), "absent.sock")} {
				args, log := hookArgs(t, stage, address, "--fail-allow-namespaces", "kube-system")
				r := runHook(t, state, args...)
				want := 1
				if stage == "poststop" {
					want = 0
				}
				if r.code != want || len(r.stderr) > 1024 || strings.Count(r.stderr, "\n") > 1 {
					t.Fatalf("%s: exit %d, %d bytes of stderr: %.300q", name, r.code, len(r.stderr), r.stderr)
				}
				if r.elapsed > floor+2*time.Second {
					t.Errorf("%s: decided after %v (a plain container: %v)", name, r.elapsed, floor)
				}
				rec := oneRecord(t, log)
				if rec["identity_trusted"] != false {
					t.Fatalf("%s: record %v", name, rec)
				}
				if b, _ := json.Marshal(rec); len(b) > 16<<10 {
					t.Fatalf("%s: record of %d bytes", name, len(b))
				}
			}
		})
	}
	evs := ag.readEvents(t)
	if len(evs) != 3 { // the floor, the hostile create and stop
		t.Fatalf("%d events", len(evs))
	}
	for _, ev := range evs[1:] {
		if ev.Request.Identity.Trusted || len(ev.Request.Identity.Conflicts) == 0 {
			t.Fatalf("the agent received a trusted identity: %+v", ev.Request.Identity)
		}
		for _, c := range ev.Request.Identity.Conflicts {
			if len(c) > 2048 {
				t.Fatalf("a conflict of %d bytes", len(c))
			}
		}
	}
}

// TestOneRecordWhateverTheLevel: decisions are not verbosity: an allowed
// container is recorded under --log-level error, and so is every other
// outcome.
func TestOneRecordWhateverTheLevel(t *testing.T) {
	ag := startAgent(t)
	state, _ := bundle(t, "createRuntime", nil)
	for _, level := range []string{"debug", "info", "warn", "error"} {
		args, log := hookArgs(t, "createRuntime", ag.address(), "--log-level", level)
		if r := runHook(t, state, args...); r.code != 0 {
			t.Fatalf("%s: exit %d, %q", level, r.code, r.stderr)
		}
		if rec := oneRecord(t, log); rec["level"] != "INFO" || rec["decision"] != "allow" {
			t.Fatalf("%s: record %v", level, rec)
		}
	}
	// An invalid configuration is an error: the safe defaults decide
	// (their agent address is not this agent's), and the record says so.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"agent_namespce":"x"}`), 0o600)
	args, log := hookArgs(t, "createRuntime", ag.address(), "--config", bad, "--fail-allow-namespaces", "payments")
	if r := runHook(t, state, args...); !strings.Contains(oneLine(t, r.stderr), "configuration invalid") {
		t.Fatalf("bad config: exit %d, %q", r.code, r.stderr)
	}
	if rec := oneRecord(t, log); rec["level"] != "ERROR" || rec["config_error"] == nil {
		t.Fatalf("bad config: record %v", rec)
	}
}

// TestOneStderrLineForEveryMistake: a value that does not parse, from a
// flag or a PODHOOK_* variable, and a directory at the log path each give
// one stderr line that says what is wrong, as the README says it.
func TestOneStderrLineForEveryMistake(t *testing.T) {
	cmd := exec.Command(podhook, "check")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PODHOOK_TIMEOUT=soon"}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || out.String() != "" ||
		!strings.Contains(oneLine(t, errb.String()), `"soon"`) || !strings.Contains(errb.String(), "PODHOOK_TIMEOUT") {
		t.Fatalf("PODHOOK_TIMEOUT=soon: %v, stdout %q, stderr %q", err, out.String(), errb.String())
	}
	if r := runHook(t, nil, "check", "--timeout", "soon"); r.code != 1 || r.stdout != "" || !strings.Contains(oneLine(t, r.stderr), `"soon" for flag -timeout`) {
		t.Fatalf("--timeout soon: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	dir := filepath.Join(t.TempDir(), "podhook.log")
	os.Mkdir(dir, 0o700)
	state, _ := bundle(t, "createRuntime", nil)
	r := runHook(t, state, "createRuntime", "--agent-address", "unix:///nonexistent/a.sock", "--log-file", dir, "--fail-allow-namespaces", "payments")
	if r.code != 0 || !strings.Contains(oneLine(t, r.stderr), "log path is not a regular file") {
		t.Fatalf("a directory at the log path: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestDemoHasNoEarlyClosingPipe: the README's first command must not
// depend on output timing: under pipefail, a writer into a pipe whose
// reader exits early (head) fails the demo when it is slower than the
// reader.
func TestDemoHasNoEarlyClosingPipe(t *testing.T) {
	b, err := os.ReadFile("../../contrib/demo/demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	early := regexp.MustCompile(`\|\s*(head|sed -n [^|]*q|grep -m|grep -q|awk [^|]*exit)\b`)
	for i, line := range strings.Split(string(b), "\n") {
		if code, _, _ := strings.Cut(line, "#"); early.MatchString(code) {
			t.Errorf("demo.sh:%d pipes into a reader that may exit early: %s", i+1, strings.TrimSpace(line))
		}
	}
}
