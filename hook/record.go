package hook

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// agentList is the record's "agents": one object per agent, written by
// MarshalJSON exactly as encoding/json writes []agentRecord (without HTML
// escaping, as slog's JSON handler asks it to), but without its
// reflection: encoding/json's first look at a struct type costs about
// 0.1 ms in a new process, and every invocation with an agents list is a
// new process. FuzzAgentListJSON holds the two to the same bytes.
type agentList []agentRecord

// MarshalJSON implements json.Marshaler.
func (l agentList) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 128*len(l)+2)
	b = append(b, '[')
	for i, r := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendJSONString(b, r.Name)
		b = append(b, `,"protocol":`...)
		b = appendJSONString(b, r.Protocol)
		b = append(b, `,"required":`...)
		b = strconv.AppendBool(b, r.Required)
		if r.Verdict != "" {
			b = append(b, `,"verdict":`...)
			b = appendJSONString(b, r.Verdict)
		}
		if r.ErrorKind != "" {
			b = append(b, `,"error_kind":`...)
			b = appendJSONString(b, r.ErrorKind)
		}
		if r.Error != "" {
			b = append(b, `,"error":`...)
			b = appendJSONString(b, r.Error)
		}
		b = append(b, `,"ms":`...)
		b = appendJSONFloat(b, r.MS)
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// appendJSONString appends s quoted as encoding/json quotes it with HTML
// escaping off: the short escapes, \u00XX for other control bytes,
// \ufffd for each byte of invalid UTF-8, and U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONFloat appends f as encoding/json writes a float64: 'f' format
// within [1e-6, 1e21), else 'e' with a two-digit exponent cut to one.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
