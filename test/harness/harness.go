// Package harness holds what the integration, end-to-end and benchmark
// programs share: building the binaries as shipped, and an agent that
// accepts connections and never answers.
package harness

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/podhook/podhook/agentclient/agentv1"
)

// Tags are the build tags podhook ships with (see the Makefile).
const Tags = "urfave_cli_no_docs,grpcnotrace"

// Build builds each package (a path go build accepts) into its binary path,
// static and with the shipped tags.
func Build(binaries map[string]string) error { return BuildTagged(binaries, "") }

// HookOnly is the tag of the hook's own build of cmd/podhook (make build's
// bin/podhook): the stages only, every other command run by podhook-ctl.
const HookOnly = "hookonly"

// BuildTagged is Build with more build tags (comma-separated).
func BuildTagged(binaries map[string]string, tags string) error {
	all := Tags
	if tags != "" {
		all += "," + tags
	}
	for bin, pkg := range binaries {
		cmd := exec.Command("go", "build", "-tags", all, "-trimpath", "-ldflags", "-s -w", "-o", bin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", pkg, err, out)
		}
	}
	return nil
}

// HangingAgent listens on a unix socket, accepts every connection and
// never reads or answers: a hung agent. Close releases the connections.
type HangingAgent struct {
	l    net.Listener
	mu   sync.Mutex
	held []net.Conn
}

// NewHangingAgent listens on path.
func NewHangingAgent(path string) (*HangingAgent, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	h := &HangingAgent{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.held = append(h.held, c)
			h.mu.Unlock()
		}
	}()
	return h, nil
}

// Close stops listening and drops the held connections.
func (h *HangingAgent) Close() error {
	err := h.l.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.held {
		c.Close()
	}
	return err
}

// SyncBuffer is an io.Writer safe for concurrent writers, for logs written
// by goroutines under test.
type SyncBuffer struct {
	mu sync.Mutex
	b  []byte
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// RootfsTar is a minimal root filesystem as a tar stream: the static
// busybox (Debian's busybox-static) and a few of its applets. Images are
// built from it locally: there is no registry.
func RootfsTar() ([]byte, error) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "tmp/", "proc/", "sys/", "dev/", "etc/"} {
		tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755})
	}
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))})
	tw.Write(bb)
	for _, applet := range []string{"sh", "true", "false", "echo", "cat", "sleep", "ls"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ServeAgent serves an implementation of podhook's agent API in this
// process, on a unix socket in a short temp dir (socket paths are limited
// to 108 bytes), until the test ends. It returns the address and the
// server (Stop drops every connection, as a dying agent would).
func ServeAgent(t testing.TB, agent agentv1.AgentServer) (string, *grpc.Server) {
	t.Helper()
	dir, err := os.MkdirTemp("", "pha-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	agentv1.RegisterAgentServer(srv, agent)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return "unix://" + sock, srv
}

// Event is one line of podhook-agent's events: what the agent received.
type Event struct {
	RPC     string `json:"rpc"`
	Event   string `json:"event"`
	Request struct {
		ProtocolVersion string `json:"protocolVersion"`
		Stage           string `json:"stage"`
		AlreadyRunning  bool   `json:"alreadyRunning"`
		Container       struct {
			ID                  string            `json:"id"`
			Name                string            `json:"name"`
			Type                string            `json:"type"`
			Image               string            `json:"image"`
			Runtime             string            `json:"runtime"`
			Pid                 int               `json:"pid"`
			Bundle              string            `json:"bundle"`
			CgroupsPath         string            `json:"cgroupsPath"`
			CgroupsPathExpanded string            `json:"cgroupsPathExpanded"`
			Annotations         map[string]string `json:"annotations"`
			Mounts              []any             `json:"mounts"`
			Truncated           []string          `json:"truncated"`
			SpecError           string            `json:"specError"`
		} `json:"container"`
		Pod struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			UID       string `json:"uid"`
			SandboxID string `json:"sandboxId"`
		} `json:"pod"`
		Identity struct {
			Trusted   bool     `json:"trusted"`
			Conflicts []string `json:"conflicts"`
			Source    string   `json:"source"`
		} `json:"identity"`
	} `json:"request"`
	Response struct {
		Verdict string `json:"verdict"`
		Reason  string `json:"reason"`
	} `json:"response"`
}

// ReadEvents reads podhook-agent's events file; a missing file has none.
func ReadEvents(path string) ([]Event, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return out, fmt.Errorf("event %q: %w", line, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// FreeAddress returns a loopback host:port that nothing listens on now,
// for a server a test starts in another process.
func FreeAddress(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// HostileAnnotations are the annotations a pod's author can make as costly
// as Kubernetes lets them be, each value size bytes: every runtime's
// identity keys, the containerd marker, and CRI-O's pass-through keys, with
// CgroupParent a slice name of size bytes ("a-a-...-a.slice", whose naive
// expansion grows with the square of its length). Applied over a real
// container's annotations, they leave CRI-O's marker in place.
func HostileAnnotations(size int) map[string]string {
	value := strings.Repeat("a-", (size-1)/2) + "a"
	slice := strings.Repeat("a-", (size-7)/2) + "a.slice"
	a := map[string]string{"io.kubernetes.cri-o.CgroupParent": slice}
	for _, k := range []string{
		"io.kubernetes.pod.name", "io.kubernetes.pod.namespace", "io.kubernetes.pod.uid", "io.kubernetes.container.name",
		"io.kubernetes.cri.sandbox-name", "io.kubernetes.cri.sandbox-namespace", "io.kubernetes.cri.sandbox-uid",
		"io.kubernetes.cri.container-name", "io.kubernetes.cri.sandbox-id",
		"io.kubernetes.cri-o.Namespace", "io.kubernetes.cri-o.KubeName", "io.kubernetes.cri-o.ContainerName",
		"io.kubernetes.cri-o.HostName",
	} {
		a[k] = value
	}
	return a
}
