// Package harness holds what the integration, end-to-end and benchmark
// programs share: building the binaries as shipped, and an agent that
// accepts connections and never answers.
package harness

import (
	"archive/tar"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
)

// Tags are the build tags podhook ships with (see the Makefile).
const Tags = "urfave_cli_no_docs,grpcnotrace"

// Build builds each package (a path go build accepts) into its binary path,
// static and with the shipped tags.
func Build(binaries map[string]string) error {
	for bin, pkg := range binaries {
		cmd := exec.Command("go", "build", "-tags", Tags, "-trimpath", "-ldflags", "-s -w", "-o", bin, pkg)
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
