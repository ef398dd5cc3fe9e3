package hook

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// FuzzAgentListJSON: agentList writes the bytes encoding/json writes for
// the same records (HTML escaping off, as slog asks), whatever the text an
// agent's error brings: quotes, control bytes, invalid UTF-8, U+2028.
func FuzzAgentListJSON(f *testing.F) {
	f.Add("tetragon", "podhook.v1", true, "deny", "denied", "denied by agent: \"no\"\n\x1b[31m", 1.234)
	f.Add("a", "tetragon", false, "", "unreachable", "dial unix /run/x.sock: \xff\xfe\u2028\u2029<&>", 0.0)
	f.Add("", "", false, "", "", "", 1e-7)
	f.Add("b", "x", true, "allow", "", "\x00\x7f\t\r\b\f", 2e21)
	f.Fuzz(func(t *testing.T, name, protocol string, required bool, verdict, kind, msg string, ms float64) {
		if math.IsNaN(ms) || math.IsInf(ms, 0) {
			return // encoding/json refuses them; durations are never either
		}
		l := agentList{
			{Name: name, Protocol: protocol, Required: required, Verdict: verdict, ErrorKind: kind, Error: msg, MS: ms},
			{Name: msg, Protocol: name, MS: -ms},
		}
		got, err := l.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode([]agentRecord(l)); err != nil {
			t.Fatal(err)
		}
		if w := bytes.TrimSuffix(want.Bytes(), []byte("\n")); !bytes.Equal(got, w) {
			t.Fatalf("agentList wrote\n%s\nencoding/json writes\n%s", got, w)
		}
	})
}
