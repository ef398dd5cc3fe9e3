//go:build k8s

package k8s

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPodStartBenchmark (make bench-k8s; skipped otherwise) creates 30
// pods at once, first with no podhook on the node, then with podhook's
// default kustomization and the reference agent, and reports the time
// from the apply to each pod Running: p50, p99 and their ratio. A
// measurement, not a timed test: it asserts only that every pod ran.
func TestPodStartBenchmark(t *testing.T) {
	if os.Getenv("PODHOOK_K8S_BENCH") == "" {
		t.Skip("a measurement: make bench-k8s runs it")
	}
	const pods, rounds = 30, 3
	t.Cleanup(cleanHost)
	agentUp(t)
	measure := func(label string) (p50, p99 float64) {
		var all []float64
		for r := range rounds {
			all = append(all, burst(t, fmt.Sprintf("%s-%d", label, r), pods)...)
		}
		slices.Sort(all)
		return all[len(all)/2], all[min(len(all)-1, int(0.99*float64(len(all))+0.5)-1)]
	}
	base50, base99 := measure("without")
	v := kustomized(".", "uninstall", "/usr/share/containers/oci/hooks.d")
	v.install(t)
	rolledOut(t, "podhook", "podhook")
	defer v.uninstall(t)
	hook50, hook99 := measure("with")
	t.Logf("%d pods at once, %d rounds each, time from apply to Running:", pods, rounds)
	t.Logf("  without podhook: p50 %.2f s, p99 %.2f s", base50, base99)
	t.Logf("  with podhook:    p50 %.2f s, p99 %.2f s", hook50, hook99)
	t.Logf("  ratio with/without: p50 %.3f, p99 %.3f", hook50/base50, hook99/base99)
}

// burst applies count pods in a new namespace at once and returns, for
// each, the seconds from the apply until it was seen Running (polled every
// 100 ms), then deletes the namespace.
func burst(t *testing.T, ns string, count int) []float64 {
	t.Helper()
	var b strings.Builder
	for i := range count {
		fmt.Fprintf(&b, "---\n%s", podYAML(fmt.Sprintf("p%d", i), ns))
	}
	f := filepath.Join(t.TempDir(), ns+".yaml")
	os.WriteFile(f, []byte(b.String()), 0o600)
	if out, err := n.kubectl("create", "namespace", ns); err != nil {
		t.Fatal(out, err)
	}
	err := n.waitFor("the default service account in "+ns, 60*time.Second, func() error {
		_, err := n.kubectl("-n", ns, "get", "serviceaccount", "default")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if out, err := n.kubectl("apply", "-f", f); err != nil {
		t.Fatal(out, err)
	}
	running := map[string]float64{}
	deadline := time.Now().Add(5 * time.Minute)
	for len(running) < count {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d pods Running after 5 min", ns, len(running), count)
		}
		out, _ := n.kubectl("-n", ns, "get", "pods", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.phase}{"\n"}{end}`)
		now := time.Since(start).Seconds()
		for _, line := range strings.Split(out, "\n") {
			if name, phase, ok := strings.Cut(line, "="); ok && phase == "Running" {
				if _, seen := running[name]; !seen {
					running[name] = now
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.kubectl("delete", "namespace", ns, "--wait=false")
	var out []float64
	for _, s := range running {
		out = append(out, s)
	}
	return out
}
