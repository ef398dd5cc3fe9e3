//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// crioForgeries are the key families a pod's author can add on CRI-O
// (played by podman with CRI-O's keys), each claiming kube-system. CRI-O
// writes io.container.manager and io.kubernetes.pod.* over the pod's, so
// those cannot be forged there; every other key passes through as written.
var crioForgeries = map[string][]string{
	"containerd's io.kubernetes.cri.* keys": {
		"io.kubernetes.cri.sandbox-namespace=kube-system",
		"io.kubernetes.cri.sandbox-name=kube-proxy-x",
		"io.kubernetes.cri.sandbox-uid=11111111-2222-4333-8444-555555555555",
	},
	"containerd's marker and keys": {
		"io.kubernetes.cri.container-type=container",
		"io.kubernetes.cri.sandbox-namespace=kube-system",
		"io.kubernetes.cri.sandbox-name=kube-proxy-x",
	},
	"io.kubernetes.cri-o.Namespace":     {"io.kubernetes.cri-o.Namespace=kube-system"},
	"io.kubernetes.cri-o.KubeName":      {"io.kubernetes.cri-o.KubeName=kube-proxy-x"},
	"io.kubernetes.cri-o.ContainerName": {"io.kubernetes.cri-o.ContainerName=k8s_POD_kube-proxy-x_kube-system_x_0"},
	"io.kubernetes.cri-o.HostName":      {"io.kubernetes.cri-o.HostName=kube-proxy-x"},
	"io.kubernetes.cri-o.CgroupParent":  {"io.kubernetes.cri-o.CgroupParent=/kubepods/besteffort/pod11111111-2222-4333-8444-555555555555"},
}

// TestForgeryMatrix: a "ledger" pod forges each key family, with the
// agent up (denying ledger) or down, and with kube-system on the
// fail-allow list or not. None may start; the agent and the hook's record
// show ledger, never kube-system, and never call a forged identity trusted.
func TestForgeryMatrix(t *testing.T) {
	cases := 0
	for _, agentUp := range []bool{true, false} {
		for _, failAllow := range []bool{true, false} {
			allow := "unrelated"
			if failAllow {
				allow = "kube-system"
			}
			t.Run(fmt.Sprintf("agent up=%v, kube-system fail-allow=%v", agentUp, failAllow), func(t *testing.T) {
				e := newEnv(t, "--fail-allow-namespaces", allow)
				if agentUp {
					e.startAgent("--deny-namespace", "ledger")
				}
				for family, keys := range crioForgeries {
					cases++
					r := e.podman(crio("ledger", "books-1", "app", keys...), "echo", "ran")
					if r.code == 0 || strings.Contains(r.out, "ran") {
						t.Errorf("%s: the forging container ran", family)
					}
					rec := e.createRecord(r.id)
					if rec["pod_namespace"] != "ledger" || rec["identity_trusted"] != false || rec["fail_open"] != false {
						t.Errorf("%s: record %v", family, rec)
					}
					if !agentUp {
						continue
					}
					var got []event
					for _, ev := range e.readEvents() {
						if ev.RPC == "CreateContainer" && ev.Request.Container.ID == r.id {
							got = append(got, ev)
						}
					}
					if len(got) != 1 {
						t.Errorf("%s: agent received %d creates", family, len(got))
						continue
					}
					p, id := got[0].Request.Pod, got[0].Request.Identity
					// Under hooks.d only CRI-O and podman run the hook, so
					// CRI-O's marker establishes the runtime even beside
					// containerd's: the agent sees the pod's own namespace.
					if p.Namespace != "ledger" || p.Name != "books-1" || id.Source != "annotations" || id.Trusted || len(id.Conflicts) == 0 {
						t.Errorf("%s: agent received pod %+v identity %+v", family, p, id)
					}
					t.Logf("%-40s agent saw namespace %q trusted=%v verdict=%s", family, p.Namespace, id.Trusted, got[0].Response.Verdict)
				}
			})
		}
	}
	t.Logf("%d forgery cases on podman playing CRI-O", cases)

	// Controls: the same settings let a true kube-system pod fail open and
	// deny a clean ledger pod by its namespace, trusted.
	t.Run("control", func(t *testing.T) {
		e := newEnv(t, "--fail-allow-namespaces", "kube-system")
		if r := e.podman(crio("kube-system", "kube-proxy-x", "proxy"), "echo", "ran"); r.code != 0 || e.createRecord(r.id)["fail_open"] != true {
			t.Fatalf("true kube-system pod: exit %d, record %v", r.code, e.createRecord(r.id))
		}
		e.startAgent("--deny-namespace", "ledger")
		r := e.podman(crio("ledger", "books-1", "app"), "echo", "ran")
		evs := e.readEvents()
		if r.code == 0 || len(evs) == 0 || evs[0].Request.Pod.Namespace != "ledger" || !evs[0].Request.Identity.Trusted ||
			!strings.Contains(evs[0].Response.Reason, `namespace "ledger" is denied`) {
			t.Fatalf("clean ledger pod: exit %d, events %+v", r.code, evs)
		}
	})
}
