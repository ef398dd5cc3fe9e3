package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInstallThenValidate installs with the real binary into a temp host
// root, and validates the result the way an operator would.
func TestInstallThenValidate(t *testing.T) {
	root := t.TempDir()
	r := runHook(t, nil, "install", "--host-root", root, "--agent-namespace", "security")
	if r.code != 0 || !strings.Contains(r.stdout, "podhook installed in /opt/podhook") {
		t.Fatalf("install: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	installed, _ := os.ReadFile(filepath.Join(root, "opt/podhook/podhook"))
	self, _ := os.ReadFile(podhook)
	if len(installed) == 0 || string(installed) != string(self) {
		t.Fatal("the installed binary is not the running one")
	}
	hooksDir := "/usr/share/containers/oci/hooks.d"
	validate := func() result {
		return runHook(t, nil, "validate", "--config", filepath.Join(root, "opt/podhook/podhook-config.json"),
			"--host-root", root, "--hooks-dir", hooksDir)
	}
	if r := validate(); r.code != 0 || strings.Count(r.stdout, "registration valid") != 2 || !strings.Contains(r.stdout, "configuration valid") {
		t.Fatalf("validate: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	os.WriteFile(filepath.Join(root, hooksDir, "podhook.json"), []byte(`{"version":"1.0.0","hook":{},"when":{"always":true},"stages":["createRuntime"]}`), 0o644)
	if r := validate(); r.code != 1 || !strings.Contains(oneLine(t, r.stderr), "hook.path") {
		t.Fatalf("broken registration: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runHook(t, nil, "uninstall", "--host-root", root); r.code != 0 {
		t.Fatalf("uninstall: %q", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "opt/podhook/podhook")); !os.IsNotExist(err) {
		t.Fatal("binary left after uninstall")
	}
}

func TestInstallCheckAgent(t *testing.T) {
	a := startAgent(t)
	root := t.TempDir()
	r := runHook(t, nil, "install", "--host-root", root, "--check-agent", "--agent-address", a.address())
	if r.code != 0 || !strings.Contains(r.stdout, "agent at "+a.address()+" is serving") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	a.stop()
	r = runHook(t, nil, "install", "--host-root", root, "--check-agent", "--agent-address", a.address())
	if r.code != 0 || !strings.Contains(r.stdout, "warning: agent at "+a.address()+" does not answer") {
		t.Fatalf("agent down: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestInstallTetragonProtocol: install writes the protocol into the config
// it installs, and validate accepts it.
func TestInstallTetragonProtocol(t *testing.T) {
	root := t.TempDir()
	r := runHook(t, nil, "install", "--host-root", root, "--agent-protocol", "tetragon", "--agent-address", "unix:///var/run/tetragon/tetragon.sock")
	if r.code != 0 {
		t.Fatalf("install: exit %d, stderr %q", r.code, r.stderr)
	}
	cfg, _ := os.ReadFile(filepath.Join(root, "opt/podhook/podhook-config.json"))
	if !strings.Contains(string(cfg), `"agent_protocol": "tetragon"`) {
		t.Fatalf("installed config %s", cfg)
	}
	if r := runHook(t, nil, "validate", "--config", filepath.Join(root, "opt/podhook/podhook-config.json")); r.code != 0 {
		t.Fatalf("validate: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runHook(t, nil, "install", "--host-root", root, "--agent-protocol", "tetragon2"); r.code != 1 || !strings.Contains(r.stderr, "agent_protocol") {
		t.Fatalf("bad protocol: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestReinstallKeepsConfig: install without settings flags keeps the
// installed config; a flag changes only its own setting, and says so.
func TestReinstallKeepsConfig(t *testing.T) {
	root := t.TempDir()
	cfgPath := filepath.Join(root, "opt/podhook/podhook-config.json")
	if r := runHook(t, nil, "install", "--host-root", root, "--agent-address", "unix:///run/agent/a.sock", "--agent-namespace", "security"); r.code != 0 {
		t.Fatalf("install: %q", r.stderr)
	}
	first, _ := os.ReadFile(cfgPath)
	r := runHook(t, nil, "install", "--host-root", root)
	if again, _ := os.ReadFile(cfgPath); r.code != 0 || string(again) != string(first) || strings.Contains(r.stdout, "config changes") {
		t.Fatalf("re-install without flags: exit %d, stdout %q\nconfig %s\nwas %s", r.code, r.stdout, again, first)
	}
	r = runHook(t, nil, "install", "--host-root", root, "--timeout", "1s")
	after, _ := os.ReadFile(cfgPath)
	if r.code != 0 || !strings.Contains(r.stdout, "the installed config changes") || !strings.Contains(string(after), `"timeout": "1s"`) ||
		!strings.Contains(string(after), "unix:///run/agent/a.sock") || !strings.Contains(string(after), "security") {
		t.Fatalf("one flag: exit %d, stdout %q\nconfig %s", r.code, r.stdout, after)
	}
}

// TestKeeperMemoryBounded: the keeper checks an 11 MB binary every round;
// its peak RSS must stay well inside the DaemonSet's 64 MiB limit (it read
// the binary whole twice a round and peaked near 67 MB).
func TestKeeperMemoryBounded(t *testing.T) {
	root := t.TempDir()
	cmd := exec.Command(podhook, "install", "--keep", "--keep-interval", "20ms", "--interface", "nri",
		"--install-dir", filepath.Join(root, "opt/podhook"), "--log-file", filepath.Join(root, "podhook.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	var hwm int
	// Enough rounds for the heap to have grown as far as it will.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				fmt.Sscan(f[1], &hwm)
			}
		}
	}
	if hwm > 48<<10 {
		t.Fatalf("keeper peak RSS %d KiB, want well under the 64 MiB limit", hwm)
	}
	t.Logf("keeper peak RSS %d KiB", hwm)
}

// TestKeeperRecordsEveryUnusableConfig: the most common ConfigMap
// mistakes (an unknown key, JSON that does not parse) reach the hook's log
// as the keeper's invalid_config record, as a value that does not validate
// does; the installed config stays.
func TestKeeperRecordsEveryUnusableConfig(t *testing.T) {
	for name, content := range map[string]string{
		"unknown key": `{"agent_namespce":"security"}`,
		"bad JSON":    `{"agent_namespace":"security"`,
		"invalid":     `{"agent_namespace":"Not_Valid"}`,
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			src := filepath.Join(t.TempDir(), "podhook-config.json")
			os.WriteFile(src, []byte(`{"agent_namespace":"security","log_file":"/var/log/podhook/podhook.log"}`), 0o644)
			cmd := exec.Command(podhook, "install", "--keep", "--keep-interval", "50ms", "--host-root", root, "--config-from", src)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
			installed := filepath.Join(root, "opt/podhook/podhook-config.json")
			waitFor(t, "the install", func() bool { b, _ := os.ReadFile(installed); return strings.Contains(string(b), "security") })
			before, _ := os.ReadFile(installed)
			os.WriteFile(src, []byte(content), 0o644)
			log := filepath.Join(root, "var/log/podhook/podhook.log")
			waitFor(t, "the invalid_config record", func() bool {
				b, _ := os.ReadFile(log)
				return strings.Contains(string(b), `"level":"ERROR","msg":"keeper: invalid_config","keeper_event":"invalid_config"`)
			})
			if after, _ := os.ReadFile(installed); string(after) != string(before) {
				t.Fatalf("the installed config changed to %q", after)
			}
		})
	}
}
