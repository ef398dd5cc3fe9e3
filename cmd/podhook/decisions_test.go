//go:build !hookonly

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDecisions: the view reads every kept file, oldest first, newest
// last, and filters.
func TestDecisions(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "podhook.log")
	rec := func(ts, ns, decision string, failOpen bool) string {
		fo := "false"
		if failOpen {
			fo = "true"
		}
		return `{"time":"` + ts + `","stage":"createRuntime","pod_namespace":"` + ns + `","pod_name":"p","container_name":"c","decision":"` + decision + `","fail_open":` + fo + `,"reason":"why ` + ns + `"}` + "\n"
	}
	now := time.Now().UTC()
	old := now.Add(-time.Hour).Format(time.RFC3339Nano)
	recent := now.Add(-time.Minute).Format(time.RFC3339Nano)
	os.WriteFile(log+".2", []byte(rec(old, "oldest", "allow", false)), 0o600)
	os.WriteFile(log+".1", []byte(rec(recent, "middle", "deny", false)+"not json\n"), 0o600)
	os.WriteFile(log, []byte(rec(recent, "newest", "allow", true)), 0o600)
	run1 := func(args ...string) string {
		t.Helper()
		var out, errb strings.Builder
		code := run(append([]string{"podhook", "decisions", "--config", filepath.Join(dir, "none.json"), "--log-file", log}, args...), strings.NewReader(""), &out, &errb, time.Now())
		if code != 0 {
			t.Fatalf("%q: exit %d, %s", args, code, errb.String())
		}
		return out.String()
	}
	os.WriteFile(filepath.Join(dir, "none.json"), []byte("{}"), 0o600)
	out := run1()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[1], "oldest") ||
		!strings.Contains(lines[2], "DENY") || !strings.Contains(lines[3], "allow (fail open)") || !strings.Contains(lines[3], "newest/p/c") {
		t.Fatalf("table:\n%s", out)
	}
	if out := run1("--since", "10m"); strings.Contains(out, "oldest") || !strings.Contains(out, "middle") {
		t.Fatalf("--since:\n%s", out)
	}
	if out := run1("--decision", "deny", "-o", "json"); strings.Count(out, "\n") != 1 || !strings.Contains(out, `"pod_namespace":"middle"`) {
		t.Fatalf("--decision deny -o json:\n%s", out)
	}
	if out := run1("--fail-open"); !strings.Contains(out, "newest") || strings.Contains(out, "middle") {
		t.Fatalf("--fail-open:\n%s", out)
	}
	if out := run1("--namespace", "oldest"); !strings.Contains(out, "oldest") || strings.Contains(out, "newest") {
		t.Fatalf("--namespace:\n%s", out)
	}
	// Audit: what enforce would have stopped, and only that.
	audited := `{"time":"` + recent + `","stage":"createRuntime","pod_namespace":"staging","pod_name":"p","container_name":"c","decision":"allow","fail_open":false,"would_deny":true,"reason":"denied by agent: unsigned"}` + "\n"
	f, _ := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(audited)
	f.Close()
	out = run1("--would-deny")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "allow (audit: would DENY)") ||
		!strings.Contains(lines[1], "staging/p/c") || !strings.Contains(lines[1], "denied by agent: unsigned") {
		t.Fatalf("--would-deny:\n%s", out)
	}
}
