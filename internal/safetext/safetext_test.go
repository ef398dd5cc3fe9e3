package safetext

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain reason: ok":     "plain reason: ok",
		"two\nlines":           `two\nlines`,
		"tab\there":            `tab\there`,
		"\x1b[31mred\x1b[0m":   `\x1b[31mred\x1b[0m`,
		"cr\rover":             `cr\rover`,
		"del\x7f":              `del\x7f`,
		"c1\u0085next":         `c1\u0085next`,
		"bidi \u202eevil":      `bidi \u202eevil`,
		"bad \xff utf8":        `bad \xff utf8`,
		"ünïcode namespace 名前": "ünïcode namespace 名前",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQuoteIsBounded(t *testing.T) {
	for name, v := range map[string]string{
		"ascii":    strings.Repeat("a", 64<<10),
		"controls": strings.Repeat("\x00", 64<<10),
		"runes":    strings.Repeat("名", 30000),
		"invalid":  strings.Repeat("\xff", 64<<10),
	} {
		q := Quote(v)
		if len(q) > 4*Keep+32 || !strings.HasSuffix(q, "... ("+strconv.Itoa(len(v))+" bytes)") {
			t.Errorf("%s: Quote gave %d bytes ending %q", name, len(q), q[max(0, len(q)-30):])
		}
		if !utf8.ValidString(q) || strings.ContainsAny(q, "\n\r\x00") {
			t.Errorf("%s: Quote output is not one line of text", name)
		}
	}
	if got := Quote("short"); got != `"short"` {
		t.Errorf(`Quote("short") = %s`, got)
	}
}

func TestLine(t *testing.T) {
	for name, c := range map[string]struct {
		in  string
		max int
	}{
		"short":         {"denied: policy", 1024},
		"long":          {strings.Repeat("x", 40000), 1024},
		"long controls": {strings.Repeat("\n", 40000), 1024},
		"escape at cut": {strings.Repeat("a", 1000) + strings.Repeat("\x1b", 100), 1024},
		"multibyte cut": {strings.Repeat("é", 2000), 1024},
		"tiny max":      {strings.Repeat("x", 100), 8},
		"exactly max":   {strings.Repeat("y", 1024), 1024},
		"one over, ESC": {strings.Repeat("y", 1020) + "\x1b", 1024},
	} {
		got := Line(c.in, c.max)
		if len(got) > c.max {
			t.Errorf("%s: %d bytes, max %d", name, len(got), c.max)
		}
		if strings.ContainsAny(got, "\n\r\x1b") || !utf8.ValidString(got) {
			t.Errorf("%s: not one line of text: %q", name, got)
		}
		if strings.Contains(got, "... (") {
			body := got[:strings.Index(got, "... (")]
			if strings.HasSuffix(body, `\`) || strings.HasSuffix(body, `\x1`) || strings.HasSuffix(body, `\x`) {
				t.Errorf("%s: half an escape before the cut: %q", name, body[len(body)-8:])
			}
		}
	}
	if got := Line("ok", 1024); got != "ok" {
		t.Errorf("Line(ok) = %q", got)
	}
}

func FuzzLine(f *testing.F) {
	f.Add("a\nb", 64)
	f.Add(strings.Repeat("\x1b", 300), 100)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		got := Line(s, max)
		if len(got) > max {
			t.Fatalf("Line(%q, %d) = %d bytes", s, max, len(got))
		}
		if strings.ContainsAny(got, "\n\r") {
			t.Fatalf("Line(%q) has a line break: %q", s, got)
		}
		if e := Escape(s); strings.ContainsAny(e, "\n\r\x1b\x00") || !utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q", s, e)
		}
	})
}

func TestCut(t *testing.T) {
	if got := Cut("short", 8); got != "short" {
		t.Errorf("Cut(short) = %q", got)
	}
	if got := Cut(strings.Repeat("é", 10), 5); got != "éé... (20 bytes)" {
		t.Errorf("Cut at a rune = %q", got)
	}
}
