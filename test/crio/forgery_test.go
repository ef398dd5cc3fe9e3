//go:build crio

package crio

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/podhook/podhook/test/crinode"
	"github.com/podhook/podhook/test/harness"
)

// forgeries are the pod-annotation families a tenant can write, each
// claiming kube-system. CRI-O copies a pod's annotations into its
// containers, then writes its own keys and the kubelet's labels over them:
// these are the ones it leaves as the pod wrote them.
var forgeries = map[string]map[string]string{
	"containerd's io.kubernetes.cri.* keys": {
		"io.kubernetes.cri.sandbox-namespace": "kube-system",
		"io.kubernetes.cri.sandbox-name":      "kube-proxy-x",
		"io.kubernetes.cri.sandbox-uid":       "11111111-2222-4333-8444-555555555555",
	},
	"containerd's marker and keys": {
		"io.kubernetes.cri.container-type":    "container",
		"io.kubernetes.cri.sandbox-namespace": "kube-system",
		"io.kubernetes.cri.sandbox-name":      "kube-proxy-x",
	},
	"io.kubernetes.cri-o.Namespace":     {"io.kubernetes.cri-o.Namespace": "kube-system"},
	"io.kubernetes.cri-o.KubeName":      {"io.kubernetes.cri-o.KubeName": "kube-proxy-x"},
	"io.kubernetes.cri-o.ContainerName": {"io.kubernetes.cri-o.ContainerName": "k8s_POD_kube-proxy-x_kube-system_x_0"},
	"io.kubernetes.cri-o.HostName":      {"io.kubernetes.cri-o.HostName": "kube-proxy-x"},
	"io.kubernetes.cri-o.CgroupParent":  {"io.kubernetes.cri-o.CgroupParent": "/kubepods/besteffort/pod11111111-2222-4333-8444-555555555555"},
	// Keys CRI-O writes itself: an upper-case twin is another key, which
	// CRI-O passes through beside its own.
	"upper-case twins of CRI-O's keys": {
		"IO.KUBERNETES.POD.NAMESPACE": "kube-system",
		"io.kubernetes.pod.Namespace": "kube-system",
		"IO.CONTAINER.MANAGER":        "containerd",
	},
	// CRI-O's own keys, which it writes over the pod's: the pod's values
	// never arrive (asserted below through what the agent saw).
	"CRI-O's own keys": {
		"io.kubernetes.pod.namespace": "kube-system",
		"io.kubernetes.pod.name":      "kube-proxy-x",
		"io.container.manager":        "containerd",
	},
}

// TestForgeryMatrix: a "ledger" pod writes each family, with the agent up
// (denying ledger) or down, and with kube-system on the fail-allow list or
// not. None may start; the agent and the hook's record show the pod's true
// namespace, name and UID, from CRI-O's own keys.
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
					p := w.RunPod(crinode.PodSpec{Name: "books", Namespace: "ledger", Annotations: keys, Kubelet: true})
					if id, err := w.create(p, "app"); err == nil {
						t.Errorf("%s: the forging container %s was created", family, id)
					}
					rec := w.recordFor(p, "app")
					if rec["pod_namespace"] != "ledger" || rec["pod_name"] != p.Name || rec["pod_uid"] != p.UID || rec["fail_open"] != false || rec["runtime"] != "cri-o" {
						t.Errorf("%s: hook record %v", family, rec)
					}
					if !agentUp {
						continue
					}
					evs := w.receivedFor(p, "app")
					if len(evs) != 1 {
						t.Errorf("%s: agent received %d creates", family, len(evs))
						continue
					}
					got := evs[0].Request
					if got.Pod.Namespace != "ledger" || got.Pod.Name != p.Name || got.Pod.UID != p.UID || got.Identity.Source != "annotations" {
						t.Errorf("%s: agent received pod %+v identity %+v", family, got.Pod, got.Identity)
					}
					// What CRI-O did with each forged key, as the agent
					// received the container's annotations.
					for k, v := range keys {
						if a, ok := got.Container.Annotations[k]; ok && a == v && crioWrites(k) {
							t.Errorf("%s: CRI-O let the pod's %s=%s stand", family, k, v)
						}
					}
					t.Logf("%-38s agent saw %s/%s trusted=%v verdict=%s", family, got.Pod.Namespace, got.Pod.Name, got.Identity.Trusted, evs[0].Response.Verdict)
				}
			})
		}
	}
	t.Logf("%d forgery cases on a real CRI-O", cases)

	// Controls, so that the matrix can fail: the same settings let a true
	// kube-system pod fail open, and deny a clean ledger pod by namespace.
	t.Run("control", func(t *testing.T) {
		w := newWorld(t, map[string]any{"fail_allow_namespaces": []string{"kube-system"}})
		sys := w.RunPod(crinode.PodSpec{Name: "kube-proxy", Namespace: "kube-system", Kubelet: true})
		id := w.mustCreate(sys, "proxy")
		if rec := w.Record(id, "createRuntime"); rec["fail_open"] != true || rec["identity_trusted"] != true {
			t.Fatalf("true kube-system pod did not fail open: %v", rec)
		}
		w.StartAgent("--deny-namespace", "ledger")
		clean := w.RunPod(crinode.PodSpec{Name: "books", Namespace: "ledger", Kubelet: true})
		w.mustFail(clean, "app", `namespace \"ledger\" is denied by podhook-agent`)
		checkIdentity(t, w.receivedFor(clean, "app")[0], clean, "app")
	})
}

// crioWrites reports whether CRI-O writes key itself for a workload
// container (so a pod's value for it must never arrive).
func crioWrites(key string) bool {
	switch key {
	case "io.kubernetes.pod.namespace", "io.kubernetes.pod.name", "io.kubernetes.pod.uid", "io.container.manager":
		return true
	}
	return false
}

// TestHostileAnnotations: a pod's 64 KB values in every identity and
// pass-through key (CgroupParent a 64 KB slice name) are decided about as
// fast as a plain pod, with one record, and the agent sees the identity
// untrusted.
func TestHostileAnnotations(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent()
	plain := w.RunPod(crinode.PodSpec{Name: "plain", Namespace: "tenant-a", Kubelet: true})
	start := time.Now()
	w.mustCreate(plain, "app")
	floor := time.Since(start)

	hostile := harness.HostileAnnotations(64 << 10)
	// CRI-O writes io.kubernetes.pod.* itself: leave them to it, so the
	// pod still runs; the rest carry 64 KB.
	a := maps.Clone(hostile)
	for k := range a {
		if crioWrites(k) || strings.HasPrefix(k, "io.kubernetes.container.") {
			delete(a, k)
		}
	}
	p := w.RunPod(crinode.PodSpec{Name: "big", Namespace: "tenant-a", Annotations: a, Kubelet: true})
	start = time.Now()
	_, err := w.create(p, "app")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "pod identity not trusted") || len(err.Error()) > 8<<10 {
		t.Fatalf("create: %.2000v", err)
	}
	if took > floor+5*time.Second {
		t.Fatalf("decided after %v (a plain pod: %v)", took, floor)
	}
	rec := w.recordFor(p, "app")
	if rec["identity_trusted"] != false || rec["decision"] != "deny" {
		t.Fatalf("record %v", rec)
	}
	evs := w.receivedFor(p, "app")
	if len(evs) != 1 || evs[0].Request.Identity.Trusted || evs[0].Request.Pod.Namespace != "tenant-a" {
		t.Fatalf("the agent received %d creates: %+v", len(evs), evs)
	}
	t.Logf("plain pod created in %v; the 64 KB pod decided in %v, %d bytes of error", floor, took, len(err.Error()))
}

// TestThirtyContainersInOnePod: 30 containers created back to back in one
// pod, then removed: 30 create and 30 stop events at the agent, 60 records.
func TestThirtyContainersInOnePod(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent()
	p := w.RunPod(crinode.PodSpec{Name: "batch", Namespace: "tenant-a", Kubelet: true})
	var ids []string
	for i := range 30 {
		ids = append(ids, w.mustCreate(p, fmt.Sprintf("c%d", i)))
	}
	for _, id := range ids {
		if _, err := n.Run("rm", "-f", id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		w.WaitReceived(id, "StopContainer")
	}
	creates, stops := 0, 0
	evs, _ := harness.ReadEvents(w.Events)
	for _, ev := range evs {
		switch ev.RPC {
		case "CreateContainer":
			creates++
		case "StopContainer":
			stops++
		}
	}
	if recs := crinode.ReadLines(w.Log); creates != 30 || stops != 30 || len(recs) != 60 {
		t.Fatalf("%d creates, %d stops, %d records; want 30, 30, 60", creates, stops, len(recs))
	}
}
