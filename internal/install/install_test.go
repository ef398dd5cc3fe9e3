package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containers/common/pkg/hooks"

	"github.com/podhook/podhook/internal/config"
	"github.com/podhook/podhook/internal/hooksd"
	"github.com/podhook/podhook/internal/runtimeconf"
	"github.com/podhook/podhook/test/harness"
)

// binary writes a stand-in for the podhook binary: a copy of an executable.
func binary(t *testing.T, from string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(from))
	os.WriteFile(p, b, 0o755)
	return p
}

type tracer struct{ ops []string }

func (tr *tracer) trace(op, p string) { tr.ops = append(tr.ops, op+" "+p) }

func options(t *testing.T, tr *tracer) Options {
	return Options{
		HostRoot:   t.TempDir(),
		InstallDir: "/opt/podhook",
		HooksDirs:  []string{"/usr/share/containers/oci/hooks.d", "/etc/containers/oci/hooks.d"},
		Binary:     binary(t, "/bin/true"),
		Config:     []byte(`{"agent_address":"unix:///run/agent/agent.sock","fail_allow_namespaces":["kube-system","security"]}`),
		Trace:      tr.trace,
	}
}

func TestInstall(t *testing.T) {
	var tr tracer
	o := options(t, &tr)
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"wrote /opt/podhook/podhook",
		"wrote /opt/podhook/podhook-config.json",
		"wrote /usr/share/containers/oci/hooks.d/podhook.json",
		"wrote /etc/containers/oci/hooks.d/podhook.json",
		"wrote /usr/share/containers/oci/hooks.d/podhook-poststop.json",
		"wrote /etc/containers/oci/hooks.d/podhook-poststop.json",
	}
	if !slices.Equal(tr.ops, want) {
		t.Fatalf("operations\n%q\nwant binary, config, then registrations:\n%q", tr.ops, want)
	}
	for path, mode := range map[string]os.FileMode{
		"/opt/podhook/podhook": 0o755, "/opt/podhook/podhook-config.json": 0o644,
		"/usr/share/containers/oci/hooks.d/podhook.json": 0o644,
	} {
		if fi, err := os.Stat(hostPath(o, path)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want %v", path, fi.Mode(), err, mode)
		}
	}
	if b, _ := os.ReadFile(hostPath(o, "/opt/podhook/podhook-config.json")); !bytes.Equal(b, o.Config) {
		t.Errorf("config %s", b)
	}
	// The registrations as CRI-O reads them: containers/common's full reader,
	// the binary path looked up under the host root.
	for _, dir := range o.HooksDirs {
		for _, name := range []string{CreateJSON, PoststopJSON} {
			b, _ := os.ReadFile(hostPath(o, filepath.Join(dir, name)))
			tmp := filepath.Join(t.TempDir(), name)
			os.WriteFile(tmp, bytes.ReplaceAll(b, []byte(`"/opt/podhook/podhook"`), []byte(`"`+hostPath(o, "/opt/podhook/podhook")+`"`)), 0o644)
			h, err := hooks.Read(tmp, nil)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			stage := "createRuntime"
			if name == PoststopJSON {
				stage = "poststop"
			}
			wantArgs := []string{"podhook", stage, "--via=hooksd", "--config", "/opt/podhook/podhook-config.json"}
			if !slices.Equal(h.Hook.Args, wantArgs) || !slices.Equal(h.Stages, []string{stage}) || *h.Hook.Timeout != 10 {
				t.Errorf("%s: %+v", name, h)
			}
		}
	}
	// No temp file is left behind.
	filepath.Walk(o.HostRoot, func(p string, fi os.FileInfo, err error) error {
		if strings.Contains(p, ".podhook-") {
			t.Errorf("temp file left: %s", p)
		}
		return nil
	})

	// Idempotent: a second run changes nothing.
	tr.ops = nil
	before, _ := os.Stat(hostPath(o, "/opt/podhook/podhook"))
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(hostPath(o, "/opt/podhook/podhook"))
	if len(tr.ops) != 0 || !before.ModTime().Equal(after.ModTime()) || !os.SameFile(before, after) {
		t.Fatalf("second install changed %q", tr.ops)
	}

	// Uninstall: registrations first, the binary last.
	tr.ops = nil
	if err := Uninstall(o); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(want)
	for i := range want {
		want[i] = strings.Replace(want[i], "wrote", "removed", 1)
	}
	if !slices.Equal(tr.ops, want) {
		t.Fatalf("uninstall operations\n%q\nwant\n%q", tr.ops, want)
	}
	if err := Uninstall(o); err != nil {
		t.Fatalf("second uninstall: %v", err)
	}
}

func TestInstallRefusesInvalidConfig(t *testing.T) {
	var tr tracer
	o := options(t, &tr)
	for _, cfg := range []string{`{"agent_adress":"x"}`, `{"fail_allow_namespace_regex":["("]}`, `{"timeout":"-1s"}`, `not json`} {
		o.Config = []byte(cfg)
		if err := Install(o); err == nil {
			t.Errorf("config %s accepted", cfg)
		}
	}
	if len(tr.ops) != 0 {
		t.Fatalf("wrote %q with an invalid config", tr.ops)
	}
	o.Config = nil
	if err := Install(o); err != nil {
		t.Fatalf("empty config (defaults): %v", err)
	}
	if c, err := config.ReadFile(hostPath(o, "/opt/podhook/podhook-config.json")); err != nil || c.AgentAddress != "" {
		t.Fatalf("empty config installed as %+v, %v", c, err)
	}
}

// TestUpgradeWhileRunning replaces a binary that is executing: rename(2)
// works where an in-place write fails with ETXTBSY, and the running copy
// is untouched.
// TestInstallRefusesShortHookTimeout: a hook timeout that does not leave
// the config's agent deadline plus a margin would have the runtime kill the
// hook, failing containers even where the fail check opens; nothing is
// written.
func TestInstallRefusesShortHookTimeout(t *testing.T) {
	var tr tracer
	o := options(t, &tr)
	o.Config, o.HookTimeout = []byte(`{"timeout":"15s"}`), 5
	if err := Install(o); !errors.Is(err, hooksd.ErrTimeout) {
		t.Fatalf("err = %v, want hooksd.ErrTimeout", err)
	}
	o.NRI = true
	if err := Install(o); !errors.Is(err, hooksd.ErrTimeout) {
		t.Fatalf("NRI: err = %v, want hooksd.ErrTimeout", err)
	}
	if len(tr.ops) != 0 {
		t.Fatalf("wrote %q", tr.ops)
	}
	o.NRI, o.HookTimeout = false, 17
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
}

// TestCheckRegistrationsRefuses: validate refuses registrations the
// runtimes accept but that break the promise: a hook timeout shorter than
// the installed config's deadline allows, no timeout, or arguments that
// make the hook decide nothing.
func TestCheckRegistrationsRefuses(t *testing.T) {
	var tr tracer
	o := options(t, &tr)
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	dir := "/usr/share/containers/oci/hooks.d"
	if _, err := CheckRegistrations(o.HostRoot, dir); err != nil {
		t.Fatalf("installed registrations: %v", err)
	}
	reg := hostPath(o, dir+"/"+CreateJSON)
	orig, _ := os.ReadFile(reg)
	for name, tc := range map[string]struct {
		from, to string
		config   string
		want     error
	}{
		"--dry-run in args":          {`"--via=hooksd",`, `"--via=hooksd", "--dry-run",`, "", hooksd.ErrDecidesNothing},
		"--help in args":             {`"--via=hooksd",`, `"--via=hooksd", "--help",`, "", hooksd.ErrDecidesNothing},
		"no timeout":                 {`"timeout": 10`, `"timeout": null`, "", hooksd.ErrTimeout},
		"config deadline too long":   {"", "", `{"timeout":"15s"}`, hooksd.ErrTimeout},
		"--timeout in args too long": {`"--via=hooksd",`, `"--via=hooksd", "--timeout=9s",`, "", hooksd.ErrTimeout},
	} {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(reg, []byte(strings.Replace(string(orig), tc.from, tc.to, 1)), 0o644)
			cfg := hostPath(o, "/opt/podhook/podhook-config.json")
			if tc.config != "" {
				old, _ := os.ReadFile(cfg)
				os.WriteFile(cfg, []byte(tc.config), 0o644)
				defer os.WriteFile(cfg, old, 0o644)
			}
			if _, err := CheckRegistrations(o.HostRoot, dir); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUpgradeWhileRunning(t *testing.T) {
	var tr tracer
	o := options(t, &tr)
	o.Binary = binary(t, "/bin/sleep")
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	running := exec.Command(hostPath(o, "/opt/podhook/podhook"), "5")
	if err := running.Start(); err != nil {
		t.Fatal(err)
	}
	defer running.Process.Kill()
	o.Binary = binary(t, "/bin/true")
	if err := Install(o); err != nil {
		t.Fatalf("upgrade while the old binary runs: %v", err)
	}
	if err := exec.Command(hostPath(o, "/opt/podhook/podhook")).Run(); err != nil {
		t.Fatalf("new binary: %v", err)
	}
	// The running process still executes the old file, intact: an
	// installer that wrote the new binary into the old inode would change
	// what /proc/<pid>/exe reads.
	old, _ := os.ReadFile("/bin/sleep")
	if exe, err := os.ReadFile(fmt.Sprintf("/proc/%d/exe", running.Process.Pid)); err != nil || !bytes.Equal(exe, old) {
		t.Fatalf("the running binary's file changed under it (%v)", err)
	}
	if err := running.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the running old binary died: %v", err)
	}
	want, _ := os.ReadFile("/bin/true")
	if got, _ := os.ReadFile(hostPath(o, "/opt/podhook/podhook")); !bytes.Equal(got, want) {
		t.Fatal("installed binary is not the new one")
	}
}

func TestKeep(t *testing.T) {
	for _, uninstallOnExit := range []bool{false, true} {
		var tr tracer
		o := options(t, &tr)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Keep(ctx, o, 10*time.Millisecond, uninstallOnExit) }()
		json := hostPath(o, "/usr/share/containers/oci/hooks.d/podhook.json")
		cfg := hostPath(o, "/opt/podhook/podhook-config.json")
		waitFor(t, func() bool { _, err := os.Stat(json); return err == nil })
		os.Remove(json)
		os.WriteFile(cfg, []byte(`{"fail_allow_namespaces":["everything"]}`), 0o644)
		waitFor(t, func() bool {
			b, _ := os.ReadFile(cfg)
			_, err := os.Stat(json)
			return err == nil && bytes.Equal(b, o.Config)
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		_, err := os.Stat(json)
		if uninstallOnExit != os.IsNotExist(err) {
			t.Fatalf("uninstallOnExit=%v: registration present=%v", uninstallOnExit, err == nil)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached in 5s")
}

func TestCRIO(t *testing.T) {
	write := func(root, path, content string) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o755)
		os.WriteFile(filepath.Join(root, path), []byte(content), 0o644)
	}
	dropin := runtimeconf.CRIODropinDir + "/" + runtimeconf.CRIODropinName
	var tr tracer
	o := options(t, &tr)
	o.HooksDirs = []string{DefaultHooksDir}
	write(o.HostRoot, runtimeconf.CRIOConf, "[crio.runtime]\nhooks_dir = [\"/etc/containers/oci/hooks.d\"]\n")
	var out bytes.Buffer
	o.Out = &out
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "warning: CRI-O's hooks_dir") {
		t.Fatalf("no warning: %s", out.String())
	}
	if _, err := os.Stat(hostPath(o, dropin)); !os.IsNotExist(err) {
		t.Fatal("drop-in written without --crio-dropin")
	}
	o.CRIODropin = true
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	c, err := runtimeconf.ReadCRIOConfig(o.HostRoot)
	if err != nil || !slices.Equal(c.HooksDirs, []string{"/etc/containers/oci/hooks.d", DefaultHooksDir}) {
		t.Fatalf("after the drop-in: %+v %v", c, err)
	}
	// Idempotent with the drop-in in place.
	tr.ops = nil
	out.Reset()
	if err := Install(o); err != nil || len(tr.ops) != 0 || out.Len() != 0 {
		t.Fatalf("second install: %q %q %v", tr.ops, out.String(), err)
	}
	if err := Uninstall(o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(hostPath(o, dropin)); !os.IsNotExist(err) {
		t.Fatal("drop-in left after uninstall")
	}
}

func TestInstallNRI(t *testing.T) {
	var tr tracer
	o := options(t, &tr)
	o.NRI = true
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	want := []string{"wrote /opt/podhook/podhook", "wrote /opt/podhook/podhook-config.json"}
	if !slices.Equal(tr.ops, want) {
		t.Fatalf("NRI install wrote %q, want only the binary and config", tr.ops)
	}
}

// TestKeepFollowsConfigSource: a config source that changes (a ConfigMap
// updated in place) reaches the host; an invalid one leaves the last good.
func TestKeepFollowsConfigSource(t *testing.T) {
	var tr tracer
	o := options(t, &tr)
	var mu sync.Mutex
	source := []byte(`{"agent_namespace":"one"}`)
	o.ConfigFunc = func() ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		return source, nil
	}
	var out harness.SyncBuffer
	o.Out = &out
	var events []string
	o.Event = func(kind, p string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, kind+" "+p)
	}
	seen := func(e string) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(events, e) }
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Keep(ctx, o, 10*time.Millisecond, false)
	cfg := hostPath(o, "/opt/podhook/podhook-config.json")
	installed := func(want string) func() bool {
		return func() bool { b, _ := os.ReadFile(cfg); return string(b) == want }
	}
	waitFor(t, installed(`{"agent_namespace":"one"}`))
	mu.Lock()
	source = []byte(`{"agent_namespace":"two"}`)
	mu.Unlock()
	waitFor(t, installed(`{"agent_namespace":"two"}`))
	defer func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("events %q", events)
			mu.Unlock()
		}
	}()
	waitFor(t, seen("reloaded /opt/podhook/podhook-config.json"))
	os.Remove(hostPath(o, "/usr/share/containers/oci/hooks.d/podhook.json"))
	waitFor(t, seen("restored /usr/share/containers/oci/hooks.d/podhook.json"))
	mu.Lock()
	source = []byte(`{"agent_namespace":"Not_Valid"}`)
	mu.Unlock()
	waitFor(t, func() bool { return strings.Contains(out.String(), "restore: config") })
	waitFor(t, seen("invalid_config /opt/podhook/podhook-config.json"))
	if !installed(`{"agent_namespace":"two"}`)() {
		t.Fatal("an invalid config replaced the installed one")
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(events, "restored /opt/podhook/podhook-config.json") {
		t.Fatalf("a config reload was reported as a restore: %q", events)
	}
}

// hostPath is p under the test's host root, joined lexically: the tests
// plant no symlinks except where they say so.
func hostPath(o Options, p string) string { return filepath.Join(o.HostRoot, p) }

// TestHostileSymlinks: symlinks planted in the host root never lead a write
// out of it. An absolute /opt symlink resolves inside the host root (as the
// host itself would see it), a symlink at a file's own path is replaced,
// not followed, and a relative one climbing out stays in.
func TestHostileSymlinks(t *testing.T) {
	outside := t.TempDir() // stands for the installer container's own /
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("untouched\n"), 0o600)

	var tr tracer
	o := options(t, &tr)
	// /opt -> <outside>/opt: followed naively, the binary would land outside.
	os.Symlink(filepath.Join(outside, "opt"), hostPath(o, "/opt"))
	// A symlink where a registration goes, pointing at the victim.
	os.MkdirAll(hostPath(o, "/etc/containers/oci/hooks.d"), 0o755)
	os.Symlink(victim, hostPath(o, "/etc/containers/oci/hooks.d/podhook.json"))
	// A relative symlink that climbs above the root.
	os.MkdirAll(hostPath(o, "/usr/share/containers/oci"), 0o755)
	os.Symlink("../../../../../../../../"+strings.TrimPrefix(outside, "/"), hostPath(o, "/usr/share/containers/oci/hooks.d"))

	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	var escaped []string
	filepath.Walk(outside, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != outside && p != victim {
			escaped = append(escaped, p)
		}
		return nil
	})
	if len(escaped) != 0 {
		t.Fatalf("written outside the host root: %q", escaped)
	}
	if b, _ := os.ReadFile(victim); string(b) != "untouched\n" {
		t.Fatalf("symlink target written: %q", b)
	}
	// Where the host sees them: /opt -> <outside>/opt means <root><outside>/opt.
	bin := filepath.Join(o.HostRoot, outside, "opt/podhook/podhook")
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("binary not at %s: %v", bin, err)
	}
	if fi, err := os.Lstat(hostPath(o, "/etc/containers/oci/hooks.d/podhook.json")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("registration: %v, %v", fi, err)
	}
	if _, err := CheckRegistrations(o.HostRoot, "/usr/share/containers/oci/hooks.d"); err != nil {
		t.Fatalf("registrations through the relative symlink: %v", err)
	}
	if err := Uninstall(o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Fatalf("binary left after uninstall: %v", err)
	}
}

// TestKeepReportsEveryUnusableSource: whatever makes the config source
// unusable (unreadable, not JSON, an unknown key, a value that does not
// validate) is reported as invalid_config, the installed config stays, and
// the other files are still restored meanwhile.
func TestKeepReportsEveryUnusableSource(t *testing.T) {
	for name, bad := range map[string]func() ([]byte, error){
		"unreadable":  func() ([]byte, error) { return nil, os.ErrPermission },
		"not JSON":    func() ([]byte, error) { return []byte(`{"agent_namespace":`), nil },
		"unknown key": func() ([]byte, error) { return []byte(`{"agent_namespce":"x"}`), nil },
		"invalid":     func() ([]byte, error) { return []byte(`{"timeout":"-1s"}`), nil },
	} {
		t.Run(name, func(t *testing.T) {
			var tr tracer
			o := options(t, &tr)
			var mu sync.Mutex
			source := func() ([]byte, error) { return []byte(`{"agent_namespace":"one"}`), nil }
			o.ConfigFunc = func() ([]byte, error) { mu.Lock(); defer mu.Unlock(); return source() }
			var events []string
			o.Event = func(kind, p string) { mu.Lock(); defer mu.Unlock(); events = append(events, kind+" "+p) }
			seen := func(e string) func() bool {
				return func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(events, e) }
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- Keep(ctx, o, 10*time.Millisecond, false) }()
			cfg := hostPath(o, "/opt/podhook/podhook-config.json")
			waitFor(t, func() bool { b, _ := os.ReadFile(cfg); return string(b) == `{"agent_namespace":"one"}` })
			mu.Lock()
			source = bad
			mu.Unlock()
			waitFor(t, seen("invalid_config /opt/podhook/podhook-config.json"))
			reg := hostPath(o, "/usr/share/containers/oci/hooks.d/podhook.json")
			os.Remove(reg)
			waitFor(t, seen("restored /usr/share/containers/oci/hooks.d/podhook.json"))
			if b, _ := os.ReadFile(cfg); string(b) != `{"agent_namespace":"one"}` {
				t.Fatalf("the installed config became %q", b)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
