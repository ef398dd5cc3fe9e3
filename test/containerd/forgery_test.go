//go:build containerd

package containerd

import (
	"fmt"
	"testing"

	"github.com/podhook/podhook/test/crinode"
)

// forgeries are the key families a pod's author can write on containerd
// with pod_annotations = ["*"], each claiming kube-system.
var forgeries = map[string]map[string]string{
	// CRI-O's marker alone: auto-detection would read CRI-O's (absent) keys.
	"io.container.manager": {"io.container.manager": "cri-o"},
	// Seen on a real containerd 2.4 before the identity came from the
	// runtime: detected as CRI-O, the agent was shown kube-system.
	"io.container.manager + io.kubernetes.pod.*": {
		"io.container.manager":        "cri-o",
		"io.kubernetes.pod.Namespace": "kube-system",
		"io.kubernetes.pod.Name":      "kube-proxy-x",
		"io.kubernetes.pod.UID":       "11111111-2222-4333-8444-555555555555",
	},
	"io.kubernetes.pod.*": {
		"io.kubernetes.pod.Namespace": "kube-system",
		"io.kubernetes.pod.Name":      "kube-proxy-x",
		"io.kubernetes.pod.UID":       "11111111-2222-4333-8444-555555555555",
	},
	// containerd's own keys: containerd writes them after the pod's.
	"io.kubernetes.cri.*": {
		"io.kubernetes.cri.sandbox-namespace": "kube-system",
		"io.kubernetes.cri.sandbox-name":      "kube-proxy-x",
		"io.kubernetes.cri.sandbox-uid":       "11111111-2222-4333-8444-555555555555",
		"io.kubernetes.cri.container-name":    "kube-proxy",
	},
	"io.kubernetes.cri-o.* pass-through": {
		"io.kubernetes.cri-o.Namespace":     "kube-system",
		"io.kubernetes.cri-o.KubeName":      "kube-proxy-x",
		"io.kubernetes.cri-o.ContainerName": "k8s_POD_kube-proxy-x_kube-system_x_0",
		"io.kubernetes.cri-o.HostName":      "kube-proxy-x",
		"io.kubernetes.cri-o.CgroupParent":  "/kubepods/besteffort/pod11111111-2222-4333-8444-555555555555",
	},
}

// TestForgeryMatrix: a pod in the denied namespace "ledger" forges each
// key family, with the agent up (denying ledger) or down, and with the
// claimed namespace on the fail-allow list or not. No case may start, and
// neither the agent nor the hook's record may show the forged namespace,
// name or UID as the pod's.
func TestForgeryMatrix(t *testing.T) {
	cases := 0
	for _, agentUp := range []bool{true, false} {
		for _, failAllow := range []bool{true, false} {
			allow := []string{"unrelated"}
			if failAllow {
				allow = []string{"kube-system"}
			}
			t.Run(fmt.Sprintf("agent up=%v, kube-system fail-allow=%v", agentUp, failAllow), func(t *testing.T) {
				w := newWorld(t, map[string]any{"fail_allow_namespaces": allow})
				if agentUp {
					w.StartAgent("--deny-namespace", "ledger")
				}
				for family, keys := range forgeries {
					cases++
					p := w.RunPod(crinode.PodSpec{Name: "books", Namespace: "ledger", Annotations: keys})
					id := w.create(p, "app")
					if err := w.start(id); err == nil {
						t.Errorf("%s: the forging pod started", family)
					}
					rec := w.Record(id, "createRuntime")
					if rec["pod_namespace"] != "ledger" || rec["pod_name"] != p.Name || rec["pod_uid"] != p.UID || rec["fail_open"] != false {
						t.Errorf("%s: hook record %v", family, rec)
					}
					if !agentUp {
						continue
					}
					evs := w.Received(id, "CreateContainer")
					if len(evs) != 1 {
						t.Errorf("%s: agent received %d creates", family, len(evs))
						continue
					}
					got := evs[0].Request
					if got.Pod.Namespace != "ledger" || got.Pod.Name != p.Name || got.Pod.UID != p.UID || got.Identity.Source != "runtime" {
						t.Errorf("%s: agent received pod %+v identity %+v", family, got.Pod, got.Identity)
					}
					t.Logf("%-45s agent saw %s/%s trusted=%v verdict=%s", family, got.Pod.Namespace, got.Pod.Name, got.Identity.Trusted, evs[0].Response.Verdict)
				}
			})
		}
	}
	t.Logf("%d forgery cases on containerd", cases)

	// Controls, so that the matrix can fail: the same settings let a true
	// kube-system pod fail open, and deny a clean ledger pod by namespace.
	t.Run("control", func(t *testing.T) {
		w := newWorld(t, map[string]any{"fail_allow_namespaces": []string{"kube-system"}})
		sys := w.RunPod(crinode.PodSpec{Name: "kube-proxy", Namespace: "kube-system"})
		id := w.create(sys, "proxy")
		w.mustStart(id)
		if rec := w.Record(id, "createRuntime"); rec["fail_open"] != true {
			t.Fatalf("true kube-system pod did not fail open: %v", rec)
		}
		w.StartAgent("--deny-namespace", "ledger")
		clean := w.RunPod(crinode.PodSpec{Name: "books", Namespace: "ledger"})
		cid := w.create(clean, "app")
		w.mustFail(cid, `namespace \"ledger\" is denied by podhook-agent`)
		checkIdentity(t, w.Received(cid, "CreateContainer")[0], clean, "app")
	})
}
