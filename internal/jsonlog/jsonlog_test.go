package jsonlog

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"testing"
	"time"
)

// compact is an Appender, and a json.Marshaler for slog's handler.
type compact string

func (c compact) AppendJSON(b []byte) []byte   { return AppendMarshaled(b, string(c)) }
func (c compact) MarshalJSON() ([]byte, error) { return c.AppendJSON(nil), nil }

// both writes r with Handler and with slog's JSON handler (ReplaceAttr
// UTC, as the hook configured it before this package).
func both(t *testing.T, r slog.Record) (got, want []byte) {
	t.Helper()
	var g, w bytes.Buffer
	if err := New(&g, slog.LevelDebug).Handle(context.Background(), r.Clone()); err != nil {
		t.Fatal(err)
	}
	if err := slog.NewJSONHandler(&w, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: UTC}).Handle(context.Background(), r.Clone()); err != nil {
		t.Fatal(err)
	}
	return g.Bytes(), w.Bytes()
}

// FuzzHandler: whatever the text and numbers, Handler writes the bytes
// slog's JSON handler writes: quotes, control bytes, invalid UTF-8,
// U+2028, HTML characters, floats at both ends of encoding/json's 'f'
// range, times in any zone and any year.
func FuzzHandler(f *testing.F) {
	f.Add(int64(1764633600123456789), int64(0), "container allowed", "pod_name", "web-\"1\"\n\x1b[31m<&>", int64(-3), uint64(7), true, 1.234, int64(1500), "a\u2028b\xff")
	f.Add(int64(0), int64(4), "", "", "", int64(0), uint64(0), false, 1e-7, int64(0), "")
	f.Add(int64(-62135596800000000), int64(-4), "\t\r\b\f", "k\x00", "\x7f", int64(math.MinInt64), uint64(math.MaxUint64), false, 2e21, int64(-1), "\xe2\x80")
	f.Add(int64(253402300800000000000/1e9), int64(8), "m", "time", "v", int64(1), uint64(1), true, -0.0, int64(1), "x")
	f.Fuzz(func(t *testing.T, unixNano, level int64, msg, key, val string, i int64, u uint64, bl bool, fl float64, dur int64, s string) {
		tm := time.Unix(0, unixNano).In(time.FixedZone("X", int(level)*3600))
		if unixNano == 0 {
			tm = time.Time{}
		}
		r := slog.NewRecord(tm, slog.Level(level), msg, 0)
		r.AddAttrs(slog.String(key, val), slog.Int64("i", i), slog.Uint64("u", u), slog.Bool("b", bl),
			slog.Float64("f", fl), slog.Duration("d", time.Duration(dur)),
			slog.Any("list", []string{s, val}), slog.Any("none", []string(nil)), slog.Any("own", compact(s)))
		if level%3 == 0 {
			r.AddAttrs(slog.Group("g", slog.String("k", s))) // slog's handler writes it
		}
		got, want := both(t, r)
		if !bytes.Equal(got, want) {
			t.Fatalf("jsonlog wrote\n%s\nslog's JSON handler writes\n%s", got, want)
		}
	})
}

// TestHandlerWritesItself: the hook's records (strings, numbers, lists,
// the agents list) are written by Handler's own path, not handed to
// slog's: the reason it exists.
func TestHandlerWritesItself(t *testing.T) {
	for _, a := range []slog.Attr{slog.String("a", "b"), slog.Int("pid", 1), slog.Bool("x", true), slog.Float64("ms", 1.5),
		slog.Any("identity_conflict", []string{"c"}), slog.Any("agents", compact("x"))} {
		if !writes(a) {
			t.Errorf("%v: handed to slog's handler", a)
		}
	}
	for _, a := range []slog.Attr{slog.Group("g", slog.Int("a", 1)), slog.Any("m", map[string]int{}), slog.Float64("nan", math.NaN()),
		slog.Time("time", time.Now()), slog.Any("e", context.Canceled)} {
		if writes(a) {
			t.Errorf("%v: written by Handler, which would not write it as slog does", a)
		}
	}
}
