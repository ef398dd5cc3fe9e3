//go:build k8s

package k8s

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podhook/podhook/test/harness"
)

// The host paths the default kustomization installs into.
var installed = []string{
	"/opt/podhook/podhook", "/opt/podhook/podhook-config.json",
	"/usr/share/containers/oci/hooks.d/podhook.json", "/usr/share/containers/oci/hooks.d/podhook-poststop.json",
}

// images builds the images as the README says (make image) and loads them
// into CRI-O's store under the names the manifests run (no registry:
// CRI-O resolves the short name podhook:latest to localhost/podhook:latest
// through its registries.conf).
func images(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("make", "-C", "../..", "image").CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	for _, img := range []string{"localhost/podhook:latest", "localhost/podhook-agent:latest"} {
		if err := n.crio.Push(img, img); err != nil {
			t.Fatal(err)
		}
	}
}

// apply runs kubectl apply -k on a directory of contrib/k8s, as an
// operator does, and removes it when the test ends unless removed.
func apply(t *testing.T, dir string) {
	t.Helper()
	if out, err := n.kubectl("apply", "-k", filepath.Join("../../contrib/k8s", dir)); err != nil {
		t.Fatalf("%s\n%v", out, err)
	}
}

// rolledOut waits until a DaemonSet has a ready pod on the node.
func rolledOut(t *testing.T, ns, name string) {
	t.Helper()
	if out, err := n.kubectl("-n", ns, "rollout", "status", "daemonset/"+name, "--timeout=180s"); err != nil {
		desc, _ := n.kubectl("-n", ns, "describe", "pods")
		t.Fatalf("%s\n%v\n%s", out, err, desc)
	}
}

// runPod runs a pod in ns (the namespace made if missing) and waits until
// it runs; it returns the pod's UID.
func runPod(t *testing.T, ns, name string) string {
	t.Helper()
	n.kubectl("create", "namespace", ns)
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/podhook-busybox:e2e
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done"]
`, name, ns)
	f := filepath.Join(t.TempDir(), name+".yaml")
	os.WriteFile(f, []byte(pod), 0o600)
	if out, err := n.kubectl("apply", "-f", f); err != nil {
		t.Fatal(out, err)
	}
	t.Cleanup(func() { n.kubectl("delete", "-f", f, "--wait=false") })
	err := n.waitFor(ns+"/"+name+" Running", 120*time.Second, func() error {
		out, err := n.kubectl("-n", ns, "get", "pod", name, "-o", "jsonpath={.status.phase}")
		if err == nil && out != "Running" {
			ev, _ := n.kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name="+name, "-o", "jsonpath={.items[*].message}")
			return fmt.Errorf("%s: %s", out, ev)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := n.kubectl("-n", ns, "get", "pod", name, "-o", "jsonpath={.metadata.uid}")
	return uid
}

// agentReceived is what the reference agent DaemonSet received, from its
// log (one JSON line per request).
func agentReceived(t *testing.T) []harness.Event {
	t.Helper()
	out, err := n.kubectl("-n", "security", "logs", "daemonset/podhook-agent")
	if err != nil {
		t.Fatal(err)
	}
	var evs []harness.Event
	for _, line := range strings.Split(out, "\n") {
		var ev harness.Event
		if json.Unmarshal([]byte(line), &ev) == nil && ev.RPC != "" {
			evs = append(evs, ev)
		}
	}
	return evs
}

// cleanHost removes what an install left on the host, should a test stop
// before its uninstall: a registration whose binary is gone would fail
// every container on this machine.
func cleanHost() {
	for i := len(installed) - 1; i >= 0; i-- {
		os.Remove(installed[i])
	}
}

// TestDefaultKustomization: the README's Deploy commands on a real node:
// the reference agent in its own namespace, podhook's default
// kustomization (hooks.d on CRI-O), its registrations on the host, a
// tenant pod's identity at the agent, then the documented uninstall,
// after which pods still start and nothing of podhook is left.
func TestDefaultKustomization(t *testing.T) {
	t.Cleanup(cleanHost)
	images(t)
	apply(t, "examples/reference-agent")
	t.Cleanup(func() { n.kubectl("delete", "-k", "../../contrib/k8s/examples/reference-agent", "--wait=false") })
	rolledOut(t, "security", "podhook-agent")

	start := time.Now()
	apply(t, ".")
	rolledOut(t, "podhook", "podhook")
	t.Logf("podhook's DaemonSet ready %v after kubectl apply", time.Since(start).Round(100*time.Millisecond))
	for _, p := range installed {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("not on the host: %v", err)
		}
	}

	uid := runPod(t, "tenant-a", "web")
	var got *harness.Event
	err := n.waitFor("the agent's create for tenant-a/web", 30*time.Second, func() error {
		for _, ev := range agentReceived(t) {
			if ev.RPC == "CreateContainer" && ev.Request.Pod.UID == uid {
				got = &ev
				return nil
			}
		}
		return errNotYet
	})
	if err != nil {
		t.Fatal(err)
	}
	r := got.Request
	if r.Pod.Namespace != "tenant-a" || r.Pod.Name != "web" || r.Container.Name != "app" || r.Container.Runtime != "cri-o" ||
		!r.Identity.Trusted || r.Identity.Source != "annotations" {
		t.Fatalf("the agent received %+v", r)
	}
	t.Logf("the agent received tenant-a/web (uid %s), container app, cri-o, trusted, from CRI-O's keys", uid)

	// The documented uninstall: over the running DaemonSet, wait, delete.
	apply(t, "uninstall")
	rolledOut(t, "podhook", "podhook")
	if out, err := n.kubectl("delete", "-k", "../../contrib/k8s/uninstall", "--timeout=120s"); err != nil {
		t.Fatalf("%s\n%v", out, err)
	}
	for _, p := range installed {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("left on the host after the uninstall: %s (%v)", p, err)
		}
	}
	runPod(t, "tenant-a", "after")
}
