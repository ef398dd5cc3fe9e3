package integration

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/harness"
)

// hostileRoot is a host root whose /etc/crio, /opt and /var/log are
// absolute symlinks, as a host may have them (/opt -> /data/opt): each
// names a directory that also exists outside the root, in this process's
// own filesystem. Whatever podhook reads or writes under the root must
// follow them inside it (<root>/<target>), never to the outside one.
type hostileRoot struct {
	root, outside string
}

func newHostileRoot(t *testing.T) hostileRoot {
	t.Helper()
	h := hostileRoot{root: t.TempDir(), outside: t.TempDir()}
	for _, link := range []string{"etc/crio", "opt", "var/log"} {
		target := filepath.Join(h.outside, strings.ReplaceAll(link, "/", "-"))
		os.MkdirAll(target, 0o755)                        // outside: must stay untouched
		os.MkdirAll(filepath.Join(h.root, target), 0o755) // inside: where the host's link leads
		os.MkdirAll(filepath.Join(h.root, filepath.Dir(link)), 0o755)
		if err := os.Symlink(target, filepath.Join(h.root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// inside is the host path p as the host's links resolve it, under root.
func (h hostileRoot) inside(p string) string {
	for link, dir := range map[string]string{"/etc/crio/": "etc-crio", "/opt/": "opt", "/var/log/": "var-log"} {
		if rest, ok := strings.CutPrefix(p, link); ok {
			return filepath.Join(h.root, h.outside, dir, rest)
		}
	}
	return filepath.Join(h.root, p)
}

// outsideUntouched fails if anything was written outside the root.
func (h hostileRoot) outsideUntouched(t *testing.T) {
	t.Helper()
	filepath.Walk(h.outside, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			t.Errorf("written outside the host root: %s", p)
		}
		return nil
	})
}

// TestHostRootSymlinksStayInside plants a host's absolute symlinks for
// every path podhook reaches under --host-root, and checks each command
// reads and writes where the host would.
func TestHostRootSymlinksStayInside(t *testing.T) {
	t.Run("setup patch-crio-conf", func(t *testing.T) {
		h := newHostileRoot(t)
		os.WriteFile(h.inside("/etc/crio/crio.conf"), []byte("[crio.runtime]\nhooks_dir = [\"/etc/containers/oci/hooks.d\"]\n"), 0o644)
		r := runHook(t, nil, "setup", "patch-crio-conf", "add-hooks-dir", "--host-root", h.root)
		if r.code != 0 {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		b, err := os.ReadFile(h.inside("/etc/crio/crio.conf.d/99-podhook.conf"))
		// The drop-in keeps what the host's crio.conf (read through the
		// link) lists.
		if err != nil || !strings.Contains(string(b), `"/etc/containers/oci/hooks.d", "/usr/share/containers/oci/hooks.d"`) {
			t.Fatalf("drop-in %q, %v", b, err)
		}
		h.outsideUntouched(t)
	})

	t.Run("install, the keeper's records and the monitor's position", func(t *testing.T) {
		h := newHostileRoot(t)
		addr := harness.FreeAddress(t)
		cmd := exec.Command(podhook, "install", "--keep", "--keep-interval", "50ms", "--host-root", h.root,
			"--hooks-dir", "/etc/containers/oci/hooks.d", "--metrics-address", addr)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
		reg := filepath.Join(h.root, "etc/containers/oci/hooks.d/podhook.json")
		waitFor(t, "the registration", func() bool { _, err := os.Stat(reg); return err == nil })
		if _, err := os.Stat(h.inside("/opt/podhook/podhook")); err != nil {
			t.Fatalf("binary not where the host's /opt leads: %v", err)
		}
		waitFor(t, "the monitor", func() bool {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
		os.Remove(reg) // the keeper restores it, and records that in the hook's log
		waitFor(t, "the keeper's record", func() bool {
			b, _ := os.ReadFile(h.inside("/var/log/podhook/podhook.log"))
			return strings.Contains(string(b), `"keeper_event":"restored"`)
		})
		waitFor(t, "the monitor's position", func() bool {
			_, err := os.Stat(h.inside("/opt/podhook/monitor-position.json"))
			return err == nil
		})
		h.outsideUntouched(t)
	})

	t.Run("decisions", func(t *testing.T) {
		h := newHostileRoot(t)
		rec := `{"time":"2026-01-01T00:00:00Z","stage":"createRuntime","pod_namespace":"%s","pod_name":"p","container_name":"c","decision":"allow"}` + "\n"
		os.MkdirAll(filepath.Dir(h.inside("/var/log/podhook/podhook.log")), 0o755)
		os.WriteFile(h.inside("/var/log/podhook/podhook.log"), []byte(strings.Replace(rec, "%s", "inside", 1)), 0o600)
		os.MkdirAll(filepath.Join(h.outside, "var-log/podhook"), 0o755)
		os.WriteFile(filepath.Join(h.outside, "var-log/podhook/podhook.log"), []byte(strings.Replace(rec, "%s", "outside", 1)), 0o600)
		none := filepath.Join(t.TempDir(), "none.json")
		os.WriteFile(none, []byte("{}"), 0o600)
		r := runHook(t, nil, "decisions", "--host-root", h.root, "--config", none)
		if r.code != 0 || !strings.Contains(r.stdout, "inside/p/c") || strings.Contains(r.stdout, "outside") {
			t.Fatalf("exit %d, stderr %q, table:\n%s", r.code, r.stderr, r.stdout)
		}
	})

	// The sync and podhook-nri read the hook's config under the root: the
	// one outside is invalid, so reading it would say so.
	plantConfigs := func(t *testing.T, h hostileRoot) {
		os.MkdirAll(h.inside("/opt/podhook"), 0o755)
		os.WriteFile(h.inside("/opt/podhook/podhook-config.json"), []byte(`{"agent_address":"unix:///run/podhook/inside.sock"}`), 0o600)
		os.MkdirAll(filepath.Join(h.outside, "opt/podhook"), 0o755)
		os.WriteFile(filepath.Join(h.outside, "opt/podhook/podhook-config.json"), []byte(`{"fail_allow_namespace_regex":["a)|(.*"],"bogus":1}`), 0o600)
	}
	t.Run("sync", func(t *testing.T) {
		h := newHostileRoot(t)
		plantConfigs(t, h)
		r := runHook(t, nil, "sync", "--host-root", h.root, "--config", "/opt/podhook/podhook-config.json")
		// It read the inside config (valid) and went on to look for the
		// runtime, which this root has none of.
		if r.code != 1 || !strings.Contains(r.stderr, "no CRI socket found") {
			t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("podhook-nri", func(t *testing.T) {
		h := newHostileRoot(t)
		plantConfigs(t, h)
		rec := nriFirstRecord(t, "--host-root", h.root, "--config", "/opt/podhook/podhook-config.json", "--socket", filepath.Join(shortDir(t), "nri.sock"))
		if rec["config_error"] != nil {
			t.Fatalf("podhook-nri read the config outside the root: %v", rec)
		}
	})
}

// waitFor polls cond (a file appearing, a port answering) for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen in 30 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
