//go:build k8s

package k8s

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podhook/podhook/test/crinode"
	"github.com/podhook/podhook/test/harness"
)

// installedIn are the host paths an install registering in hooksDir
// writes; with no hooksDir (NRI), the binary and its config only.
func installedIn(hooksDir string) []string {
	paths := []string{"/opt/podhook/podhook", "/opt/podhook/podhook-config.json"}
	if hooksDir == "" {
		return paths
	}
	return append(paths, filepath.Join(hooksDir, "podhook.json"), filepath.Join(hooksDir, "podhook-poststop.json"))
}

// hooksDirs are the hooks.d directories CRI-O reads here.
var hooksDirs = []string{"/usr/share/containers/oci/hooks.d", "/etc/containers/oci/hooks.d"}

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

// agentUp builds and loads the images and runs the reference agent's
// DaemonSet (contrib/k8s/examples/reference-agent), once for the suite.
func agentUp(t *testing.T) {
	t.Helper()
	agentOnce.Do(func() { images(t) })
	apply(t, "examples/reference-agent")
	rolledOut(t, "security", "podhook-agent")
}

var agentOnce sync.Once

// nextTag is the tag of the image an upgrade rolls to: the same binaries
// under another tag, so the DaemonSet's pod template changes and the
// rollout runs; loaded into CRI-O's store once.
func nextTag(t *testing.T) string {
	t.Helper()
	const tag = "e2e-next"
	nextOnce.Do(func() {
		if out, err := exec.Command("podman", "tag", "localhost/podhook:latest", "localhost/podhook:"+tag).CombinedOutput(); err != nil {
			nextErr = fmt.Errorf("podman tag: %v\n%s", err, out)
			return
		}
		nextErr = n.crio.Push("localhost/podhook:"+tag, "localhost/podhook:"+tag)
	})
	if nextErr != nil {
		t.Fatal(nextErr)
	}
	return tag
}

var (
	nextOnce sync.Once
	nextErr  error
)

// copyDir copies a directory tree into the test's temp dir (an operator's
// checkout of contrib/k8s, say) and returns the copy.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if out, err := exec.Command("cp", "-r", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return dst
}

// setImage sets newTag in a kustomization's images entry, as the README
// tells an operator to.
func setImage(t *testing.T, path, tag string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "newTag: latest", "newTag: "+tag, 1)
	if edited == string(b) {
		t.Fatalf("%s has no newTag: latest", path)
	}
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
}

// apply runs kubectl apply -k on a directory of contrib/k8s, as an
// operator does.
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

// podYAML is a pod named name in ns running the busybox image until
// SIGTERM (so a stop never waits out a grace period).
func podYAML(name, ns string) string {
	return fmt.Sprintf(`apiVersion: v1
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
}

// applyPod applies a pod (its namespace made if missing), deleted when
// the test ends.
func applyPod(t *testing.T, ns, name string) {
	t.Helper()
	n.kubectl("create", "namespace", ns)
	f := filepath.Join(t.TempDir(), name+".yaml")
	os.WriteFile(f, []byte(podYAML(name, ns)), 0o600)
	if out, err := n.kubectl("apply", "-f", f); err != nil {
		t.Fatal(out, err)
	}
	t.Cleanup(func() { n.kubectl("delete", "-f", f, "--wait=false") })
}

// waitRunning waits until the pod runs and returns its UID.
func waitRunning(t *testing.T, ns, name string, timeout time.Duration) string {
	t.Helper()
	err := n.waitFor(ns+"/"+name+" Running", timeout, func() error {
		out, err := n.kubectl("-n", ns, "get", "pod", name, "-o", "jsonpath={.status.phase}")
		if err == nil && out != "Running" {
			ev, _ := n.kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name="+name, "-o", "jsonpath={.items[*].message}")
			return fmt.Errorf("%w: %s: %s", errNotYet, out, ev)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := n.kubectl("-n", ns, "get", "pod", name, "-o", "jsonpath={.metadata.uid}")
	return uid
}

// runPod runs a pod and waits until it runs; it returns the pod's UID.
func runPod(t *testing.T, ns, name string) string {
	t.Helper()
	applyPod(t, ns, name)
	return waitRunning(t, ns, name, 120*time.Second)
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

// waitReceived waits until the reference agent has received an event
// that match accepts, and returns it; the test fails at timeout.
func waitReceived(t *testing.T, what string, timeout time.Duration, match func(harness.Event) bool) harness.Event {
	t.Helper()
	var got harness.Event
	err := n.waitFor(what, timeout, func() error {
		for _, ev := range agentReceived(t) {
			if match(ev) {
				got = ev
				return nil
			}
		}
		return errNotYet
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// cleanHost removes what an install left on the host, should a test stop
// before its uninstall: a registration whose binary is gone would fail
// every container on this machine.
func cleanHost() {
	for _, d := range hooksDirs {
		paths := installedIn(d)
		for i := len(paths) - 1; i >= 0; i-- {
			os.Remove(paths[i])
		}
	}
}

// variant is a way the README deploys podhook, and its documented
// uninstall; runtime and source are what the agent is told of a container
// (CRI-O's keys through hooks.d, or the runtime itself through NRI).
type variant struct {
	name            string
	hooksDir        string // "": NRI, no registration
	runtime, source string
	install         func(t *testing.T)
	upgrade         func(t *testing.T) // to nextImage, if the test runs it
	uninstall       func(t *testing.T)
}

func kustomized(dir, uninstall, hooksDir string) variant {
	runtime, source := "cri-o", "annotations"
	if hooksDir == "" {
		runtime, source = "containerd", "runtime"
	}
	return variant{name: "kubectl apply -k contrib/k8s/" + dir, hooksDir: hooksDir, runtime: runtime, source: source,
		install: func(t *testing.T) { apply(t, dir) },
		uninstall: func(t *testing.T) {
			apply(t, uninstall)
			rolledOut(t, "podhook", "podhook")
			if out, err := n.kubectl("delete", "-k", filepath.Join("../../contrib/k8s", uninstall), "--timeout=120s"); err != nil {
				t.Fatalf("%s\n%v", out, err)
			}
		}}
}

// helm runs the helm that make manifests builds against the node.
func helm(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(os.Getenv("PODHOOK_HELM"), append(args, "--kubeconfig", n.admin)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

var chart = variant{name: "helm install contrib/helm/podhook", hooksDir: "/usr/share/containers/oci/hooks.d", runtime: "cri-o", source: "annotations",
	install: func(t *testing.T) {
		helm(t, "install", "podhook", "../../contrib/helm/podhook", "-n", "podhook", "--create-namespace",
			"--set", "image.repository=podhook", "--set", "image.tag=latest", "--set", "agent.namespace=security")
	},
	upgrade: func(t *testing.T) {
		helm(t, "upgrade", "podhook", "../../contrib/helm/podhook", "-n", "podhook", "--reuse-values", "--set", "image.tag="+nextTag(t))
	},
	uninstall: func(t *testing.T) {
		helm(t, "upgrade", "podhook", "../../contrib/helm/podhook", "-n", "podhook", "--reuse-values", "--set", "uninstall=true")
		rolledOut(t, "podhook", "podhook")
		helm(t, "uninstall", "podhook", "-n", "podhook", "--wait", "--timeout", "120s")
		n.kubectl("delete", "namespace", "podhook", "--timeout=120s")
	}}

// TestDeployAndUninstall: the README's Deploy commands on a real node, for
// the default kustomization, the readonly-usr variant and the Helm chart:
// the reference agent in its own namespace, podhook installed, its
// registrations on the host, a tenant pod's identity at the agent, then
// the variant's documented uninstall, after which pods still start and
// nothing of podhook is left on the host.
func TestDeployAndUninstall(t *testing.T) {
	t.Cleanup(cleanHost)
	agentUp(t)
	for i, v := range []variant{
		kustomized(".", "uninstall", "/usr/share/containers/oci/hooks.d"),
		kustomized("readonly-usr", "readonly-usr/uninstall", "/etc/containers/oci/hooks.d"),
		chart,
	} {
		t.Run(v.name, func(t *testing.T) {
			deployAndUninstall(t, v, fmt.Sprintf("web-%d", i))
		})
	}
}

func deployAndUninstall(t *testing.T, v variant, podName string) {
	// A pod that runs before podhook is installed: the keeper's sync
	// tells the agent about it.
	earlyUID := runPod(t, "tenant-a", podName+"-early")
	start := time.Now()
	v.install(t)
	rolledOut(t, "podhook", "podhook")
	t.Logf("podhook's DaemonSet ready %v after the install", time.Since(start).Round(100*time.Millisecond))
	for _, p := range installedIn(v.hooksDir) {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("not on the host: %v", err)
		}
	}
	for _, d := range hooksDirs {
		if left, _ := os.ReadDir(d); d != v.hooksDir && len(left) != 0 {
			t.Fatalf("registrations in %s, which the variant does not register in: %v", d, left)
		}
	}

	uid := runPod(t, "tenant-a", podName)
	got := waitReceived(t, "the agent's create for tenant-a/"+podName, 30*time.Second, func(ev harness.Event) bool {
		return ev.RPC == "CreateContainer" && ev.Request.Pod.UID == uid && ev.Request.Stage != "sync"
	})
	r := got.Request
	if r.Pod.Namespace != "tenant-a" || r.Pod.Name != podName || r.Container.Name != "app" || r.Container.Runtime != v.runtime ||
		!r.Identity.Trusted || r.Identity.Source != v.source || r.Container.Pid <= 0 {
		t.Fatalf("the agent received %+v", r)
	}
	t.Logf("the agent received at %s: tenant-a/%s (uid %s), container app (pid %d), %s, trusted, source %s",
		r.Stage, podName, uid, r.Container.Pid, r.Container.Runtime, r.Identity.Source)

	synced := waitReceived(t, "the sync of tenant-a/"+podName+"-early", 60*time.Second, func(ev harness.Event) bool {
		return ev.RPC == "CreateContainer" && ev.Request.Pod.UID == earlyUID && ev.Request.AlreadyRunning
	})
	// The keeper's sync reads the runtime's CRI records; under NRI,
	// podhook-nri also reports what was created while it was away.
	r = synced.Request
	if r.Stage != "sync" || r.Pod.Namespace != "tenant-a" || r.Pod.Name != podName+"-early" || !r.Identity.Trusted ||
		r.Identity.Source != "cri" && !(v.hooksDir == "" && r.Identity.Source == "runtime") {
		t.Fatalf("the agent received for the early pod %+v", r)
	}
	t.Logf("the pod from before the install reached the agent through a sync: already running, trusted, source %s", r.Identity.Source)

	// The sync by hand, as the README writes it: the early pod again.
	syncs := func() int {
		c := 0
		for _, ev := range agentReceived(t) {
			if ev.Request.Pod.UID == earlyUID && ev.Request.Stage == "sync" {
				c++
			}
		}
		return c
	}
	before := syncs()
	if out, err := n.kubectl("-n", "podhook", "exec", "ds/podhook", "-c", "keep", "--",
		"/podhook", "sync", "--host-root", "/host", "--config", "/opt/podhook/podhook-config.json"); err != nil {
		t.Fatalf("podhook sync in the keeper: %s\n%v", out, err)
	}
	if err := n.waitFor("the agent's sync by hand", 30*time.Second, func() error {
		if syncs() <= before {
			return errNotYet
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	if v.upgrade != nil {
		v.upgrade(t)
		rolledOut(t, "podhook", "podhook")
		if img, _ := n.kubectl("-n", "podhook", "get", "daemonset", "podhook", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); img != "podhook:"+nextTag(t) {
			t.Fatalf("after the upgrade the DaemonSet runs %q", img)
		}
		uid := runPod(t, "tenant-a", podName+"-upgraded")
		waitReceived(t, "the agent's create after the upgrade", 30*time.Second, func(ev harness.Event) bool {
			return ev.RPC == "CreateContainer" && ev.Request.Pod.UID == uid && ev.Request.Identity.Trusted
		})
		t.Logf("upgraded to podhook:%s: the next pod's identity reached the agent", nextTag(t))
	}

	v.uninstall(t)
	if left, _ := os.ReadDir("/opt/podhook"); len(left) != 0 {
		t.Fatalf("left in /opt/podhook after the uninstall: %v", left)
	}
	for _, d := range hooksDirs {
		for _, p := range installedIn(d) {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatalf("left on the host after the uninstall: %s (%v)", p, err)
			}
		}
	}
	after := runPod(t, "tenant-a", podName+"-after")
	for _, ev := range agentReceived(t) {
		if ev.Request.Pod.UID == after {
			t.Fatalf("after the uninstall the agent still received %s for a new pod", ev.RPC)
		}
	}
}

// TestNRIOnContainerd: the node moves to containerd 2.4 with NRI (the
// kubelet's runtime changed, as when a node is reprovisioned), and the NRI
// variant runs there as the README deploys it: its files on the host and no
// registration, a tenant pod's identity at the agent through the hook
// podhook-nri adds (from the runtime, trusted), a pod from before the
// install synced, and contrib/k8s/uninstall leaving nothing, after which a
// pod starts without the hook. The node then goes back to CRI-O.
func TestNRIOnContainerd(t *testing.T) {
	t.Cleanup(cleanHost)
	agentUp(t)
	if err := n.useContainerd(map[string]string{"localhost/podhook:latest": "podhook:latest", "localhost/podhook-agent:latest": "podhook-agent:latest"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.useCRIO(); err != nil {
			t.Fatalf("back to CRI-O: %v", err)
		}
	})
	rt, _ := n.kubectl("get", "node", n.name, "-o", "jsonpath={.status.nodeInfo.containerRuntimeVersion}")
	t.Logf("the node's runtime: %s", rt)
	agentRunning(t)
	v := kustomized("nri", "uninstall", "")
	v.install = func(t *testing.T) {
		apply(t, "nri")
		rolledOut(t, "podhook", "podhook")
		// The pod is ready before podhook-nri has registered with
		// containerd; until then a container is created without the hook
		// (and reported to the agent when the plugin synchronizes).
		err := n.waitFor("podhook-nri synchronized", 60*time.Second, func() error {
			out, err := n.kubectl("-n", "podhook", "logs", "daemonset/podhook", "-c", "nri-plugin")
			if err == nil && !strings.Contains(out, `"msg":"synchronized"`) {
				return fmt.Errorf("%w: %s", errNotYet, out)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	deployAndUninstall(t, v, "web-nri")
}

// agentRunning waits until the reference agent's pod runs on the node's
// current runtime and answers (after a runtime change the API server
// still shows the pod it had on the old one for a while).
func agentRunning(t *testing.T) {
	t.Helper()
	err := n.waitFor("the agent's container running on the node's runtime", 120*time.Second, func() error {
		out, err := n.cri.Run("ps", "-q", "--name", "^agent$", "--state", "running")
		if err == nil && out == "" {
			return errNotYet
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rolledOut(t, "security", "podhook-agent")
}

// TestAgentDownFailsClosed: with podhook installed and the agent's pod
// gone, a tenant pod fails closed (the kubelet shows podhook's reason);
// the agent's own pod starts meanwhile (its namespace fails open, so the
// hook never deadlocks it), and the tenant pod starts once it is back.
func TestAgentDownFailsClosed(t *testing.T) {
	t.Cleanup(cleanHost)
	agentUp(t)
	v := kustomized(".", "uninstall", "/usr/share/containers/oci/hooks.d")
	v.install(t)
	rolledOut(t, "podhook", "podhook")
	defer v.uninstall(t)

	// The agent's pods leave the node (a selector no node matches).
	if out, err := n.kubectl("-n", "security", "patch", "daemonset", "podhook-agent", "--type", "merge",
		"-p", `{"spec":{"template":{"spec":{"nodeSelector":{"podhook.io/test":"no-node"}}}}}`); err != nil {
		t.Fatal(out, err)
	}
	err := n.waitFor("the agent's pod gone", 60*time.Second, func() error {
		out, err := n.kubectl("-n", "security", "get", "pods", "-o", "name")
		if err == nil && out != "" {
			return fmt.Errorf("%w: %s", errNotYet, out)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	applyPod(t, "tenant-b", "waits")
	var reason string
	err = n.waitFor("the tenant pod failing closed", 60*time.Second, func() error {
		ev, err := n.kubectl("-n", "tenant-b", "get", "events", "--field-selector", "involvedObject.name=waits", "-o", "jsonpath={.items[*].message}")
		if err == nil && !strings.Contains(ev, "failing closed") {
			return fmt.Errorf("%w: %s", errNotYet, ev)
		}
		reason = ev
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reason, `podhook: agent unreachable`) || !strings.Contains(reason, `namespace \"tenant-b\" is not on the fail-allow list`) {
		t.Fatalf("the kubelet's events: %s", reason)
	}
	t.Logf("the tenant pod failed closed; the kubelet shows: %.400s", reason[max(0, strings.Index(reason, "error running hook")):])

	// The agent comes back: its own pod starts with the agent down.
	if out, err := n.kubectl("-n", "security", "patch", "daemonset", "podhook-agent", "--type", "json",
		"-p", `[{"op":"remove","path":"/spec/template/spec/nodeSelector"}]`); err != nil {
		t.Fatal(out, err)
	}
	rolledOut(t, "security", "podhook-agent")
	uid := waitRunning(t, "tenant-b", "waits", 180*time.Second)
	found := false
	for _, ev := range agentReceived(t) {
		found = found || ev.RPC == "CreateContainer" && ev.Request.Pod.UID == uid && ev.Request.Identity.Trusted
	}
	if !found {
		t.Fatal("the agent, back, never received the tenant pod's create")
	}

	// The agent's pod deleted: the DaemonSet's new pod starts while no
	// agent answers (its namespace fails open: the hook's log says so),
	// and the next tenant pod reaches the new agent.
	logged := len(crinode.ReadLines("/var/log/podhook/podhook.log"))
	if out, err := n.kubectl("-n", "security", "delete", "pod", "-l", "app.kubernetes.io/name=podhook-agent", "--timeout=60s"); err != nil {
		t.Fatal(out, err)
	}
	agentRunning(t)
	failedOpen := false
	for _, r := range crinode.ReadLines("/var/log/podhook/podhook.log")[logged:] {
		failedOpen = failedOpen || r["pod_namespace"] == "security" && r["container_name"] == "agent" && r["fail_open"] == true
	}
	if !failedOpen {
		t.Fatal("the hook's log has no fail-open record for the agent's new pod")
	}
	uid = runPod(t, "tenant-b", "after-restart")
	waitReceived(t, "the new agent's create for tenant-b/after-restart", 30*time.Second, func(ev harness.Event) bool {
		return ev.RPC == "CreateContainer" && ev.Request.Pod.UID == uid && ev.Request.Identity.Trusted
	})
	t.Logf("the agent's pod deleted: its new pod started failing open, and the next tenant pod reached it")
}

// keeperMetrics scrapes the keeper container's podhook-monitor inside its
// pod's network namespace (the node's CNI is loopback only) and returns
// the sum of podhook_decisions_total.
func keeperMetrics(t *testing.T) (float64, error) {
	t.Helper()
	id, err := n.cri.Run("ps", "-q", "--name", "^keep$", "--state", "running")
	if err != nil || id == "" {
		return 0, fmt.Errorf("no running keeper container: %q, %v", id, err)
	}
	id = strings.Fields(id)[0]
	pid, err := n.cri.Run("inspect", "-o", "go-template", "--template", "{{.info.pid}}", id)
	if err != nil {
		return 0, err
	}
	out, err := exec.Command("nsenter", "-t", strings.TrimSpace(pid), "-n", "busybox", "wget", "-qO-", "http://127.0.0.1:9464/metrics").Output()
	if err != nil {
		return 0, fmt.Errorf("scrape: %w", err)
	}
	sum := 0.0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "podhook_decisions_total{") {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			sum += v
		}
	}
	return sum, nil
}

// logDecisions counts the decision records in the hook's log on the host.
func logDecisions() int {
	c := 0
	for _, r := range crinode.ReadLines("/var/log/podhook/podhook.log") {
		if r["decision"] != nil {
			c++
		}
	}
	return c
}

// TestKeeperMetricsCountTheLog: the keeper's metrics, scraped from its
// pod, count every decision the hook's log on the host gains.
func TestKeeperMetricsCountTheLog(t *testing.T) {
	t.Cleanup(cleanHost)
	agentUp(t)
	v := kustomized(".", "uninstall", "/usr/share/containers/oci/hooks.d")
	v.install(t)
	rolledOut(t, "podhook", "podhook")
	defer v.uninstall(t)
	// The monitor has caught up when two scrapes more than its 1 s poll
	// interval apart agree and the log did not grow between them.
	var before float64
	var logBefore int
	err := n.waitFor("the keeper's monitor caught up", 60*time.Second, func() error {
		m1, err := keeperMetrics(t)
		l1 := logDecisions()
		if err != nil {
			return err
		}
		time.Sleep(1500 * time.Millisecond)
		m2, err := keeperMetrics(t)
		if err != nil || m1 != m2 || l1 != logDecisions() {
			return fmt.Errorf("%w: %v", errNotYet, err)
		}
		before, logBefore = m2, l1
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		runPod(t, "tenant-c", fmt.Sprintf("counted-%d", i))
	}
	var after float64
	err = n.waitFor("the metrics to count the new records", 60*time.Second, func() error {
		var err error
		if after, err = keeperMetrics(t); err != nil {
			return err
		}
		if got, want := after-before, float64(logDecisions()-logBefore); got != want || want < 3 {
			return fmt.Errorf("%w: metrics +%v, log +%v", errNotYet, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the log gained %d decision records; the keeper's podhook_decisions_total gained %v", logDecisions()-logBefore, after-before)
}

// TestRollingUpdateUnderLoad: podhook's DaemonSet rolls to a new image
// while a Deployment scales from 0 to 20: no create fails, and every
// container the runtime created reaches the agent (none unseen).
func TestRollingUpdateUnderLoad(t *testing.T) {
	t.Cleanup(cleanHost)
	agentUp(t)
	v := kustomized(".", "uninstall", "/usr/share/containers/oci/hooks.d")
	v.install(t)
	rolledOut(t, "podhook", "podhook")
	defer v.uninstall(t)
	// The upgrade as the README writes it: the image set once, in
	// components/image of the operator's copy of contrib/k8s, and the same
	// variant applied again.
	upgraded := copyDir(t, "../../contrib/k8s")
	setImage(t, filepath.Join(upgraded, "components/image/kustomization.yaml"), nextTag(t))
	n.kubectl("create", "namespace", "tenant-d")
	deploy := `apiVersion: apps/v1
kind: Deployment
metadata: {name: fleet, namespace: tenant-d}
spec:
  replicas: 0
  selector: {matchLabels: {app: fleet}}
  template:
    metadata: {labels: {app: fleet}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: localhost/podhook-busybox:e2e
        imagePullPolicy: Never
        command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done"]
`
	f := filepath.Join(t.TempDir(), "fleet.yaml")
	os.WriteFile(f, []byte(deploy), 0o600)
	if out, err := n.kubectl("apply", "-f", f); err != nil {
		t.Fatal(out, err)
	}
	defer n.kubectl("delete", "-f", f, "--wait=false")
	if out, err := n.kubectl("apply", "-k", upgraded); err != nil {
		t.Fatal(out, err)
	}
	if out, err := n.kubectl("-n", "tenant-d", "scale", "deployment/fleet", "--replicas=20"); err != nil {
		t.Fatal(out, err)
	}
	rolledOut(t, "podhook", "podhook")
	if out, err := n.kubectl("-n", "tenant-d", "rollout", "status", "deployment/fleet", "--timeout=300s"); err != nil {
		t.Fatal(out, err)
	}
	if img, _ := n.kubectl("-n", "podhook", "get", "daemonset", "podhook", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); img != "podhook:"+nextTag(t) {
		t.Fatalf("the DaemonSet runs %q", img)
	}
	if ev, _ := n.kubectl("-n", "tenant-d", "get", "events", "--field-selector", "reason=Failed", "-o", "jsonpath={.items[*].message}"); ev != "" {
		t.Fatalf("creates failed during the rolling update: %s", ev)
	}
	// Every container CRI-O created for the fleet, against what the agent
	// received.
	out, err := n.cri.Run("ps", "-a", "-q", "--label", "io.kubernetes.pod.namespace=tenant-d")
	if err != nil {
		t.Fatal(err)
	}
	created := strings.Fields(out)
	seen := map[string]bool{}
	for _, ev := range agentReceived(t) {
		if ev.RPC == "CreateContainer" && ev.Request.Pod.Namespace == "tenant-d" {
			seen[ev.Request.Container.ID] = true
		}
	}
	unseen := 0
	for _, id := range created {
		if !seen[id] {
			unseen++
		}
	}
	if len(created) < 20 || unseen != 0 {
		t.Fatalf("CRI-O created %d containers for the fleet; %d never reached the agent", len(created), unseen)
	}
	t.Logf("rolled to a new image while 20 pods started: CRI-O created %d containers, the agent saw every one, no create failed", len(created))
}
