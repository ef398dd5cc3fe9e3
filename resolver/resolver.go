package resolver

import (
	"fmt"
	"slices"
	"strings"

	"github.com/podhook/podhook/internal/safetext"
)

// Where an identity's pod fields came from.
const (
	// SourceRuntime: the injection path was told the identity by the
	// runtime itself (NRI's PodSandbox) and passed it in the hook's own
	// arguments, which no pod can write.
	SourceRuntime = "runtime"
	// SourceAnnotations: read from the established runtime's own
	// annotation keys, which that runtime writes over the pod's.
	SourceAnnotations = "annotations"
	// SourceCRI: the runtime's own pod and container records, read over
	// its CRI socket (podhook sync).
	SourceCRI = "cri"
)

// FromRecords is the identity of a container known from the runtime's own
// records (no annotations involved): source says which. It is trusted when
// the runtime is known and the fields are well formed.
func FromRecords(g Given, rt Runtime, source string) Identity {
	id := Identity{Runtime: rt, PodName: g.PodName, PodNamespace: g.PodNamespace, PodUID: g.PodUID,
		SandboxID: g.SandboxID, ContainerName: g.ContainerName, Source: source}
	if _, known := keys[rt]; !known {
		id.Conflicts = append(id.Conflicts, fmt.Sprintf("runtime %s not known to podhook", q(string(rt))))
	}
	id.Conflicts = append(id.Conflicts, checkFields(id)...)
	id.Trusted = len(id.Conflicts) == 0
	return id
}

// Given is a pod identity the injection path learned from the runtime
// itself and handed to the hook in its arguments.
type Given struct {
	PodName, PodNamespace, PodUID, SandboxID, ContainerName string
}

// Input is what Resolve decides from.
type Input struct {
	// Annotations are the container's OCI annotations. Some of them were
	// written by the pod's author.
	Annotations map[string]string
	// CgroupsPath is linux.cgroupsPath from config.json, used to
	// cross-check the pod UID and CRI-O's pass-through CgroupParent.
	CgroupsPath string
	// Runtime is the runtime the installer or the injection path named
	// ("" to detect from the markers).
	Runtime Runtime
	// Given is the identity the injection path passed, nil when none.
	Given *Given
	// Runs lists the runtimes that can have run this hook, nil for any.
	// A hooks.d registration is read only by CRI-O and podman: another
	// runtime's marker on such a container was written by the pod.
	Runs []Runtime
}

// Identity is a container's pod identity.
//
// The pod fields hold only what the runtime itself wrote or said: the
// Given identity, or the established runtime's own keys. They are empty
// when the runtime cannot be established, so a value a pod wrote is never
// presented as the pod's.
type Identity struct {
	Runtime       Runtime
	PodName       string
	PodNamespace  string
	PodUID        string
	SandboxID     string
	ContainerName string
	ContainerType string
	Image         string
	ImageRef      string
	// Source is SourceRuntime, SourceAnnotations, or "" when no pod
	// identity could be read.
	Source string
	// Trusted is true when the identity may drive a decision: it comes
	// from an established runtime, nothing in the annotations disagrees
	// with it, and the namespace and UID are well formed. Conflicts says
	// why it is not.
	Trusted   bool
	Conflicts []string
}

// Resolve establishes the runtime and reads the identity from what that
// runtime wrote, never from keys a pod can write.
//
// The markers counted are those of the runtimes that can have run the hook
// (Input.Runs): under hooks.d, containerd's marker beside CRI-O's is the
// pod's, and CRI-O's alone establishes the runtime.
//
//	given  configured  markers counted      runtime      pod fields from   trusted
//	yes    R           any                  R            given             if markers say R alone, no key disagrees
//	no     -           one: R               R            R's keys          if valid and no foreign key disagrees
//	no     R           one: R               R            R's keys          same
//	no     -           both                 unknown      none              never
//	no     R           both, none, or not R R            none              never
//	no     -           none                 unknown      none              never
func Resolve(in Input) Identity {
	a := in.Annotations
	named, conflicts := markers(a, in.Runs)
	rt, established := Unknown, len(named) == 1
	if established {
		rt = named[0]
	}
	if in.Runtime != "" && in.Runtime != Unknown {
		if len(named) < 2 && rt != in.Runtime {
			conflicts = append(conflicts, fmt.Sprintf("runtime configured as %s but annotations say %s", in.Runtime, rt))
		}
		rt, established = in.Runtime, established && rt == in.Runtime
	}
	id := Identity{Runtime: rt}
	ks, known := keys[rt]
	if known {
		// Not identity: what the runtime says of the container itself.
		id.ContainerType = a[ks.containerType]
		id.Image = a[ks.image]
		if ks.imageRef != "" {
			id.ImageRef = a[ks.imageRef]
		}
	}
	switch {
	case in.Given != nil:
		g := in.Given
		id.PodName, id.PodNamespace, id.PodUID, id.SandboxID, id.ContainerName = g.PodName, g.PodNamespace, g.PodUID, g.SandboxID, g.ContainerName
		id.Source = SourceRuntime
		if !known {
			conflicts = append(conflicts, "identity given but no runtime named or detected")
		} else {
			// The runtime's own keys must agree with what it told the plugin.
			for key, v := range map[string]string{ks.podNamespace: g.PodNamespace, ks.podName: g.PodName, ks.podUID: g.PodUID} {
				if got, ok := a[key]; ok && got != v {
					conflicts = append(conflicts, fmt.Sprintf("%s=%s disagrees with the runtime's %s", key, q(got), q(v)))
				}
			}
		}
	case established && known:
		id.PodName = a[ks.podName]
		id.PodNamespace = a[ks.podNamespace]
		id.PodUID = a[ks.podUID]
		id.SandboxID = a[ks.sandboxID]
		id.ContainerName = a[ks.containerName]
		id.Source = SourceAnnotations
		if rt == Podman && id.PodNamespace == "" && id.PodUID == "" && id.PodName == "" {
			// A plain podman container: no pod, nothing to trust.
			id.Source = ""
			id.Conflicts = conflicts
			return id
		}
	default:
		conflicts = append(conflicts, "runtime not established: no pod identity read from the annotations")
		id.Conflicts = conflicts
		return id
	}
	own := map[string]string{"namespace": id.PodNamespace, "name": id.PodName, "uid": id.PodUID}
	conflicts = append(conflicts, checkFields(id)...)
	conflicts = append(conflicts, foreignConflicts(a, ks, own)...)
	conflicts = append(conflicts, passThroughConflicts(a, ks, id, in.CgroupsPath)...)
	if c := crossCheckCgroup(id.PodUID, in.CgroupsPath); c != "" {
		conflicts = append(conflicts, c)
	}
	id.Conflicts = conflicts
	id.Trusted = len(conflicts) == 0
	return id
}

// markers returns the runtimes whose markers the annotations carry, among
// those that can have run the hook (runs; nil for any), with a conflict for
// each marker that cannot be the runtime's and for two markers at once.
func markers(a map[string]string, runs []Runtime) ([]Runtime, []string) {
	var found []Runtime
	switch a[keyManager] {
	case "cri-o":
		found = append(found, CRIO)
	case "libpod":
		found = append(found, Podman)
	}
	if _, ok := a[keyContainerdType]; ok {
		found = append(found, Containerd)
	}
	var named []Runtime
	var conflicts []string
	for _, rt := range found {
		if runs != nil && !slices.Contains(runs, rt) {
			conflicts = append(conflicts, fmt.Sprintf("%s's marker on a container whose hook %s never runs", rt, rt))
			continue
		}
		named = append(named, rt)
	}
	if len(named) > 1 {
		conflicts = append(conflicts, fmt.Sprintf("both runtime markers present: %s=%s and %s", keyManager, q(a[keyManager]), keyContainerdType))
	}
	return named, conflicts
}

// checkFields reports identity fields that are missing or malformed.
func checkFields(id Identity) []string {
	var out []string
	if !IsDNS1123Label(id.PodNamespace) {
		out = append(out, fmt.Sprintf("pod namespace %s is not a valid namespace", q(id.PodNamespace)))
	}
	if !isUUID(id.PodUID) {
		out = append(out, fmt.Sprintf("pod UID %s is not a valid pod UID", q(id.PodUID)))
	}
	if id.PodName == "" {
		out = append(out, "pod name is missing")
	}
	return out
}

// foreignConflicts reports other runtimes' identity keys that claim a
// different identity than the one resolved: on this runtime only a pod can
// have written them.
func foreignConflicts(a map[string]string, own keySet, id map[string]string) []string {
	var out []string
	for _, rt := range []Runtime{CRIO, Containerd} {
		ks := keys[rt]
		if ks == own {
			continue
		}
		for key, field := range map[string]string{ks.podNamespace: "namespace", ks.podName: "name", ks.podUID: "uid"} {
			if v, ok := a[key]; ok && v != id[field] {
				out = append(out, fmt.Sprintf("untrusted %s=%s disagrees with the pod %s %s", key, q(v), field, q(id[field])))
			}
		}
	}
	return out
}

// passThroughConflicts reports keys this runtime never writes for workload
// containers (so a pod's author wrote them) that disagree with the
// identity. Seen with CRI-O 1.37: io.kubernetes.cri-o.Namespace, KubeName,
// ContainerName, HostName and CgroupParent reach a workload container as
// the pod wrote them.
func passThroughConflicts(a map[string]string, ks keySet, id Identity, cgroupsPath string) []string {
	if ks != crioKeys {
		return nil
	}
	var out []string
	check := func(key string, agrees func(string) bool, want string) {
		if v, ok := a[key]; ok && !agrees(v) {
			out = append(out, fmt.Sprintf("untrusted %s=%s disagrees with %s", key, q(v), want))
		}
	}
	equals := func(s string) func(string) bool { return func(v string) bool { return v == s } }
	check(crioNamespace, equals(id.PodNamespace), fmt.Sprintf("the pod namespace %s", q(id.PodNamespace)))
	check(crioKubeName, equals(id.PodName), fmt.Sprintf("the pod name %s", q(id.PodName)))
	check(crioHostName, equals(id.PodName), fmt.Sprintf("the pod name %s", q(id.PodName)))
	check(crioContainerName, equals(a[crioName]), fmt.Sprintf("%s=%s", crioName, q(a[crioName])))
	check(crioCgroupParent, func(v string) bool { return underCgroup(cgroupsPath, v) }, fmt.Sprintf("the cgroups path %s", q(cgroupsPath)))
	return out
}

// underCgroup reports whether the container's cgroups path lies below the
// cgroup parent (either may be in systemd's slice form).
func underCgroup(cgroupsPath, parent string) bool {
	c, err := ExpandCgroupsPath(cgroupsPath)
	if err != nil || c == "" {
		return false
	}
	p := parent
	if strings.HasSuffix(p, ".slice") && !strings.Contains(p, "/") {
		if p, err = ExpandSlice(p); err != nil {
			return false
		}
	} else if p, err = ExpandCgroupsPath(p); err != nil || p == "" {
		return false
	}
	return p == "/" || strings.HasPrefix(c, strings.TrimSuffix(p, "/")+"/")
}

// crossCheckCgroup checks that a Kubernetes pod cgroup names the pod UID:
// "pod<uid>" under cgroupfs, "pod<uid with _ for ->" under systemd slices.
func crossCheckCgroup(uid, cgroupsPath string) string {
	if !isUUID(uid) || !strings.Contains(cgroupsPath, "kubepods") {
		return "" // a malformed UID is a conflict of its own
	}
	if strings.Contains(cgroupsPath, "pod"+uid) || strings.Contains(cgroupsPath, "pod"+strings.ReplaceAll(uid, "-", "_")) {
		return ""
	}
	return fmt.Sprintf("pod UID %s not found in cgroups path %s", q(uid), q(cgroupsPath))
}

// q quotes a value for a conflict line, cut to a length a log line and a
// request can carry: a pod's author chooses these values.
func q(v string) string { return safetext.Quote(v) }

// IsDNS1123Label reports whether s is a valid Kubernetes namespace name
// (RFC 1123 label: lower-case alphanumerics and '-', at most 63).
func IsDNS1123Label(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// isUUID reports whether s is a canonical 8-4-4-4-12 hex UUID.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
