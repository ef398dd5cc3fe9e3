package agentclient

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podhook/podhook/agentclient/agentv1"
)

// podhook's own API on the wire, encoded by hand with protowire byte for
// byte as protobuf-go's deterministic Marshal writes it (fields in number
// order, zero scalars left out, map entries sorted by key, both their key
// and value written; tested against it), and its responses decoded as
// proto.Unmarshal decodes them. A hook makes one call per process:
// protobuf-go builds its reflection tables for a message type on that type's
// first use, which for agentv1's request cost more than the call itself
// (measured: make breakdown). The agentv1 types stay the API; only their
// encoding is done here.

// AppendCreateRequest appends r's encoding to b.
func AppendCreateRequest(b []byte, r *agentv1.CreateContainerRequest) []byte {
	b = appendRequest(b, int32(r.ProtocolVersion), r.Stage, r.HookStartTime, r.Container, r.Pod, r.Identity)
	return appendBool(b, 7, r.AlreadyRunning)
}

// AppendStopRequest appends r's encoding to b.
func AppendStopRequest(b []byte, r *agentv1.StopContainerRequest) []byte {
	return appendRequest(b, int32(r.ProtocolVersion), r.Stage, r.HookStartTime, r.Container, r.Pod, r.Identity)
}

// SizeCreateRequest is the encoded size of r, counted without encoding it.
func SizeCreateRequest(r *agentv1.CreateContainerRequest) int {
	return sizeRequest(int32(r.ProtocolVersion), r.Stage, r.HookStartTime, r.Container, r.Pod, r.Identity) + sizeBool(7, r.AlreadyRunning)
}

// SizeStopRequest is the encoded size of r.
func SizeStopRequest(r *agentv1.StopContainerRequest) int {
	return sizeRequest(int32(r.ProtocolVersion), r.Stage, r.HookStartTime, r.Container, r.Pod, r.Identity)
}

// SizeMount is the encoded size of m.
func SizeMount(m *agentv1.Mount) int {
	if m == nil {
		return 0
	}
	return sizeString(1, m.Destination) + sizeString(2, m.Type) + sizeString(3, m.Source) + sizeStrings(4, m.Options)
}

func appendRequest(b []byte, version int32, stage string, start *timestamppb.Timestamp, c *agentv1.Container, p *agentv1.Pod, id *agentv1.Identity) []byte {
	b = appendInt32(b, 1, version)
	b = appendString(b, 2, stage)
	if start != nil {
		b = appendLen(b, 3, sizeTimestamp(start))
		if start.Seconds != 0 {
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(start.Seconds))
		}
		b = appendInt32(b, 2, start.Nanos)
	}
	if c != nil {
		b = appendLen(b, 4, sizeContainer(c))
		b = appendContainer(b, c)
	}
	if p != nil {
		b = appendLen(b, 5, sizePod(p))
		b = appendString(b, 1, p.Name)
		b = appendString(b, 2, p.Namespace)
		b = appendString(b, 3, p.Uid)
		b = appendString(b, 4, p.SandboxId)
	}
	if id != nil {
		b = appendLen(b, 6, sizeIdentity(id))
		b = appendBool(b, 1, id.Trusted)
		b = appendStrings(b, 2, id.Conflicts)
		b = appendString(b, 3, id.Source)
	}
	return b
}

func sizeRequest(version int32, stage string, start *timestamppb.Timestamp, c *agentv1.Container, p *agentv1.Pod, id *agentv1.Identity) int {
	n := sizeInt32(1, version) + sizeString(2, stage)
	if start != nil {
		n += sizeLen(3, sizeTimestamp(start))
	}
	if c != nil {
		n += sizeLen(4, sizeContainer(c))
	}
	if p != nil {
		n += sizeLen(5, sizePod(p))
	}
	if id != nil {
		n += sizeLen(6, sizeIdentity(id))
	}
	return n
}

func sizeTimestamp(t *timestamppb.Timestamp) int {
	n := sizeInt32(2, t.Nanos)
	if t.Seconds != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(t.Seconds))
	}
	return n
}

func sizePod(p *agentv1.Pod) int {
	return sizeString(1, p.Name) + sizeString(2, p.Namespace) + sizeString(3, p.Uid) + sizeString(4, p.SandboxId)
}

func sizeIdentity(id *agentv1.Identity) int {
	return sizeBool(1, id.Trusted) + sizeStrings(2, id.Conflicts) + sizeString(3, id.Source)
}

// sortedKeys are a map's keys in the order protobuf-go's deterministic
// encoding writes its entries.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sizeEntry(k, v string) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(len(v))
}

func sizeContainer(c *agentv1.Container) int {
	n := sizeString(1, c.Id) + sizeString(2, c.Name) + sizeString(3, c.Type) + sizeString(4, c.Image) + sizeString(5, c.ImageRef) +
		sizeString(6, c.Runtime) + sizeInt32(7, c.Pid) + sizeString(8, c.Bundle) + sizeString(9, c.Rootfs) + sizeString(10, c.CgroupsPath) +
		sizeString(11, c.CgroupsPathExpanded)
	for k, v := range c.Annotations {
		n += sizeLen(12, sizeEntry(k, v))
	}
	for _, m := range c.Mounts {
		n += sizeLen(13, SizeMount(m))
	}
	return n + sizeStrings(14, c.Args) + sizeString(15, c.Status) + sizeStrings(16, c.Truncated) + sizeString(17, c.SpecError)
}

func appendContainer(b []byte, c *agentv1.Container) []byte {
	b = appendString(b, 1, c.Id)
	b = appendString(b, 2, c.Name)
	b = appendString(b, 3, c.Type)
	b = appendString(b, 4, c.Image)
	b = appendString(b, 5, c.ImageRef)
	b = appendString(b, 6, c.Runtime)
	b = appendInt32(b, 7, c.Pid)
	b = appendString(b, 8, c.Bundle)
	b = appendString(b, 9, c.Rootfs)
	b = appendString(b, 10, c.CgroupsPath)
	b = appendString(b, 11, c.CgroupsPathExpanded)
	for _, k := range sortedKeys(c.Annotations) {
		v := c.Annotations[k]
		b = appendLen(b, 12, sizeEntry(k, v))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	for _, m := range c.Mounts {
		b = appendLen(b, 13, SizeMount(m))
		if m != nil {
			b = appendString(b, 1, m.Destination)
			b = appendString(b, 2, m.Type)
			b = appendString(b, 3, m.Source)
			b = appendStrings(b, 4, m.Options)
		}
	}
	b = appendStrings(b, 14, c.Args)
	b = appendString(b, 15, c.Status)
	b = appendStrings(b, 16, c.Truncated)
	return appendString(b, 17, c.SpecError)
}

// appendLen appends the tag and length of a message field of n bytes.
func appendLen(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}

func sizeLen(num protowire.Number, n int) int { return protowire.SizeTag(num) + protowire.SizeBytes(n) }

func appendString(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func sizeString(num protowire.Number, v string) int {
	if v == "" {
		return 0
	}
	return sizeLen(num, len(v))
}

// appendStrings appends a repeated string field: every element, empty
// ones too.
func appendStrings(b []byte, num protowire.Number, vs []string) []byte {
	for _, v := range vs {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	return b
}

func sizeStrings(num protowire.Number, vs []string) int {
	n := 0
	for _, v := range vs {
		n += sizeLen(num, len(v))
	}
	return n
}

func appendInt32(b []byte, num protowire.Number, v int32) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(int64(v)))
}

func sizeInt32(num protowire.Number, v int32) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(uint64(int64(v)))
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, 1)
}

func sizeBool(num protowire.Number, v bool) int {
	if !v {
		return 0
	}
	return protowire.SizeTag(num) + 1
}

// ParseCreateResponse decodes a CreateContainerResponse as proto.Unmarshal
// does: the last of a repeated field wins, a field of the wrong wire type
// is an unknown field (skipped), a reason that is not UTF-8 is an error.
func ParseCreateResponse(b []byte) (*agentv1.CreateContainerResponse, error) {
	resp := &agentv1.CreateContainerResponse{}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			x, _ := protowire.ConsumeVarint(v)
			resp.Verdict = agentv1.Verdict(int32(x))
		case num == 2 && typ == protowire.BytesType:
			s, _ := protowire.ConsumeBytes(v)
			if !utf8.Valid(s) {
				return fmt.Errorf("reason: invalid UTF-8")
			}
			resp.Reason = string(s)
		}
		return nil
	})
	return resp, err
}

// checkEmpty checks that b is a well-formed message (StopContainerResponse
// has no fields: everything in it is unknown).
func checkEmpty(b []byte) error {
	return fields(b, func(protowire.Number, protowire.Type, []byte) error { return nil })
}

// fields calls fn with each field of message b: its number, wire type and
// the bytes of its value (as protowire's Consume* for that type reads
// them).
func fields(b []byte, fn func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return fmt.Errorf("field number %d out of range", num)
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		if err := fn(num, typ, b[:m]); err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}
