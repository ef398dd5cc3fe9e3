//go:build crio

package crio

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/crinode"
	"github.com/podhook/podhook/test/harness"
)

// The images: crinode's, built from local files.
const (
	pauseImage = crinode.PauseImage
	image      = crinode.Image
)

// The suite's node: one CRI-O for every test, its hooks dir holding
// podhook's registrations as `podhook install` writes them. Each test
// points the hook at its own agent and log by rewriting the installed
// config file, which the hook reads at every invocation.
var n *node

func TestMain(m *testing.M) {
	os.Exit(crinode.Main(m, "CRI-O", func() (crinode.Node, error) {
		var err error
		n, err = newNode()
		if n == nil {
			return nil, err
		}
		return n, err
	}))
}

type node struct {
	crinode.CRI
	dir      string // short: unix socket paths are limited to 108 bytes
	crioBin  string // crio and pinns
	podhook  string
	agentBin string
	hooksDir string
	install  string // the install dir: binary and config
	hookCfg  string
	crio     *exec.Cmd
}

func (n *node) sock() string { return filepath.Join(n.dir, "crio.sock") }

func newNode() (*node, error) {
	dir, err := os.MkdirTemp("", "phx-")
	if err != nil {
		return nil, err
	}
	n := &node{dir: dir, crioBin: os.Getenv("PODHOOK_CRIO_BIN"), hooksDir: filepath.Join(dir, "hooks.d"), install: filepath.Join(dir, "opt")}
	n.hookCfg = filepath.Join(n.install, "podhook-config.json")
	n.CRI = crinode.CRI{Endpoint: n.sock(), Dir: dir, Image: image}
	for _, tool := range []string{"crio", "pinns"} {
		if _, err := os.Stat(filepath.Join(n.crioBin, tool)); err != nil {
			return n, fmt.Errorf("%s not found (make e2e-crio unpacks it; PODHOOK_CRIO_BIN names its directory): %w", tool, err)
		}
	}
	if n.Crictl, err = exec.LookPath(os.Getenv("PODHOOK_CRICTL")); err != nil {
		return n, fmt.Errorf("crictl (PODHOOK_CRICTL; make e2e-crio builds it): %w", err)
	}
	for _, dep := range []string{"runc", "conmon", "podman"} {
		if _, err := exec.LookPath(dep); err != nil {
			return n, fmt.Errorf("%s: %w (apt-get install runc conmon podman containernetworking-plugins)", dep, err)
		}
	}
	bin := filepath.Join(dir, "bin")
	n.podhook, n.agentBin = filepath.Join(bin, "podhook"), filepath.Join(bin, "podhook-agent")
	if err := harness.Build(map[string]string{n.podhook: "../../cmd/podhook", n.agentBin: "../../cmd/podhook-agent",
		filepath.Join(bin, "podhook-sync"): "../../cmd/podhook-sync"}); err != nil {
		return n, err
	}
	for _, d := range []string{n.hooksDir, filepath.Join(dir, "crio.conf.d"), filepath.Join(dir, "cni", "net.d"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return n, err
		}
	}
	if err := n.writeConfig(); err != nil {
		return n, err
	}
	if err := n.importImages(); err != nil {
		return n, err
	}
	if err := n.startCRIO(); err != nil {
		return n, err
	}
	// podhook arrives while CRI-O runs, as a DaemonSet's installer does:
	// CRI-O watches its hooks dir and the next container gets the hook.
	if err := n.installHook(); err != nil {
		return n, err
	}
	return n, n.waitHooked()
}

// writeConfig writes CRI-O's config (every path its own, under the
// node's dir; cgroupfs, Debian's runc and conmon, the loopback CNI, the
// hooks dir the suite owns), its image policy, crictl's config, and the
// config the hook will read.
func (n *node) writeConfig() error {
	runc, _ := exec.LookPath("runc")
	conmon, _ := exec.LookPath("conmon")
	d := func(p string) string { return filepath.Join(n.dir, p) }
	cfg := fmt.Sprintf(`[crio]
root = %q
runroot = %q
storage_driver = "overlay"
log_dir = %q
version_file = %q
version_file_persist = %q
clean_shutdown_file = %q
internal_wipe = true

[crio.api]
listen = %q
stream_address = "127.0.0.1"
stream_port = "0"

[crio.runtime]
default_runtime = "runc"
cgroup_manager = "cgroupfs"
conmon_cgroup = "pod"
hooks_dir = [%q]
pinns_path = %q
namespaces_dir = %q
container_exits_dir = %q
container_attach_socket_dir = %q
apparmor_profile = "unconfined"
selinux = false
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[crio.runtime.runtimes.runc]
runtime_path = %q
runtime_root = %q
monitor_path = %q

[crio.image]
pause_image = %q
pause_command = ""
signature_policy = %q

[crio.network]
network_dir = %q
plugin_dirs = ["/usr/lib/cni"]

[crio.nri]
enable_nri = false
`, d("storage/root"), d("storage/run"), d("logs"), d("version"), d("version-persist"), d("clean.shutdown"),
		n.sock(), n.hooksDir, filepath.Join(n.crioBin, "pinns"), d("ns"), d("exits"), d("attach"),
		d("runc-wrapper"), d("runc"), conmon, pauseImage, d("policy.json"), d("cni/net.d"))
	// The test harness's runc: this machine lacks CAP_SYS_RESOURCE, so
	// runc cannot set the negative oom_score_adj an infra container asks
	// for (-998); the wrapper writes 0 instead before runc reads the
	// bundle. Only the suite uses it; podhook never sees it.
	wrapper := fmt.Sprintf(`#!/bin/sh
bundle= prev=
for a in "$@"; do
	case "$prev" in --bundle|-b) bundle=$a ;; esac
	case "$a" in --bundle=*) bundle=${a#--bundle=} ;; esac
	prev=$a
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
	sed -i -E 's/"oomScoreAdj": ?-[0-9]+/"oomScoreAdj":0/' "$bundle/config.json"
fi
exec %s "$@"
`, runc)
	if err := os.WriteFile(d("runc-wrapper"), []byte(wrapper), 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"crio.conf":                cfg,
		"policy.json":              `{"default":[{"type":"insecureAcceptAnything"}]}`,
		"cni/net.d/10-lo.conflist": `{"cniVersion":"1.0.0","name":"podhook-lo","plugins":[{"type":"loopback"}]}`,
	}
	for name, content := range files {
		if err := os.WriteFile(d(name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return n.WriteConfig()
}

// importImages builds the pause and busybox images from the busybox-static
// rootfs with podman and pushes them into CRI-O's store.
func (n *node) importImages() error {
	rootfs, err := harness.RootfsTar()
	if err != nil {
		return err
	}
	store := fmt.Sprintf("containers-storage:[overlay@%s+%s]", filepath.Join(n.dir, "storage/root"), filepath.Join(n.dir, "storage/run"))
	// The pause image ends on SIGTERM, as the real one does: a pod is
	// removed without waiting out CRI-O's stop timeout.
	pause := `CMD ["/bin/sh","-c","trap 'exit 0' TERM; while :; do sleep 1 & wait; done"]`
	for img, cmd := range map[string]string{pauseImage: pause, image: `CMD ["/bin/sh"]`} {
		imp := exec.Command("podman", "import", "--change", cmd, "-", img)
		imp.Stdin = bytes.NewReader(rootfs)
		if out, err := imp.CombinedOutput(); err != nil {
			return fmt.Errorf("podman import: %v\n%s", err, out)
		}
		if out, err := exec.Command("podman", "push", img, store+img).CombinedOutput(); err != nil {
			return fmt.Errorf("podman push into CRI-O's store: %v\n%s", err, out)
		}
	}
	return nil
}

// startCRIO starts CRI-O and waits until its CRI answers.
func (n *node) startCRIO() error {
	logf, err := os.OpenFile(filepath.Join(n.dir, "crio.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	n.crio = exec.Command(filepath.Join(n.crioBin, "crio"), "--config", filepath.Join(n.dir, "crio.conf"),
		"--config-dir", filepath.Join(n.dir, "crio.conf.d"), "--log-level", "info")
	n.crio.Stdout, n.crio.Stderr = logf, logf
	// Its own process group, which close signals by PID; and SIGTERM
	// should the suite itself die (a panic skips close).
	n.crio.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := n.crio.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- n.crio.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := n.Run("info"); err == nil {
			go func() { <-exited }()
			return nil
		}
		select {
		case err := <-exited:
			n.crio = nil
			return fmt.Errorf("crio exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return errors.New("CRI-O did not become ready in 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *node) stopCRIO() {
	if n.crio == nil {
		return
	}
	syscall.Kill(-n.crio.Process.Pid, syscall.SIGTERM)
	deadline := time.Now().Add(20 * time.Second)
	for syscall.Kill(n.crio.Process.Pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(-n.crio.Process.Pid, syscall.SIGKILL)
	n.crio = nil
}

// installHook runs `podhook install` into the node's install and hooks
// dirs, as an operator or the DaemonSet's init container does.
func (n *node) installHook() error {
	cfg := filepath.Join(n.dir, "config-source.json")
	if err := os.WriteFile(cfg, []byte(`{"log_file":"none"}`), 0o600); err != nil {
		return err
	}
	out, err := exec.Command(n.podhook, "install", "--install-dir", n.install, "--hooks-dir", n.hooksDir, "--config-from", cfg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("podhook install: %v\n%s", err, out)
	}
	return nil
}

// waitHooked creates probe containers until CRI-O gives one podhook's
// hook: CRI-O reloads its hooks dir on a file event, a moment after the
// install's rename.
func (n *node) waitHooked() error {
	pod, err := n.RunPod(crinode.PodSpec{Name: "probe", Namespace: "probe", Kubelet: true})
	if err != nil {
		return err
	}
	defer n.Run("rmp", "-f", pod.ID)
	w := filepath.Join(n.dir, "probe.log")
	if err := crinode.WriteJSON(n.hookCfg, map[string]any{"log_file": w, "agent_address": "unix://" + filepath.Join(n.dir, "none.sock"),
		"fail_allow_namespaces": []string{"probe"}}); err != nil {
		return err
	}
	for i := 0; i < 300; i++ {
		cid, err := n.Create(pod, fmt.Sprintf("probe-%d", i), "/bin/true")
		if err != nil {
			return err
		}
		n.Run("rm", "-f", cid)
		for _, r := range crinode.ReadLines(w) {
			if r["container_id"] == cid {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("CRI-O never ran podhook's hook")
}

func (n *node) Close() {
	if n.crio != nil {
		n.RemoveAllPods()
	}
	n.stopCRIO()
	exec.Command("umount", "-R", n.dir).Run() // leftovers of a failed run, if any
	for _, sub := range []string{"storage/run/overlay", "storage/root/overlay", "ns"} {
		exec.Command("sh", "-c", "grep -o ' "+filepath.Join(n.dir, sub)+"[^ ]*' /proc/mounts | xargs -r -n1 umount -l").Run()
	}
	os.RemoveAll(n.dir)
}

// dump prints the tail of CRI-O's log, for a failing run.
func (n *node) Dump() {
	b, _ := os.ReadFile(filepath.Join(n.dir, "crio.log"))
	if len(b) > 12000 {
		b = b[len(b)-12000:]
	}
	fmt.Fprintf(os.Stderr, "--- crio.log (tail)\n%s\n", b)
}

// newWorld points the installed hook at a new agent and log.
func newWorld(t *testing.T, settings map[string]any) *world {
	return &world{crinode.NewWorld(t, &n.CRI, n.agentBin, n.hookCfg, settings)}
}

type world struct{ *crinode.World }

// create creates a long-running container in p. Under CRI-O the hook runs
// here: runc runs createRuntime when CRI-O creates the container.
func (w *world) create(p crinode.Pod, name string) (string, error) {
	return n.Create(p, name, "/bin/sleep", "3600")
}

// mustCreate creates a container the hook lets through.
func (w *world) mustCreate(p crinode.Pod, name string) string {
	w.T.Helper()
	id, err := w.create(p, name)
	if err != nil {
		w.T.Fatalf("create %s in %s: %v", name, p, err)
	}
	return id
}

// mustFail creates a container that the hook must stop; CRI-O's error
// must hold want (what the kubelet shows in the pod's events).
func (w *world) mustFail(p crinode.Pod, name, want string) string {
	w.T.Helper()
	id, err := w.create(p, name)
	if err == nil {
		w.T.Fatalf("container %s created in %s; want it stopped with %q", id, p, want)
	}
	if !strings.Contains(err.Error(), want) {
		w.T.Fatalf("create error lacks %q:\n%v", want, err)
	}
	return id
}

// recordFor returns the hook's create record for the pod's container
// name: a container CRI-O failed to create has no ID crictl returned.
func (w *world) recordFor(p crinode.Pod, container string) map[string]any {
	w.T.Helper()
	for _, r := range crinode.ReadLines(w.Log) {
		if r["pod_uid"] == p.UID && r["container_name"] == container && r["stage"] == "createRuntime" {
			return r
		}
	}
	w.T.Fatalf("no create record for %s/%s in %s", p, container, w.Log)
	return nil
}

// receivedFor returns the agent's creates for the pod's container name.
func (w *world) receivedFor(p crinode.Pod, container string) []crinode.Event {
	evs, err := harness.ReadEvents(w.Events)
	if err != nil {
		w.T.Fatal(err)
	}
	var out []crinode.Event
	for _, ev := range evs {
		if ev.RPC == "CreateContainer" && ev.Request.Pod.UID == p.UID && ev.Request.Container.Name == container {
			out = append(out, ev)
		}
	}
	return out
}
