//go:build containerd

package containerd

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

// The suite's node: one containerd and one podhook-nri for every test.
// Each test points the injected hook at its own agent and log by rewriting
// the hook's config file, which the hook reads at every invocation.
var n *node

func TestMain(m *testing.M) {
	os.Exit(crinode.Main(m, "containerd", newNode, &n))
}

type node struct {
	crinode.CRI
	dir      string // short: unix socket paths are limited to 108 bytes
	tools    string // containerd, containerd-shim-runc-v2, ctr, crictl
	podhook  string
	agentBin string
	nriBin   string

	ctrd    *exec.Cmd
	plugin  *exec.Cmd
	nriLog  string
	hookCfg string
}

func (n *node) sock() string    { return filepath.Join(n.dir, "c.sock") }
func (n *node) nriSock() string { return filepath.Join(n.dir, "nri.sock") }

func newNode() (*node, error) {
	dir, err := os.MkdirTemp("", "phc-")
	if err != nil {
		return nil, err
	}
	n := &node{dir: dir, tools: os.Getenv("PODHOOK_CONTAINERD_BIN"), nriLog: filepath.Join(dir, "nri.log"), hookCfg: filepath.Join(dir, "podhook-config.json")}
	for _, tool := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "crictl"} {
		p, err := exec.LookPath(filepath.Join(n.tools, tool))
		if n.tools == "" {
			p, err = exec.LookPath(tool)
		}
		if err != nil {
			return n, fmt.Errorf("%s not found (make e2e-containerd builds it; PODHOOK_CONTAINERD_BIN names its directory): %w", tool, err)
		}
		n.tools = filepath.Dir(p)
	}
	n.CRI = crinode.CRI{Crictl: filepath.Join(n.tools, "crictl"), Endpoint: n.sock(), Dir: dir, Image: image}
	if _, err := exec.LookPath("runc"); err != nil {
		return n, fmt.Errorf("runc: %w (apt-get install runc)", err)
	}
	bin := filepath.Join(dir, "bin")
	n.podhook, n.agentBin, n.nriBin = filepath.Join(bin, "podhook"), filepath.Join(bin, "podhook-agent"), filepath.Join(bin, "podhook-nri")
	if err := harness.Build(map[string]string{n.podhook: "../../cmd/podhook", n.agentBin: "../../cmd/podhook-agent", n.nriBin: "../../cmd/podhook-nri",
		filepath.Join(bin, "podhook-sync"): "../../cmd/podhook-sync", filepath.Join(bin, "tetragonagent"): "../tetragonagent"}); err != nil {
		return n, err
	}
	if err := n.writeConfig(false); err != nil {
		return n, err
	}
	if err := n.startContainerd(); err != nil {
		return n, err
	}
	if err := n.importImages(); err != nil {
		return n, err
	}
	if err := n.startPlugin(); err != nil {
		return n, err
	}
	return n, nil
}

// writeConfig writes containerd's config: version 3 (containerd 2.x), its
// own root, state and sockets, NRI on, pod annotations passed through (an
// operator setting that lets pods forge keys: what the suite tests), runc
// from Debian with restrict_oom_score_adj (no CAP_SYS_RESOURCE here), and
// an empty CNI directory (the pods use the host's network). validator
// turns on NRI's default validator with podhook as a required plugin.
func (n *node) writeConfig(validator bool) error {
	runc, _ := exec.LookPath("runc")
	cfg := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins]
  [plugins.'io.containerd.nri.v1.nri']
    disable = false
    socket_path = %[5]q
    plugin_path = %[6]q
    plugin_config_path = %[7]q
%[12]s
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = %[8]q
  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        pod_annotations = ['*']
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = %[9]q
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [%[10]q]
      conf_dir = %[11]q
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
`, filepath.Join(n.dir, "root"), filepath.Join(n.dir, "state"), n.sock(), n.sock()+".ttrpc",
		n.nriSock(), filepath.Join(n.dir, "nri", "plugins"), filepath.Join(n.dir, "nri", "conf.d"),
		pauseImage, runc, filepath.Join(n.dir, "cni", "bin"), filepath.Join(n.dir, "cni", "conf"), validatorConfig(validator))
	if err := os.WriteFile(filepath.Join(n.dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		return err
	}
	return n.WriteConfig()
}

func validatorConfig(on bool) string {
	if !on {
		return ""
	}
	return `    [plugins.'io.containerd.nri.v1.nri'.default_validator]
      enable = true
      required_plugins = ['podhook']
      tolerate_missing_plugins_annotation = 'podhook.io/tolerate-missing-plugins'`
}

// restartContainerd restarts containerd with or without the validator and
// waits until the plugin is back and injecting.
func (n *node) restartContainerd(validator bool) error {
	syncs := n.countNRI("synchronized")
	n.stopContainerd()
	if err := n.writeConfig(validator); err != nil {
		return err
	}
	if err := n.startContainerd(); err != nil {
		return err
	}
	if n.plugin == nil {
		return nil
	}
	if err := n.waitNRI("synchronized", syncs+1); err != nil {
		return err
	}
	return n.waitInjected()
}

func (n *node) env() []string {
	return append(os.Environ(), "PATH="+n.tools+":"+os.Getenv("PATH"))
}

// startContainerd starts containerd and waits until its CRI answers.
func (n *node) startContainerd() error {
	logf, err := os.OpenFile(filepath.Join(n.dir, "containerd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	n.ctrd = exec.Command(filepath.Join(n.tools, "containerd"), "--config", filepath.Join(n.dir, "config.toml"))
	n.ctrd.Env, n.ctrd.Stdout, n.ctrd.Stderr = n.env(), logf, logf
	if err := n.ctrd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := n.Run("info")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not become ready: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopContainerd stops containerd as a service manager would; containers
// and their shims keep running.
func (n *node) stopContainerd() {
	if n.ctrd == nil {
		return
	}
	n.ctrd.Process.Signal(syscall.SIGTERM)
	n.ctrd.Wait()
	n.ctrd = nil
}

// importImages builds the pause and busybox images from the busybox-static
// rootfs with podman, and imports them into containerd's k8s.io namespace.
func (n *node) importImages() error {
	rootfs, err := harness.RootfsTar()
	if err != nil {
		return err
	}
	for img, cmd := range map[string]string{pauseImage: `CMD ["/bin/sleep","2147483647"]`, image: `CMD ["/bin/sh"]`} {
		imp := exec.Command("podman", "import", "--change", cmd, "-", img)
		imp.Stdin = bytes.NewReader(rootfs)
		if out, err := imp.CombinedOutput(); err != nil {
			return fmt.Errorf("podman import: %v\n%s", err, out)
		}
		archive := filepath.Join(n.dir, strings.NewReplacer("/", "_", ":", "_").Replace(img)+".tar")
		if out, err := exec.Command("podman", "save", "--format", "docker-archive", "-o", archive, img).CombinedOutput(); err != nil {
			return fmt.Errorf("podman save: %v\n%s", err, out)
		}
		if out, err := exec.Command(filepath.Join(n.tools, "ctr"), "-a", n.sock(), "-n", "k8s.io", "image", "import", archive).CombinedOutput(); err != nil {
			return fmt.Errorf("ctr image import: %v\n%s", err, out)
		}
	}
	return nil
}

// startPlugin starts podhook-nri and waits until containerd injects its
// hook: NRI counts a plugin in only after its Synchronize returns, so a
// create right after it may still miss the plugin. A probe container is
// created (not started) until its OCI spec holds the hook.
func (n *node) startPlugin() error {
	before := n.countNRI("synchronized")
	n.plugin = exec.Command(n.nriBin, "--socket", n.nriSock(), "--hook-path", n.podhook, "--config", n.hookCfg, "--log-file", n.nriLog)
	n.plugin.Stderr = nil
	if err := n.plugin.Start(); err != nil {
		return err
	}
	if err := n.waitNRI("synchronized", before+1); err != nil {
		return err
	}
	return n.waitInjected()
}

// waitInjected creates probe containers until one gets podhook's hook.
func (n *node) waitInjected() error {
	pod, err := n.RunPod(crinode.PodSpec{Name: "probe", Namespace: "probe"})
	if err != nil {
		return err
	}
	defer n.Run("rmp", "-f", pod.ID)
	for i := 0; i < 200; i++ {
		cid, err := n.Create(pod, fmt.Sprintf("probe-%d", i), "/bin/true")
		if err != nil {
			return err
		}
		out, err := n.Run("inspect", cid)
		n.Run("rm", "-f", cid)
		if err == nil && strings.Contains(out, n.podhook) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("containerd never injected podhook's hook")
}

func (n *node) stopPlugin() {
	if n.plugin == nil {
		return
	}
	n.plugin.Process.Signal(syscall.SIGTERM)
	n.plugin.Wait()
	n.plugin = nil
}

// nriRecords parses podhook-nri's JSON-lines log.
func (n *node) nriRecords() []map[string]any {
	return crinode.ReadLines(n.nriLog)
}

func (n *node) countNRI(msg string) int {
	c := 0
	for _, r := range n.nriRecords() {
		if r["msg"] == msg {
			c++
		}
	}
	return c
}

// waitNRI waits until podhook-nri has logged msg at least count times.
func (n *node) waitNRI(msg string, count int) error {
	deadline := time.Now().Add(30 * time.Second)
	for n.countNRI(msg) < count {
		if time.Now().After(deadline) {
			return fmt.Errorf("podhook-nri never logged %q %d times", msg, count)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (n *node) Close() {
	if n.ctrd != nil {
		n.RemoveAllPods()
	}
	n.stopPlugin()
	n.stopContainerd()
	exec.Command("umount", "-R", n.dir).Run() // leftovers of a failed run, if any
	os.RemoveAll(n.dir)
}

// dump prints the tail of the runtime's and the plugin's logs, for a
// failing run.
func (n *node) Dump() {
	for _, f := range []string{"containerd.log", "nri.log"} {
		b, _ := os.ReadFile(filepath.Join(n.dir, f))
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		fmt.Fprintf(os.Stderr, "--- %s (tail)\n%s\n", f, b)
	}
}
