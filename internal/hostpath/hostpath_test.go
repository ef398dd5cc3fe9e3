package hostpath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveStaysUnderRoot(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(root, "real/etc-crio"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "var"), 0o755)
	// A host's absolute symlinks, as a distribution ships them: each names
	// a path on the host, which is under root here.
	os.Symlink("/real/etc-crio", filepath.Join(root, "etc/crio"))
	os.Symlink(outside, filepath.Join(root, "opt"))                          // absolute, to a directory that exists outside
	os.Symlink("../../../../../../"+outside, filepath.Join(root, "var/log")) // relative, climbing out
	for name, c := range map[string]struct {
		p, want string
		parent  bool
	}{
		"absolute link inside":       {"/etc/crio/crio.conf", "real/etc-crio/crio.conf", false},
		"absolute link outside":      {"/opt/podhook/podhook-config.json", outside[1:] + "/podhook/podhook-config.json", false},
		"relative link climbing out": {"/var/log/podhook/podhook.log", outside[1:] + "/podhook/podhook.log", false},
		"parent keeps the last name": {"/etc/crio/crio.conf.d/99-podhook.conf", "real/etc-crio/crio.conf.d/99-podhook.conf", true},
		"dot-dot cannot leave":       {"/../../etc/crio", "real/etc-crio", false},
	} {
		t.Run(name, func(t *testing.T) {
			f := Resolve
			if c.parent {
				f = Parent
			}
			got, err := f(root, c.p)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(root, c.want); got != want {
				t.Fatalf("%s = %s, want %s", c.p, got, want)
			}
			if !strings.HasPrefix(got, root+"/") {
				t.Fatalf("%s left the root: %s", c.p, got)
			}
		})
	}
}

func TestParentDoesNotFollowTheLastName(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "var/log/podhook"), 0o755)
	os.Symlink("/etc/shadow", filepath.Join(root, "var/log/podhook/podhook.log"))
	got, err := Parent(root, "/var/log/podhook/podhook.log")
	if err != nil || got != filepath.Join(root, "var/log/podhook/podhook.log") {
		t.Fatalf("Parent = %s, %v", got, err)
	}
}

func TestHostRootIsTheHost(t *testing.T) {
	for _, root := range []string{"", "/", "//"} {
		if got, _ := Resolve(root, "var/../opt/podhook"); got != "/opt/podhook" {
			t.Errorf("Resolve(%q) = %s", root, got)
		}
	}
}
