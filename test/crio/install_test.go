//go:build crio

package crio

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/crinode"
	"github.com/podhook/podhook/test/harness"
)

// registrations are podhook's files in the node's hooks dir.
var registrations = []string{"podhook.json", "podhook-poststop.json"}

// unregister moves podhook's registrations out of the hooks dir and waits
// until CRI-O has noticed (a probe container gets no hook); register runs
// podhook install again and waits until the next container gets it, with
// no CRI-O restart.
func unregister(t *testing.T, w *world) {
	t.Helper()
	for _, f := range registrations {
		if err := os.Rename(filepath.Join(n.hooksDir, f), filepath.Join(n.dir, f+".off")); err != nil {
			t.Fatal(err)
		}
	}
	waitHook(t, w, false)
}

func register(t *testing.T, w *world) {
	t.Helper()
	for _, f := range registrations {
		os.Remove(filepath.Join(n.dir, f+".off"))
	}
	if out, err := exec.Command(n.podhook, "install", "--install-dir", n.install, "--hooks-dir", n.hooksDir).CombinedOutput(); err != nil {
		t.Fatalf("podhook install: %v\n%s", err, out)
	}
	waitHook(t, w, true)
}

// waitHook creates probe containers until CRI-O runs podhook's hook for
// one (on) or for none (off). The hook runs inside the create, so its
// record is written, or not, by the time crictl returns.
func waitHook(t *testing.T, w *world, on bool) {
	t.Helper()
	p := w.RunPod(crinode.PodSpec{Name: "probe", Namespace: "probe", Kubelet: true})
	for i := 0; i < 300; i++ {
		id, err := n.Create(p, fmt.Sprintf("probe-%d", i), "/bin/true")
		if err != nil {
			t.Fatal(err)
		}
		hooked := false
		for _, r := range crinode.ReadLines(w.Log) {
			hooked = hooked || r["container_id"] == id
		}
		n.Run("rm", "-f", id)
		if hooked == on {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("CRI-O never stopped or started running the hook (want on=%v)", on)
}

// TestSyncDeliversContainersFromBefore: a container that started while
// podhook was not registered is told to the agent by podhook sync, over
// CRI-O's CRI socket, with its true identity from CRI-O's records; and
// podhook install while CRI-O runs makes the next container get the hook
// without a CRI-O restart.
func TestSyncDeliversContainersFromBefore(t *testing.T) {
	w := newWorld(t, map[string]any{"fail_allow_namespaces": []string{"probe"}})
	w.StartAgent()
	start := time.Now()
	unregister(t, w)
	t.Logf("CRI-O stopped running the hook %v after its registrations left", time.Since(start))
	p := w.RunPod(crinode.PodSpec{Name: "early", Namespace: "tenant-a", Kubelet: true})
	id := w.mustCreate(p, "app")
	if _, err := n.Run("start", id); err != nil {
		t.Fatal(err)
	}
	if evs := w.Received(id, "CreateContainer"); len(evs) != 0 {
		t.Fatalf("the agent heard of the early container already: %+v", evs)
	}
	start = time.Now()
	register(t, w)
	t.Logf("podhook install while CRI-O runs: the next container had the hook %v later", time.Since(start))

	start = time.Now()
	out, err := exec.Command(n.podhook, "sync", "--runtime-endpoint", "unix://"+n.sock(), "--config", n.hookCfg).CombinedOutput()
	if err != nil {
		t.Fatalf("podhook sync: %v\n%s", err, out)
	}
	t.Logf("podhook sync took %v", time.Since(start))
	evs := w.Received(id, "CreateContainer")
	if len(evs) != 1 {
		t.Fatalf("the agent received %d reports of the early container\n%s", len(evs), out)
	}
	r := evs[0].Request
	if !r.AlreadyRunning || r.Stage != "sync" || r.Pod.Namespace != p.Namespace || r.Pod.Name != p.Name || r.Pod.UID != p.UID ||
		r.Pod.SandboxID != p.ID || r.Container.Name != "app" || r.Container.Runtime != "cri-o" || !r.Identity.Trusted || r.Identity.Source != "cri" {
		t.Fatalf("the agent received %+v", r)
	}
}

// TestBinaryReplacedWhileCreating: the installer renames new binaries
// over the hook (as the keeper and a rolling update do) while containers
// are created back to back: no create fails, each gets its record.
func TestBinaryReplacedWhileCreating(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent()
	// Two binaries that differ (a trailing byte does not change an ELF's
	// program), so each install really replaces the file.
	self, err := os.ReadFile(n.podhook)
	if err != nil {
		t.Fatal(err)
	}
	bins := []string{filepath.Join(w.Dir, "podhook-a"), filepath.Join(w.Dir, "podhook-b")}
	for i, b := range bins {
		if err := os.WriteFile(b, append(append([]byte{}, self...), byte(i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := w.RunPod(crinode.PodSpec{Name: "busy", Namespace: "tenant-a", Kubelet: true})
	done := make(chan struct{})
	var installs int
	var installErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			out, err := exec.Command(n.podhook, "install", "--install-dir", n.install, "--hooks-dir", n.hooksDir, "--binary", bins[i%2]).CombinedOutput()
			if err != nil {
				installErr = errors.Join(installErr, fmt.Errorf("%v: %s", err, out))
				return
			}
			installs++
		}
	}()
	var ids []string
	for i := range 20 {
		id, err := w.create(p, fmt.Sprintf("c%d", i))
		if err != nil {
			close(done)
			wg.Wait()
			t.Fatalf("create %d failed while the binary was replaced: %v", i, err)
		}
		ids = append(ids, id)
	}
	close(done)
	wg.Wait()
	if installErr != nil {
		t.Fatal(installErr)
	}
	for _, id := range ids {
		if rec := w.Record(id, "createRuntime"); rec["decision"] != "allow" {
			t.Fatalf("record %v", rec)
		}
	}
	t.Logf("20 containers created while the binary was replaced %d times", installs)

	// The keeper: something on the host keeps putting another binary in
	// place; the keeper keeps restoring its own, while containers are
	// created.
	var keeperOut harness.SyncBuffer
	keeper := exec.Command(n.podhook, "install", "--keep", "--keep-interval", "50ms", "--install-dir", n.install, "--hooks-dir", n.hooksDir, "--binary", bins[0])
	keeper.Stdout, keeper.Stderr = &keeperOut, &keeperOut
	if err := keeper.Start(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			tmp := filepath.Join(n.install, fmt.Sprintf(".drift-%d", i))
			b, _ := os.ReadFile(bins[1])
			os.WriteFile(tmp, b, 0o755)
			os.Rename(tmp, filepath.Join(n.install, "podhook"))
		}
	}()
	for i := range 20 {
		id, err := w.create(p, fmt.Sprintf("k%d", i))
		if err != nil {
			close(stop)
			wg.Wait()
			keeper.Process.Signal(syscall.SIGTERM)
			keeper.Wait()
			t.Fatalf("create %d failed while the keeper restored the binary: %v\n%s", i, err, keeperOut.String())
		}
		ids = append(ids, id)
	}
	close(stop)
	wg.Wait()
	keeper.Process.Signal(syscall.SIGTERM)
	keeper.Wait()
	restores := strings.Count(keeperOut.String(), "wrote "+filepath.Join(n.install, "podhook")+"\n")
	if restores < 2 {
		t.Fatalf("the keeper restored the binary %d times:\n%s", restores, keeperOut.String())
	}
	for _, id := range ids {
		if rec := w.Record(id, "createRuntime"); rec["decision"] != "allow" {
			t.Fatalf("record %v", rec)
		}
	}
	t.Logf("20 more created while the keeper restored its binary %d times", restores)
	register(t, w) // the suite's own binary back
}

// TestBrokenRegistrationAtStart: a hooks.d file that does not parse when
// CRI-O starts stops CRI-O from starting (what an operator sees in its
// log); CRI-O starts with podhook's own registrations, which always parse.
func TestBrokenRegistrationAtStart(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent()
	broken := filepath.Join(n.hooksDir, "zz-broken.json")
	n.stopCRIO()
	if err := os.WriteFile(broken, []byte(`{"version":"1.0.0","hook":{"path":`), 0o644); err != nil {
		t.Fatal(err)
	}
	err := n.startCRIO()
	os.Remove(broken)
	if err == nil {
		t.Fatal("CRI-O started with a hooks.d file that does not parse")
	}
	b, _ := os.ReadFile(filepath.Join(n.dir, "crio.log"))
	if !strings.Contains(string(b), "zz-broken.json") {
		t.Fatalf("CRI-O's log does not name the broken file: %v", err)
	}
	t.Logf("CRI-O refused to start: %v; its log names %s", err, broken)
	if err := n.startCRIO(); err != nil {
		t.Fatalf("CRI-O with podhook's registrations: %v", err)
	}
	p := w.RunPod(crinode.PodSpec{Name: "after", Namespace: "tenant-a", Kubelet: true})
	id := w.mustCreate(p, "app")
	checkIdentity(t, w.Received(id, "CreateContainer")[0], p, "app")
}
