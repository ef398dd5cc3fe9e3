package hook

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"unicode/utf8"

	"github.com/podhook/podhook/internal/safetext"
)

// config.json is decoded in one pass that checks the whole document and
// hands each top-level member's bytes to the decoder that needs them:
// encoding/json for the small members, decodeStrings for annotations.
// encoding/json alone scans a document three times (validation, decoding,
// and again for a member with its own UnmarshalJSON) at a few ns per byte;
// a pod's annotations can reach 256 KB, and CRI-O copies them into every
// container's config.json.

// errJSON marks a document that is not valid JSON.
var errJSON = errors.New("invalid JSON")

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// members checks that b is one valid JSON value and, when it is an object,
// calls fn with each member's key (decoded) and value (raw, valid JSON;
// escaped when it is a string holding an escape), in document order. A top-level null has no members; another non-object
// value is an error, as encoding/json gives for a struct.
func members(b []byte, fn memberFunc) error {
	s := scanner{b: b}
	s.ws()
	if s.i >= len(b) {
		return fmt.Errorf("%w: empty", errJSON)
	}
	switch c := b[s.i]; {
	case c == '{':
		if err := s.object(1, fn); err != nil {
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
		return fmt.Errorf("%w: a %s where an object belongs", errJSON, kind(b[start]))
	}
	s.ws()
	if s.i != len(b) {
		return s.fail("after the top-level value")
	}
	return nil
}

func kind(c byte) string {
	switch c {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

// memberFunc gets an object's member.
type memberFunc func(key string, raw []byte, escaped bool) error

// scanner checks JSON as RFC 8259 (and encoding/json) defines it.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(what string) error {
	if s.i >= len(s.b) {
		return fmt.Errorf("%w: unexpected end %s", errJSON, what)
	}
	return fmt.Errorf("%w: unexpected %q at offset %d %s", errJSON, s.b[s.i], s.i, what)
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
		return false, fmt.Errorf("%w: nested deeper than %d", errJSON, maxDepth)
	}
	s.ws()
	if s.i >= len(s.b) {
		return false, s.fail("in a value")
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return false, s.object(depth+1, nil)
	case c == '[':
		return false, s.array(depth + 1)
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
func (s *scanner) object(depth int, fn memberFunc) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", errJSON, maxDepth)
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
			key, err := decodeString(kraw, escaped)
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

func (s *scanner) array(depth int) error {
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		if err := s.value(depth); err != nil {
			return err
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

// decodeString decodes a valid JSON string token (quotes included) as
// encoding/json does: a plain one is its bytes; one with an escape or
// invalid UTF-8 (which encoding/json replaces with U+FFFD) goes through
// encoding/json itself.
func decodeString(tok []byte, escaped bool) (string, error) {
	body := tok[1 : len(tok)-1]
	if !escaped && utf8.Valid(body) {
		return string(body), nil
	}
	var v string
	if err := json.Unmarshal(tok, &v); err != nil {
		return "", fmt.Errorf("%w: %w", errJSON, err)
	}
	return v, nil
}

// errNotString marks an annotation whose value is not a string.
var errNotString = errors.New("annotation value is not a string")

// decodeStrings decodes b, a valid JSON value, as encoding/json decodes
// into map[string]string: null is a nil map, a null member value is "",
// and the last of duplicated keys wins. dups are the keys seen more than
// once.
func decodeStrings(b []byte) (m map[string]string, dups []string, err error) {
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
		return nil, nil, fmt.Errorf("%w: annotations are not an object", errNotString)
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
			if v, err = decodeString(raw, escaped); err != nil {
				return err
			}
		case 'n':
		default:
			return fmt.Errorf("%w: %s", errNotString, safetext.Quote(key))
		}
		if _, seen := m[key]; seen && !slices.Contains(*dups, key) {
			*dups = append(*dups, key)
		}
		m[key] = v
		return nil
	})
}
