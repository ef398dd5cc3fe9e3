//go:build !hookonly

package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// panicWriter panics on write: a fault outside hook.Run.
type panicWriter struct{}

func (panicWriter) Write([]byte) (int, error) { panic("writer bug") }

// TestStagePanicDecided: a panic that escapes a stage is decided by the
// fail check (no identity is known there: a create fails closed with one
// line), a poststop exits 0, and nothing exits 2.
func TestStagePanicDecided(t *testing.T) {
	state, err := os.ReadFile("../../testdata/crio-1.37/state-createRuntime.json")
	if err != nil {
		t.Fatal(err)
	}
	for stage, want := range map[string]int{"createRuntime": 1, "poststop": 0} {
		var stderr strings.Builder
		// --dry-run prints the request to stdout, which panics.
		code := run([]string{"podhook", stage, "--dry-run", "--config", os.DevNull + "/none"}, strings.NewReader(string(state)), panicWriter{}, &stderr, time.Now())
		line := strings.TrimSpace(stderr.String())
		if code != want || !strings.Contains(line, "internal error: writer bug") {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and the internal error", stage, code, line, want)
		}
		if stage == "createRuntime" && !strings.HasSuffix(line, "failing closed") {
			t.Errorf("%s: stderr %q, want the fail check's reason", stage, line)
		}
	}
}

// TestHelpAndVersion: `help [command]` and `h` work like every other
// urfave/cli program; `version` and `--version` print the same line.
func TestHelpAndVersion(t *testing.T) {
	runOut := func(args ...string) (int, string) {
		var out, errb strings.Builder
		code := run(append([]string{"podhook"}, args...), strings.NewReader(""), &out, &errb, time.Now())
		return code, out.String() + errb.String()
	}
	for _, args := range [][]string{{"help"}, {"h"}, {"help", "install"}, {"install", "--help"}} {
		if code, out := runOut(args...); code != 0 || !strings.Contains(out, "USAGE:") {
			t.Errorf("%q: exit %d\n%s", args, code, out)
		}
	}
	if _, out := runOut("help", "install"); !strings.Contains(out, "--host-root") {
		t.Errorf("help install lacks install's flags:\n%s", out)
	}
	_, v1 := runOut("version")
	_, v2 := runOut("--version")
	if v1 != v2 || !strings.HasPrefix(v1, "podhook ") {
		t.Errorf("version %q, --version %q", v1, v2)
	}
}

// TestOneLineOnStderr: a stop with a configuration error and a log that
// cannot be written still says one line, the reason first.
func TestOneLineOnStderr(t *testing.T) {
	state, err := os.ReadFile("../../testdata/crio-1.37/state-createRuntime.json")
	if err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir() + "/bad.json"
	os.WriteFile(bad, []byte(`{"timeout":"-1s","log_file":"/dev/null/x/podhook.log"}`), 0o600)
	var stderr strings.Builder
	code := run([]string{"podhook", "createRuntime", "--config", bad, "--agent-address", "unix:///nonexistent/a.sock", "--log-file", "/dev/null/x/podhook.log"},
		strings.NewReader(string(state)), io.Discard, &stderr, time.Now())
	line := strings.TrimSuffix(stderr.String(), "\n")
	if code != 1 || strings.Contains(line, "\n") || !strings.HasPrefix(line, "podhook: agent unreachable") || !strings.Contains(line, "configuration invalid") ||
		!strings.Contains(line, "cannot write the log") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
