package resolver

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// FuzzResolve checks that no annotation set panics the resolver, that an
// identity with conflicts is never trusted, and that a trusted identity has
// a valid namespace.
func FuzzResolve(f *testing.F) {
	if b, err := os.ReadFile("../testdata/crio-1.37/config.json"); err == nil {
		var spec struct {
			Annotations map[string]string `json:"annotations"`
		}
		if json.Unmarshal(b, &spec) == nil {
			enc, _ := json.Marshal(spec.Annotations)
			f.Add(string(enc), cgroupF, "")
		}
	}
	for _, a := range []map[string]string{crio(nil), containerd(nil), crio(map[string]string{"io.kubernetes.cri.sandbox-namespace": "kube-system"})} {
		enc, _ := json.Marshal(a)
		f.Add(string(enc), cgroupS, "cri-o")
	}
	f.Fuzz(func(t *testing.T, annotations, cgroups, hint string) {
		var a map[string]string
		if json.Unmarshal([]byte(annotations), &a) != nil {
			return
		}
		rt, _ := ParseRuntime(hint)
		id := Resolve(a, cgroups, rt)
		if id.Trusted && len(id.Conflicts) > 0 {
			t.Fatalf("trusted with conflicts %q", id.Conflicts)
		}
		if id.Trusted && !isDNS1123Label(id.PodNamespace) {
			t.Fatalf("trusted with namespace %q", id.PodNamespace)
		}
		if id.Trusted && id.Runtime == Unknown {
			t.Fatal("trusted identity from an unknown runtime")
		}
		if _, hasCtrd := a[keyContainerdType]; hasCtrd && (a[keyManager] == "cri-o" || a[keyManager] == "libpod") && id.Trusted {
			t.Fatal("trusted with both runtime markers")
		}
	})
}

// FuzzExpandCgroupsPath checks that expansion never panics and yields an
// absolute, clean path.
func FuzzExpandCgroupsPath(f *testing.F) {
	for _, s := range []string{cgroupF, cgroupS, ":runc:x", "a-b.slice:p:c.slice"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := ExpandCgroupsPath(p)
		if err != nil || got == "" {
			return
		}
		if !strings.HasPrefix(got, "/") || strings.Contains(got, "//") {
			t.Fatalf("ExpandCgroupsPath(%q) = %q", p, got)
		}
	})
}
