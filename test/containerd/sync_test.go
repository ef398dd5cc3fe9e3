//go:build containerd

package containerd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/harness"

	"github.com/podhook/podhook/test/crinode"
)

// checkSynced asserts the agent was told of a running container with its
// true identity, from the runtime's records.
func checkSynced(t *testing.T, ev event, p crinode.Pod, container, source string) {
	t.Helper()
	r := ev.Request
	if ev.Event != "already_running" || r.Stage != "sync" || !r.AlreadyRunning || r.Pod.Namespace != p.Namespace || r.Pod.Name != p.Name ||
		r.Pod.UID != p.UID || r.Pod.SandboxID != p.ID || r.Container.Name != container || r.Container.Runtime != "containerd" ||
		r.Container.Pid <= 0 || r.Container.CgroupsPath == "" || !r.Identity.Trusted || r.Identity.Source != source {
		t.Fatalf("the agent received %s %+v\nwant %s/%s uid %s container %s, already running, trusted, from %s", ev.Event, r, p.Namespace, p.Name, p.UID, container, source)
	}
}

// withoutPlugin runs f with podhook-nri stopped, and starts it again.
func withoutPlugin(t *testing.T, f func()) {
	t.Helper()
	n.stopPlugin()
	defer func() {
		if err := n.startPlugin(); err != nil {
			t.Fatal(err)
		}
	}()
	f()
}

// podhookSync runs `podhook sync` against the node's CRI socket.
func podhookSync(t *testing.T, w *world, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"sync", "--runtime-endpoint", "unix://" + n.sock(), "--agent-address", "unix://" + w.Socket, "--config", n.hookCfg}, extra...)
	var out bytes.Buffer
	cmd := exec.Command(n.podhook, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestSync: containers started without the hook (before it existed) are
// delivered by podhook sync with the identity the runtime records: the
// forging pod's true one too.
func TestSync(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent()
	var tenant, forger crinode.Pod
	var ids []string
	withoutPlugin(t, func() {
		tenant = w.RunPod(crinode.PodSpec{Name: "web", Namespace: "tenant-a"})
		forger = w.RunPod(crinode.PodSpec{Name: "books", Namespace: "ledger", Annotations: forgeries["io.container.manager + io.kubernetes.pod.*"]})
		for _, c := range []struct {
			p    crinode.Pod
			name string
		}{{tenant, "app"}, {tenant, "sidecar"}, {forger, "app"}} {
			id := w.create(c.p, c.name)
			w.mustStart(id)
			ids = append(ids, id)
		}
	})
	for _, id := range ids {
		if evs := w.Received(id, "CreateContainer"); len(evs) != 0 && evs[0].Event == "create" {
			t.Fatalf("%s got the hook: %+v", id, evs)
		}
	}
	out, err := podhookSync(t, w)
	if err != nil {
		t.Fatalf("podhook sync: %v\n%s", err, out)
	}
	synced := func(id string) event {
		for _, ev := range w.Received(id, "CreateContainer") {
			if ev.Request.Stage == "sync" && ev.Request.Identity.Source == "cri" {
				return ev
			}
		}
		t.Fatalf("podhook sync did not deliver %s\n%s", id, out)
		return event{}
	}
	checkSynced(t, synced(ids[0]), tenant, "app", "cri")
	checkSynced(t, synced(ids[1]), tenant, "sidecar", "cri")
	forged := synced(ids[2])
	checkSynced(t, forged, forger, "app", "cri")
	b, _ := json.Marshal(forged.Request)
	t.Logf("what the agent received for the forging pod's running container: %s", b)
	if !strings.Contains(out, `"msg":"catch-up done"`) || !strings.Contains(out, `"failed":0`) {
		t.Fatalf("no summary:\n%s", out)
	}

	// With the agent down, the containers are not delivered: exit 1.
	w.StopAgent()
	if out, err := podhookSync(t, w); err == nil || !strings.Contains(out, "running container not reported") {
		t.Fatalf("agent down: %v\n%s", err, out)
	}
}

// TestSyncHundred times podhook sync over 100 running containers.
func TestSyncHundred(t *testing.T) {
	w := newWorld(t, nil)
	w.StartAgent()
	const count = 100
	ids := make([]string, count)
	withoutPlugin(t, func() {
		pods := make([]crinode.Pod, 10)
		for i := range pods {
			pods[i] = w.RunPod(crinode.PodSpec{Name: "fleet", Namespace: "tenant-a"})
		}
		var wg sync.WaitGroup
		errs := make(chan error, count)
		sem := make(chan struct{}, 4)
		for i := range count {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				id, err := n.Create(pods[i%len(pods)], fmt.Sprintf("c%03d", i), "/bin/sleep", "3600")
				if err == nil {
					_, err = n.Run("start", id)
				}
				ids[i] = id
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	start := time.Now()
	out, err := podhookSync(t, w)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("podhook sync: %v\n%s", err, out)
	}
	for _, id := range ids {
		if len(w.Received(id, "CreateContainer")) == 0 {
			t.Fatalf("%s not delivered", id)
		}
	}
	t.Logf("podhook sync delivered %d running containers in %v (whole process, CRI listing included)", count, took.Round(time.Millisecond))
}

// TestKeeperSyncs: the keeper (podhook install --keep --sync) puts the hook
// in place, then delivers the containers already running, retrying until
// the agent comes up.
func TestKeeperSyncs(t *testing.T) {
	w := newWorld(t, nil)
	p := w.RunPod(crinode.PodSpec{Name: "old", Namespace: "tenant-a"})
	var before string
	withoutPlugin(t, func() {
		before = w.create(p, "before")
		w.mustStart(before)
	})
	root := filepath.Join(w.Dir, "host")
	var out harness.SyncBuffer
	keeper := exec.Command(n.podhook, "install", "--keep", "--sync", "--sync-retry-for", "1m", "--interface", "nri",
		"--install-dir", filepath.Join(root, "opt/podhook"), "--runtime-endpoint", "unix://"+n.sock(),
		"--agent-address", "unix://"+w.Socket, "--agent-namespace", "security")
	keeper.Stdout, keeper.Stderr = &out, &out
	if err := keeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		keeper.Process.Signal(syscall.SIGTERM)
		keeper.Wait()
		if t.Failed() {
			t.Logf("keeper output:\n%s", out.String())
		}
	}()
	// The agent comes up only once the keeper's sync has failed to reach
	// it and said it retries.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "sync incomplete, retrying") {
		if time.Now().After(deadline) {
			t.Fatalf("the keeper's sync never retried:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(root, "opt/podhook/podhook")); err != nil {
		t.Fatalf("the hook was not installed before the sync: %v", err)
	}
	w.StartAgent()
	ev := w.WaitReceived(before, "CreateContainer")
	checkSynced(t, ev, p, "before", "cri")
}
