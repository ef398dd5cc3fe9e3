package hook

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func seedFixtures(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(fixtures, n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParseState: any input is either a usable state or ErrState, never a
// panic, and a usable state has an id and an absolute bundle.
func FuzzParseState(f *testing.F) {
	seedFixtures(f, "state-createRuntime.json", "state-poststop.json")
	f.Add([]byte(`{"id":"a","bundle":"/b","pid":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseState(b)
		if err != nil {
			if !errors.Is(err, ErrState) {
				t.Fatalf("error %v does not wrap ErrState", err)
			}
			return
		}
		if st.ID == "" || !filepath.IsAbs(st.Bundle) || st.Pid < 0 {
			t.Fatalf("accepted %+v", st)
		}
		if _, err := st.StateAnnotations(); err != nil && !errors.Is(err, ErrState) {
			t.Fatalf("annotations error %v does not wrap ErrState", err)
		}
	})
}

// FuzzParseSpec: config.json decoding never panics, and the accessors work
// on whatever it returns.
func FuzzParseSpec(f *testing.F) {
	seedFixtures(f, "config.json")
	f.Add([]byte(`{"root":{"path":"rootfs"},"linux":{"cgroupsPath":"a.slice:p:n"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSpec(b)
		if err != nil {
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("error %v does not wrap ErrSpec", err)
			}
			return
		}
		_ = s.CgroupsPath()
		if r := s.Rootfs("/bundle"); r != "" && !filepath.IsAbs(r) {
			t.Fatalf("rootfs %q not absolute", r)
		}
	})
}

// FuzzAnnotations: the fast duplicate count agrees with a full walk of the
// keys, for every object of strings.
func FuzzAnnotations(f *testing.F) {
	f.Add([]byte(`{"a":"1","b":"2"}`))
	f.Add([]byte(`{"a":"1","a":"2"}`))
	f.Add([]byte(`{"a\"":"\\","a\"":"x"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Annotations
		if err := json.Unmarshal(b, &a); err != nil {
			return
		}
		if want := duplicateKeys(b); a.Map != nil && len(want) != len(a.Duplicates) {
			t.Fatalf("duplicates %q, a full walk finds %q", a.Duplicates, want)
		}
	})
}
