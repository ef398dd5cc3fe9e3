package hooksd

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	current "github.com/containers/common/pkg/hooks/1.0.0"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultPath is where the installer puts the binary.
const DefaultPath = "/opt/podhook/podhook"

// DefaultTimeout is the runtime's timeout for the hook, in seconds. It is
// well above the agent deadline (2s) so that the fail check, not the
// runtime's kill, decides: a hook killed by the runtime fails the container
// whatever its namespace.
const DefaultTimeout = 10

// DefaultEnv is the hook's whole environment. Without an explicit env runc
// hands the hook its own; nothing podhook decides depends on it.
var DefaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// Options describe one registration.
type Options struct {
	// Path is the absolute path of the podhook binary.
	Path string
	// Stage is the podhook command and the OCI stage: "createRuntime" or
	// "poststop".
	Stage string
	// Args are extra arguments after the stage (e.g. "--config", FILE).
	Args []string
	// Env is the hook's environment; nil means DefaultEnv.
	Env []string
	// Timeout is the runtime's timeout in seconds; 0 means DefaultTimeout.
	Timeout int
	// Via says how the runtime runs the hook: ViaHooksD (the default; a
	// hooks.d file, read only by CRI-O and podman) or ViaNRI (podhook-nri).
	// It is the hook's first argument after the stage, so the hook knows
	// which runtimes can have run it.
	Via string
}

// The ways a runtime runs podhook, as the hook's --via takes them.
const (
	ViaHooksD = "hooksd"
	ViaNRI    = "nri"
)

// Registration builds and validates a hooks.d entry. when.always is true:
// an empty "when" never runs, and annotations are written by pods, so they
// never gate the hook.
func Registration(o Options) (*current.Hook, error) {
	if !filepath.IsAbs(o.Path) {
		return nil, fmt.Errorf("hook path %q must be absolute", o.Path)
	}
	if o.Stage != "createRuntime" && o.Stage != "poststop" {
		return nil, fmt.Errorf("stage %q: want createRuntime or poststop", o.Stage)
	}
	via := o.Via
	if via == "" {
		via = ViaHooksD
	}
	if via != ViaHooksD && via != ViaNRI {
		return nil, fmt.Errorf("via %q: want %s or %s", via, ViaHooksD, ViaNRI)
	}
	env, timeout := o.Env, o.Timeout
	if env == nil {
		env = DefaultEnv
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	always := true
	h := &current.Hook{
		Version: current.Version,
		Hook: rspec.Hook{
			Path:    o.Path,
			Args:    append([]string{"podhook", o.Stage, "--via=" + via}, o.Args...),
			Env:     env,
			Timeout: &timeout,
		},
		When:   current.When{Always: &always},
		Stages: []string{o.Stage},
	}
	// Validate with containers/common's own rules. Its check that the binary
	// exists is made on a copy pointing at this process's executable: a
	// registration is printed before the binary is installed.
	check := *h
	check.Hook.Path = "/proc/self/exe"
	if err := check.Validate(nil); err != nil {
		return nil, err
	}
	return h, nil
}

// Marshal renders a registration as the indented JSON file content.
func Marshal(h *current.Hook) ([]byte, error) {
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
