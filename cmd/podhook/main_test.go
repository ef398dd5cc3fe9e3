package main

import (
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
