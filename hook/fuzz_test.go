package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
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
	f.Add([]byte(`{"ID":"a","bundle":"/b","pid":1,"annotations":{"a":"\u0041"},"status":null}`))
	f.Add([]byte(`{"id":"a","bundle":"/b","pid":1.5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseState(b)
		var std State
		if stdErr := json.Unmarshal(b, &std); stdErr == nil && err == nil && !reflect.DeepEqual(*st, std) {
			t.Fatalf("ParseState gave %+v, encoding/json %+v", *st, std)
		} else if stdErr != nil && err == nil {
			t.Fatalf("ParseState accepted what encoding/json refuses: %v", stdErr)
		}
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

// stdSpec is Spec as encoding/json alone decodes it: the reference
// ParseSpec must agree with.
type stdSpec struct {
	Process *struct {
		Args []string `json:"args,omitempty"`
	} `json:"process,omitempty"`
	Root        *rspec.Root     `json:"root,omitempty"`
	Mounts      []rspec.Mount   `json:"mounts,omitempty"`
	Annotations json.RawMessage `json:"annotations"`
	Linux       *struct {
		CgroupsPath string `json:"cgroupsPath,omitempty"`
	} `json:"linux,omitempty"`
}

// FuzzParseSpec: config.json decoding never panics, agrees with
// encoding/json on what is valid and on every field it returns (the
// annotations' duplicates with a full walk of their keys), and the
// accessors work on whatever it returns.
func FuzzParseSpec(f *testing.F) {
	seedFixtures(f, "config.json")
	f.Add([]byte(`{"root":{"path":"rootfs"},"linux":{"cgroupsPath":"a.slice:p:n"}}`))
	f.Add([]byte(`{"Annotations":{"a":"1","a":"2","b":null,"\u00e9":"\ud800"},"ANNOTATIONS":{"c":"\u0041\n"},"process":null}`))
	f.Add([]byte(`{"annotations":{"k":1}}`))
	f.Add([]byte(`{"annotations":{"k":"\xff"}, "x":[1,-0.5e+3,true,false,null,{"a":[]}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[1]`))
	f.Add([]byte(`{"a":01}`))
	f.Add([]byte(`{"process":{"args":["a",null]},"process":{"ARGS":[null,"b","c"]},"root":{"Path":"x","readonly":true},"root":null}`))
	f.Add([]byte(`{"mounts":[{"destination":"/a","options":["ro"]},{"type":"bind"}],"mounts":[null,{"source":"s"}]}`))
	f.Add([]byte(`{"mounts":[{"uidMappings":[{"containerID":0,"hostID":1000,"size":1}]},1],"linux":{"cgroupsPath":null,"x":1}}`))
	f.Add([]byte(`{"root":{"readonly":"yes"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSpec(b)
		var std stdSpec
		stdErr := json.Unmarshal(b, &std)
		var stdMap map[string]string
		if stdErr == nil && std.Annotations != nil {
			stdErr = json.Unmarshal(std.Annotations, &stdMap)
		}
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("ParseSpec: %v; encoding/json: %v", err, stdErr)
		}
		if err != nil {
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("error %v does not wrap ErrSpec", err)
			}
			return
		}
		if !reflect.DeepEqual(s.Process, std.Process) || !reflect.DeepEqual(s.Root, std.Root) || !reflect.DeepEqual(s.Mounts, std.Mounts) ||
			!reflect.DeepEqual(s.Linux, std.Linux) || !reflect.DeepEqual(s.Annotations.Map, stdMap) {
			t.Fatalf("ParseSpec gave %+v, encoding/json %+v and annotations %q", s, std, stdMap)
		}
		if want := duplicateKeys(std.Annotations); len(want) != len(s.Annotations.Duplicates) {
			t.Fatalf("duplicates %q, a full walk finds %q", s.Annotations.Duplicates, want)
		}
		_ = s.CgroupsPath()
		if r := s.Rootfs("/bundle"); r != "" && !filepath.IsAbs(r) {
			t.Fatalf("rootfs %q not absolute", r)
		}
	})
}

// FuzzAnnotations: the one-pass decoder agrees with encoding/json on what
// is valid and on the map, and its duplicates with a full walk of the
// keys, for every input.
func FuzzAnnotations(f *testing.F) {
	f.Add([]byte(`{"a":"1","b":"2"}`))
	f.Add([]byte(`{"a":"1","a":"2"}`))
	f.Add([]byte(`{"a\"":"\\","a\"":"x"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"a":null," a":"\u00e9\t"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Annotations
		err := a.UnmarshalJSON(b)
		var m map[string]string
		stdErr := json.Unmarshal(b, &m)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("%q: decodeStrings: %v; encoding/json: %v", b, err, stdErr)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(a.Map, m) {
			t.Fatalf("%q: decoded %q, encoding/json %q", b, a.Map, m)
		}
		if want := duplicateKeys(b); a.Map != nil && len(want) != len(a.Duplicates) {
			t.Fatalf("duplicates %q, a full walk finds %q", a.Duplicates, want)
		}
	})
}

// duplicateKeys returns the keys of the object b that appear more than once.
func duplicateKeys(b []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // '{'
		return nil
	}
	seen := map[string]bool{}
	var dups []string
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			break
		}
		k, _ := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		if seen[k] && !slices.Contains(dups, k) {
			dups = append(dups, k)
		}
		seen[k] = true
	}
	return dups
}
