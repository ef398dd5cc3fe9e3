package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	rspec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podhook/podhook/internal/regfile"

	"github.com/podhook/podhook/internal/jsonscan"
)

// MaxSpecSize caps config.json.
const MaxSpecSize = 16 << 20

// ErrSpec marks a config.json that cannot be used.
var ErrSpec = errors.New("invalid config.json")

// Spec is the part of an OCI config.json podhook uses.
type Spec struct {
	Process     *specProcess  `json:"process,omitempty"`
	Root        *rspec.Root   `json:"root,omitempty"`
	Mounts      []rspec.Mount `json:"mounts,omitempty"`
	Annotations Annotations   `json:"annotations"`
	Linux       *specLinux    `json:"linux,omitempty"`
}

// LoadSpec reads <bundle>/config.json. Only a regular file is read (a FIFO
// or device would hang or never end), and at most MaxSpecSize bytes.
func LoadSpec(bundle string) (*Spec, error) {
	b, err := regfile.Read(filepath.Join(bundle, "config.json"), MaxSpecSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	return ParseSpec(b)
}

// ParseSpec decodes the fields podhook uses from config.json's content.
//
// It gives what json.Unmarshal into Spec gives (keys matched as
// encoding/json matches field names, case-insensitively; the last of
// duplicated members wins; null leaves a string as it is and sets a
// pointer or slice to nil; a value of the wrong type is an error) from one
// checking pass over the document, and without encoding/json's
// reflection, which a hook process pays on first use (FuzzParseSpec holds
// it to encoding/json). A mount's uidMappings and gidMappings, which
// podhook does not use, go to encoding/json when present.
func ParseSpec(b []byte) (*Spec, error) {
	var s Spec
	err := jsonscan.Members(b, func(key string, raw []byte, _ bool) error {
		switch {
		case strings.EqualFold(key, "annotations"):
			return s.Annotations.UnmarshalJSON(raw)
		case strings.EqualFold(key, "process"):
			return object(raw, &s.Process, func(p *specProcess, key string, raw []byte, _ bool) error {
				if strings.EqualFold(key, "args") {
					return jsonscan.Strings(raw, &p.Args)
				}
				return nil
			})
		case strings.EqualFold(key, "root"):
			return object(raw, &s.Root, func(r *rspec.Root, key string, raw []byte, escaped bool) error {
				switch jsonscan.Lookup(key, 2, func(i int) string { return [...]string{"path", "readonly"}[i] }) {
				case 0:
					return jsonscan.SetString(&r.Path, raw, escaped)
				case 1:
					v, ok, err := jsonscan.Bool(raw)
					if ok {
						r.Readonly = v
					}
					return err
				}
				return nil
			})
		case strings.EqualFold(key, "mounts"):
			return mounts(raw, &s.Mounts)
		case strings.EqualFold(key, "linux"):
			return object(raw, &s.Linux, func(l *specLinux, key string, raw []byte, escaped bool) error {
				if strings.EqualFold(key, "cgroupsPath") {
					return jsonscan.SetString(&l.CgroupsPath, raw, escaped)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	return &s, nil
}

type (
	specProcess = struct {
		Args []string `json:"args,omitempty"`
	}
	specLinux = struct {
		CgroupsPath string `json:"cgroupsPath,omitempty"`
	}
)

// object decodes an object into *dst as encoding/json decodes into a
// struct pointer: null sets it to nil; an object goes into the struct it
// points to (allocated when nil; a duplicated key's second object updates
// the first's struct), each member through field.
func object[T any](raw []byte, dst **T, field func(*T, string, []byte, bool) error) error {
	switch raw[0] {
	case 'n':
		*dst = nil
		return nil
	case '{':
	default:
		return jsonscan.TypeError(raw, "an object")
	}
	if *dst == nil {
		*dst = new(T)
	}
	v := *dst
	return jsonscan.Members(raw, func(key string, raw []byte, escaped bool) error { return field(v, key, raw, escaped) })
}

var mountFields = [...]string{"destination", "type", "source", "options", "uidMappings", "gidMappings"}

// mounts decodes the mounts list as encoding/json decodes into
// []rspec.Mount (the list's array reused, a null element leaving what is
// there).
func mounts(raw []byte, dst *[]rspec.Mount) error {
	if raw[0] == 'n' {
		*dst = nil
		return nil
	}
	if raw[0] != '[' {
		return jsonscan.TypeError(raw, "a list of mounts")
	}
	out := (*dst)[:0]
	err := jsonscan.Elements(raw, func(e []byte, _ bool) error {
		out = jsonscan.Extend(out)
		m := &out[len(out)-1]
		switch e[0] {
		case 'n':
			return nil
		case '{':
		default:
			return jsonscan.TypeError(e, "a mount")
		}
		return jsonscan.Members(e, func(key string, raw []byte, escaped bool) error {
			switch jsonscan.Lookup(key, len(mountFields), func(i int) string { return mountFields[i] }) {
			case 0:
				return jsonscan.SetString(&m.Destination, raw, escaped)
			case 1:
				return jsonscan.SetString(&m.Type, raw, escaped)
			case 2:
				return jsonscan.SetString(&m.Source, raw, escaped)
			case 3:
				return jsonscan.Strings(raw, &m.Options)
			case 4:
				return json.Unmarshal(raw, &m.UIDMappings)
			case 5:
				return json.Unmarshal(raw, &m.GIDMappings)
			}
			return nil
		})
	})
	if len(out) == 0 {
		out = []rspec.Mount{}
	}
	*dst = out
	return err
}

// CgroupsPath returns linux.cgroupsPath, or "".
func (s *Spec) CgroupsPath() string {
	if s == nil || s.Linux == nil {
		return ""
	}
	return s.Linux.CgroupsPath
}

// Rootfs returns root.path made absolute against bundle, or "".
func (s *Spec) Rootfs(bundle string) string {
	if s == nil || s.Root == nil || s.Root.Path == "" {
		return ""
	}
	if filepath.IsAbs(s.Root.Path) {
		return filepath.Clean(s.Root.Path)
	}
	return filepath.Join(bundle, s.Root.Path)
}
