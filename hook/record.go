package hook

import (
	"strconv"

	"github.com/podhook/podhook/internal/jsonlog"
)

// agentList is the record's "agents": one object per agent, written
// exactly as encoding/json writes []agentRecord (without HTML escaping, as
// slog's JSON handler asks it to), but without its reflection:
// encoding/json's first look at a struct type costs about 0.1 ms in a new
// process, and every invocation with an agents list is a new process.
// FuzzAgentListJSON holds the two to the same bytes.
type agentList []agentRecord

// MarshalJSON implements json.Marshaler.
func (l agentList) MarshalJSON() ([]byte, error) { return l.AppendJSON(nil), nil }

// AppendJSON implements jsonlog.Appender.
func (l agentList) AppendJSON(b []byte) []byte {
	b = append(b, '[')
	for i, r := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = jsonlog.AppendMarshaled(b, r.Name)
		b = append(b, `,"protocol":`...)
		b = jsonlog.AppendMarshaled(b, r.Protocol)
		b = append(b, `,"required":`...)
		b = strconv.AppendBool(b, r.Required)
		if r.Verdict != "" {
			b = append(b, `,"verdict":`...)
			b = jsonlog.AppendMarshaled(b, r.Verdict)
		}
		if r.ErrorKind != "" {
			b = append(b, `,"error_kind":`...)
			b = jsonlog.AppendMarshaled(b, r.ErrorKind)
		}
		if r.Error != "" {
			b = append(b, `,"error":`...)
			b = jsonlog.AppendMarshaled(b, r.Error)
		}
		b = append(b, `,"ms":`...)
		b = jsonlog.AppendFloat(b, r.MS)
		b = append(b, '}')
	}
	return append(b, ']')
}
