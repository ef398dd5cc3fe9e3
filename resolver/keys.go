package resolver

// Runtime names the container runtime that wrote a container's annotations.
type Runtime string

// The runtimes podhook tells apart.
const (
	CRIO       Runtime = "cri-o"
	Containerd Runtime = "containerd"
	Podman     Runtime = "podman"
	Unknown    Runtime = "unknown"
)

// ParseRuntime maps a configured runtime name to a Runtime; "" and "auto"
// mean no hint. ok is false for a name podhook does not know.
func ParseRuntime(s string) (r Runtime, ok bool) {
	switch s {
	case "", "auto":
		return "", true
	case "cri-o", "crio":
		return CRIO, true
	case "containerd":
		return Containerd, true
	case "podman", "libpod":
		return Podman, true
	}
	return "", false
}

// keySet names the annotation keys one runtime writes for each identity field.
type keySet struct {
	podName, podNamespace, podUID, sandboxID string
	containerName, containerType             string
	image, imageRef                          string
}

// Runtime markers.
const (
	// keyManager is written by CRI-O ("cri-o") and podman ("libpod") after
	// the pod's annotations, so a pod cannot change it on those runtimes.
	keyManager = "io.container.manager"
	// keyContainerdType is present on every container containerd's CRI
	// plugin creates; its presence is containerd's marker.
	keyContainerdType = "io.kubernetes.cri.container-type"
)

// The identity keys, one table for every runtime.
//
// Sources:
//   - CRI-O: github.com/cri-o/cri-o pkg/annotations (CRI-O's own
//     "io.kubernetes.cri-o.*" keys) and the kubelet's labels
//     (k8s.io/kubelet pkg/types/labels.go: io.kubernetes.pod.*,
//     io.kubernetes.container.name), which CRI-O writes as annotations
//     after copying the pod's annotations, so they win. See
//     ../shared/fixtures/crio-1.37 for a full captured set.
//   - containerd: github.com/containerd/containerd
//     internal/cri/annotations/annotations.go ("io.kubernetes.cri.*").
//   - podman: github.com/containers/podman pkg/annotations, which reuses
//     CRI-O's key names (podman kube play).
var crioKeys = keySet{
	podName:       "io.kubernetes.pod.name",
	podNamespace:  "io.kubernetes.pod.namespace",
	podUID:        "io.kubernetes.pod.uid",
	sandboxID:     "io.kubernetes.cri-o.SandboxID",
	containerName: "io.kubernetes.container.name",
	containerType: "io.kubernetes.cri-o.ContainerType",
	image:         "io.kubernetes.cri-o.ImageName",
	imageRef:      "io.kubernetes.cri-o.ImageRef",
}

var keys = map[Runtime]keySet{
	CRIO:   crioKeys,
	Podman: crioKeys, // podman writes CRI-O's key names
	Containerd: {
		podName:       "io.kubernetes.cri.sandbox-name",
		podNamespace:  "io.kubernetes.cri.sandbox-namespace",
		podUID:        "io.kubernetes.cri.sandbox-uid",
		sandboxID:     "io.kubernetes.cri.sandbox-id",
		containerName: "io.kubernetes.cri.container-name",
		containerType: keyContainerdType,
		image:         "io.kubernetes.cri.image-name",
	},
}

// CRI-O's sandbox keys: CRI-O writes them for the pod's infra container
// only, so on a workload container they are the pod author's (see
// passThroughConflicts). io.kubernetes.cri-o.Name is CRI-O's own, written
// for every container.
const (
	crioNamespace     = "io.kubernetes.cri-o.Namespace"
	crioKubeName      = "io.kubernetes.cri-o.KubeName"
	crioContainerName = "io.kubernetes.cri-o.ContainerName"
	crioHostName      = "io.kubernetes.cri-o.HostName"
	crioCgroupParent  = "io.kubernetes.cri-o.CgroupParent"
	crioName          = "io.kubernetes.cri-o.Name"
)
