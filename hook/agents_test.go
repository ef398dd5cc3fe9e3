package hook

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/resolver"
)

func TestCombine(t *testing.T) {
	down := fmt.Errorf("%w: no socket", agentclient.ErrUnreachable)
	slow := fmt.Errorf("%w: 2s", agentclient.ErrDeadline)
	denied := &agentclient.DeniedError{Reason: "image not signed"}
	req := func(name string, err error) Outcome { return Outcome{Name: name, Required: true, Err: err} }
	opt := func(name string, err error) Outcome { return Outcome{Name: name, Err: err} }

	tests := map[string]struct {
		outcomes []Outcome
		kind     string // agentclient.Kind of the combined error
		text     string // the combined error's text
	}{
		"both allow":                       {[]Outcome{req("tetragon", nil), req("audit", nil)}, "", ""},
		"optional down":                    {[]Outcome{req("tetragon", nil), opt("audit", down)}, "", ""},
		"optional hung":                    {[]Outcome{req("tetragon", nil), opt("audit", slow)}, "", ""},
		"optional denies":                  {[]Outcome{req("tetragon", nil), opt("audit", denied)}, "denied", `agent "audit": denied by agent: image not signed`},
		"required denies, other down":      {[]Outcome{req("tetragon", down), req("policy", denied)}, "denied", `agent "policy": denied by agent`},
		"first deny in list order":         {[]Outcome{req("a", denied), req("b", &agentclient.DeniedError{Reason: "other"})}, "denied", `agent "a": denied by agent: image not signed`},
		"required down":                    {[]Outcome{req("tetragon", down), req("audit", nil)}, "unreachable", `agent "tetragon": agent unreachable: no socket`},
		"required hung":                    {[]Outcome{req("tetragon", nil), req("audit", slow)}, "deadline", `agent "audit": agent deadline exceeded: 2s`},
		"two required fail: both named":    {[]Outcome{req("tetragon", down), req("audit", slow)}, "unreachable", `agent "tetragon": agent unreachable: no socket; agent "audit": agent deadline exceeded`},
		"required fails, optional fails":   {[]Outcome{req("tetragon", slow), opt("audit", down)}, "deadline", `agent "tetragon": agent deadline exceeded: 2s`},
		"every agent optional, all failed": {[]Outcome{opt("a", down), opt("b", slow)}, "", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := Combine(tc.outcomes, true)
			if got := agentclient.Kind(err); got != tc.kind {
				t.Fatalf("kind %q (%v), want %q", got, err, tc.kind)
			}
			if tc.text == "" && err != nil || tc.text != "" && (err == nil || !strings.Contains(err.Error(), tc.text)) {
				t.Fatalf("error %v, want it to hold %q", err, tc.text)
			}
			if strings.Contains(fmt.Sprint(err), `"audit"`) && !tc.outcomes[len(tc.outcomes)-1].Required && !errors.Is(err, agentclient.ErrDenied) {
				t.Fatalf("an optional agent's failure reached the decision: %v", err)
			}
		})
	}
	// One agent from the single-agent settings: its error as it is, so
	// the reasons read as they always have.
	if err := Combine([]Outcome{req("agent", down)}, false); err != down {
		t.Fatalf("unnamed: %v", err)
	}
}

// The reason of a DENY names the agent; the fail check's reason names the
// failed required agents.
func TestDecideNamesTheAgent(t *testing.T) {
	id := resolver.Identity{Runtime: resolver.CRIO, PodNamespace: "ledger", Trusted: true}
	denied := Combine([]Outcome{{Name: "policy", Required: true, Err: &agentclient.DeniedError{Reason: "no"}}}, true)
	if d := Decide(CreateRuntime, denied, id, Policy{}, Policy{}); d.Allow || d.Reason != `agent "policy": denied by agent: no` {
		t.Fatalf("%+v", d)
	}
	down := Combine([]Outcome{{Name: "tetragon", Required: true, Err: fmt.Errorf("%w: gone", agentclient.ErrUnreachable)}}, true)
	if d := Decide(CreateRuntime, down, id, Policy{}, Policy{}); d.Allow || !strings.HasPrefix(d.Reason, `agent "tetragon": agent unreachable: gone; namespace "ledger" is not on the fail-allow list`) {
		t.Fatalf("%+v", d)
	}
}

func TestAudit(t *testing.T) {
	trusted := func(ns string) resolver.Identity {
		return resolver.Identity{Runtime: resolver.CRIO, PodNamespace: ns, Trusted: true}
	}
	forged := resolver.Identity{Runtime: resolver.CRIO, PodNamespace: "staging", Conflicts: []string{"forged"}}
	unknown := resolver.Identity{Runtime: resolver.Unknown}
	stopped := Decision{Allow: false, Reason: "denied by agent: no", Level: slog.LevelWarn}
	closed := Decision{Allow: false, Reason: "agent unreachable; failing closed", Level: slog.LevelError}
	allowed := Decision{Allow: true, Level: slog.LevelInfo}
	ns := Audit{Namespaces: Policy{Namespaces: []string{"staging"}, Patterns: []string{"team-.*"}}}

	tests := map[string]struct {
		audit     Audit
		stage     Stage
		d         Decision
		id        resolver.Identity
		wouldDeny bool
		auditErr  bool
	}{
		"enforce: a deny stays":                 {Audit{}, CreateRuntime, stopped, trusted("staging"), false, false},
		"audit all: a deny starts":              {Audit{All: true}, CreateRuntime, stopped, trusted("prod"), true, false},
		"audit all: failing closed starts":      {Audit{All: true}, CreateRuntime, closed, unknown, true, false},
		"audit all: an allow is only an allow":  {Audit{All: true}, CreateRuntime, allowed, trusted("prod"), false, false},
		"audit all: poststop untouched":         {Audit{All: true}, Poststop, stopped, trusted("prod"), false, false},
		"listed namespace starts":               {ns, CreateRuntime, stopped, trusted("staging"), true, false},
		"pattern namespace starts":              {ns, CreateRuntime, closed, trusted("team-a"), true, false},
		"pattern is anchored":                   {ns, CreateRuntime, stopped, trusted("a-team-a"), false, false},
		"other namespaces enforce":              {ns, CreateRuntime, stopped, trusted("prod"), false, false},
		"a forged namespace does not audit":     {ns, CreateRuntime, stopped, forged, false, false},
		"an unknown runtime does not audit":     {ns, CreateRuntime, closed, unknown, false, false},
		"an invalid pattern enforces, and says": {Audit{Namespaces: Policy{Patterns: []string{"team-("}}}, CreateRuntime, stopped, trusted("team-a"), false, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.audit.Apply(tc.stage, tc.d, tc.id)
			if got.WouldDeny != tc.wouldDeny || got.Allow != (tc.d.Allow || tc.wouldDeny) || (got.AuditErr != nil) != tc.auditErr {
				t.Fatalf("%+v", got)
			}
			if got.Reason != tc.d.Reason {
				t.Fatalf("reason %q, want the one it would have been stopped for, %q", got.Reason, tc.d.Reason)
			}
			if tc.wouldDeny && got.Level != slog.LevelWarn {
				t.Fatalf("level %v", got.Level)
			}
		})
	}
}
