package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	current "github.com/containers/common/pkg/hooks/1.0.0"
	rspec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podhook/podhook/internal/atomicfile"
	"github.com/podhook/podhook/internal/config"
	"github.com/podhook/podhook/internal/hooksd"
	"github.com/podhook/podhook/internal/hostpath"
	"github.com/podhook/podhook/internal/runtimeconf"
)

// Defaults for the host paths.
const (
	DefaultInstallDir = "/opt/podhook"
	DefaultHooksDir   = runtimeconf.CRIODefaultHooksDir
)

// Options say where podhook goes on the host. Every path is as the host
// sees it; HostRoot is prefixed to all of them when writing (the host's /
// mounted at /host in the installer's container, or a temp dir in tests).
type Options struct {
	HostRoot   string
	InstallDir string   // binary and config file; not /run (tmpfs)
	HooksDirs  []string // hooks.d directories the runtimes read
	Binary     string   // the podhook binary to install (in this filesystem)
	Config     []byte   // content of podhook-config.json (JSON)
	// ConfigFunc, when set, is read instead of Config each time the files
	// are computed, so that Keep follows a config source that changes (a
	// mounted ConfigMap is updated in place).
	ConfigFunc func() ([]byte, error)
	// bin caches the binary's content: it is read once per process, not
	// at every round of Keep (it is the installer's own, unchanging).
	bin []byte
	// HookTimeout is the runtimes' timeout for the hook, in seconds.
	HookTimeout int
	// CRIODropin writes a CRI-O drop-in adding the hooks dirs when CRI-O's
	// hooks_dir lists none of them; otherwise that is only a warning.
	CRIODropin bool
	// NRI installs for the NRI plugin (podhook-nri) instead of hooks.d: the
	// binary and its config, no registrations.
	NRI bool
	// Trace, when set, is told every change made, in order.
	Trace func(op, hostPath string)
	// Out receives one line per change and warning.
	Out io.Writer
	// Event, when set, is told what Keep does after the first install:
	// EventRestored (a file disappeared or changed on the host and was put
	// back), EventReloaded (the config source changed and the new one was
	// installed), EventInvalidConfig (the config source is invalid; the
	// installed config stays).
	Event func(kind, hostPath string)
	// keeping is set by Keep: a config source it cannot use leaves the
	// installed config in place, and every other file is still restored.
	keeping bool
}

// What Keep reports through Options.Event.
const (
	EventRestored      = "restored"
	EventReloaded      = "reloaded"
	EventInvalidConfig = "invalid_config"
)

// Names of the installed files.
const (
	BinaryName   = "podhook"
	CreateJSON   = "podhook.json"
	PoststopJSON = "podhook-poststop.json"
	// MonitorPosition is where the keeper's podhook-monitor keeps its
	// place in the log, in the install dir; uninstall removes it too.
	MonitorPosition = "monitor-position.json"
)

// host resolves the directory of a host path under HostRoot the way the
// host would, with every symlink resolved inside HostRoot: an absolute
// symlink such as /opt -> /data leads to <root>/data, never out of the host
// root (a binary written outside while its registration lands inside would
// fail every container on the node). The last component is kept as is: a
// symlink there is replaced or removed, never followed.
func (o *Options) host(p string) (string, error) { return hostpath.Parent(o.HostRoot, p) }

// hostFollow resolves every component of a host path inside HostRoot, the
// last one too: for what is read or executed, as the host would.
func (o *Options) hostFollow(p string) (string, error) { return hostpath.Resolve(o.HostRoot, p) }

func (o *Options) binaryPath() string { return filepath.Join(o.InstallDir, BinaryName) }
func (o *Options) configPath() string { return filepath.Join(o.InstallDir, config.FileName) }

func (o *Options) trace(op, p string) {
	if o.Trace != nil {
		o.Trace(op, p)
	}
	if o.Out != nil {
		fmt.Fprintf(o.Out, "%s %s\n", op, p)
	}
}

// file is one file the installer owns.
type file struct {
	hostPath     string // as the host sees it
	content      []byte
	mode         os.FileMode
	registration bool // a hooks.d JSON: re-read before it is renamed into place
	// agentTimeout is the agent deadline of the config installed with a
	// registration, which its hook timeout must leave room for.
	agentTimeout time.Duration
}

// files returns what Install writes, in the order it writes them: the
// binary, the config, then the registrations (CRI-O watches hooks.d and
// skips a registration whose binary does not exist yet).
func (o *Options) files() (out []file, err error) {
	if !filepath.IsAbs(o.InstallDir) {
		return nil, fmt.Errorf("install dir %q must be absolute", o.InstallDir)
	}
	if len(o.HooksDirs) == 0 && !o.NRI {
		return nil, errors.New("no hooks dir")
	}
	if o.bin == nil {
		b, err := os.ReadFile(o.Binary)
		if err != nil {
			return nil, fmt.Errorf("read the binary to install: %w", err)
		}
		o.bin = b
	}
	bin := o.bin
	cfg, resolved, cfgErr := o.configSource()
	if cfgErr != nil {
		// Whatever the source got wrong (unreadable, not JSON, an unknown
		// key, a value that does not validate), it is not installed. A
		// keeper goes on with the installed config, so that the binary
		// and the registrations are still restored, and reports the
		// source as invalid.
		if !o.keeping {
			return nil, cfgErr
		}
		b, ierr := o.InstalledConfigBytes()
		if ierr == nil {
			cfg, resolved, ierr = validateConfig(b)
		}
		if ierr != nil {
			return nil, cfgErr
		}
		defer func() { err = errors.Join(err, cfgErr) }()
	}
	out = []file{
		{hostPath: o.binaryPath(), content: bin, mode: 0o755},
		{hostPath: o.configPath(), content: cfg, mode: 0o644},
	}
	if o.NRI {
		// podhook-nri builds its hooks from the same options and checks
		// them when it starts; the check is made here too, so that an
		// install never lays down a config its hook timeout cannot hold.
		// (The registrations below are checked as they are built.)
		if _, err := hooksd.Registration(hooksd.Options{Path: o.binaryPath(), Stage: "createRuntime", Timeout: o.HookTimeout,
			AgentTimeout: resolved.Timeout.Duration(), Via: hooksd.ViaNRI}); err != nil {
			return nil, err
		}
		return out, nil
	}
	for _, stage := range []string{"createRuntime", "poststop"} {
		h, err := hooksd.Registration(hooksd.Options{
			Path: o.binaryPath(), Stage: stage, Timeout: o.HookTimeout, AgentTimeout: resolved.Timeout.Duration(),
			Args: []string{"--config", o.configPath()},
		})
		if err != nil {
			return nil, err
		}
		b, err := hooksd.Marshal(h)
		if err != nil {
			return nil, err
		}
		name := CreateJSON
		if stage == "poststop" {
			name = PoststopJSON
		}
		for _, dir := range o.HooksDirs {
			if !filepath.IsAbs(dir) {
				return nil, fmt.Errorf("hooks dir %q must be absolute", dir)
			}
			out = append(out, file{hostPath: filepath.Join(dir, name), content: b, mode: 0o644, registration: true, agentTimeout: resolved.Timeout.Duration()})
		}
	}
	return out, nil
}

// InstalledConfigBytes is the config file installed on the host, as it is.
func (o *Options) InstalledConfigBytes() ([]byte, error) {
	p, err := o.hostFollow(o.configPath())
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

// InstalledConfig is the config file installed on the host, decoded.
func (o *Options) InstalledConfig() (config.Config, error) {
	p, err := o.hostFollow(o.configPath())
	if err != nil {
		return config.Config{}, err
	}
	return config.ReadFile(p)
}

// validateConfig checks the config file content the way the hook reads it
// and returns it as written. Empty content is an empty object: the hook's
// defaults.
func validateConfig(b []byte) ([]byte, config.Config, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		b = []byte("{}\n")
	}
	c, err := config.Parse(b)
	if err != nil {
		return nil, config.Config{}, fmt.Errorf("%w: %w", errInvalidConfig, err)
	}
	resolved := config.Defaults().Merge(c)
	if err := resolved.Validate(true); err != nil {
		return nil, config.Config{}, fmt.Errorf("%w: %w", errInvalidConfig, err)
	}
	return b, resolved, nil
}

// configSource is the config to install, checked: Config, or what
// ConfigFunc reads now. Every way it can be unusable wraps
// errInvalidConfig.
func (o *Options) configSource() ([]byte, config.Config, error) {
	content := o.Config
	if o.ConfigFunc != nil {
		var err error
		if content, err = o.ConfigFunc(); err != nil {
			return nil, config.Config{}, fmt.Errorf("%w: %w", errInvalidConfig, err)
		}
	}
	return validateConfig(content)
}

// errInvalidConfig marks a config source that cannot be installed.
var errInvalidConfig = errors.New("config")

// Install writes every file that is missing or differs, in order, and
// re-reads each registration it wrote. Running it again changes nothing.
func Install(o Options) error {
	if err := o.ensureAll(); err != nil {
		return err
	}
	if o.NRI {
		return nil
	}
	return o.checkCRIO()
}

// ensureAll computes the files afresh (the config source may have changed)
// and ensures each, in order.
func (o *Options) ensureAll() error {
	_, _, err := o.ensureFiles()
	return err
}

// ensureFiles computes the files once, ensures each, and returns them all
// and those it wrote.
func (o *Options) ensureFiles() (all, wrote []file, err error) {
	all, err = o.files()
	if all == nil {
		return nil, nil, err
	}
	// A keeper's files come with the source's error when the installed
	// config stands in for it: ensure them, then report it.
	srcErr := err
	for _, f := range all {
		w, err := o.ensure(f)
		if err != nil {
			return all, wrote, errors.Join(srcErr, err)
		}
		if w {
			wrote = append(wrote, f)
		}
	}
	return all, wrote, srcErr
}

// keepRound ensures every file once and tells Event what it did, against
// last, the content each file was last ensured with: a file written with
// that same content was restored; one whose content changed (the config
// source) was reloaded.
func (o *Options) keepRound(last map[string][]byte) error {
	all, wrote, err := o.ensureFiles()
	if errors.Is(err, errInvalidConfig) {
		o.event(EventInvalidConfig, o.configPath())
	}
	for _, f := range wrote {
		if prev, ok := last[f.hostPath]; ok && !bytes.Equal(prev, f.content) {
			o.event(EventReloaded, f.hostPath)
		} else {
			o.event(EventRestored, f.hostPath)
		}
	}
	for _, f := range all {
		last[f.hostPath] = f.content
	}
	return err
}

func (o *Options) event(kind, hostPath string) {
	if o.Event != nil {
		o.Event(kind, hostPath)
	}
}

// checkCRIO warns when CRI-O's effective hooks_dir lists none of the hooks
// dirs, or with CRIODropin writes a drop-in that adds them.
func (o *Options) checkCRIO() error {
	c, err := runtimeconf.ReadCRIOConfig(o.HostRoot)
	if err != nil {
		return err
	}
	if c.Lists(o.HooksDirs) {
		return nil
	}
	if !o.CRIODropin {
		o.warn("warning: CRI-O's hooks_dir %q (from %s) lists none of %q: CRI-O will not run podhook; pass --crio-dropin or add one to hooks_dir",
			c.HooksDirs, describe(c), o.HooksDirs)
		return nil
	}
	if _, err := o.ensure(file{hostPath: filepath.Join(runtimeconf.CRIODropinDir, runtimeconf.CRIODropinName), content: c.Dropin(o.HooksDirs), mode: 0o644}); err != nil {
		return err
	}
	o.warn("note: added %q to CRI-O's hooks_dir in %s; restart CRI-O to apply", o.HooksDirs, filepath.Join(runtimeconf.CRIODropinDir, runtimeconf.CRIODropinName))
	return nil
}

func describe(c runtimeconf.CRIOConfig) string {
	if !c.Found {
		return "CRI-O's defaults: no crio.conf under the host root"
	}
	return fmt.Sprint(c.Files)
}

func (o *Options) warn(format string, args ...any) {
	if o.Out != nil {
		fmt.Fprintf(o.Out, format+"\n", args...)
	}
}

// ensure makes f's host file hold its content and mode, atomically.
func (o *Options) ensure(f file) (wrote bool, err error) {
	target, err := o.host(f.hostPath)
	if err != nil {
		return false, err
	}
	if same(target, f.content, f.mode) {
		return false, nil
	}
	var check func(string) error
	if f.registration {
		check = func(tmp string) error {
			if err := o.checkRegistration(tmp, f.agentTimeout); err != nil {
				return fmt.Errorf("%s: %w", f.hostPath, err)
			}
			return nil
		}
	}
	if err := atomicfile.Write(target, f.content, f.mode, check); err != nil {
		return false, err
	}
	o.trace("wrote", f.hostPath)
	return true, nil
}

// checkRegistration re-reads a registration with containers/common's
// reader and validation, its binary looked up under the host root, and
// checks that its arguments decide and its timeout leaves the agent
// deadline (agent; 0: the one its arguments and config file give).
func (o *Options) checkRegistration(path string, agent time.Duration) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	h, err := current.Read(b)
	if err != nil {
		return err
	}
	hostHook := *h
	if filepath.IsAbs(h.Hook.Path) {
		if hostHook.Hook.Path, err = o.hostFollow(h.Hook.Path); err != nil {
			return err
		}
	}
	if err := hostHook.Validate(nil); err != nil {
		return err
	}
	if err := hooksd.CheckArgs(h.Hook.Args); err != nil {
		return err
	}
	if h.Hook.Timeout == nil {
		return fmt.Errorf("%w: no timeout: the runtime would wait for the hook forever", hooksd.ErrTimeout)
	}
	if d := hooksd.AgentTimeoutIn(h.Hook.Args); d > 0 {
		agent = d
	}
	if agent == 0 {
		if agent, err = o.agentTimeout(h.Hook); err != nil {
			return err
		}
	}
	if min := hooksd.MinTimeout(agent); *h.Hook.Timeout < min {
		return fmt.Errorf("%w: %ds does not leave the agent deadline %v and a margin: want at least %ds", hooksd.ErrTimeout, *h.Hook.Timeout, agent, min)
	}
	return nil
}

// agentTimeout is the agent deadline of the config file a registered hook
// reads: the one its --config names, or the one next to its binary, read
// under the host root; the default when there is none.
func (o *Options) agentTimeout(h rspec.Hook) (time.Duration, error) {
	path, ok := hooksd.ArgValue(h.Args, "config")
	if !ok {
		path = filepath.Join(filepath.Dir(h.Path), config.FileName)
	}
	hp, err := o.hostFollow(path)
	if err != nil {
		return 0, err
	}
	c, err := config.ReadFile(hp)
	if errors.Is(err, os.ErrNotExist) {
		return config.Defaults().Timeout.Duration(), nil
	}
	if err != nil {
		return 0, err
	}
	return config.Defaults().Merge(c).Timeout.Duration(), nil
}

// CheckRegistrations validates podhook's registrations in a hooks dir (as
// the host sees it) the way the runtimes will: the schema reader, the
// validation, and the binary they name, looked up under hostRoot.
func CheckRegistrations(hostRoot, dir string) ([]string, error) {
	o := Options{HostRoot: hostRoot}
	var checked []string
	for _, name := range []string{CreateJSON, PoststopJSON} {
		p := filepath.Join(dir, name)
		hp, err := o.host(p)
		if err == nil {
			err = o.checkRegistration(hp, 0)
		}
		if err != nil {
			return checked, fmt.Errorf("%s: %w", p, err)
		}
		checked = append(checked, p)
	}
	return checked, nil
}

func same(path string, content []byte, mode os.FileMode) bool {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != mode || fi.Size() != int64(len(content)) {
		return false
	}
	// Compared a chunk at a time: Keep checks an 11 MB binary every round,
	// and reading it whole each time would take the keeper past the
	// DaemonSet's memory limit.
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for off := 0; off < len(content); {
		n, err := io.ReadFull(f, buf[:min(len(buf), len(content)-off)])
		if err != nil || !bytes.Equal(buf[:n], content[off:off+n]) {
			return false
		}
		off += n
	}
	return true
}

// Uninstall removes the registrations first, then the config and the
// binary: a registration never points at a missing binary.
func Uninstall(o Options) error {
	files, err := o.uninstallFiles()
	if err != nil {
		return err
	}
	var errs []error
	for i := len(files) - 1; i >= 0; i-- {
		p := files[i]
		hp, err := o.host(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(hp); err == nil {
			o.trace("removed", p)
			if err := atomicfile.SyncDir(filepath.Dir(hp)); err != nil {
				errs = append(errs, err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// uninstallFiles lists the installed paths in install order, without
// needing the binary or config content.
func (o *Options) uninstallFiles() ([]string, error) {
	if !filepath.IsAbs(o.InstallDir) {
		return nil, fmt.Errorf("install dir %q must be absolute", o.InstallDir)
	}
	out := []string{o.binaryPath(), o.configPath(), filepath.Join(o.InstallDir, MonitorPosition)}
	for _, name := range []string{CreateJSON, PoststopJSON} {
		for _, dir := range o.HooksDirs {
			out = append(out, filepath.Join(dir, name))
		}
	}
	// The CRI-O drop-in, if --crio-dropin wrote one, goes first.
	return append(out, filepath.Join(runtimeconf.CRIODropinDir, runtimeconf.CRIODropinName)), nil
}

// Keep installs, then checks every interval and restores what disappeared
// or changed, until ctx ends. It leaves the hook in place on return unless
// uninstallOnExit.
func Keep(ctx context.Context, o Options, interval time.Duration, uninstallOnExit bool) error {
	o.keeping = true
	// The files are computed afresh each round: the config source may have
	// changed since. An invalid new config leaves the installed one alone.
	all, _, err := o.ensureFiles()
	switch {
	case all != nil && errors.Is(err, errInvalidConfig):
		o.event(EventInvalidConfig, o.configPath())
		o.warn("config source: %v (the installed config stays)", err)
	case err != nil:
		return err
	}
	if !o.NRI {
		if err := o.checkCRIO(); err != nil {
			return err
		}
	}
	last := map[string][]byte{}
	for _, f := range all {
		last[f.hostPath] = f.content
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if uninstallOnExit {
				return Uninstall(o)
			}
			return nil
		case <-t.C:
			if err := o.keepRound(last); err != nil {
				o.warn("restore: %v", err)
			}
		}
	}
}
