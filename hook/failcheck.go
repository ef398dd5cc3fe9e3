package hook

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/internal/nspattern"
	"github.com/podhook/podhook/internal/safetext"
	"github.com/podhook/podhook/resolver"
)

// Policy says which namespaces fail open when the agent gives no verdict.
type Policy struct {
	// Namespaces are exact namespace names.
	Namespaces []string
	// Patterns are RE2 expressions matched against the whole namespace
	// name (anchored), compiled only when the fail check runs.
	Patterns []string
}

// SafePolicy is the policy used when the configured one is invalid:
// kube-system and, when given, the agent's own namespace.
func SafePolicy(agentNamespace string) Policy {
	p := Policy{Namespaces: []string{"kube-system"}}
	if agentNamespace != "" && agentNamespace != "kube-system" {
		p.Namespaces = append(p.Namespaces, agentNamespace)
	}
	return p
}

// ErrPolicy marks a fail-allow pattern that does not compile.
var ErrPolicy = nspattern.ErrPattern

// Compile checks every pattern, returning them anchored and compiled.
func (p Policy) Compile() ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(p.Patterns))
	for _, pat := range p.Patterns {
		re, err := nspattern.Compile(pat)
		if err != nil {
			return nil, err
		}
		out = append(out, re)
	}
	return out, nil
}

// Match returns the entry that allows namespace ns ("" when none does). A
// policy with an invalid pattern matches nothing and returns ErrPolicy.
func (p Policy) Match(ns string) (string, error) {
	res, err := p.Compile()
	if err != nil || ns == "" {
		return "", err
	}
	for _, n := range p.Namespaces {
		if n == ns {
			return n, nil
		}
	}
	for i, re := range res {
		if re.MatchString(ns) {
			return p.Patterns[i], nil
		}
	}
	return "", nil
}

// Decision is what the hook does with a container.
type Decision struct {
	// Allow lets the container start (exit 0); false stops it (exit 1).
	Allow bool
	// FailOpen is true when the container starts without an agent verdict.
	FailOpen bool
	// Reason is one human line: the agent's reason, or why the fail check
	// decided as it did.
	Reason string
	// Level is the log level of the record.
	Level slog.Level
	// PolicyErr is set when the configured policy was invalid and the safe
	// policy decided instead.
	PolicyErr error
	// WouldDeny is set when audit mode let start a create that would have
	// been stopped (Reason says why it would have been).
	WouldDeny bool
	// AuditErr is set when an audit pattern was invalid: that create was
	// enforced.
	AuditErr error
}

// Decide is the decision table. agentErr is the agent call's result
// (classified by agentclient); safe is used when p is invalid.
//
//	stage     agent                      identity                        decision
//	poststop  anything                   anything                        allow
//	create    answered ALLOW             anything                        allow (info)
//	create    answered DENY              anything                        stop, agent's reason (warn)
//	create    unreachable/deadline/error trusted, namespace allowed      allow, fail open (warn)
//	create    unreachable/deadline/error untrusted, unknown, not allowed stop (error)
func Decide(stage Stage, agentErr error, id resolver.Identity, p, safe Policy) Decision {
	switch {
	case !stage.IsCreate():
		if agentErr != nil {
			return Decision{Allow: true, Reason: "poststop: " + agentErr.Error(), Level: slog.LevelWarn}
		}
		return Decision{Allow: true, Level: slog.LevelInfo}
	case agentErr == nil:
		return Decision{Allow: true, Level: slog.LevelInfo}
	case errors.Is(agentErr, agentclient.ErrDenied):
		var d *agentclient.DeniedError
		reason := agentErr.Error()
		if errors.As(agentErr, &d) {
			reason = d.Error()
			if ae := (*AgentError)(nil); errors.As(agentErr, &ae) {
				reason = ae.label() + reason
			}
		}
		return Decision{Allow: false, Reason: reason, Level: slog.LevelWarn}
	}
	return FailCheck(agentErr, id, p, safe)
}

// FailCheck decides for a create stage when the agent gave no verdict.
func FailCheck(agentErr error, id resolver.Identity, p, safe Policy) Decision {
	var policyErr error
	match, err := p.Match(id.PodNamespace)
	if err != nil {
		policyErr = err
		match, _ = safe.Match(id.PodNamespace)
	}
	d := Decision{Level: slog.LevelError, PolicyErr: policyErr}
	switch {
	case id.Runtime == resolver.Unknown || id.PodNamespace == "":
		d.Reason = fmt.Sprintf("%v; no pod namespace (runtime %s): failing closed", agentErr, id.Runtime)
	case !id.Trusted:
		d.Reason = fmt.Sprintf("%v; identity of namespace %s is not trusted (identity_conflict): failing closed", agentErr, safetext.Quote(id.PodNamespace))
	case match == "":
		d.Reason = fmt.Sprintf("%v; namespace %s is not on the fail-allow list: failing closed", agentErr, safetext.Quote(id.PodNamespace))
	default:
		d = Decision{Allow: true, FailOpen: true, Level: slog.LevelWarn, PolicyErr: policyErr,
			Reason: fmt.Sprintf("%v; namespace %s allowed by %s: failing open", agentErr, safetext.Quote(id.PodNamespace), safetext.Quote(match))}
	}
	return d
}
