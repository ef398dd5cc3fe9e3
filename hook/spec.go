package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
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
	b, err := ReadRegularFile(filepath.Join(bundle, "config.json"), MaxSpecSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	return ParseSpec(b)
}

// ParseSpec decodes the fields podhook uses from config.json's content.
func ParseSpec(b []byte) (*Spec, error) {
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	return &s, nil
}

// ReadRegularFile reads path if it is a regular file of at most limit bytes.
// It opens with O_NONBLOCK so that a FIFO cannot block the open, then checks
// the type on the open descriptor.
func ReadRegularFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	// One read of the size fstat gave, then one more to see the end (the
	// file may have grown): no buffer regrowth on the hook's path.
	b := make([]byte, 0, fi.Size()+512)
	for {
		n, rerr := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, rerr
		}
		if len(b) == cap(b) {
			if int64(len(b)) > limit {
				break
			}
			b = append(b, 0)[:len(b)] // grow
		}
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
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
