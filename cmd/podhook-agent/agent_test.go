package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/podhook/podhook/agentclient/agentv1"
)

func TestDecide(t *testing.T) {
	req := func(ns string, trusted bool, conflicts ...string) *agentv1.CreateContainerRequest {
		return &agentv1.CreateContainerRequest{
			Container: &agentv1.Container{Image: "localhost/app:1"},
			Pod:       &agentv1.Pod{Namespace: ns},
			Identity:  &agentv1.Identity{Trusted: trusted, Conflicts: conflicts},
		}
	}
	tests := map[string]struct {
		cfg    Config
		req    *agentv1.CreateContainerRequest
		deny   bool
		reason string
	}{
		"trusted, allowed":             {cfg: Config{DenyNamespaces: []string{"ledger"}}, req: req("tenant-a", true)},
		"trusted, denied namespace":    {cfg: Config{DenyNamespaces: []string{"ledger"}}, req: req("ledger", true), deny: true, reason: `namespace "ledger"`},
		"untrusted is denied":          {cfg: Config{}, req: req("kube-system", false, "both runtime markers present", "x"), deny: true, reason: "pod identity not trusted: both runtime markers present (and 1 more)"},
		"untrusted, no identity":       {cfg: Config{}, req: req("", false), deny: true, reason: "no identity"},
		"untrusted allowed by flag":    {cfg: Config{AllowUntrusted: true}, req: req("kube-system", false, "forged")},
		"untrusted: no namespace rule": {cfg: Config{AllowUntrusted: true, DenyNamespaces: []string{"ledger"}}, req: req("ledger", false, "forged")},
		"image rule applies to untrusted": {cfg: Config{AllowUntrusted: true, DenyImages: []*regexp.Regexp{regexp.MustCompile(`app`)}},
			req: req("x", false, "forged"), deny: true, reason: "matches denied pattern"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			resp := (&agent{cfg: tc.cfg}).decide(tc.req)
			if v := resp.GetVerdict(); v != agentv1.Verdict_VERDICT_ALLOW && v != agentv1.Verdict_VERDICT_DENY {
				t.Fatalf("the reference agent sent verdict %d, which podhook treats as a denial", v)
			}
			if deny := resp.GetVerdict() == agentv1.Verdict_VERDICT_DENY; deny != tc.deny || !strings.Contains(resp.GetReason(), tc.reason) {
				t.Errorf("verdict %s reason %q, want deny=%v reason with %q", resp.GetVerdict(), resp.GetReason(), tc.deny, tc.reason)
			}
		})
	}
}
