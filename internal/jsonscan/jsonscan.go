package jsonscan

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/podhook/podhook/internal/safetext"
)

// A document is decoded in one pass that checks the whole of it and hands
// each member's bytes to the decoder that needs them (an OCI config.json's
// annotations to StringMap, podhook's config file's fields to Parse there).
// encoding/json alone scans a document three times (validation, decoding,
// and again for a member with its own UnmarshalJSON) at a few ns per byte;
// a pod's annotations can reach 256 KB, and CRI-O copies them into every
// container's config.json.

// ErrJSON marks a document that is not valid JSON.
var ErrJSON = errors.New("invalid JSON")

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// Members checks that b is one valid JSON value and, when it is an object,
// calls fn with each member's key (decoded) and value (raw, valid JSON;
// escaped when it is a string holding an escape), in document order. A top-level null has no members; another non-object
// value is an error, as encoding/json gives for a struct.
func Members(b []byte, fn MemberFunc) error {
	return container(b, '{', "object", func(s *scanner) error { return s.object(1, fn) })
}

// ElementFunc gets an array's element: raw, valid JSON; escaped when it is
// a string holding an escape.
type ElementFunc func(raw []byte, escaped bool) error

// Elements checks that b is one valid JSON value and, when it is an array,
// calls fn with each element in order. A top-level null has no elements;
// another value is an error, as encoding/json gives for a slice.
func Elements(b []byte, fn ElementFunc) error {
	return container(b, '[', "array", func(s *scanner) error { return s.array(1, fn) })
}

// container checks that b is one valid JSON value: one that opens with
// open goes to body; null has nothing in it; another value is an error
// naming what belongs there (what).
func container(b []byte, open byte, what string, body func(*scanner) error) error {
	s := scanner{b: b}
	s.ws()
	if s.i >= len(b) {
		return fmt.Errorf("%w: empty", ErrJSON)
	}
	switch c := b[s.i]; {
	case c == open:
		if err := body(&s); err != nil {
			return err
		}
	case c == 'n':
		if err := s.value(0); err != nil {
			return err
		}
	default:
		start := s.i
		if err := s.value(0); err != nil {
			return err
		}
		return fmt.Errorf("%w: a %s where an %s belongs", ErrJSON, Kind(b[start]), what)
	}
	s.ws()
	if s.i != len(b) {
		return s.fail("after the top-level value")
	}
	return nil
}

// Kind names the JSON type of a value starting with c.
func Kind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// MemberFunc gets an object's member.
type MemberFunc func(key string, raw []byte, escaped bool) error

// scanner checks JSON as RFC 8259 (and encoding/json) defines it.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(what string) error {
	if s.i >= len(s.b) {
		return fmt.Errorf("%w: unexpected end %s", ErrJSON, what)
	}
	return fmt.Errorf("%w: unexpected %q at offset %d %s", ErrJSON, s.b[s.i], s.i, what)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) error {
	_, err := s.anyValue(depth)
	return err
}

// anyValue checks the value at s.i; escaped reports a string with an
// escape.
func (s *scanner) anyValue(depth int) (escaped bool, err error) {
	if depth > maxDepth {
		return false, fmt.Errorf("%w: nested deeper than %d", ErrJSON, maxDepth)
	}
	s.ws()
	if s.i >= len(s.b) {
		return false, s.fail("in a value")
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return false, s.object(depth+1, nil)
	case c == '[':
		return false, s.array(depth+1, nil)
	case c == '"':
		return s.str()
	case c == 't':
		return false, s.literal("true")
	case c == 'f':
		return false, s.literal("false")
	case c == 'n':
		return false, s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return false, s.number()
	}
	return false, s.fail("in a value")
}

// object checks an object at s.i; fn, when not nil, gets each member.
func (s *scanner) object(depth int, fn MemberFunc) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrJSON, maxDepth)
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.fail("where a key belongs")
		}
		kstart := s.i
		escaped, err := s.str()
		if err != nil {
			return err
		}
		kraw := s.b[kstart:s.i]
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.fail("after a key")
		}
		s.i++
		s.ws()
		vstart := s.i
		vescaped, err := s.anyValue(depth)
		if err != nil {
			return err
		}
		if fn != nil {
			key, err := String(kraw, escaped)
			if err != nil {
				return err
			}
			if err := fn(key, s.b[vstart:s.i], vescaped); err != nil {
				return err
			}
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("in an object")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.fail("in an object")
		}
	}
}

func (s *scanner) array(depth int, fn ElementFunc) error {
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		start := s.i
		escaped, err := s.anyValue(depth)
		if err != nil {
			return err
		}
		if fn != nil {
			if err := fn(s.b[start:s.i], escaped); err != nil {
				return err
			}
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("in an array")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.fail("in an array")
		}
	}
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.fail("in a literal")
	}
	s.i += len(lit)
	return nil
}

func (s *scanner) number() error {
	b, i := s.b, s.i
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		digits()
	default:
		s.i = i
		return s.fail("in a number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			s.i = i
			return s.fail("in a number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			s.i = i
			return s.fail("in a number")
		}
	}
	s.i = i
	return nil
}

// Eight bytes at a time: the lanes of x holding a byte below 0x20, a '"'
// or a '\\' (the only bytes that end a plain run of string content).
const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

func special(x uint64) uint64 {
	lt := (x - 0x20*lo8) &^ x
	q := x ^ '"'*lo8
	q = (q - lo8) &^ q
	bs := x ^ '\\'*lo8
	bs = (bs - lo8) &^ bs
	return (lt | q | bs) & hi8
}

// str checks the string at s.i and moves past it; escaped reports whether
// it holds an escape.
func (s *scanner) str() (escaped bool, err error) {
	b := s.b
	i := s.i + 1
	for {
		for i+8 <= len(b) {
			if m := special(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(b) {
			s.i = i
			return escaped, s.fail("in a string")
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				s.i = i + 1
				return escaped, s.fail("in an escape")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					s.i = i + 2
					return escaped, s.fail("in a \\u escape")
				}
				i += 6
			default:
				s.i = i + 1
				return escaped, s.fail("in an escape")
			}
		case c < 0x20:
			s.i = i
			return escaped, s.fail("in a string (a control character)")
		default:
			i++
		}
	}
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// String decodes a valid JSON string token (quotes included) as
// encoding/json does: a plain one is its bytes; one with an escape or
// invalid UTF-8 (which encoding/json replaces with U+FFFD) goes through
// encoding/json itself.
func String(tok []byte, escaped bool) (string, error) {
	body := tok[1 : len(tok)-1]
	if !escaped && utf8.Valid(body) {
		return string(body), nil
	}
	var v string
	if err := json.Unmarshal(tok, &v); err != nil {
		return "", fmt.Errorf("%w: %w", ErrJSON, err)
	}
	return v, nil
}

// ErrNotString marks a member of a string map whose value is not a string.
var ErrNotString = errors.New("value is not a string")

// StringMap decodes b, a valid JSON value, as encoding/json decodes
// into map[string]string: null is a nil map, a null member value is "",
// and the last of duplicated keys wins. dups are the keys seen more than
// once.
func StringMap(b []byte) (m map[string]string, dups []string, err error) {
	s := scanner{b: b}
	s.ws()
	switch {
	case s.i < len(b) && b[s.i] == 'n':
		if err := s.literal("null"); err != nil {
			return nil, nil, err
		}
	case s.i < len(b) && b[s.i] == '{':
		m = map[string]string{}
		if err := s.stringMembers(m, &dups); err != nil {
			return nil, nil, err
		}
	default:
		if err := s.value(0); err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: annotations are not an object", ErrNotString)
	}
	s.ws()
	if s.i != len(b) {
		return nil, nil, s.fail("after the annotations")
	}
	return m, dups, nil
}

// stringMembers decodes the object at s.i into m.
func (s *scanner) stringMembers(m map[string]string, dups *[]string) error {
	return s.object(1, func(key string, raw []byte, escaped bool) error {
		var v string
		switch raw[0] {
		case '"':
			var err error
			if v, err = String(raw, escaped); err != nil {
				return err
			}
		case 'n':
		default:
			return fmt.Errorf("%w: %s", ErrNotString, safetext.Quote(key))
		}
		if _, seen := m[key]; seen && !slices.Contains(*dups, key) {
			*dups = append(*dups, key)
		}
		m[key] = v
		return nil
	})
}

// Int decodes an integer value as encoding/json decodes it into an int of
// the given bits: a number literal with no fraction or exponent, within
// range; ok is false for null (encoding/json leaves the int as it is).
func Int(raw []byte, bitSize int) (v int64, ok bool, err error) {
	switch {
	case raw[0] == 'n':
		return 0, false, nil
	case raw[0] != '-' && (raw[0] < '0' || raw[0] > '9'):
		return 0, false, TypeError(raw, "an integer")
	}
	v, err = strconv.ParseInt(string(raw), 10, bitSize)
	if err != nil {
		return 0, false, fmt.Errorf("%w: cannot unmarshal number %s into an integer", ErrType, raw)
	}
	return v, true, nil
}

// ErrType marks a value of the wrong type for where it is decoded.
var ErrType = errors.New("json: wrong type")

// TypeError is ErrType for raw, a value of the wrong type where want (a
// string, a list of mounts, ...) belongs.
func TypeError(raw []byte, want string) error {
	return fmt.Errorf("%w: cannot unmarshal %s into %s", ErrType, Kind(raw[0]), want)
}

// SetString decodes a string value into *dst as encoding/json does: null
// leaves it; another type is an error.
func SetString(dst *string, raw []byte, escaped bool) error {
	v, ok, err := OptString(raw, escaped)
	if ok {
		*dst = v
	}
	return err
}

// Bool decodes a boolean value; ok is false for null.
func Bool(raw []byte) (v, ok bool, err error) {
	switch string(raw) {
	case "null":
		return false, false, nil
	case "true", "false":
		return raw[0] == 't', true, nil
	}
	return false, false, TypeError(raw, "a boolean")
}

// OptString decodes a string value; ok is false for null (encoding/json
// leaves a string as it is); another type is an error.
func OptString(raw []byte, escaped bool) (v string, ok bool, err error) {
	switch raw[0] {
	case 'n':
		return "", false, nil
	case '"':
		v, err = String(raw, escaped)
		return v, err == nil, err
	}
	return "", false, TypeError(raw, "a string")
}

// Strings decodes a list of strings into dst as encoding/json decodes into
// a []string: null sets it to nil; otherwise the elements go into dst's own
// array (a list decoded again, for a duplicated key, reuses it), a null
// element leaving what is there; an empty list is an empty, non-nil slice.
func Strings(raw []byte, dst *[]string) error {
	if raw[0] == 'n' {
		*dst = nil
		return nil
	}
	if raw[0] != '[' {
		return TypeError(raw, "a list of strings")
	}
	out := (*dst)[:0]
	err := Elements(raw, func(e []byte, escaped bool) error {
		out = Extend(out)
		v, ok, err := OptString(e, escaped)
		if ok {
			out[len(out)-1] = v
		}
		return err
	})
	if len(out) == 0 {
		out = []string{}
	}
	*dst = out
	return err
}

// Extend adds an element to s as encoding/json does when it decodes into
// a slice: within the capacity, the element already there; past it, a zero
// one.
func Extend[T any](s []T) []T {
	if len(s) < cap(s) {
		return s[:len(s)+1]
	}
	var zero T
	return append(s, zero)
}

// Lookup finds key among n field names: an exact match first, else one
// that matches case-insensitively (as encoding/json matches a struct
// field); -1 for none.
func Lookup(key string, n int, name func(int) string) int {
	fold := -1
	for i := range n {
		if name(i) == key {
			return i
		}
		if fold < 0 && strings.EqualFold(name(i), key) {
			fold = i
		}
	}
	return fold
}
