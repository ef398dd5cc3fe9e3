// Package safetext bounds and escapes text that came from outside the
// process (annotations, an agent's reason, names) before it is quoted in an
// error, a record, a stderr line or a terminal table: its cost stays linear
// and capped, and no control character reaches a reader.
package safetext

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Keep is how many bytes of an outside value a message quotes.
const Keep = 256

// Prefix returns s cut to at most n bytes, at a UTF-8 boundary when s is
// valid there, and whether it was cut.
func Prefix(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	cut := n
	for cut > 0 && n-cut < utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if !utf8.RuneStart(s[cut]) {
		cut = n // not UTF-8 here: cut at n
	}
	return s[:cut], true
}

// Cut returns s cut to its first n bytes, ending in "... (N bytes)" when it
// was cut, for a field whose encoder escapes it (JSON).
func Cut(s string, n int) string {
	p, cut := Prefix(s, n)
	if !cut {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", p, len(s))
}

// Quote quotes a value for a message: Go-quoted (so control characters and
// invalid UTF-8 are escaped), cut to its first Keep bytes, with the
// value's length when it was cut.
func Quote(s string) string {
	p, cut := Prefix(s, Keep)
	if !cut {
		return strconv.Quote(p)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(p), len(s))
}

// Escape returns s with every control character (C0, DEL, C1, and other
// non-printing runes such as bidi overrides) and every invalid UTF-8 byte
// written as a Go escape (\n, \t, \x1b, \u202e), so it stays on one line
// and writes nothing but text to a terminal. Printable text is unchanged.
func Escape(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case printable(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRune(r) // '\n', '\x1b', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// Line returns s escaped and cut so that it is at most max bytes, ending in
// "... (N bytes)" when it was cut.
func Line(s string, max int) string {
	e := Escape(s)
	if len(e) <= max {
		return e
	}
	tail := fmt.Sprintf("... (%d bytes)", len(s))
	if max <= len(tail) {
		p, _ := Prefix(e, max)
		return p
	}
	p, _ := Prefix(e, max-len(tail))
	// Never leave half an escape at the cut.
	if i := strings.LastIndexByte(p, '\\'); i >= 0 && i >= len(p)-6 {
		p = p[:i]
	}
	return p + tail
}

func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return utf8.ValidString(s) && allPrintable(s)
		}
	}
	return true
}

func allPrintable(s string) bool {
	for _, r := range s {
		if !printable(r) {
			return false
		}
	}
	return true
}

func printable(r rune) bool {
	return r == ' ' || (unicode.IsPrint(r) && !unicode.Is(unicode.Cf, r))
}
