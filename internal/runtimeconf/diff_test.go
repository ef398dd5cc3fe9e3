package runtimeconf

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// apply applies a unified diff made by Diff to a, as patch would.
func apply(t *testing.T, a, diff string) string {
	t.Helper()
	src := splitLines([]byte(a))
	lines := strings.SplitAfter(diff, "\n")
	var out []string
	next := 0 // the next line of src not yet copied
	for k := 2; k < len(lines) && lines[k] != ""; k++ {
		l := lines[k]
		if !strings.HasPrefix(l, "@@ ") {
			t.Fatalf("expected a hunk header, got %q in\n%s", l, diff)
		}
		var sa, na int
		r := strings.Fields(l)[1][1:]
		if _, err := fmt.Sscanf(r, "%d,%d", &sa, &na); err != nil {
			fmt.Sscanf(r, "%d", &sa)
			na = 1
		}
		start := sa - 1
		if na == 0 {
			start = sa
		}
		out = append(out, src[next:start]...)
		next = start
		for k+1 < len(lines) && lines[k+1] != "" && !strings.HasPrefix(lines[k+1], "@@ ") {
			k++
			l := lines[k]
			body := l[1:]
			if k+1 < len(lines) && lines[k+1] == "\\ No newline at end of file\n" {
				body = strings.TrimSuffix(body, "\n")
				k++
			}
			switch l[0] {
			case ' ':
				if src[next] != body {
					t.Fatalf("context %q does not match %q", body, src[next])
				}
				out = append(out, body)
				next++
			case '-':
				if src[next] != body {
					t.Fatalf("deletion %q does not match %q", body, src[next])
				}
				next++
			case '+':
				out = append(out, body)
			default:
				t.Fatalf("line %q", l)
			}
		}
	}
	return strings.Join(append(out, src[next:]...), "")
}

// TestDiffApplies: for many random edits, the diff applied to a gives b.
func TestDiffApplies(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"a\n", "b\n", "c\n", "\n", "[x]\n", "k = 1\n"}
	gen := func(n int) string {
		var s strings.Builder
		for range n {
			s.WriteString(words[r.IntN(len(words))])
		}
		if r.IntN(4) == 0 {
			return strings.TrimSuffix(s.String(), "\n") // no newline at the end
		}
		return s.String()
	}
	for range 2000 {
		a, b := gen(r.IntN(30)), gen(r.IntN(30))
		d := Diff("a", "b", []byte(a), []byte(b))
		if a == b {
			if d != "" {
				t.Fatalf("equal: %q", d)
			}
			continue
		}
		if got := apply(t, a, d); got != b {
			t.Fatalf("a %q\nb %q\ndiff\n%s\napplied %q", a, b, d, got)
		}
	}
}
