//go:build k8s

// The k8s suite runs the shipped manifests on a real single-node
// Kubernetes it starts itself: etcd, the API server, the controller
// manager, the scheduler and a kubelet on a real CRI-O, everything on
// loopback, its state in its own directory, stopped by PID at the end.
package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/crinode"
)

var n *node

func TestMain(m *testing.M) {
	os.Exit(crinode.Main(m, "Kubernetes", newNode, &n))
}

// nodeName is this machine's host name: the kubelet refuses --node-ip
// 127.0.0.1, but a name that resolves to it works.
func nodeName() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", err
	}
	addrs, err := net.LookupHost(h)
	if err != nil || len(addrs) == 0 || addrs[0] != "127.0.0.1" {
		return "", fmt.Errorf("host name %s resolves to %v (%v), want 127.0.0.1", h, addrs, err)
	}
	return h, nil
}

type node struct {
	dir   string
	bin   string // kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl, etcd
	name  string
	pki   *pki
	crio  crinode.CRIO
	ctrd  crinode.Containerd
	cri   crinode.CRI // the kubelet's runtime: CRI-O, or containerd after useContainerd
	procs []*exec.Cmd // the control plane
	// The kubelet, started last and stopped first; it is restarted when
	// the node changes runtime.
	kubelet *exec.Cmd
	admin   string // the admin kubeconfig
}

// The runtimes' sockets where node agents look for them, and NRI's socket
// where containerd 2.x has it by default (the NRI variant mounts it).
const (
	crioSocket       = "/run/crio/crio.sock"
	containerdSocket = "/run/containerd/containerd.sock"
	nriSocket        = "/var/run/nri/nri.sock"
	podBridge        = "podhook-k8s0" // the pods' bridge under containerd
)

// registriesDropin resolves short image names to the local images.
const registriesDropin = "/etc/containers/registries.conf.d/99-podhook-k8s-suite.conf"

func newNode() (*node, error) {
	dir, err := os.MkdirTemp("", "phk-")
	if err != nil {
		return nil, err
	}
	n := &node{dir: dir, bin: os.Getenv("PODHOOK_K8S_BIN")}
	if n.name, err = nodeName(); err != nil {
		return n, err
	}
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl", "etcd"} {
		if _, err := os.Stat(filepath.Join(n.bin, b)); err != nil {
			return n, fmt.Errorf("%s (make k8s-tools builds it; PODHOOK_K8S_BIN names its directory): %w", b, err)
		}
	}
	if err := n.startControlPlane(); err != nil {
		return n, err
	}
	if err := n.startCRIO(); err != nil {
		return n, err
	}
	if err := n.startKubelet(crioSocket); err != nil {
		return n, err
	}
	return n, n.waitNodeReady()
}

// freePort is a free TCP port on loopback.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start starts a component of the control plane; Close stops it by PID.
func (n *node) start(name string, args ...string) error {
	cmd, err := n.startProc(name, args...)
	if err != nil {
		return err
	}
	n.procs = append(n.procs, cmd)
	return nil
}

// startProc starts a component with its log in the node's dir, in its
// own process group.
func (n *node) startProc(name string, args ...string) (*exec.Cmd, error) {
	logf, err := os.OpenFile(filepath.Join(n.dir, name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(n.bin, name), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go cmd.Wait()
	return cmd, nil
}

// stopProc stops a component by PID: SIGTERM to its process group, SIGKILL
// after 15 s.
func stopProc(cmd *exec.Cmd) {
	p := cmd.Process
	syscall.Kill(-p.Pid, syscall.SIGTERM)
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(p.Pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(-p.Pid, syscall.SIGKILL)
}

func (n *node) startControlPlane() error {
	var err error
	if n.pki, err = newPKI(filepath.Join(n.dir, "pki")); err != nil {
		return err
	}
	p := n.pki
	for _, c := range []struct {
		name, cn string
		orgs     []string
	}{
		{"admin", "admin", []string{"system:masters"}},
		{"controller-manager", "system:kube-controller-manager", nil},
		{"scheduler", "system:kube-scheduler", nil},
		{"kubelet", "system:node:" + n.name, []string{"system:nodes"}},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}},
	} {
		if err := p.issue(c.name, c.cn, c.orgs, nil, false); err != nil {
			return err
		}
	}
	hosts := []string{"127.0.0.1", "localhost", n.name, "kubernetes", "kubernetes.default", "kubernetes.default.svc"}
	if err := p.issue("apiserver", "kube-apiserver", nil, hosts, true); err != nil {
		return err
	}
	if err := p.issue("kubelet-serving", n.name, nil, []string{"127.0.0.1", n.name}, true); err != nil {
		return err
	}

	etcdClient, _ := freePort()
	etcdPeer, _ := freePort()
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", etcdClient), fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if err := n.start("etcd", "--data-dir", filepath.Join(n.dir, "etcd"), "--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "default="+peer, "--listen-metrics-urls", ""); err != nil {
		return err
	}
	apiPort, _ := freePort()
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	if err := n.start("kube-apiserver", "--etcd-servers", client, "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(apiPort), "--tls-cert-file", p.cert("apiserver"), "--tls-private-key-file", p.key("apiserver"),
		"--client-ca-file", p.cert("ca"), "--service-account-key-file", filepath.Join(p.dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(p.dir, "sa.key"), "--service-account-issuer", "https://kubernetes.default.svc",
		"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction", "--allow-privileged",
		"--service-cluster-ip-range", "10.96.0.0/24", "--endpoint-reconciler-type", "none",
		"--kubelet-client-certificate", p.cert("apiserver-kubelet-client"), "--kubelet-client-key", p.key("apiserver-kubelet-client"),
		"--cert-dir", filepath.Join(n.dir, "apiserver-certs")); err != nil {
		return err
	}
	if n.admin, err = p.kubeconfig("admin", server); err != nil {
		return err
	}
	if err := n.waitFor("the API server", 120*time.Second, func() error { _, err := n.kubectl("get", "--raw", "/readyz"); return err }); err != nil {
		return err
	}
	cm, err := p.kubeconfig("controller-manager", server)
	if err != nil {
		return err
	}
	if err := n.start("kube-controller-manager", "--kubeconfig", cm, "--leader-elect=false", "--secure-port=0", "--controllers=*",
		"--use-service-account-credentials", "--service-account-private-key-file", filepath.Join(p.dir, "sa.key"),
		"--root-ca-file", p.cert("ca"), "--cluster-signing-cert-file", p.cert("ca"), "--cluster-signing-key-file", p.key("ca")); err != nil {
		return err
	}
	sched, err := p.kubeconfig("scheduler", server)
	if err != nil {
		return err
	}
	return n.start("kube-scheduler", "--kubeconfig", sched, "--leader-elect=false", "--secure-port=0")
}

// startCRIO starts the real CRI-O at /run/crio/crio.sock, reading the
// hooks dirs the shipped manifests register in, with short image names
// resolved to the local images (no registry).
func (n *node) startCRIO() error {
	// CRI-O reads the host's registries.conf and its drop-ins only: one
	// of the suite's own, removed by Close, lets the manifests' short
	// names (podhook:latest) find the images the suite loaded.
	if err := os.MkdirAll(filepath.Dir(registriesDropin), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(registriesDropin, []byte("unqualified-search-registries = [\"localhost\"]\n"), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(crioSocket), 0o755); err != nil {
		return err
	}
	n.crio = crinode.CRIO{Dir: filepath.Join(n.dir, "crio"), Bin: os.Getenv("PODHOOK_CRIO_BIN"), Listen: crioSocket,
		HooksDirs: []string{"/usr/share/containers/oci/hooks.d", "/etc/containers/oci/hooks.d"}}
	crictl, err := exec.LookPath(os.Getenv("PODHOOK_CRICTL"))
	if err != nil {
		return fmt.Errorf("crictl (PODHOOK_CRICTL): %w", err)
	}
	n.cri = crinode.CRI{Crictl: crictl, Endpoint: crioSocket, Dir: n.dir, Image: crinode.Image}
	if err := n.crio.WriteConfig(); err != nil {
		return err
	}
	if err := n.cri.WriteConfig(); err != nil {
		return err
	}
	if err := n.crio.ImportImages(); err != nil {
		return err
	}
	// containerd's CRI wants an eth0 with an address in every pod (CRI-O
	// does with loopback only): a bridge of the suite's own that routes
	// nowhere, removed by Close.
	cni := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"podhook-k8s","plugins":[{"type":"bridge","bridge":%q,"isGateway":false,"ipMasq":false,`+
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.0.0/24"}]],"dataDir":%q}}]}`, podBridge, filepath.Join(n.dir, "cni-ipam"))
	n.ctrd = crinode.Containerd{Dir: filepath.Join(n.dir, "containerd"), Bin: os.Getenv("PODHOOK_CONTAINERD_BIN"), Address: containerdSocket,
		NRISocket: nriSocket, Runc: n.crio.Runc(), CNI: cni}
	return n.crio.Start(func() error { _, err := n.cri.Run("info"); return err })
}

// useContainerd moves the node to containerd 2.4 with NRI on, as a node
// reprovisioned with another runtime: the kubelet stops, CRI-O's pods are
// removed and CRI-O stops, containerd starts with images (podman's, each
// under the name a pod spec's short name resolves to) and the kubelet
// starts again on it; the pods bound to the node start again there.
// images maps each podman image to the short name the manifests run.
func (n *node) useContainerd(images map[string]string) error {
	n.stopKubelet()
	n.cri.RemoveAllPods()
	n.crio.Stop()
	n.crio.Unmount()
	if err := n.ctrd.WriteConfig(); err != nil {
		return err
	}
	n.cri.Endpoint = containerdSocket
	if err := n.cri.WriteConfig(); err != nil {
		return err
	}
	if err := n.ctrd.Start(func() error { _, err := n.cri.Run("info"); return err }); err != nil {
		return err
	}
	if err := n.ctrd.Import(crinode.PauseImage, crinode.Image); err != nil {
		return err
	}
	for img, short := range images {
		if err := n.ctrd.Import(img); err != nil {
			return err
		}
		if err := n.ctrd.Tag(img, short); err != nil {
			return err
		}
	}
	if err := n.startKubelet(containerdSocket); err != nil {
		return err
	}
	return n.waitRuntime("containerd://")
}

// useCRIO moves the node back to CRI-O.
func (n *node) useCRIO() error {
	n.stopKubelet()
	n.cri.RemoveAllPods()
	n.ctrd.Stop()
	exec.Command("sh", "-c", "grep -o ' "+n.ctrd.Dir+"[^ ]*' /proc/mounts | xargs -r -n1 umount -l").Run()
	n.cri.Endpoint = crioSocket
	if err := n.cri.WriteConfig(); err != nil {
		return err
	}
	if err := n.crio.Start(func() error { _, err := n.cri.Run("info"); return err }); err != nil {
		return err
	}
	if err := n.startKubelet(crioSocket); err != nil {
		return err
	}
	return n.waitRuntime("cri-o://")
}

// waitRuntime waits until the node reports the runtime (a prefix of its
// containerRuntimeVersion) and is Ready on it: the restarted kubelet has
// registered again.
func (n *node) waitRuntime(prefix string) error {
	err := n.waitFor("the node on "+prefix, 120*time.Second, func() error {
		out, err := n.kubectl("get", "node", n.name, "-o", "jsonpath={.status.nodeInfo.containerRuntimeVersion}")
		if err == nil && !strings.HasPrefix(out, prefix) {
			err = fmt.Errorf("%w: %s", errNotYet, out)
		}
		return err
	})
	if err != nil {
		return err
	}
	return n.waitNodeReady()
}

func (n *node) stopKubelet() {
	if n.kubelet != nil {
		stopProc(n.kubelet)
		n.kubelet = nil
	}
}

// startKubelet starts the kubelet on the runtime at endpoint.
func (n *node) startKubelet(endpoint string) error {
	p := n.pki
	port, _ := freePort()
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://%s
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzPort: 0
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %s}
authorization: {mode: AlwaysAllow}
failSwapOn: false
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
serializeImagePulls: false
registerNode: true
clusterDomain: cluster.local
`, endpoint, port, p.cert("kubelet-serving"), p.key("kubelet-serving"), p.cert("ca"))
	path := filepath.Join(n.dir, "kubelet.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	kc, err := p.kubeconfig("kubelet", strings.TrimSpace(n.server()))
	if err != nil {
		return err
	}
	n.kubelet, err = n.startProc("kubelet", "--config", path, "--kubeconfig", kc, "--root-dir", filepath.Join(n.dir, "kubelet"),
		"--hostname-override", n.name, "--v", "2")
	return err
}

// server is the API server's URL, from the admin kubeconfig.
func (n *node) server() string {
	b, _ := os.ReadFile(n.admin)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "server: "); ok {
			return v
		}
	}
	return ""
}

// waitNodeReady waits for the node Ready and the controllers serving (a
// pod is refused until its namespace's default service account exists).
func (n *node) waitNodeReady() error {
	err := n.waitFor("the node Ready", 180*time.Second, func() error {
		out, err := n.kubectl("get", "node", n.name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err == nil && out != "True" {
			err = fmt.Errorf("Ready=%q", out)
		}
		return err
	})
	if err != nil {
		return err
	}
	return n.waitFor("the default service account", 120*time.Second, func() error {
		_, err := n.kubectl("get", "serviceaccount", "default", "-n", "default")
		return err
	})
}

// kubectl runs kubectl as the cluster's admin.
func (n *node) kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(n.bin, "kubectl"), append([]string{"--kubeconfig", n.admin}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// waitFor polls check until it succeeds or timeout passes.
func (n *node) waitFor(what string, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not in %v: %w", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Close stops everything by PID: the kubelet, then the pods of its runtime
// (nothing restarts them now) and the runtime, the control plane last,
// newest first.
func (n *node) Close() {
	n.stopKubelet()
	if n.crio.Running() || n.ctrd.Running() {
		n.cri.RemoveAllPods()
	}
	n.crio.Stop()
	n.ctrd.Stop()
	for i := len(n.procs) - 1; i >= 0; i-- {
		stopProc(n.procs[i])
	}
	n.crio.Unmount()
	os.Remove(registriesDropin)
	exec.Command("ip", "link", "delete", podBridge).Run()
	exec.Command("sh", "-c", "grep -o ' "+n.dir+"[^ ]*' /proc/mounts | xargs -r -n1 umount -l").Run()
	os.RemoveAll(n.dir)
}

// Dump prints the tail of every component's log.
func (n *node) Dump() {
	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"} {
		b, _ := os.ReadFile(filepath.Join(n.dir, c+".log"))
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		fmt.Fprintf(os.Stderr, "--- %s.log (tail)\n%s\n", c, b)
	}
	fmt.Fprintf(os.Stderr, "--- crio.log (tail)\n%s\n", n.crio.Log(4000))
	if n.ctrd.Dir != "" {
		fmt.Fprintf(os.Stderr, "--- containerd.log (tail)\n%s\n", n.ctrd.Log(4000))
	}
}

var errNotYet = errors.New("not yet")

// TestNodeRunsAPod: the node itself: a plain pod from the API server runs
// on the real CRI-O through the real kubelet.
func TestNodeRunsAPod(t *testing.T) {
	runPod(t, "default", "hello")
}
