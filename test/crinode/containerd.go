package crinode

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/distribution/reference"
)

// Containerd is a private containerd 2.x: its config, root and state
// under Dir, its CRI socket at Address, NRI on at NRISocket, Debian's runc
// (or Runc, a wrapper) as its runtime, cgroupfs.
type Containerd struct {
	Dir       string // its own root and state (short: socket paths are bounded)
	Bin       string // the directory holding containerd, containerd-shim-runc-v2 and ctr
	Address   string // the CRI (gRPC) socket
	NRISocket string
	Runc      string // the binary its shim runs as runc; empty: Debian's runc
	// CNI is a conflist for the pods' network (the loopback plugin from
	// /usr/lib/cni, say); empty: no CNI config, for host-network pods.
	CNI string
	// PodAnnotations passes every pod annotation into the OCI spec: an
	// operator setting that lets a pod write keys the runtime owns.
	PodAnnotations bool
	// NRIExtra is TOML added to the NRI plugin's table (default_validator).
	NRIExtra string
	cmd      *exec.Cmd
}

func (c *Containerd) path(p string) string { return filepath.Join(c.Dir, p) }

// WriteConfig writes containerd's config: version 3, every path its own,
// NRI on, runc with restrict_oom_score_adj (no CAP_SYS_RESOURCE here), the
// pause image pinned as the sandbox image.
func (c *Containerd) WriteConfig() error {
	for _, tool := range []string{"containerd", "containerd-shim-runc-v2", "ctr"} {
		if _, err := os.Stat(filepath.Join(c.Bin, tool)); err != nil {
			return fmt.Errorf("%s not found (make containerd-tools builds it; PODHOOK_CONTAINERD_BIN names its directory): %w", tool, err)
		}
	}
	runc := c.Runc
	if runc == "" {
		var err error
		if runc, err = exec.LookPath("runc"); err != nil {
			return fmt.Errorf("runc: %w (apt-get install runc)", err)
		}
	}
	for _, d := range []string{c.path("cni/conf"), c.path("cni/bin"), c.path("nri/plugins"), c.path("nri/conf.d")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	cniBin := c.path("cni/bin")
	if c.CNI != "" {
		cniBin = "/usr/lib/cni"
		if err := os.WriteFile(c.path("cni/conf/10-lo.conflist"), []byte(c.CNI), 0o644); err != nil {
			return err
		}
	}
	annotations := ""
	if c.PodAnnotations {
		annotations = "pod_annotations = ['*']"
	}
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
        %[13]s
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = %[9]q
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [%[10]q]
      conf_dir = %[11]q
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
`, c.path("root"), c.path("state"), c.Address, c.Address+".ttrpc",
		c.NRISocket, c.path("nri/plugins"), c.path("nri/conf.d"),
		PauseImage, runc, cniBin, c.path("cni/conf"), c.NRIExtra, annotations)
	return os.WriteFile(c.path("config.toml"), []byte(cfg), 0o600)
}

// Env is containerd's environment: its tools first on PATH (it finds its
// shim there).
func (c *Containerd) Env() []string {
	return append(os.Environ(), "PATH="+c.Bin+":"+os.Getenv("PATH"))
}

// Start starts containerd and waits until ready answers; an early exit is
// an error.
func (c *Containerd) Start(ready func() error) error {
	for _, d := range []string{filepath.Dir(c.Address), filepath.Dir(c.NRISocket)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	c.cmd = exec.Command(filepath.Join(c.Bin, "containerd"), "--config", c.path("config.toml"))
	c.cmd.Env = c.Env()
	exited, err := startDaemon(c.cmd, c.path("containerd.log"), false, 30*time.Second, ready)
	if exited {
		c.cmd = nil
	}
	return err
}

// Running reports whether Start started containerd and Stop has not
// stopped it.
func (c *Containerd) Running() bool { return c.cmd != nil }

// Stop stops containerd by PID, as a service manager would (SIGTERM, then
// SIGKILL after 20 s); containers and their shims live on. Its sockets are
// removed, so nothing that looks for a runtime finds a dead one.
func (c *Containerd) Stop() {
	if c.cmd == nil {
		return
	}
	stopDaemon(c.cmd, false)
	c.cmd = nil
	os.Remove(c.Address)
	os.Remove(c.Address + ".ttrpc")
}

// Import copies podman's images into containerd's k8s.io namespace, each
// under the name containerd's CRI resolves it to: a short name such as
// podhook:latest, as a manifest writes it, is normalized the way
// containerd itself normalizes references.
func (c *Containerd) Import(images ...string) error {
	ctr := filepath.Join(c.Bin, "ctr")
	for _, img := range images {
		archive := c.path(strings.NewReplacer("/", "_", ":", "_").Replace(img) + ".tar")
		if out, err := exec.Command("podman", "save", "--format", "docker-archive", "-o", archive, img).CombinedOutput(); err != nil {
			return fmt.Errorf("podman save %s: %v\n%s", img, err, out)
		}
		if out, err := exec.Command(ctr, "-a", c.Address, "-n", "k8s.io", "image", "import", archive).CombinedOutput(); err != nil {
			return fmt.Errorf("ctr image import %s: %v\n%s", img, err, out)
		}
		os.Remove(archive)
	}
	return nil
}

// Tag gives an imported image src the name a pod spec's short name
// resolves to under containerd's CRI.
func (c *Containerd) Tag(src, short string) error {
	ref, err := reference.ParseDockerRef(short)
	if err != nil {
		return err
	}
	if ref.String() == src {
		return nil
	}
	out, err := exec.Command(filepath.Join(c.Bin, "ctr"), "-a", c.Address, "-n", "k8s.io", "image", "tag", "--force", src, ref.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr image tag %s %s: %v\n%s", src, ref, err, out)
	}
	return nil
}

// Log is the tail of containerd's log.
func (c *Containerd) Log(max int) string {
	b, _ := os.ReadFile(c.path("containerd.log"))
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
