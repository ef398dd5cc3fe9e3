package jsonlog

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Appender is a value that writes itself as compact JSON, as encoding/json
// would marshal it. A record's slog.Any value of this kind is written
// without encoding/json.
type Appender interface {
	AppendJSON(b []byte) []byte
}

// Handler writes one JSON object per record, as slog.NewJSONHandler with
// ReplaceAttr converting the record's time to UTC writes it: the same
// bytes, in the same order. slog's own handler sends every float and
// every slog.Any value through encoding/json, whose first use of a type
// costs tens of microseconds in a new process, and the hook is a new
// process for every container. Records with something this handler does
// not write itself (a group, a LogValuer, an Any value other than a
// []string or an Appender, an attribute named "time") go to slog's
// handler whole, so the output never differs.
type Handler struct {
	w     io.Writer
	mu    *sync.Mutex
	level slog.Leveler
	std   slog.Handler
}

// New returns a Handler writing to w, records below level dropped.
func New(w io.Writer, level slog.Leveler) *Handler {
	return &Handler{w: w, mu: new(sync.Mutex), level: level,
		std: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: UTC})}
}

// UTC is the ReplaceAttr whose output Handler writes: the record's time in
// UTC (records compare across hosts, and local time would load the time
// zone database at every container start). Another attribute named "time"
// that holds a time is converted too, as slog passes it the same way; one
// that holds anything else is left as it is.
func UTC(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 && a.Value.Kind() == slog.KindTime {
		a.Value = slog.TimeValue(a.Value.Time().UTC())
	}
	return a
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool {
	min := slog.LevelInfo
	if h.level != nil {
		min = h.level.Level()
	}
	return l >= min
}

// WithAttrs implements slog.Handler, with slog's own handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler { return h.std.WithAttrs(attrs) }

// WithGroup implements slog.Handler, with slog's own handler.
func (h *Handler) WithGroup(name string) slog.Handler { return h.std.WithGroup(name) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	own := true
	r.Attrs(func(a slog.Attr) bool {
		own = writes(a)
		return own
	})
	if !own {
		return h.std.Handle(ctx, r)
	}
	b := make([]byte, 0, 1024)
	b = append(b, '{')
	if !r.Time.IsZero() {
		t := r.Time.Round(0).UTC()
		if y := t.Year(); y < 0 || y >= 10000 {
			return h.std.Handle(ctx, r) // slog's own error text
		}
		b = append(b, `"time":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `",`...)
	}
	b = append(b, `"level":`...)
	b = AppendString(b, r.Level.String())
	b = append(b, `,"msg":`...)
	b = AppendString(b, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if a.Equal(slog.Attr{}) {
			return true
		}
		b = append(b, ',')
		b = AppendString(b, a.Key)
		b = append(b, ':')
		b = appendValue(b, a.Value)
		return true
	})
	b = append(b, '}', '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(b)
	return err
}

// writes reports whether Handle writes a itself.
func writes(a slog.Attr) bool {
	if a.Key == slog.TimeKey {
		return false // UTC would apply to it
	}
	switch a.Value.Kind() {
	case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindBool, slog.KindDuration:
		return true
	case slog.KindFloat64:
		f := a.Value.Float64()
		return !math.IsNaN(f) && !math.IsInf(f, 0) // encoding/json's error text
	case slog.KindAny:
		switch a.Value.Any().(type) {
		case Appender, []string:
			return true
		}
	}
	return false
}

func appendValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return AppendString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return strconv.AppendInt(b, int64(v.Duration()), 10)
	case slog.KindFloat64:
		return AppendFloat(b, v.Float64())
	}
	switch x := v.Any().(type) {
	case Appender:
		return x.AppendJSON(b)
	case []string:
		if x == nil {
			return append(b, "null"...)
		}
		b = append(b, '[')
		for i, s := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendMarshaled(b, s)
		}
		return append(b, ']')
	}
	panic("jsonlog: a value Handle does not write") // writes said it does
}

const hex = "0123456789abcdef"

// AppendString appends s quoted as slog's JSON handler quotes a string:
// \n, \r and \t, \u00XX for other control bytes, \ufffd for each byte
// of invalid UTF-8, U+2028 and U+2029 escaped, HTML characters not.
func AppendString(b []byte, s string) []byte { return appendQuoted(b, s, false) }

// AppendMarshaled appends s quoted as encoding/json marshals a string with
// HTML escaping off (as slog asks it to): AppendString's rules, with \b
// and \f for those two.
func AppendMarshaled(b []byte, s string) []byte { return appendQuoted(b, s, true) }

func appendQuoted(b []byte, s string, shortBF bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b' && shortBF:
				b = append(b, '\\', 'b')
			case c == '\f' && shortBF:
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendFloat appends f as encoding/json marshals a float64 (slog's JSON
// handler asks encoding/json for floats): 'f' format within [1e-6, 1e21),
// else 'e' with a two-digit negative exponent cut to one. f is neither NaN
// nor infinite.
func AppendFloat(b []byte, f float64) []byte {
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
