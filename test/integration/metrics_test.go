package integration

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/harness"
)

// TestKeeperServesMetrics: podhook install --keep --metrics-address runs
// podhook-monitor on the installed config's log: the hooks' records show
// up as counters, and what the log held before it started is not counted
// twice after a restart of the keeper (the position is kept).
func TestKeeperServesMetrics(t *testing.T) {
	root := t.TempDir()
	log := filepath.Join(root, "var/log/podhook/podhook.log")
	addr := harness.FreeAddress(t)
	keep := func() (*exec.Cmd, *harness.SyncBuffer) {
		var out harness.SyncBuffer
		cmd := exec.Command(podhook, "install", "--keep", "--interface", "nri", "--install-dir", filepath.Join(root, "opt/podhook"),
			"--metrics-address", addr, "--log-file", log, "--agent-address", "unix:///nonexistent/a.sock", "--fail-allow-namespaces", "payments")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	scrape := func() string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	count := func(body string) string {
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, `podhook_decisions_total{decision="allow",error_kind="unreachable",fail_open="true",runtime="cri-o",stage="createRuntime"}`) {
				return strings.Fields(line)[1]
			}
		}
		return "0"
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: last scrape:\n%s", what, scrape())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	state, _ := bundle(t, "createRuntime", nil)
	hookOnce := func() {
		t.Helper()
		r := runHook(t, state, "createRuntime", "--config", filepath.Join(root, "opt/podhook/podhook-config.json"))
		if r.code != 0 {
			t.Fatalf("hook: exit %d, %q", r.code, r.stderr)
		}
	}

	k, out := keep()
	waitFor("the monitor serving", func() bool { return strings.Contains(scrape(), "podhook_log_lines_invalid_total") })
	for range 3 {
		hookOnce()
	}
	waitFor("3 decisions counted", func() bool { return count(scrape()) == "3" })

	// The keeper restarts; the monitor resumes from its saved position.
	k.Process.Signal(syscall.SIGTERM)
	k.Wait()
	hookOnce() // while nobody follows the log
	k, out = keep()
	defer func() { k.Process.Signal(syscall.SIGTERM); k.Wait() }()
	waitFor("the monitor back", func() bool { return scrape() != "" })
	hookOnce()
	waitFor("2 more decisions counted, none twice", func() bool { return count(scrape()) == "2" })
	time.Sleep(300 * time.Millisecond) // a few more polls: nothing else arrives
	if c := count(scrape()); c != "2" {
		t.Fatalf("after the restart: %s decisions, want the 2 new ones\n%s", c, out.String())
	}
}

// TestKeeperEventsCounted: what the keeper restores shows as a counter.
func TestKeeperEventsCounted(t *testing.T) {
	root := t.TempDir()
	log := filepath.Join(root, "var/log/podhook/podhook.log")
	addr := harness.FreeAddress(t)
	hooks := filepath.Join(root, "hooks.d")
	cmd := exec.Command(podhook, "install", "--keep", "--keep-interval", "50ms", "--install-dir", filepath.Join(root, "opt/podhook"),
		"--hooks-dir", hooks, "--metrics-address", addr, "--log-file", log)
	var out harness.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("keeper:\n%s\nlog:\n%s", out.String(), b)
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	metric := func() string {
		v, up := sample(addr, `podhook_keeper_events_total{event="restored"}`)
		if up && v == "" {
			return "0"
		}
		return v
	}
	deadline := time.Now().Add(30 * time.Second)
	for metric() == "" {
		if time.Now().After(deadline) {
			t.Fatal("monitor not serving")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.Remove(filepath.Join(hooks, "podhook.json")); err != nil {
		t.Fatal(err)
	}
	// At least one restore: on a loaded machine the keeper may find the
	// file missing on two checks in a row before its restore lands.
	for n, _ := strconv.Atoi(metric()); n < 1; n, _ = strconv.Atoi(metric()) {
		if time.Now().After(deadline) {
			t.Fatalf("the restore was not counted: %q", metric())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMonitorSaysWhenTheLogIsMissing: a monitor that cannot see the hook's
// log (its directory not mounted) says so in its log and in
// podhook_log_file_present, and starts counting once the log is there.
func TestMonitorSaysWhenTheLogIsMissing(t *testing.T) {
	root := t.TempDir()
	addr := harness.FreeAddress(t)
	var out harness.SyncBuffer
	cmd := exec.Command(filepath.Join(filepath.Dir(podhook), "podhook-monitor"), "--host-root", root, "--log-file", "/var/log/podhook/podhook.log",
		"--metrics-address", addr, "--poll-interval", "50ms")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	gauge := func() string { v, _ := sample(addr, "podhook_log_file_present "); return v }
	waitFor(t, "the gauge at 0", func() bool { return gauge() == "0" })
	if !strings.Contains(out.String(), `"level":"WARN","msg":"the hook's log does not exist here`) {
		t.Fatalf("no warning in the monitor's log:\n%s", out.String())
	}
	os.MkdirAll(filepath.Join(root, "var/log/podhook"), 0o700)
	os.WriteFile(filepath.Join(root, "var/log/podhook/podhook.log"), nil, 0o600)
	waitFor(t, "the gauge at 1", func() bool { return gauge() == "1" })
	if strings.Count(out.String(), "does not exist here") != 1 {
		t.Fatalf("the warning repeated:\n%s", out.String())
	}
}

// sample scrapes addr's /metrics and returns the value of the first line
// that starts with prefix ("" when none), and whether the scrape answered.
func sample(addr, prefix string) (string, bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			return strings.Fields(line)[1], true
		}
	}
	return "", true
}
