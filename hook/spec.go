package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	rspec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podhook/podhook/internal/regfile"
)

// MaxSpecSize caps config.json.
const MaxSpecSize = 16 << 20

// ErrSpec marks a config.json that cannot be used.
var ErrSpec = errors.New("invalid config.json")

// Spec is the part of an OCI config.json podhook uses.
type Spec struct {
	Process *struct {
		Args []string `json:"args,omitempty"`
	} `json:"process,omitempty"`
	Root        *rspec.Root   `json:"root,omitempty"`
	Mounts      []rspec.Mount `json:"mounts,omitempty"`
	Annotations Annotations   `json:"annotations"`
	Linux       *struct {
		CgroupsPath string `json:"cgroupsPath,omitempty"`
	} `json:"linux,omitempty"`
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
// duplicated members wins) from one checking pass over the document:
// annotations, the part a pod's author makes large, are never scanned by
// encoding/json.
func ParseSpec(b []byte) (*Spec, error) {
	var s Spec
	err := members(b, func(key string, raw []byte, _ bool) error {
		switch {
		case strings.EqualFold(key, "annotations"):
			return s.Annotations.UnmarshalJSON(raw)
		case strings.EqualFold(key, "process"):
			return json.Unmarshal(raw, &s.Process)
		case strings.EqualFold(key, "root"):
			return json.Unmarshal(raw, &s.Root)
		case strings.EqualFold(key, "mounts"):
			return json.Unmarshal(raw, &s.Mounts)
		case strings.EqualFold(key, "linux"):
			return json.Unmarshal(raw, &s.Linux)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	return &s, nil
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
