package runtimeconf

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func writeFile(t *testing.T, root, path, content string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o755)
	if err := os.WriteFile(filepath.Join(root, path), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadCRIOConfig(t *testing.T) {
	t.Run("defaults list the default dir", func(t *testing.T) {
		c, err := ReadCRIOConfig(t.TempDir())
		if err != nil || c.Found || !c.Lists([]string{CRIODefaultHooksDir}) || c.Lists([]string{"/etc/containers/oci/hooks.d"}) {
			t.Fatalf("%+v %v", c, err)
		}
	})
	t.Run("drop-ins override in lexical order", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, root, CRIOConf, "[crio.runtime]\nhooks_dir = [\"/a\"]\n")
		writeFile(t, root, CRIODropinDir+"/20-b.conf", "[crio.runtime]\nhooks_dir = [\"/c\"]\n")
		writeFile(t, root, CRIODropinDir+"/10-a.conf", "[crio.runtime]\nhooks_dir = [\"/b\"]\n")
		writeFile(t, root, CRIODropinDir+"/30-other.conf", "[crio.runtime]\nconmon = \"/usr/bin/conmon\"\n")
		writeFile(t, root, CRIODropinDir+"/40-not-a-conf.txt", "[crio.runtime]\nhooks_dir = [\"/ignored\"]\n")
		c, err := ReadCRIOConfig(root)
		if err != nil || !slices.Equal(c.HooksDirs, []string{"/c"}) || len(c.Files) != 4 {
			t.Fatalf("%+v %v", c, err)
		}
	})
	t.Run("unparsable config is refused", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, root, CRIOConf, "[crio.runtime\n")
		if _, err := ReadCRIOConfig(root); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestAddHooksDirGolden runs the CRI-O patch on captured layouts: the
// stock crio.conf with hooks_dir unset, and an OpenShift-like drop-in.
func TestAddHooksDirGolden(t *testing.T) {
	for name, dir := range map[string]string{
		"crio-default":   "/etc/containers/oci/hooks.d", // read-only /usr: the writable dir
		"crio-openshift": "/usr/share/containers/oci/hooks.d",
	} {
		t.Run(name, func(t *testing.T) {
			root := filepath.Join("testdata", name)
			p, err := AddHooksDir(root, []string{dir})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".dropin.conf", p.After)
			if p.Path != filepath.Join(CRIODropinDir, CRIODropinName) {
				t.Fatalf("path %s", p.Path)
			}
			// The drop-in, placed after the others, makes CRI-O list the dir,
			// and keeps what it listed before.
			before, _ := ReadCRIOConfig(root)
			tmp := t.TempDir()
			os.CopyFS(tmp, os.DirFS(root))
			writeFile(t, tmp, p.Path, string(p.After))
			after, err := ReadCRIOConfig(tmp)
			if err != nil || !after.Lists([]string{dir}) {
				t.Fatalf("%+v %v", after, err)
			}
			for _, d := range before.HooksDirs {
				if !slices.Contains(after.HooksDirs, d) {
					t.Fatalf("lost %s: %v", d, after.HooksDirs)
				}
			}
			// Idempotent: with the drop-in in place there is nothing to do.
			again, err := AddHooksDir(tmp, []string{dir})
			if err != nil || string(again.After) != string(again.Before) {
				t.Fatalf("second run: %+v %v", again, err)
			}
		})
	}
}
