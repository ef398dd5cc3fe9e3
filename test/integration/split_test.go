package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podhook/podhook/test/harness"
)

// TestHookOnlyBuild: make build's podhook is the hook's own build, the
// stages only: it links none of the other commands' libraries, runs
// podhook-ctl (next to it) for every other command with the same
// arguments, says what is missing when podhook-ctl is not there, and
// install run through it puts the hook's build, not podhook-ctl, on the
// host.
func TestHookOnlyBuild(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", harness.Tags+","+harness.HookOnly, "-deps", "../../cmd/podhook").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"github.com/urfave/cli/v2", "text/template", "github.com/pelletier/go-toml/v2", "github.com/prometheus/client_golang/prometheus"} {
		if bytes.Contains(out, []byte("\n"+pkg+"\n")) {
			t.Errorf("the hook's build links %s", pkg)
		}
	}

	dir := t.TempDir()
	hook, ctl := filepath.Join(dir, "podhook"), filepath.Join(dir, "podhook-ctl")
	if err := harness.BuildTagged(map[string]string{hook: "../../cmd/podhook"}, harness.HookOnly); err != nil {
		t.Fatal(err)
	}
	if err := harness.Build(map[string]string{ctl: "../../cmd/podhook"}); err != nil {
		t.Fatal(err)
	}
	hb, _ := os.ReadFile(hook)
	cb, _ := os.ReadFile(ctl)
	t.Logf("the hook's build %.2f MB, podhook-ctl %.2f MB", float64(len(hb))/1e6, float64(len(cb))/1e6)
	if len(hb) >= len(cb) {
		t.Fatalf("the hook's build (%d bytes) is not smaller than podhook-ctl (%d)", len(hb), len(cb))
	}

	run := func(bin string, args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return o.String(), e.String(), code
	}
	if o, e, code := run(hook, "version"); code != 0 || !strings.HasPrefix(o, "podhook 0.") || e != "" {
		t.Fatalf("version through podhook-ctl: exit %d, %q, %q", code, o, e)
	}
	if o, _, _ := run(ctl, "version"); o == "" {
		t.Fatal("podhook-ctl version printed nothing")
	}

	root := t.TempDir()
	if o, e, code := run(hook, "install", "--host-root", root, "--agent-namespace", "security"); code != 0 || !strings.Contains(o, "podhook installed in /opt/podhook") {
		t.Fatalf("install through podhook-ctl: exit %d, %q, %q", code, o, e)
	}
	if installed, _ := os.ReadFile(filepath.Join(root, "opt/podhook/podhook")); !bytes.Equal(installed, hb) {
		t.Fatalf("install put %d bytes on the host, not the hook's build (%d)", len(installed), len(hb))
	}

	alone := filepath.Join(t.TempDir(), "podhook")
	os.WriteFile(alone, hb, 0o755)
	if _, e, code := run(alone, "validate"); code != 1 || !strings.Contains(e, "podhook-ctl") || strings.Count(e, "\n") != 1 {
		t.Fatalf("without podhook-ctl: exit %d, stderr %q", code, e)
	}
	// The stages need nothing next to it.
	state, _ := bundle(t, "createRuntime", nil)
	a := startAgent(t)
	cmd := exec.Command(alone, "createRuntime", "--agent-address", a.address(), "--log-file", filepath.Join(t.TempDir(), "log"))
	cmd.Stdin = bytes.NewReader(state)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("a stage from the hook's build alone: %v %s", err, out)
	}
	if len(a.readEvents(t)) != 1 {
		t.Fatal("the agent was not asked")
	}
}
