package crinode

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/podhook/podhook/test/harness"
)

// CRIO is a private CRI-O: its config, storage, state and logs under Dir,
// its socket at Listen, reading the hooks dirs HooksDirs.
type CRIO struct {
	Dir       string   // its own state (short: socket paths are bounded)
	Bin       string   // the directory holding crio and pinns
	Listen    string   // the CRI socket
	HooksDirs []string // hooks.d directories it reads and watches
	Env       []string // added to its environment
	cmd       *exec.Cmd
}

func (c *CRIO) path(p string) string { return filepath.Join(c.Dir, p) }

// LoopbackCNI is the pods' network on these machines: loopback only.
const LoopbackCNI = `{"cniVersion":"1.0.0","name":"podhook-lo","plugins":[{"type":"loopback"}]}`

// Runc is the runc CRI-O runs, the test harness's wrapper (see runcwrap),
// once WriteConfig has written it; another runtime on the node may run it
// too.
func (c *CRIO) Runc() string { return c.path("runc-wrapper") }

// Store is CRI-O's image store as a containers-storage transport prefix.
func (c *CRIO) Store() string {
	return fmt.Sprintf("containers-storage:[overlay@%s+%s]", c.path("storage/root"), c.path("storage/run"))
}

// WriteConfig writes CRI-O's config: every path its own, cgroupfs,
// Debian's runc (through a wrapper, see below) and conmon, the loopback
// CNI, and its image policy.
func (c *CRIO) WriteConfig() error {
	for _, tool := range []string{"crio", "pinns"} {
		if _, err := os.Stat(filepath.Join(c.Bin, tool)); err != nil {
			return fmt.Errorf("%s not found (make crio-tools unpacks it; PODHOOK_CRIO_BIN names its directory): %w", tool, err)
		}
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return fmt.Errorf("runc: %w (apt-get install runc)", err)
	}
	conmon, err := exec.LookPath("conmon")
	if err != nil {
		return fmt.Errorf("conmon: %w (apt-get install conmon)", err)
	}
	for _, d := range append([]string{c.path("crio.conf.d"), c.path("cni/net.d"), c.path("logs")}, c.HooksDirs...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	quoted := make([]string, len(c.HooksDirs))
	for i, d := range c.HooksDirs {
		quoted[i] = fmt.Sprintf("%q", d)
	}
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
hooks_dir = [%s]
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
`, c.path("storage/root"), c.path("storage/run"), c.path("logs"), c.path("version"), c.path("version-persist"), c.path("clean.shutdown"),
		c.Listen, strings.Join(quoted, ", "), filepath.Join(c.Bin, "pinns"), c.path("ns"), c.path("exits"), c.path("attach"),
		c.Runc(), c.path("runc"), conmon, PauseImage, c.path("policy.json"), c.path("cni/net.d"))
	// The test harness's runc, never shipped (see runcwrap): it makes
	// this machine's limits (no CAP_SYS_RESOURCE, hugetlb not mounted)
	// fit what CRI-O and a kubelet ask of a container.
	if err := harness.Build(map[string]string{c.path("runcwrap"): "github.com/podhook/podhook/test/crinode/runcwrap"}); err != nil {
		return err
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nexec %s %s \"$@\"\n", c.path("runcwrap"), runc)
	files := map[string]string{
		"crio.conf":                cfg,
		"runc-wrapper":             wrapper,
		"policy.json":              `{"default":[{"type":"insecureAcceptAnything"}]}`,
		"cni/net.d/10-lo.conflist": LoopbackCNI,
	}
	for name, content := range files {
		if err := os.WriteFile(c.path(name), []byte(content), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// BuildImages builds the pause and busybox images into podman's store from
// the busybox-static rootfs. The pause image ends on SIGTERM, as the real
// one does, so a pod is removed without waiting out a stop timeout.
func BuildImages() error {
	rootfs, err := harness.RootfsTar()
	if err != nil {
		return err
	}
	pause := `CMD ["/bin/sh","-c","trap 'exit 0' TERM; while :; do sleep 1 & wait; done"]`
	for img, cmd := range map[string]string{PauseImage: pause, Image: `CMD ["/bin/sh"]`} {
		imp := exec.Command("podman", "import", "--change", cmd, "-", img)
		imp.Stdin = bytes.NewReader(rootfs)
		if out, err := imp.CombinedOutput(); err != nil {
			return fmt.Errorf("podman import: %v\n%s", err, out)
		}
	}
	return nil
}

// ImportImages builds the pause and busybox images (BuildImages) and
// pushes them into CRI-O's store.
func (c *CRIO) ImportImages() error {
	if err := BuildImages(); err != nil {
		return err
	}
	for _, img := range []string{PauseImage, Image} {
		if err := c.Push(img, img); err != nil {
			return err
		}
	}
	return nil
}

// Push copies podman's image src into CRI-O's store as name.
func (c *CRIO) Push(src, name string) error {
	if out, err := exec.Command("podman", "push", src, c.Store()+name).CombinedOutput(); err != nil {
		return fmt.Errorf("podman push %s into CRI-O's store: %v\n%s", src, err, out)
	}
	return nil
}

// Start starts CRI-O and waits until ready answers; an early exit is an
// error (a hooks.d file that does not parse stops CRI-O at start).
func (c *CRIO) Start(ready func() error) error {
	c.cmd = exec.Command(filepath.Join(c.Bin, "crio"), "--config", c.path("crio.conf"), "--config-dir", c.path("crio.conf.d"), "--log-level", "info")
	c.cmd.Env = append(os.Environ(), c.Env...)
	// Its own process group, which Stop signals by PID.
	exited, err := startDaemon(c.cmd, c.path("crio.log"), true, 60*time.Second, ready)
	if exited {
		c.cmd = nil
	}
	return err
}

// Running reports whether Start started CRI-O and Stop has not stopped it.
func (c *CRIO) Running() bool { return c.cmd != nil }

// Stop stops CRI-O by PID (SIGTERM to its process group, SIGKILL after
// 20 s); the containers' conmons live on, as under a service manager.
func (c *CRIO) Stop() {
	if c.cmd == nil {
		return
	}
	stopDaemon(c.cmd, true)
	c.cmd = nil
}

// Unmount lazily unmounts what CRI-O left mounted under its dir.
func (c *CRIO) Unmount() {
	b, _ := os.ReadFile("/proc/mounts")
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], c.Dir+"/") {
			points = append(points, f[1])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

// Log is the tail of CRI-O's log.
func (c *CRIO) Log(max int) string {
	b, _ := os.ReadFile(c.path("crio.log"))
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
