package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/agentclient/agentv1"
	"github.com/podhook/podhook/internal/safetext"
	"github.com/podhook/podhook/resolver"
)

// Agent is the node-local agent as the hook sees it; *agentclient.Client
// implements it. Errors are classified with agentclient's sentinels.
type Agent interface {
	CreateContainer(context.Context, *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error)
	StopContainer(context.Context, *agentv1.StopContainerRequest) error
}

// ErrInternal marks a panic recovered during an invocation.
var ErrInternal = errors.New("internal error")

// errorKind names the class of an invocation's error for the log.
func errorKind(err error) string {
	switch {
	case errors.Is(err, ErrState):
		return "invalid_state"
	case errors.Is(err, ErrInternal):
		return "internal"
	}
	return agentclient.Kind(err)
}

// Options configure one invocation.
type Options struct {
	Stage Stage
	// Start is when the process started; durations are measured from it.
	Start time.Time
	// Runtime is the configured runtime ("" to detect).
	Runtime resolver.Runtime
	// Given is the pod identity the injection path passed in the hook's
	// arguments (podhook-nri), nil when none.
	Given *resolver.Given
	// Runs lists the runtimes that can have run the hook (nil for any):
	// CRI-O and podman for a hooks.d registration.
	Runs []resolver.Runtime
	// Policy is the fail check's policy; Safe replaces it when invalid.
	Policy, Safe Policy
	// LogPath is named in the stderr line when the container is stopped.
	LogPath string
	// Protocol names the agent protocol in the record ("podhook.v1",
	// "tetragon") when the single-agent settings configure one agent.
	Protocol string
	// Named is set when the agents list configures the agents: reasons
	// name the agent, and the record lists each agent's outcome.
	Named bool
	// Audit is which creates audit mode covers.
	Audit Audit
	// ConfigErr is set when the hook's configuration was invalid and the
	// built-in safe defaults stand in for it: the record says so, at
	// error level whatever the decision.
	ConfigErr error
}

// Prepare reads the state and config.json and resolves the identity. Only
// an unusable state is an error (wrapping ErrState); a config.json that
// cannot be loaded leaves Spec nil, SpecErr set, and the state's
// annotations in use.
func Prepare(state io.Reader, opts Options) (*Invocation, error) {
	st, err := ReadState(state)
	if err != nil {
		return nil, err
	}
	inv := &Invocation{Stage: opts.Stage, Start: opts.Start, State: st}
	inv.Spec, inv.SpecErr = LoadSpec(st.Bundle)
	var a Annotations
	if inv.Spec != nil {
		a = inv.Spec.Annotations
	} else if a, err = st.StateAnnotations(); err != nil {
		return nil, err
	}
	inv.Annotations = a.Map
	cg := inv.Spec.CgroupsPath()
	inv.Cgroups, inv.CgroupsErr = resolver.ExpandCgroupsPath(cg)
	inv.Identity = resolver.Resolve(resolver.Input{Annotations: inv.Annotations, CgroupsPath: cg, Runtime: opts.Runtime, Given: opts.Given, Runs: opts.Runs})
	for _, k := range a.Duplicates {
		inv.Identity.Trusted = false
		inv.Identity.Conflicts = append(inv.Identity.Conflicts, fmt.Sprintf("annotation %q appears more than once", k))
	}
	return inv, nil
}

// Result is the outcome of Run.
type Result struct {
	Decision
	// Invocation is nil when the state could not be read.
	Invocation *Invocation
	// AgentErr is the agents' combined, classified error (Combine).
	AgentErr error
	// Outcomes are each agent's, in the configured order.
	Outcomes []Outcome
}

// decide is the decision table, then audit mode over it.
func decide(opts Options, agentErr error, id resolver.Identity) Decision {
	return opts.Audit.Apply(opts.Stage, Decide(opts.Stage, agentErr, id, opts.Policy, opts.Safe), id)
}

// Run does one invocation: prepare, show it to every agent at once,
// decide, and log one record with log. A panic anywhere in it is recovered
// and decided by the fail check like any agent failure.
func Run(ctx context.Context, state io.Reader, agents []Peer, opts Options, log *slog.Logger) (res Result) {
	var agentTime time.Duration
	defer func() {
		if r := recover(); r != nil {
			res.AgentErr = fmt.Errorf("%w: %v", ErrInternal, r)
			id := resolver.Identity{Runtime: resolver.Unknown}
			if res.Invocation != nil {
				id = res.Invocation.Identity
			}
			res.Decision = decide(opts, res.AgentErr, id)
			res.Decision.Level = slog.LevelError
		}
		res.finish(opts)
		logResult(ctx, log, opts, res, agentTime)
	}()

	inv, err := Prepare(state, opts)
	if err != nil {
		res.Decision = Decision{Allow: !opts.Stage.IsCreate(), Reason: err.Error(), Level: slog.LevelError}
		res.AgentErr = err
		return res
	}
	res.Invocation = inv
	create := opts.Stage.IsCreate()
	var req *agentv1.CreateContainerRequest
	var stop *agentv1.StopContainerRequest
	if create {
		req = inv.CreateRequest()
	} else {
		stop = inv.StopRequest()
	}
	callStart := time.Now()
	res.Outcomes = callAll(ctx, agents, req, stop)
	agentTime = time.Since(callStart)
	res.AgentErr = Combine(res.Outcomes, opts.Named)
	res.Decision = decide(opts, res.AgentErr, inv.Identity)
	return res
}

// finish points the operator at the log when a container is stopped for a
// reason other than the agent's own.
func (r *Result) finish(opts Options) {
	if !r.Allow && r.Invocation != nil && r.AgentErr != nil && !isDeny(r.AgentErr) && filepath.IsAbs(opts.LogPath) {
		r.Reason += "; details in " + opts.LogPath
	}
}

// recordPrefix is the record's first part: the stage and the container.
func recordPrefix(opts Options, inv *Invocation) []slog.Attr {
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs, slog.String("stage", string(opts.Stage)))
	if opts.Protocol != "" {
		attrs = append(attrs, slog.String("agent_protocol", opts.Protocol))
	}
	if inv != nil {
		id := inv.Identity
		attrs = append(attrs,
			value("container_id", inv.State.ID),
			value("pod_namespace", id.PodNamespace),
			value("pod_name", id.PodName),
			value("pod_uid", id.PodUID),
			value("container_name", id.ContainerName),
			value("container_type", id.ContainerType),
			slog.String("runtime", string(id.Runtime)),
			slog.Int("pid", inv.State.Pid),
			value("cgroups_path", inv.Cgroups),
			slog.Bool("identity_trusted", id.Trusted),
			slog.String("identity_source", id.Source),
		)
		if len(id.Conflicts) > 0 {
			attrs = append(attrs, slog.Any("identity_conflict", id.Conflicts))
		}
		if inv.SpecErr != nil {
			attrs = append(attrs, message("spec_error", inv.SpecErr.Error()+" (using the state's annotations)"))
		}
		if len(inv.Truncated) > 0 {
			attrs = append(attrs, slog.Any("truncated", inv.Truncated))
		}
		if inv.CgroupsErr != nil {
			attrs = append(attrs, message("cgroups_error", inv.CgroupsErr.Error()))
		}
	}
	return attrs
}

// logResult writes the invocation's one record with log.
func logResult(ctx context.Context, log *slog.Logger, opts Options, res Result, agentTime time.Duration) {
	attrs := recordPrefix(opts, res.Invocation)
	msg := "container allowed"
	decision := "allow"
	if !res.Allow {
		decision = "deny"
	}
	attrs = append(attrs, slog.String("decision", decision), slog.Bool("fail_open", res.FailOpen))
	if res.WouldDeny {
		attrs = append(attrs, slog.Bool("would_deny", true), slog.String("mode", "audit"))
	}
	if res.Reason != "" {
		attrs = append(attrs, message("reason", res.Reason))
	}
	if res.AgentErr != nil {
		attrs = append(attrs, message("error", res.AgentErr.Error()), slog.String("error_kind", errorKind(res.AgentErr)))
	}
	if opts.Named && len(res.Outcomes) > 0 {
		attrs = append(attrs, slog.Any("agents", agentRecords(res.Outcomes, opts.Stage.IsCreate())))
	}
	level := res.Level
	switch {
	case opts.ConfigErr != nil:
		attrs = append(attrs, message("config_error", opts.ConfigErr.Error()+"; using the built-in safe defaults"))
		level = max(level, slog.LevelError)
	case res.PolicyErr != nil:
		attrs = append(attrs, message("config_error", res.PolicyErr.Error()+"; using the safe fail-allow policy"))
		level = max(level, slog.LevelError)
	case res.AuditErr != nil:
		attrs = append(attrs, message("config_error", res.AuditErr.Error()+"; enforcing"))
		level = max(level, slog.LevelError)
	}
	switch {
	case res.Invocation == nil:
		msg = "invalid state"
	case !opts.Stage.IsCreate():
		msg = "container stopped"
	case (!res.Allow || res.WouldDeny) && isDeny(res.AgentErr):
		msg = "container denied by agent"
		if d := (*agentclient.DeniedError)(nil); errors.As(res.AgentErr, &d) && d.ByHook {
			msg = "container denied by podhook"
		}
	case res.FailOpen:
		msg = noVerdict(res.AgentErr) + ": failed open"
	case !res.Allow || res.WouldDeny:
		msg = noVerdict(res.AgentErr) + ": failed closed"
	}
	if res.WouldDeny {
		msg = "audit: would be stopped: " + msg
	}
	attrs = append(attrs,
		slog.Float64("agent_ms", ms(agentTime)),
		slog.Float64("duration_ms", ms(time.Since(opts.Start))),
		// The scheduler threads the Go runtime gave the hook: 1 when the
		// runtime passed the registration's GOMAXPROCS=1 (its absence
		// costs each start about 0.3 ms; README, Performance).
		slog.Int("gomaxprocs", runtime.GOMAXPROCS(0)),
	)
	log.LogAttrs(ctx, level, msg, attrs...)
}

func isDeny(err error) bool { return errors.Is(err, agentclient.ErrDenied) }

// agentRecord is one agent's outcome in the record.
type agentRecord struct {
	Name      string  `json:"name"`
	Protocol  string  `json:"protocol"`
	Required  bool    `json:"required"`
	Verdict   string  `json:"verdict,omitempty"` // allow or deny (poststop: delivered); none when it gave no verdict
	ErrorKind string  `json:"error_kind,omitempty"`
	Error     string  `json:"error,omitempty"`
	MS        float64 `json:"ms"`
}

func agentRecords(outcomes []Outcome, create bool) agentList {
	out := make(agentList, len(outcomes))
	for i, o := range outcomes {
		r := agentRecord{Name: o.Name, Protocol: o.Protocol, Required: o.Required, MS: ms(o.Took)}
		switch {
		case o.Err == nil && !create:
			r.Verdict = "delivered"
		case o.Err == nil:
			r.Verdict = "allow"
		case isDeny(o.Err):
			r.Verdict, r.ErrorKind, r.Error = "deny", errorKind(o.Err), safetext.Cut(o.Err.Error(), MaxMessage)
		default:
			r.ErrorKind, r.Error = errorKind(o.Err), safetext.Cut(o.Err.Error(), MaxMessage)
		}
		out[i] = r
	}
	return out
}

// noVerdict names why the agent gave no verdict: an agent that answered
// with an error is not one that could not be reached.
func noVerdict(err error) string {
	switch errorKind(err) {
	case "agent_error":
		return "agent error"
	case "internal":
		return "internal error"
	}
	return "agent unavailable"
}

// value is a record field holding one value from outside (a runtime's or
// a pod's annotation, the state), cut to safetext.Keep bytes: a record's
// size never follows what a pod's author wrote.
func value(key, v string) slog.Attr { return slog.String(key, safetext.Cut(v, safetext.Keep)) }

// MaxMessage bounds a record field that is a sentence (a reason, an
// error): its values are already quoted with a bounded prefix; this also
// bounds what an agent's reason or error text adds.
const MaxMessage = 1024

func message(key, v string) slog.Attr { return slog.String(key, safetext.Cut(v, MaxMessage)) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
