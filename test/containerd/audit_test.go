//go:build containerd

package containerd

import (
	"testing"

	"github.com/podhook/podhook/test/crinode"
)

// TestAudit: under containerd and podhook-nri, a namespace in audit starts
// a container the agent denies, its record saying it would have been
// stopped, and the agent told exactly what enforce tells it (the identity
// from the runtime, trusted); another namespace is still enforced.
func TestAudit(t *testing.T) {
	w := newWorld(t, map[string]any{"audit_namespaces": []string{"tenant-a"}})
	w.StartAgent("--deny-namespace", "tenant-a", "--deny-namespace", "ledger")

	p := w.RunPod(crinode.PodSpec{Name: "web", Namespace: "tenant-a"})
	id := w.create(p, "app")
	w.mustStart(id)
	rec := w.Record(id, "createRuntime")
	if rec["decision"] != "allow" || rec["would_deny"] != true || rec["reason"] != `denied by agent: namespace "tenant-a" is denied by podhook-agent` {
		t.Fatalf("record %v", rec)
	}
	evs := w.Received(id, "CreateContainer")
	if len(evs) != 1 {
		t.Fatalf("agent received %d creates", len(evs))
	}
	checkIdentity(t, evs[0], p, "app")

	l := w.RunPod(crinode.PodSpec{Name: "books", Namespace: "ledger"})
	lid := w.create(l, "app")
	w.mustFail(lid, `denied by agent: namespace \"ledger\"`)
	if rec := w.Record(lid, "createRuntime"); rec["decision"] != "deny" || rec["would_deny"] != nil {
		t.Fatalf("record %v", rec)
	}
}
