package jsonscan

import (
	"errors"
	"reflect"
	"testing"
)

func TestElements(t *testing.T) {
	tests := map[string]struct {
		in    string
		elems []string
		err   bool
	}{
		"array":           {`[1, "a", {"b":[2]}, null]`, []string{`1`, `"a"`, `{"b":[2]}`, `null`}, false},
		"empty":           {` [ ] `, nil, false},
		"null":            {`null`, nil, false},
		"object":          {`{}`, nil, true},
		"string":          {`"x"`, nil, true},
		"trailing":        {`[1] 2`, nil, true},
		"trailing comma":  {`[1,]`, nil, true},
		"unterminated":    {`[1`, nil, true},
		"nothing":         {``, nil, true},
		"invalid element": {`[tru]`, nil, true},
	}
	for name, tc := range tests {
		var got []string
		err := Elements([]byte(tc.in), func(raw []byte, _ bool) error { got = append(got, string(raw)); return nil })
		if (err != nil) != tc.err || (err != nil && !errors.Is(err, ErrJSON)) {
			t.Errorf("%s: err %v", name, err)
		}
		if !tc.err && !reflect.DeepEqual(got, tc.elems) {
			t.Errorf("%s: elements %q, want %q", name, got, tc.elems)
		}
	}
	// An element that is a string with an escape says so.
	var escaped []bool
	Elements([]byte(`["a", "b\n"]`), func(_ []byte, e bool) error { escaped = append(escaped, e); return nil })
	if !reflect.DeepEqual(escaped, []bool{false, true}) {
		t.Errorf("escaped %v", escaped)
	}
}
