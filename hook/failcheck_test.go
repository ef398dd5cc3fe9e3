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

func TestDecide(t *testing.T) {
	trusted := func(ns string) resolver.Identity {
		return resolver.Identity{Runtime: resolver.CRIO, PodNamespace: ns, Trusted: true}
	}
	untrusted := resolver.Identity{Runtime: resolver.CRIO, PodNamespace: "kube-system", Conflicts: []string{"forged"}}
	unknown := resolver.Identity{Runtime: resolver.Unknown}
	down := fmt.Errorf("%w: no socket", agentclient.ErrUnreachable)
	slow := fmt.Errorf("%w: 2s", agentclient.ErrDeadline)
	broken := fmt.Errorf("%w: internal", agentclient.ErrAgent)
	denied := &agentclient.DeniedError{Reason: "image not signed"}
	policy := Policy{Namespaces: []string{"kube-system", "monitoring"}, Patterns: []string{"team-.*", "ops|infra"}}
	safe := SafePolicy("podhook")

	tests := map[string]struct {
		stage    Stage
		err      error
		id       resolver.Identity
		policy   Policy
		allow    bool
		failOpen bool
		level    slog.Level
		reason   string
	}{
		"allowed by agent":                 {CreateRuntime, nil, trusted("tenant-a"), policy, true, false, slog.LevelInfo, ""},
		"denied by agent":                  {CreateRuntime, denied, trusted("kube-system"), policy, false, false, slog.LevelWarn, "denied by agent: image not signed"},
		"denied without reason":            {CreateRuntime, &agentclient.DeniedError{}, trusted("kube-system"), policy, false, false, slog.LevelWarn, "denied by agent"},
		"down, exact name allowed":         {CreateRuntime, down, trusted("monitoring"), policy, true, true, slog.LevelWarn, `allowed by "monitoring"`},
		"down, pattern allowed":            {CreateRuntime, down, trusted("team-a"), policy, true, true, slog.LevelWarn, `allowed by "team-.*"`},
		"down, alternation anchored":       {CreateRuntime, down, trusted("infra"), policy, true, true, slog.LevelWarn, "failing open"},
		"down, pattern substring refused":  {CreateRuntime, down, trusted("evil-team-a"), policy, false, false, slog.LevelError, "not on the fail-allow list"},
		"down, alternation suffix refused": {CreateRuntime, down, trusted("opsx"), policy, false, false, slog.LevelError, "not on the fail-allow list"},
		"down, not allowed":                {CreateRuntime, down, trusted("tenant-a"), policy, false, false, slog.LevelError, `namespace "tenant-a" is not on the fail-allow list`},
		"deadline, allowed":                {CreateRuntime, slow, trusted("kube-system"), policy, true, true, slog.LevelWarn, "deadline"},
		"deadline, not allowed":            {CreateRuntime, slow, trusted("tenant-a"), policy, false, false, slog.LevelError, "failing closed"},
		"agent error, allowed":             {CreateRuntime, broken, trusted("kube-system"), policy, true, true, slog.LevelWarn, "failing open"},
		"agent error, not allowed":         {CreateRuntime, broken, trusted("tenant-a"), policy, false, false, slog.LevelError, "failing closed"},
		"down, untrusted kube-system":      {CreateRuntime, down, untrusted, policy, false, false, slog.LevelError, "not trusted"},
		"down, unknown runtime":            {CreateRuntime, down, unknown, policy, false, false, slog.LevelError, "no pod namespace"},
		"prestart alias, down":             {Prestart, down, trusted("tenant-a"), policy, false, false, slog.LevelError, "failing closed"},
		"createContainer alias, allowed":   {CreateContainer, nil, trusted("tenant-a"), policy, true, false, slog.LevelInfo, ""},
		"poststop, agent down":             {Poststop, down, trusted("tenant-a"), policy, true, false, slog.LevelWarn, "poststop"},
		"poststop, unknown":                {Poststop, nil, unknown, policy, true, false, slog.LevelInfo, ""},
		"invalid policy, safe allows":      {CreateRuntime, down, trusted("podhook"), Policy{Patterns: []string{"("}}, true, true, slog.LevelWarn, "failing open"},
		"invalid policy, safe refuses":     {CreateRuntime, down, trusted("team-a"), Policy{Namespaces: []string{"team-a"}, Patterns: []string{"("}}, false, false, slog.LevelError, "failing closed"},
		"invalid policy, kube-system safe": {CreateRuntime, down, trusted("kube-system"), Policy{Patterns: []string{"("}}, true, true, slog.LevelWarn, "failing open"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := Decide(tc.stage, tc.err, tc.id, tc.policy, safe)
			if d.Allow != tc.allow || d.FailOpen != tc.failOpen || d.Level != tc.level {
				t.Errorf("got allow=%v failOpen=%v level=%v, want %v %v %v (%s)", d.Allow, d.FailOpen, d.Level, tc.allow, tc.failOpen, tc.level, d.Reason)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", d.Reason, tc.reason)
			}
		})
	}
}

func TestDecideInvalidPolicyReported(t *testing.T) {
	id := resolver.Identity{Runtime: resolver.CRIO, PodNamespace: "kube-system", Trusted: true}
	d := Decide(CreateRuntime, agentclient.ErrUnreachable, id, Policy{Patterns: []string{"("}}, SafePolicy(""))
	if !errors.Is(d.PolicyErr, ErrPolicy) {
		t.Fatalf("PolicyErr = %v, want ErrPolicy", d.PolicyErr)
	}
	// The agent answering makes the policy irrelevant: it is not compiled.
	d = Decide(CreateRuntime, nil, id, Policy{Patterns: []string{"("}}, SafePolicy(""))
	if d.PolicyErr != nil || !d.Allow {
		t.Fatalf("got %+v, want a plain allow", d)
	}
}

func TestParseStage(t *testing.T) {
	for _, s := range []string{"createRuntime", "prestart", "createContainer", "poststop"} {
		if st, err := ParseStage(s); err != nil || string(st) != s {
			t.Errorf("ParseStage(%q) = %q, %v", s, st, err)
		}
	}
	for _, s := range []string{"", "startContainer", "CreateRuntime", "poststart"} {
		if _, err := ParseStage(s); !errors.Is(err, ErrStage) {
			t.Errorf("ParseStage(%q) err = %v, want ErrStage", s, err)
		}
	}
}
