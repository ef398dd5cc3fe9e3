//go:build !hookonly

package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkCreateRuntime is one hook invocation in-process (no process
// start), against a real podhook-agent: the hook's own work.
func BenchmarkCreateRuntime(b *testing.B) {
	dir, _ := os.MkdirTemp("", "phbench-")
	defer os.RemoveAll(dir)
	agent := filepath.Join(dir, "agent")
	if out, err := exec.Command("go", "build", "-o", agent, "../podhook-agent").CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	sock := filepath.Join(dir, "a.sock")
	cmd := exec.Command(agent, "--socket", sock, "--events", os.DevNull)
	cmd.Start()
	defer cmd.Process.Kill()
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	bundle := filepath.Join(dir, "bundle")
	os.Mkdir(bundle, 0o700)
	cfg, _ := os.ReadFile("../../testdata/crio-1.37/config.json")
	os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o600)
	st, _ := os.ReadFile("../../testdata/crio-1.37/state-createRuntime.json")
	st = []byte(strings.Replace(string(st), "/run/containers/storage/overlay-containers/73aa9b92188892db6a87d9edd97a1d48e4c2ad7d27d4d8c21db6d5ced346b1df/userdata", bundle, 1))
	args := []string{"podhook", "createRuntime", "--agent-address", "unix://" + sock, "--log-file", filepath.Join(dir, "log")}
	b.ResetTimer()
	for range b.N {
		if code := run(args, bytes.NewReader(st), io.Discard, io.Discard, time.Now()); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}
