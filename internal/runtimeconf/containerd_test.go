package runtimeconf

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs:\n%s", name, Diff("want", "got", want, got))
	}
}

func TestEnableNRIGolden(t *testing.T) {
	for _, name := range []string{
		"containerd-1.7-default.toml",       // NRI table present, disabled
		"containerd-2.1-default.toml",       // already enabled, single-quoted keys
		"containerd-1.7-kubeadm.toml",       // hand-written, comments, no NRI table
		"containerd-2.1-nri-validator.toml", // keys missing, a trailing comment, a sub-table
	} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			out, err := EnableNRI(in, NRISettings{})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(name, ".toml")+".patched.toml", out)
			golden(t, strings.TrimSuffix(name, ".toml")+".diff", []byte(Diff("a/config.toml", "b/config.toml", in, out)))
			// Every line of the input is still there, in order, except the
			// NRI keys the patch sets.
			outLines := strings.Split(string(out), "\n")
			k := 0
			for _, l := range strings.Split(string(in), "\n") {
				if isNRIKey(l) {
					continue
				}
				for k < len(outLines) && outLines[k] != l {
					k++
				}
				if k == len(outLines) {
					t.Fatalf("line %q lost", l)
				}
			}
			// Idempotent.
			again, err := EnableNRI(out, NRISettings{})
			if err != nil || string(again) != string(out) {
				t.Fatalf("second patch changed the file:\n%s", Diff("once", "twice", out, again))
			}
		})
	}
}

func isNRIKey(l string) bool {
	for _, k := range []string{"disable", "disable_connections", "socket_path", "plugin_registration_timeout", "plugin_request_timeout"} {
		if strings.HasPrefix(strings.TrimSpace(l), k+" ") || strings.HasPrefix(strings.TrimSpace(l), k+"=") {
			return true
		}
	}
	return false
}

func TestEnableNRISettings(t *testing.T) {
	out, err := EnableNRI([]byte(""), NRISettings{SocketPath: "/run/nri/nri.sock", RequestTimeout: "3s"})
	if err != nil {
		t.Fatal(err)
	}
	want := "version = 2\n\n[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = false\n  disable_connections = false\n  socket_path = \"/run/nri/nri.sock\"\n  plugin_registration_timeout = \"5s\"\n  plugin_request_timeout = \"3s\"\n"
	if string(out) != want {
		t.Fatalf("empty file patched to\n%s\nwant\n%s", out, want)
	}
}

func TestEnableNRIRefuses(t *testing.T) {
	for name, file := range map[string]string{
		"config version 1":       "containerd-v1.toml",
		"not TOML":               "containerd-broken.toml",
		"NRI set by dotted keys": "containerd-dotted.toml",
	} {
		t.Run(name, func(t *testing.T) {
			in, _ := os.ReadFile(filepath.Join("testdata", file))
			if out, err := EnableNRI(in, NRISettings{}); !errors.Is(err, ErrUnsupported) {
				t.Fatalf("err = %v, output:\n%s", err, out)
			}
		})
	}
	twice := "version = 2\n[plugins.\"io.containerd.nri.v1.nri\"]\ndisable = true\n[plugins.'io.containerd.nri.v1.nri']\n"
	if _, err := EnableNRI([]byte(twice), NRISettings{}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("a table defined twice: err = %v", err)
	}
}

func TestDiff(t *testing.T) {
	if d := Diff("a", "b", []byte("x\n"), []byte("x\n")); d != "" {
		t.Fatalf("equal inputs: %q", d)
	}
	got := Diff("a", "b", []byte("1\n2\n3\n4\n5\n6\n7\n8\n9\n"), []byte("1\n2\n3\n4\nfive\n6\n7\n8\n9\nten\n"))
	// Changes 4 lines apart share one hunk (gaps up to 2x3 context lines do).
	want := "--- a\n+++ b\n@@ -2,8 +2,9 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n 9\n+ten\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if got := Diff("a", "b", nil, []byte("new\n")); got != "--- a\n+++ b\n@@ -0,0 +1 @@\n+new\n" {
		t.Fatalf("from empty: %q", got)
	}
	got = Diff("a", "b", []byte("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n"), []byte("one\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\ntwelve\n"))
	want = "--- a\n+++ b\n@@ -1,4 +1,4 @@\n-1\n+one\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+twelve\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
