//go:build !hookonly

package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/internal/config"
	"github.com/podhook/podhook/resolver"
)

// resolveWith runs a command with the config flags and returns what it resolved.
func resolveWith(t *testing.T, args ...string) resolved {
	t.Helper()
	var got resolved
	app := &cli.App{
		Writer: io.Discard, ErrWriter: io.Discard, DisableSliceFlagSeparator: true,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{{Name: "x", Flags: configFlags(), Action: func(c *cli.Context) error {
			got = resolveConfig(fromContext(c))
			return nil
		}}},
	}
	if err := app.Run(append([]string{"podhook", "x"}, args...)); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "podhook-config.json")
	os.WriteFile(file, []byte(`{"agent_address":"unix:///file.sock","timeout":"3s","log_level":"warn","fail_allow_namespaces":["from-file"]}`), 0o600)

	// file over defaults
	r := resolveWith(t, "--config", file)
	if r.Err != nil || r.AgentAddress != "unix:///file.sock" || r.Timeout.Duration() != 3*time.Second || r.LogLevel != "warn" || r.FailAllowNamespaces[0] != "from-file" {
		t.Fatalf("file: %+v", r)
	}
	if r.LogFile != config.Defaults().LogFile {
		t.Fatalf("default log file lost: %q", r.LogFile)
	}
	// env over file
	t.Setenv("PODHOOK_TIMEOUT", "4s")
	t.Setenv("PODHOOK_FAIL_ALLOW_NAMESPACES", "env-a, env-b")
	r = resolveWith(t, "--config", file)
	if r.Timeout.Duration() != 4*time.Second || len(r.FailAllowNamespaces) != 2 || r.FailAllowNamespaces[1] != "env-b" || r.AgentAddress != "unix:///file.sock" {
		t.Fatalf("env: %+v", r)
	}
	// flags over env
	r = resolveWith(t, "--config", file, "--timeout", "5s", "--fail-allow-namespaces", "a,b", "--fail-allow-namespaces", "c",
		"--fail-allow-namespace-regex", "team-[a-z]{1,3}")
	if r.Timeout.Duration() != 5*time.Second || len(r.FailAllowNamespaces) != 3 || r.FailAllowNamespaceRegex[0] != "team-[a-z]{1,3}" {
		t.Fatalf("flags: %+v", r)
	}
}

func TestConfigInvalidFallsBackToSafeDefaults(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"fail_allow_namespaces":["everything"],"timout":"1s"}`), 0o600)
	tests := map[string][]string{
		"unknown key in file":  {"--config", bad},
		"explicit file absent": {"--config", filepath.Join(dir, "absent.json")},
		"bad flag value":       {"--config", filepath.Join(dir, "none"), "--log-max-size", "huge"},
		"bad address":          {"--agent-address", "tcp://10.0.0.1:1", "--agent-namespace", "security"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			r := resolveWith(t, args...)
			if r.Err == nil {
				t.Fatal("no error reported")
			}
			if !errors.Is(r.Err, config.ErrInvalid) && !errors.Is(r.Err, os.ErrNotExist) {
				t.Errorf("err = %v", r.Err)
			}
			d := config.Defaults()
			if r.AgentAddress != d.AgentAddress || len(r.FailAllowNamespaces) != 1 || r.FailAllowNamespaces[0] != "kube-system" {
				t.Errorf("not the safe defaults: %+v", r.Config)
			}
		})
	}
	if r := resolveWith(t, "--agent-address", "tcp://x:1", "--agent-namespace", "security"); r.AgentNamespace != "security" {
		t.Errorf("valid agent namespace dropped: %+v", r.Config)
	}
}

// TestStageArgsPrecedence: the stage commands' own parser resolves flags
// over the config file as urfave/cli does for the other commands, and
// reads no environment.
func TestStageArgsPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "podhook-config.json")
	os.WriteFile(file, []byte(`{"agent_address":"unix:///file.sock","timeout":"3s","log_level":"warn","fail_allow_namespaces":["from-file"]}`), 0o600)
	parse := func(args ...string) resolved {
		t.Helper()
		a, ok, err := parseStageArgs("createRuntime", args, io.Discard)
		if !ok || err != nil {
			t.Fatalf("parse %q: ok=%v err=%v", args, ok, err)
		}
		return resolveConfig(a)
	}
	r := parse("--config", file)
	if r.Err != nil || r.AgentAddress != "unix:///file.sock" || r.Timeout.Duration() != 3*time.Second || r.FailAllowNamespaces[0] != "from-file" {
		t.Fatalf("file: %+v", r)
	}
	// A stage reads nothing from the environment: not the settings that
	// can weaken a decision, not the config file's name, not the rest.
	t.Setenv("PODHOOK_TIMEOUT", "4s")
	t.Setenv("PODHOOK_LOG_LEVEL", "error")
	t.Setenv("PODHOOK_FAIL_ALLOW_NAMESPACES", "env-a, env-b")
	t.Setenv("PODHOOK_FAIL_ALLOW_NAMESPACE_REGEX", "team-[a-z]{1,3}")
	t.Setenv("PODHOOK_AGENT_UID", "-1")
	t.Setenv("PODHOOK_RUNTIME", "containerd")
	t.Setenv("PODHOOK_AGENT_NAMESPACE", "tenant")
	t.Setenv("PODHOOK_POD_NAMESPACE", "kube-system")
	weak := filepath.Join(t.TempDir(), "weak.json")
	os.WriteFile(weak, []byte(`{"fail_allow_namespace_regex":[".*"]}`), 0o600)
	t.Setenv("PODHOOK_CONFIG", weak)
	a, _, _ := parseStageArgs("createRuntime", []string{"--config", file}, io.Discard)
	r = resolveConfig(a)
	if r.Timeout.Duration() != 3*time.Second || r.LogLevel != "warn" ||
		len(r.FailAllowNamespaces) != 1 || r.FailAllowNamespaces[0] != "from-file" || len(r.FailAllowNamespaceRegex) != 0 ||
		*r.AgentUID != 0 || r.Runtime != "" || r.AgentNamespace != "" || a.given() != nil {
		t.Fatalf("environment reached the stage: %+v given %+v", r.Config, a.given())
	}
	a, _, _ = parseStageArgs("createRuntime", nil, io.Discard)
	if r = resolveConfig(a); len(r.FailAllowNamespaceRegex) != 0 {
		t.Fatalf("PODHOOK_CONFIG reached the stage: %+v", r.Config)
	}
	// A relative --config would name a file in the bundle (the hook's
	// working directory): refused.
	if _, _, err := parseStageArgs("createRuntime", []string{"--config", "podhook-config.json"}, io.Discard); !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("relative --config: %v", err)
	}
	r = parse("--config", file, "--timeout", "5s", "--fail-allow-namespaces", "a,b", "--fail-allow-namespaces=c", "--agent-uid", "-1")
	if r.Timeout.Duration() != 5*time.Second || len(r.FailAllowNamespaces) != 3 || *r.AgentUID != -1 {
		t.Fatalf("flags: %+v", r)
	}
	a, _, _ = parseStageArgs("createRuntime", []string{"--state-file", "/x", "--dry-run"}, io.Discard)
	if a.String(flagStateFile) != "/x" || !a.Bool(flagDryRun) {
		t.Fatal("stage flags not parsed")
	}
	a, _, err := parseStageArgs("createRuntime", []string{"--runtime=containerd", "--pod-namespace=ledger", "--pod-name=web-0",
		"--pod-uid=3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b", "--sandbox-id=abc", "--container-name=web"}, io.Discard)
	want := resolver.Given{PodNamespace: "ledger", PodName: "web-0", PodUID: "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b", SandboxID: "abc", ContainerName: "web"}
	if g := a.given(); err != nil || g == nil || *g != want || resolveConfig(a).Runtime != "containerd" {
		t.Fatalf("identity flags: err=%v given=%+v", err, g)
	}
}

func TestStageArgsErrorsAndHelp(t *testing.T) {
	for _, args := range [][]string{{"--timeout", "soon"}, {"--no-such-flag"}, {"extra"}, {"--agent-uid", "x"}} {
		if _, ok, err := parseStageArgs("createRuntime", args, io.Discard); !ok || err == nil {
			t.Errorf("%q: ok=%v err=%v, want an error", args, ok, err)
		}
	}
	// A bad value does not lose the flags after it.
	a, _, err := parseStageArgs("createRuntime", []string{"--timeout", "soon", "--state-file", "/x", "--agent-uid", "-1", "--dry-run"}, io.Discard)
	if err == nil || a.String(flagStateFile) != "/x" || !a.Bool(flagDryRun) || a.Int(flagAgentUID) != -1 {
		t.Fatalf("after a bad value: err=%v state-file=%q dry-run=%v uid=%d", err, a.String(flagStateFile), a.Bool(flagDryRun), a.Int(flagAgentUID))
	}
	if _, _, err := parseStageArgs("createRuntime", []string{"--bogus"}, io.Discard); err == nil || !strings.Contains(err.Error(), "--bogus") {
		t.Fatalf("unknown flag: %v, want it quoted as typed", err)
	}
	if _, _, err := parseStageArgs("createRuntime", []string{"--timeout=soon"}, io.Discard); err == nil || !strings.Contains(err.Error(), "--timeout") {
		t.Fatalf("bad value: %v, want the flag quoted as typed", err)
	}
	var help strings.Builder
	if _, ok, err := parseStageArgs("poststop", []string{"--help"}, &help); ok || err != nil || !strings.Contains(help.String(), "-agent-address") || strings.Contains(help.String(), "PODHOOK_") {
		t.Fatalf("help: ok=%v err=%v\n%s", ok, err, help.String())
	}
}

func TestDiffLabel(t *testing.T) {
	for in, want := range map[string]string{"/etc/containerd/config.toml": "a/etc/containerd/config.toml", "patch/config.toml": "a/patch/config.toml", "./x.toml": "a/x.toml"} {
		if got := diffLabel("a", in); got != want {
			t.Errorf("diffLabel(a, %q) = %q, want %q", in, got, want)
		}
	}
}
