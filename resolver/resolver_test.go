package resolver

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

const (
	uid     = "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b"
	cgroupF = "/kubepods/besteffort/pod" + uid + "/crio-73aa"
	cgroupS = "kubepods-besteffort-pod3f2b9c1e_5a4d_4e8f_9b7a_1c2d3e4f5a6b.slice:crio:73aa"
)

// crio returns a CRI-O annotation set (keys as in ../shared/fixtures) plus extra.
func crio(extra map[string]string) map[string]string {
	a := map[string]string{
		"io.container.manager":              "cri-o",
		"io.kubernetes.pod.name":            "checkout-6c9d8b7f5-x2x9q",
		"io.kubernetes.pod.namespace":       "tenant-a",
		"io.kubernetes.pod.uid":             uid,
		"io.kubernetes.container.name":      "checkout",
		"io.kubernetes.cri-o.ContainerType": "container",
		"io.kubernetes.cri-o.SandboxID":     "54802f9e",
		"io.kubernetes.cri-o.ImageName":     "localhost/busybox:latest",
		"io.kubernetes.cri-o.ImageRef":      "29a46b9c",
	}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// containerd returns a containerd annotation set plus extra.
func containerd(extra map[string]string) map[string]string {
	a := map[string]string{
		"io.kubernetes.cri.container-type":    "container",
		"io.kubernetes.cri.sandbox-name":      "web-0",
		"io.kubernetes.cri.sandbox-namespace": "tenant-b",
		"io.kubernetes.cri.sandbox-uid":       uid,
		"io.kubernetes.cri.sandbox-id":        "abcd",
		"io.kubernetes.cri.container-name":    "web",
		"io.kubernetes.cri.image-name":        "localhost/web:1",
	}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

func TestResolve(t *testing.T) {
	tests := map[string]struct {
		annotations map[string]string
		cgroups     string
		hint        Runtime
		given       *Given
		runs        []Runtime
		runtime     Runtime
		source      string
		namespace   string
		name        string
		container   string
		trusted     bool
		conflict    string // a substring one conflict must hold
	}{
		"cri-o": {
			annotations: crio(nil), cgroups: cgroupF,
			runtime: CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout", trusted: true,
		},
		"cri-o systemd cgroup": {
			annotations: crio(nil), cgroups: cgroupS,
			runtime: CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout", trusted: true,
		},
		"containerd": {
			annotations: containerd(nil),
			runtime:     Containerd, namespace: "tenant-b", name: "web-0", container: "web", trusted: true,
		},
		"podman kube play": {
			annotations: crio(map[string]string{"io.container.manager": "libpod"}),
			runtime:     Podman, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout", trusted: true,
		},
		"plain podman container": {
			annotations: map[string]string{"io.container.manager": "libpod"},
			runtime:     Podman, trusted: false,
		},
		"unknown runtime": {
			annotations: map[string]string{"io.kubernetes.pod.namespace": "kube-system"},
			runtime:     Unknown, trusted: false,
		},
		"no annotations": {
			annotations: nil, runtime: Unknown, trusted: false,
		},
		"spoof: cri-o pod adds containerd's namespace key": {
			annotations: crio(map[string]string{"io.kubernetes.cri.sandbox-namespace": "kube-system"}),
			runtime:     CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout",
			trusted: false, conflict: "io.kubernetes.cri.sandbox-namespace",
		},
		"spoof: cri-o pod adds containerd's marker too: no identity": {
			annotations: crio(map[string]string{
				"io.kubernetes.cri.container-type":    "container",
				"io.kubernetes.cri.sandbox-namespace": "kube-system",
			}),
			runtime: Unknown, trusted: false, conflict: "both runtime markers",
		},
		"spoof: containerd pod adds cri-o marker and keys, no hint: no identity": {
			// Seen on a real containerd 2.4 with pod_annotations = ["*"].
			annotations: containerd(map[string]string{
				"io.container.manager":        "cri-o",
				"io.kubernetes.pod.namespace": "kube-system",
				"io.kubernetes.pod.name":      "kube-proxy-x",
			}),
			runtime: Unknown, trusted: false, conflict: "both runtime markers",
		},
		"spoof: containerd pod adds cri-o marker and keys, hint: no identity": {
			annotations: containerd(map[string]string{
				"io.container.manager":        "cri-o",
				"io.kubernetes.pod.namespace": "kube-system",
			}),
			hint:    Containerd,
			runtime: Containerd, container: "", trusted: false, conflict: "runtime not established",
		},
		"hooks.d: cri-o pod adds containerd's marker: cri-o established, untrusted": {
			annotations: crio(map[string]string{
				"io.kubernetes.cri.container-type":    "container",
				"io.kubernetes.cri.sandbox-namespace": "kube-system",
			}),
			runs:    []Runtime{CRIO, Podman},
			runtime: CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout",
			trusted: false, conflict: "containerd's marker on a container whose hook containerd never runs",
		},
		"hooks.d: containerd's marker alone: not established": {
			annotations: containerd(nil), runs: []Runtime{CRIO, Podman},
			runtime: Unknown, trusted: false, conflict: "containerd's marker",
		},
		"given: the runtime's identity, clean": {
			annotations: containerd(nil), hint: Containerd,
			given:   &Given{PodNamespace: "tenant-b", PodName: "web-0", PodUID: uid, SandboxID: "abcd", ContainerName: "web"},
			runtime: Containerd, source: SourceRuntime, namespace: "tenant-b", name: "web-0", container: "web", trusted: true,
		},
		"given: forged cri-o marker and keys never replace it": {
			annotations: containerd(map[string]string{
				"io.container.manager":        "cri-o",
				"io.kubernetes.pod.namespace": "kube-system",
				"io.kubernetes.pod.name":      "kube-proxy-x",
			}),
			hint:    Containerd,
			given:   &Given{PodNamespace: "tenant-b", PodName: "web-0", PodUID: uid, SandboxID: "abcd", ContainerName: "web"},
			runtime: Containerd, source: SourceRuntime, namespace: "tenant-b", name: "web-0", container: "web",
			trusted: false, conflict: "io.kubernetes.pod.namespace",
		},
		"given: the runtime's own key disagrees": {
			annotations: containerd(nil), hint: Containerd,
			given:   &Given{PodNamespace: "kube-system", PodName: "web-0", PodUID: uid, ContainerName: "web"},
			runtime: Containerd, source: SourceRuntime, namespace: "kube-system", name: "web-0", container: "web",
			trusted: false, conflict: "disagrees with the runtime's",
		},
		"given: invalid namespace": {
			annotations: containerd(nil), hint: Containerd,
			given:   &Given{PodNamespace: "Tenant_B", PodName: "web-0", PodUID: uid, ContainerName: "web"},
			runtime: Containerd, source: SourceRuntime, namespace: "Tenant_B", name: "web-0", container: "web",
			trusted: false, conflict: "not a valid namespace",
		},
		"spoof: cri-o KubeName": {
			annotations: crio(map[string]string{"io.kubernetes.cri-o.KubeName": "kube-proxy-x"}),
			runtime:     CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout",
			trusted: false, conflict: "io.kubernetes.cri-o.KubeName",
		},
		"spoof: cri-o HostName": {
			annotations: crio(map[string]string{"io.kubernetes.cri-o.HostName": "kube-proxy-x"}),
			runtime:     CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout",
			trusted: false, conflict: "io.kubernetes.cri-o.HostName",
		},
		"spoof: cri-o ContainerName": {
			annotations: crio(map[string]string{"io.kubernetes.cri-o.ContainerName": "k8s_POD_kube-proxy-x_kube-system_x_0"}),
			runtime:     CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout",
			trusted: false, conflict: "io.kubernetes.cri-o.ContainerName",
		},
		"spoof: cri-o CgroupParent": {
			annotations: crio(map[string]string{"io.kubernetes.cri-o.CgroupParent": "/kubepods/besteffort/pod00000000-0000-0000-0000-000000000000"}),
			cgroups:     cgroupF,
			runtime:     CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout",
			trusted: false, conflict: "io.kubernetes.cri-o.CgroupParent",
		},
		"cri-o pass-through keys that agree": {
			annotations: crio(map[string]string{
				"io.kubernetes.cri-o.KubeName":      "checkout-6c9d8b7f5-x2x9q",
				"io.kubernetes.cri-o.Namespace":     "tenant-a",
				"io.kubernetes.cri-o.CgroupParent":  "kubepods-besteffort-pod3f2b9c1e_5a4d_4e8f_9b7a_1c2d3e4f5a6b.slice",
				"io.kubernetes.cri-o.Name":          "k8s_checkout_x",
				"io.kubernetes.cri-o.ContainerName": "k8s_checkout_x",
			}),
			cgroups: cgroupS,
			runtime: CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout", trusted: true,
		},
		"spoof: containerd pod adds cri-o namespace key": {
			annotations: containerd(map[string]string{"io.kubernetes.pod.namespace": "kube-system"}),
			runtime:     Containerd, namespace: "tenant-b", name: "web-0", container: "web",
			trusted: false, conflict: "io.kubernetes.pod.namespace",
		},
		"spoof: cri-o pass-through Namespace key": {
			annotations: crio(map[string]string{"io.kubernetes.cri-o.Namespace": "kube-system"}),
			runtime:     CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout",
			trusted: false, conflict: "io.kubernetes.cri-o.Namespace",
		},
		"agreeing foreign key is no conflict": {
			annotations: crio(map[string]string{"io.kubernetes.cri.sandbox-namespace": "tenant-a"}),
			runtime:     CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout", trusted: true,
		},
		"hint confirms": {
			annotations: crio(nil), hint: CRIO,
			runtime: CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout", trusted: true,
		},
		"hint but another runtime's marker: no identity": {
			annotations: containerd(nil), hint: CRIO,
			runtime: CRIO, trusted: false, conflict: "runtime configured as cri-o but annotations say containerd",
		},
		"namespace missing": {
			annotations: crio(map[string]string{"io.kubernetes.pod.namespace": ""}),
			runtime:     CRIO, source: SourceAnnotations, name: "checkout-6c9d8b7f5-x2x9q", container: "checkout", trusted: false, conflict: "not a valid namespace",
		},
		"namespace malformed": {
			annotations: crio(map[string]string{"io.kubernetes.pod.namespace": "Kube-System"}),
			runtime:     CRIO, namespace: "Kube-System", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout", trusted: false, conflict: "not a valid namespace",
		},
		"uid malformed": {
			annotations: crio(map[string]string{"io.kubernetes.pod.uid": "not-a-uid"}),
			runtime:     CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout", trusted: false, conflict: "not a valid pod UID",
		},
		"uid not in kube cgroup": {
			annotations: crio(nil), cgroups: "/kubepods/besteffort/pod00000000-0000-0000-0000-000000000000/crio-1",
			runtime: CRIO, namespace: "tenant-a", name: "checkout-6c9d8b7f5-x2x9q", container: "checkout", trusted: false, conflict: "not found in cgroups path",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id := Resolve(Input{Annotations: tc.annotations, CgroupsPath: tc.cgroups, Runtime: tc.hint, Given: tc.given, Runs: tc.runs})
			wantSource := tc.source
			if wantSource == "" && tc.namespace != "" {
				wantSource = SourceAnnotations
			}
			if id.Source != wantSource {
				t.Errorf("source %q, want %q", id.Source, wantSource)
			}
			if id.Source == "" && (id.PodNamespace != "" || id.PodName != "" || id.PodUID != "") {
				t.Errorf("pod fields without a source: %+v", id)
			}
			if id.Runtime != tc.runtime || id.PodNamespace != tc.namespace || id.PodName != tc.name || id.ContainerName != tc.container {
				t.Errorf("got runtime=%s ns=%q pod=%q container=%q, want %s %q %q %q",
					id.Runtime, id.PodNamespace, id.PodName, id.ContainerName, tc.runtime, tc.namespace, tc.name, tc.container)
			}
			if id.Trusted != tc.trusted {
				t.Errorf("trusted=%v, want %v (conflicts %q)", id.Trusted, tc.trusted, id.Conflicts)
			}
			if tc.conflict != "" && !strings.Contains(strings.Join(id.Conflicts, "\n"), tc.conflict) {
				t.Errorf("conflicts %q lack %q", id.Conflicts, tc.conflict)
			}
			if tc.trusted && len(id.Conflicts) != 0 {
				t.Errorf("trusted identity with conflicts %q", id.Conflicts)
			}
		})
	}
}

// TestResolveFixture resolves the real CRI-O 1.37 capture.
func TestResolveFixture(t *testing.T) {
	var spec struct {
		Annotations map[string]string `json:"annotations"`
		Linux       struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	b, err := os.ReadFile("../testdata/crio-1.37/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	id := Resolve(Input{Annotations: spec.Annotations, CgroupsPath: spec.Linux.CgroupsPath})
	want := Identity{
		Runtime: CRIO, PodName: "checkout-6c9d8b7f5-x2x9q", PodNamespace: "payments", PodUID: uid,
		SandboxID:     "54802f9ec5b9fd4ecc6d62b4bc9646b7aed42c168c3583e71e4ea7ea3e106bb5",
		ContainerName: "checkout", ContainerType: "container", Image: "localhost/busybox:latest",
		ImageRef: "29a46b9c90694eae61c03a43eed162d0fab405684785a56259809f15f435ccad", Source: SourceAnnotations, Trusted: true,
	}
	if id.Runtime != want.Runtime || id.PodName != want.PodName || id.PodNamespace != want.PodNamespace ||
		id.PodUID != want.PodUID || id.SandboxID != want.SandboxID || id.ContainerName != want.ContainerName ||
		id.ContainerType != want.ContainerType || id.Image != want.Image || id.ImageRef != want.ImageRef ||
		id.Source != want.Source || id.Trusted != want.Trusted || len(id.Conflicts) != 0 {
		t.Errorf("got %+v\nwant %+v", id, want)
	}
}

func TestExpandCgroupsPath(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"empty":               {"", ""},
		"cgroupfs":            {cgroupF, cgroupF},
		"cgroupfs relative":   {"kubepods/pod1/c", "/kubepods/pod1/c"},
		"cgroupfs unclean":    {"/a//b/../c", "/a/c"},
		"systemd crio":        {cgroupS, "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod3f2b9c1e_5a4d_4e8f_9b7a_1c2d3e4f5a6b.slice/crio-73aa.scope"},
		"systemd child slice": {"machine.slice:libpod:child.slice", "/machine.slice/child.slice"},
		"systemd no slice":    {":runc:abc", "/system.slice/runc-abc.scope"},
		"systemd root slice":  {"-.slice:p:n", "/p-n.scope"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ExpandCgroupsPath(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("ExpandCgroupsPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"a:b", "a:b:c:d", "notaslice:p:n", "a--b.slice:p:n", "-a.slice:p:n", "x.slice:p:"} {
		if got, err := ExpandCgroupsPath(bad); err == nil {
			t.Errorf("ExpandCgroupsPath(%q) = %q, want error", bad, got)
		}
	}
}
