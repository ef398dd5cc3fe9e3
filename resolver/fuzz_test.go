package resolver

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
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
