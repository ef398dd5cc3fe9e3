package nspattern

import (
	"errors"
	"testing"

	"github.com/podhook/podhook/internal/safetext"
)

func TestCompileRefusesBreakouts(t *testing.T) {
	// Each pattern would, wrapped as ^(?:p)$ without a check of its own,
	// close the anchoring group and match namespaces it does not name.
	for name, p := range map[string]string{
		"close and reopen":        `team-a)|(.*`,
		"close, match all":        `x)|.*|(y`,
		"close, unanchored tail":  `a)(.*`,
		"escape the closing":      `team-a\`,
		"open group left to wrap": `(team-a`,
		"stray close":             `team-a)`,
		"literal run to the end":  `team-a\Q`,
		"bad class":               `[a-`,
		"bad repeat":              `*`,
	} {
		t.Run(name, func(t *testing.T) {
			re, err := Compile(p)
			if !errors.Is(err, ErrPattern) {
				t.Fatalf("Compile(%q) = %v, %v; want ErrPattern", p, re, err)
			}
		})
	}
}

func TestCompileAnchors(t *testing.T) {
	for _, c := range []struct {
		pattern string
		match   []string
		nomatch []string
	}{
		{`team-.*`, []string{"team-a", "team-"}, []string{"xteam-a", "a-team-b"}},
		{`kube-system|monitoring`, []string{"kube-system", "monitoring"}, []string{"kube-system-x", "xmonitoring", "kube-systemmonitoring"}},
		{`\Qteam-a)|(.*\E`, []string{"team-a)|(.*"}, []string{"team-a", "anything"}},
		{`(?i)ops`, []string{"ops", "OPS"}, []string{"devops", "ops-x"}},
		{`a(b|c)`, []string{"ab", "ac"}, []string{"abc", "a"}},
	} {
		re, err := Compile(c.pattern)
		if err != nil {
			t.Fatalf("Compile(%q): %v", c.pattern, err)
		}
		for _, ns := range c.match {
			if !re.MatchString(ns) {
				t.Errorf("%q does not match %q", c.pattern, ns)
			}
		}
		for _, ns := range c.nomatch {
			if re.MatchString(ns) {
				t.Errorf("%q matches %q", c.pattern, ns)
			}
		}
	}
}

func TestCompileErrorIsBounded(t *testing.T) {
	p := "(" + string(make([]byte, 64<<10))
	_, err := Compile(p)
	if err == nil || len(err.Error()) > 4*safetext.Keep+100 {
		t.Fatalf("error of %d bytes: want a bounded error", len(err.Error()))
	}
}
