package resolver

import (
	"fmt"
	"strings"
)

// Identity is a container's pod identity as read from its runtime's keys.
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
	// Trusted is true when the identity may drive a decision: the runtime
	// is known, its markers and keys agree, and the namespace and UID are
	// well formed. Conflicts says why it is not.
	Trusted   bool
	Conflicts []string
}

// Resolve detects the runtime from its marker and reads the identity from
// that runtime's keys only. hint is the runtime the installer configured
// ("" for none); detection then only confirms it. cgroupsPath is
// linux.cgroupsPath from config.json, used to cross-check the pod UID.
//
//	markers present            hint   runtime read   trusted
//	cri-o                      -      cri-o          if keys valid, no foreign key disagrees
//	libpod                     -      podman         same
//	containerd type key        -      containerd     same
//	cri-o/libpod + containerd  -      cri-o/podman   never (one marker came from a pod)
//	none                       -      unknown        never (no identity)
//	any                        R      R              only if the markers say R alone
func Resolve(annotations map[string]string, cgroupsPath string, hint Runtime) Identity {
	detected, conflicts := detect(annotations)
	rt := detected
	if hint != "" && hint != Unknown {
		if detected != hint {
			conflicts = append(conflicts, fmt.Sprintf("runtime configured as %s but annotations say %s", hint, detected))
		}
		rt = hint
	}
	id := Identity{Runtime: rt}
	ks, known := keys[rt]
	if !known {
		return id
	}
	id.PodName = annotations[ks.podName]
	id.PodNamespace = annotations[ks.podNamespace]
	id.PodUID = annotations[ks.podUID]
	id.SandboxID = annotations[ks.sandboxID]
	id.ContainerName = annotations[ks.containerName]
	id.ContainerType = annotations[ks.containerType]
	id.Image = annotations[ks.image]
	if ks.imageRef != "" {
		id.ImageRef = annotations[ks.imageRef]
	}

	if rt == Podman && id.PodNamespace == "" && id.PodUID == "" && id.PodName == "" {
		// A plain podman container: no pod, nothing to trust.
		id.Conflicts = conflicts
		return id
	}
	conflicts = append(conflicts, checkKeys(id, rt)...)
	conflicts = append(conflicts, foreignConflicts(annotations, ks)...)
	if c := crossCheckCgroup(id.PodUID, cgroupsPath); c != "" {
		conflicts = append(conflicts, c)
	}
	id.Conflicts = conflicts
	id.Trusted = len(conflicts) == 0
	return id
}

// detect reads the runtime markers.
func detect(a map[string]string) (Runtime, []string) {
	manager, hasManager := a[keyManager]
	_, hasContainerd := a[keyContainerdType]
	var rt Runtime
	switch {
	case hasManager && manager == "cri-o":
		rt = CRIO
	case hasManager && manager == "libpod":
		rt = Podman
	case hasContainerd:
		return Containerd, nil
	default:
		return Unknown, nil
	}
	if hasContainerd {
		return rt, []string{fmt.Sprintf("both runtime markers present: %s=%q and %s", keyManager, manager, keyContainerdType)}
	}
	return rt, nil
}

// checkKeys reports trusted keys that are missing or malformed.
func checkKeys(id Identity, rt Runtime) []string {
	ks := keys[rt]
	var out []string
	if !isDNS1123Label(id.PodNamespace) {
		out = append(out, fmt.Sprintf("%s %q is not a valid namespace", ks.podNamespace, id.PodNamespace))
	}
	if !isUUID(id.PodUID) {
		out = append(out, fmt.Sprintf("%s %q is not a valid pod UID", ks.podUID, id.PodUID))
	}
	if id.PodName == "" {
		out = append(out, fmt.Sprintf("%s is missing", ks.podName))
	}
	return out
}

// foreignConflicts reports keys of other runtimes, or pass-through keys of
// this one, that claim a different identity than the trusted keys.
func foreignConflicts(a map[string]string, own keySet) []string {
	var out []string
	disagree := func(key, trustedKey string) {
		if v, ok := a[key]; ok && v != a[trustedKey] {
			out = append(out, fmt.Sprintf("untrusted %s=%q disagrees with %s=%q", key, v, trustedKey, a[trustedKey]))
		}
	}
	for _, rt := range []Runtime{CRIO, Containerd} {
		ks := keys[rt]
		if ks == own {
			continue
		}
		disagree(ks.podNamespace, own.podNamespace)
		disagree(ks.podName, own.podName)
		disagree(ks.podUID, own.podUID)
	}
	for _, key := range passThroughNamespaceKeys[own] {
		disagree(key, own.podNamespace)
	}
	return out
}

// crossCheckCgroup checks that a Kubernetes pod cgroup names the pod UID:
// "pod<uid>" under cgroupfs, "pod<uid with _ for ->" under systemd slices.
func crossCheckCgroup(uid, cgroupsPath string) string {
	if uid == "" || !strings.Contains(cgroupsPath, "kubepods") {
		return ""
	}
	if strings.Contains(cgroupsPath, "pod"+uid) || strings.Contains(cgroupsPath, "pod"+strings.ReplaceAll(uid, "-", "_")) {
		return ""
	}
	return fmt.Sprintf("pod UID %q not found in cgroups path %q", uid, cgroupsPath)
}

// isDNS1123Label reports whether s is a valid Kubernetes namespace name.
func isDNS1123Label(s string) bool {
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
