package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSetupKeepsWhatIsThere: setup never creates a runtime's configuration
// where the runtime is not installed unless asked, and --output is always
// written.
func TestSetupKeepsWhatIsThere(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "etc/containerd/config.toml")
	r := runHook(t, nil, "setup", "patch-containerd-conf", "enable-nri", "--config-file", conf)
	if r.code != 1 || !strings.Contains(r.stderr, "does not exist: is containerd installed here?") {
		t.Fatalf("missing config: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Dir(conf)); !os.IsNotExist(err) {
		t.Fatalf("created %s: %v", filepath.Dir(conf), err)
	}
	if r := runHook(t, nil, "setup", "patch-containerd-conf", "enable-nri", "--config-file", conf, "--create"); r.code != 0 {
		t.Fatalf("--create: exit %d, stderr %q", r.code, r.stderr)
	}
	b, err := os.ReadFile(conf)
	if err != nil || !strings.Contains(string(b), "io.containerd.nri.v1.nri") {
		t.Fatalf("created config %q, %v", b, err)
	}
	// Nothing to change, but --output is written all the same.
	out := filepath.Join(dir, "out.toml")
	r = runHook(t, nil, "setup", "patch-containerd-conf", "enable-nri", "--config-file", conf, "--output", out)
	if got, err := os.ReadFile(out); r.code != 0 || !strings.Contains(r.stdout, "nothing to change") || err != nil || string(got) != string(b) {
		t.Fatalf("--output with nothing to change: exit %d, stdout %q, output %q, %v", r.code, r.stdout, got, err)
	}

	root := t.TempDir()
	r = runHook(t, nil, "setup", "patch-crio-conf", "add-hooks-dir", "--host-root", root)
	if r.code != 1 || !strings.Contains(r.stderr, "is CRI-O installed here?") {
		t.Fatalf("no CRI-O: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runHook(t, nil, "setup", "patch-crio-conf", "add-hooks-dir", "--host-root", root, "--hooks-dir", "/etc/containers/oci/hooks.d", "--create"); r.code != 0 {
		t.Fatalf("--create: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/crio/crio.conf.d/99-podhook.conf")); err != nil {
		t.Fatal(err)
	}
}
