package hook

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const fixtures = "../testdata/crio-1.37"

// fixtureState returns the captured createRuntime state with its bundle
// pointed at dir.
func fixtureState(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, "state-createRuntime.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseState(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Replace(b, []byte(`"bundle":"`+st.Bundle+`"`), []byte(`"bundle":"`+dir+`"`), 1)
}

func TestParseState(t *testing.T) {
	tests := map[string]string{
		"empty":              "",
		"blank":              " \n",
		"not JSON":           "hello",
		"truncated":          `{"ociVersion":"1.0.2","id":"abc","bundle":"/b`,
		"array":              `[1,2]`,
		"no id":              `{"bundle":"/b"}`,
		"no bundle":          `{"id":"abc"}`,
		"relative bundle":    `{"id":"abc","bundle":"userdata"}`,
		"negative pid":       `{"id":"abc","bundle":"/b","pid":-1}`,
		"pid not a number":   `{"id":"abc","bundle":"/b","pid":"1"}`,
		"annotations broken": `{"id":"abc","bundle":"/b","annotations":{"a":1}`,
		"too large":          `{"id":"abc","bundle":"/b","x":"` + strings.Repeat("a", MaxStateSize) + `"}`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ReadState(strings.NewReader(in)); !errors.Is(err, ErrState) {
				t.Fatalf("err = %v, want ErrState", err)
			}
		})
	}
	st, err := ReadState(strings.NewReader(`{"id":"abc","bundle":"/b","pid":7,"status":"creating","unknown":{"x":1},"annotations":{"k":"v"}}`))
	if err != nil || st.ID != "abc" || st.Pid != 7 || st.Bundle != "/b" || st.Status != "creating" {
		t.Fatalf("got %+v, %v", st, err)
	}
	if a, err := st.StateAnnotations(); err != nil || a.Map["k"] != "v" {
		t.Fatalf("annotations %v, %v", a, err)
	}
}

func TestLoadSpecFixture(t *testing.T) {
	s, err := LoadSpec(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CgroupsPath(); !strings.HasPrefix(got, "/kubepods/besteffort/pod3f2b9c1e") {
		t.Errorf("cgroups path %q", got)
	}
	if len(s.Mounts) != 11 || s.Process == nil || s.Process.Args[0] != "/bin/sh" || s.Annotations.Map["io.kubernetes.pod.namespace"] != "payments" {
		t.Errorf("spec %+v", s)
	}
	if got := s.Rootfs("/b"); !strings.HasSuffix(got, "/merged") {
		t.Errorf("rootfs %q", got)
	}
}

func TestLoadSpecBad(t *testing.T) {
	tests := map[string]func(t *testing.T, dir string){
		"missing": func(t *testing.T, dir string) {},
		"invalid": func(t *testing.T, dir string) { write(t, dir, "{not json") },
		"wrong types": func(t *testing.T, dir string) {
			write(t, dir, `{"annotations":{"a":1}}`)
		},
		"too large": func(t *testing.T, dir string) {
			f, err := os.Create(filepath.Join(dir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(MaxSpecSize + 1); err != nil {
				t.Fatal(err)
			}
		},
		"symlink to /dev/zero": func(t *testing.T, dir string) {
			if err := os.Symlink("/dev/zero", filepath.Join(dir, "config.json")); err != nil {
				t.Fatal(err)
			}
		},
		"fifo": func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "config.json"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"directory": func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "config.json"), 0o700); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, setup := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			setup(t, dir)
			done := make(chan error, 1)
			go func() { _, err := LoadSpec(dir); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrSpec) {
					t.Fatalf("err = %v, want ErrSpec", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("LoadSpec hung")
			}
		})
	}
}

func write(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPrepareFallsBackToStateAnnotations(t *testing.T) {
	dir := t.TempDir() // no config.json
	inv, err := Prepare(bytes.NewReader(fixtureState(t, dir)), Options{Stage: CreateRuntime, Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Spec != nil || !errors.Is(inv.SpecErr, ErrSpec) {
		t.Fatalf("spec %v, err %v", inv.Spec, inv.SpecErr)
	}
	if inv.Identity.PodNamespace != "payments" || inv.Identity.PodName != "checkout-6c9d8b7f5-x2x9q" {
		t.Fatalf("identity from state annotations: %+v", inv.Identity)
	}
	req := inv.CreateRequest()
	if req.Container.Id != "73aa9b92188892db6a87d9edd97a1d48e4c2ad7d27d4d8c21db6d5ced346b1df" || req.Container.Pid != 21437 || req.Pod.Namespace != "payments" {
		t.Fatalf("request %v", req)
	}
}

func TestPrepareFixture(t *testing.T) {
	dir, _ := filepath.Abs(fixtures)
	inv, err := Prepare(bytes.NewReader(fixtureState(t, dir)), Options{Stage: CreateRuntime, Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	req := inv.CreateRequest()
	c, p := req.Container, req.Pod
	if c.Name != "checkout" || c.Type != "container" || c.Runtime != "cri-o" || c.Image != "localhost/busybox:latest" ||
		p.Namespace != "payments" || p.Uid != "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b" ||
		p.SandboxId != "54802f9ec5b9fd4ecc6d62b4bc9646b7aed42c168c3583e71e4ea7ea3e106bb5" || !req.Identity.Trusted ||
		c.CgroupsPathExpanded != c.CgroupsPath || len(c.Mounts) != 11 || c.Status != "creating" || len(c.Annotations) != 34 {
		t.Fatalf("request %v", req)
	}
}

func TestAnnotationsDuplicates(t *testing.T) {
	s, err := ParseSpec([]byte(`{"annotations":{"io.kubernetes.pod.namespace":"tenant-a","x":"1","io.kubernetes.pod.namespace":"kube-system"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Annotations.Duplicates) != 1 || s.Annotations.Duplicates[0] != "io.kubernetes.pod.namespace" || len(s.Annotations.Map) != 2 {
		t.Fatalf("annotations %+v", s.Annotations)
	}
	for _, bad := range []string{`{"annotations":{"a":1}}`, `{"annotations":["a"]}`, `{"annotations":{"a":"b"`} {
		if _, err := ParseSpec([]byte(bad)); !errors.Is(err, ErrSpec) {
			t.Errorf("ParseSpec(%s) err = %v", bad, err)
		}
	}
	if s, err := ParseSpec([]byte(`{"annotations":null}`)); err != nil || s.Annotations.Map != nil {
		t.Fatalf("null annotations: %+v, %v", s, err)
	}
}

func TestPrepareDuplicateKeysUntrusted(t *testing.T) {
	dir := t.TempDir()
	b, _ := os.ReadFile(filepath.Join(fixtures, "config.json"))
	// A second namespace key, after the real one: encoding/json would keep it.
	b = bytes.Replace(b, []byte(`"annotations": {`), []byte(`"annotations": {"io.kubernetes.pod.namespace": "kube-system",`), 1)
	os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600)
	inv, err := Prepare(bytes.NewReader(fixtureState(t, dir)), Options{Stage: CreateRuntime, Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Identity.Trusted || !strings.Contains(strings.Join(inv.Identity.Conflicts, ";"), "appears more than once") {
		t.Fatalf("identity %+v", inv.Identity)
	}
}
