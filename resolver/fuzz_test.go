package resolver

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/podhook/podhook/internal/safetext"
)

// FuzzResolve checks properties an attacker who writes annotations must
// not be able to break: pod fields come only from an established runtime's
// own keys (or the given identity), never when both markers stand; a
// trusted identity's namespace is the one its source holds, is valid, and
// no key a pod can write names another namespace.
func FuzzResolve(f *testing.F) {
	if b, err := os.ReadFile("../testdata/crio-1.37/config.json"); err == nil {
		var spec struct {
			Annotations map[string]string `json:"annotations"`
		}
		if json.Unmarshal(b, &spec) == nil {
			enc, _ := json.Marshal(spec.Annotations)
			f.Add(string(enc), cgroupF, "", "", true)
		}
	}
	for _, a := range []map[string]string{crio(nil), containerd(nil), crio(map[string]string{"io.kubernetes.cri.sandbox-namespace": "kube-system"}),
		containerd(map[string]string{"io.container.manager": "cri-o", "io.kubernetes.pod.namespace": "kube-system"})} {
		enc, _ := json.Marshal(a)
		f.Add(string(enc), cgroupS, "cri-o", "", false)
		f.Add(string(enc), "", "containerd", "tenant-b", false)
		f.Add(string(enc), "", "", "", true)
	}
	f.Fuzz(func(t *testing.T, annotations, cgroups, hint, givenNS string, viaHooksD bool) {
		var a map[string]string
		if json.Unmarshal([]byte(annotations), &a) != nil {
			return
		}
		rt, _ := ParseRuntime(hint)
		var given *Given
		if givenNS != "" {
			given = &Given{PodNamespace: givenNS, PodName: "web-0", PodUID: uid, ContainerName: "web"}
		}
		var runs []Runtime
		if viaHooksD {
			runs = []Runtime{CRIO, Podman}
		}
		id := Resolve(Input{Annotations: a, CgroupsPath: cgroups, Runtime: rt, Given: given, Runs: runs})
		manager, hasManager := a["io.container.manager"]
		_, hasContainerd := a["io.kubernetes.cri.container-type"]
		bothMarkers := hasContainerd && hasManager && (manager == "cri-o" || manager == "libpod")
		switch id.Source {
		case "":
			if id.PodNamespace != "" || id.PodName != "" || id.PodUID != "" || id.SandboxID != "" {
				t.Fatalf("pod fields with no source: %+v", id)
			}
		case SourceRuntime:
			if given == nil || id.PodNamespace != given.PodNamespace {
				t.Fatalf("source runtime without the given identity: %+v", id)
			}
		case SourceAnnotations:
			if given != nil || bothMarkers && !viaHooksD {
				t.Fatalf("identity read from annotations with given=%v, both markers=%v: %+v", given, bothMarkers, id)
			}
			if viaHooksD && id.Runtime == Containerd {
				t.Fatalf("containerd's keys read under hooks.d: %+v", id)
			}
			if id.PodNamespace != a[keys[id.Runtime].podNamespace] {
				t.Fatalf("namespace %q is not the %s key's %q", id.PodNamespace, id.Runtime, a[keys[id.Runtime].podNamespace])
			}
		default:
			t.Fatalf("unknown source %q", id.Source)
		}
		if !id.Trusted {
			return
		}
		if !IsDNS1123Label(id.PodNamespace) || id.Runtime == Unknown || bothMarkers {
			t.Fatalf("trusted: %+v", id)
		}
		for _, key := range []string{"io.kubernetes.pod.namespace", "io.kubernetes.cri.sandbox-namespace", "io.kubernetes.cri-o.Namespace"} {
			if v, ok := a[key]; ok && v != id.PodNamespace {
				t.Fatalf("trusted namespace %q while %s=%q", id.PodNamespace, key, v)
			}
		}
	})
}

// FuzzExpandCgroupsPath checks that expansion never panics, yields an
// absolute, clean path, and stays proportional to its input: a pod's author
// chooses CRI-O's CgroupParent, which is expanded the same way.
func FuzzExpandCgroupsPath(f *testing.F) {
	for _, s := range []string{cgroupF, cgroupS, ":runc:x", "a-b.slice:p:c.slice", strings.Repeat("a-", 125) + "a.slice:p:c",
		strings.Repeat("a-", 200) + "a.slice:p:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := ExpandCgroupsPath(p)
		if len(got) > proportional*len(p)+64 {
			t.Fatalf("ExpandCgroupsPath of %d bytes gave %d bytes", len(p), len(got))
		}
		if err != nil {
			if len(err.Error()) > 4*safetext.Keep+200 {
				t.Fatalf("error of %d bytes for %d bytes of input", len(err.Error()), len(p))
			}
			return
		}
		if got == "" {
			return
		}
		if !strings.HasPrefix(got, "/") || strings.Contains(got, "//") {
			t.Fatalf("ExpandCgroupsPath(%q) = %q", p, got)
		}
	})
}

// proportional bounds an expansion's size per byte of input: a slice of
// MaxUnitName bytes, "a-a-...-a.slice", expands to about 65 bytes per byte.
const proportional = 70

// FuzzExpandSlice: a slice name's expansion stays proportional to it.
func FuzzExpandSlice(f *testing.F) {
	for _, s := range []string{"-.slice", "a-b-c.slice", strings.Repeat("a-", 125) + "a.slice", strings.Repeat("a-", 32000) + "a.slice"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ExpandSlice(s)
		if len(got) > proportional*len(s)+16 {
			t.Fatalf("ExpandSlice of %d bytes gave %d bytes", len(s), len(got))
		}
		if err == nil && len(s) > MaxUnitName {
			t.Fatalf("a slice name of %d bytes was expanded", len(s))
		}
	})
}
