package hooksd

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	current "github.com/containers/common/pkg/hooks/1.0.0"
	rspec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/hook"
	"github.com/podhook/podhook/internal/logfile"
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
//
// GOMAXPROCS=1 is for the Go runtime, read before any of podhook runs: a
// hook that waits on its agent for most of its life gains nothing from a
// second scheduler thread, and every hand-off between goroutines on two
// threads wakes the other one (on a virtual machine's vCPUs, tens of
// microseconds each). Measured with make bench: the hook's whole process
// 0.26-0.30 ms faster on 2 vCPUs (README, Performance). Set in code it
// would come too late: the runtime has sized itself by then, and
// runtime.GOMAXPROCS stops the world to change it.
var DefaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOMAXPROCS=1"}

// Sentinels for registrations the runtimes would accept but that break
// podhook's promise.
var (
	// ErrTimeout: the runtime's timeout would kill the hook before the
	// agent deadline and the log's lock bound run out, failing containers
	// even in fail-open namespaces.
	ErrTimeout = errors.New("hook timeout too short")
	// ErrDecidesNothing: the arguments make the hook print something and
	// exit 0 for every container (--dry-run, --help).
	ErrDecidesNothing = errors.New("hook arguments decide nothing")
)

// MinTimeout is the least hook timeout, in whole seconds, that leaves the
// agent deadline, the log lock's wait bound and a second for the process
// itself.
func MinTimeout(agent time.Duration) int {
	need := agent + logfile.DefaultLockWait + time.Second
	return int((need + time.Second - 1) / time.Second)
}

// CheckArgs refuses arguments that make a stage decide nothing.
func CheckArgs(args []string) error {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "dry-run", "help", "h":
			return fmt.Errorf("%w: %q", ErrDecidesNothing, a)
		}
	}
	return nil
}

// ArgValue returns the value of flag name in a hook's args ("--name v",
// "--name=v", one dash or two), the last one when it is given more than
// once.
func ArgValue(args []string, name string) (string, bool) {
	var v string
	var found bool
	for i, a := range args {
		n, val, hasV := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || n != name {
			continue
		}
		if !hasV && i+1 < len(args) {
			val = args[i+1]
		}
		v, found = val, true
	}
	return v, found
}

// AgentTimeoutIn returns the --timeout given in args, 0 when none is.
func AgentTimeoutIn(args []string) time.Duration {
	v, _ := ArgValue(args, "timeout")
	d, _ := time.ParseDuration(v)
	return d
}

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
	// AgentTimeout is the agent deadline the hook will run with: the
	// --timeout in Args, else this, else agentclient.DefaultTimeout.
	// Timeout must leave it plus a margin (MinTimeout).
	AgentTimeout time.Duration
	// Via says how the runtime runs the hook: ViaHooksD (the default; a
	// hooks.d file, read only by CRI-O and podman) or ViaNRI (podhook-nri).
	// It is the hook's first argument after the stage, so the hook knows
	// which runtimes can have run it.
	Via string
}

// The ways a runtime runs podhook, as the hook's --via takes them.
const (
	ViaHooksD = hook.ViaHooksD
	ViaNRI    = hook.ViaNRI
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
	if err := CheckArgs(o.Args); err != nil {
		return nil, err
	}
	agent := AgentTimeoutIn(o.Args)
	if agent == 0 {
		agent = o.AgentTimeout
	}
	if agent == 0 {
		agent = agentclient.DefaultTimeout
	}
	if min := MinTimeout(agent); timeout < min {
		return nil, fmt.Errorf("%w: %ds does not leave the agent deadline %v plus the log lock's %v and 1s: want at least %ds",
			ErrTimeout, timeout, agent, logfile.DefaultLockWait, min)
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
