package runtimeconf

import (
	"bytes"
	"fmt"
	"strings"
)

// Diff returns a unified diff (3 lines of context; changes up to 6 lines
// apart share a hunk) from a to b, or "" when they are equal. It is the
// diff setup and install print before they write a runtime's config or
// podhook's own: files of hundreds of lines, compared by a longest common
// subsequence of lines. It is written here rather than taken from a diff
// library, which the hook would link and initialise at every container
// start for a command it never runs.
func Diff(nameA, nameB string, a, b []byte) string {
	if bytes.Equal(a, b) {
		return ""
	}
	x, y := splitLines(a), splitLines(b)
	ops := editScript(x, y)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", nameA, nameB)
	const context = 3
	for i := 0; i < len(ops); {
		// Find the next change; the hunk starts context lines before it.
		for i < len(ops) && ops[i].kind == ' ' {
			i++
		}
		if i == len(ops) {
			break
		}
		start := max(i-context, 0)
		// Extend over changes whose gap of equal lines is at most twice
		// the context.
		end := i
		for {
			for end < len(ops) && ops[end].kind != ' ' {
				end++
			}
			gap := end
			for gap < len(ops) && ops[gap].kind == ' ' {
				gap++
			}
			if gap == len(ops) || gap-end > 2*context {
				break
			}
			end = gap
		}
		stop := min(end+context, len(ops))
		writeHunk(&out, ops[start:stop], x, y)
		i = stop
	}
	return out.String()
}

// line is one line of a file, its newline kept (the last may lack one).
type line = string

func splitLines(b []byte) []line {
	var out []line
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i+1]))
		b = b[i+1:]
	}
	return out
}

// op is one step of the edit script: ' ' keeps x[i] (= y[j]), '-' deletes
// x[i], '+' inserts y[j].
type op struct {
	kind byte
	i, j int
}

// editScript is a shortest edit script from x to y, from the table of
// longest common subsequences of their suffixes; within a change,
// deletions come before insertions.
func editScript(x, y []line) []op {
	n, m := len(x), len(y)
	// lcs[i][j]: the longest common subsequence of x[i:] and y[j:].
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			ops = append(ops, op{' ', i, j})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', i, j})
			i++
		default:
			ops = append(ops, op{'+', i, j})
			j++
		}
	}
	return ops
}

// writeHunk writes one hunk: its header (a count of 1 left out, as diff
// writes it) and its lines.
func writeHunk(w *strings.Builder, ops []op, x, y []line) {
	var na, nb int
	for _, o := range ops {
		if o.kind != '+' {
			na++
		}
		if o.kind != '-' {
			nb++
		}
	}
	sa, sb := ops[0].i+1, ops[0].j+1
	if na == 0 {
		sa--
	}
	if nb == 0 {
		sb--
	}
	fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(sa, na), hunkRange(sb, nb))
	for _, o := range ops {
		text := ""
		switch o.kind {
		case '+':
			text = y[o.j]
		default:
			text = x[o.i]
		}
		w.WriteByte(o.kind)
		w.WriteString(text)
		if !strings.HasSuffix(text, "\n") {
			w.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

func hunkRange(start, n int) string {
	if n == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}
