//go:build containerd

package containerd

import (
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

	ctrd    crinode.Containerd
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
	n.ctrd = crinode.Containerd{Dir: dir, Bin: n.tools, Address: n.sock(), NRISocket: n.nriSock(), PodAnnotations: true}
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

// writeConfig writes containerd's config (crinode.Containerd): pod
// annotations passed through (an operator setting that lets pods forge
// keys: what the suite tests) and no CNI config (the pods use the host's
// network). validator turns on NRI's default validator with podhook as a
// required plugin.
func (n *node) writeConfig(validator bool) error {
	n.ctrd.NRIExtra = validatorConfig(validator)
	if err := n.ctrd.WriteConfig(); err != nil {
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
	n.ctrd.Stop()
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

// startContainerd starts containerd and waits until its CRI answers.
func (n *node) startContainerd() error {
	return n.ctrd.Start(func() error { _, err := n.Run("info"); return err })
}

// importImages builds the pause and busybox images and imports them into
// containerd's k8s.io namespace.
func (n *node) importImages() error {
	if err := crinode.BuildImages(); err != nil {
		return err
	}
	return n.ctrd.Import(pauseImage, image)
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
	if n.ctrd.Running() {
		n.RemoveAllPods()
	}
	n.stopPlugin()
	n.ctrd.Stop()
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
