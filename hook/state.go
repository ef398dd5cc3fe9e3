package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/podhook/podhook/internal/jsonscan"
)

// MaxStateSize caps the OCI state read from stdin. CRI-O's is ~8 KB.
const MaxStateSize = 4 << 20

// ErrState marks an OCI state that cannot be used: unreadable, not JSON,
// too large, or missing a field the hook needs.
var ErrState = errors.New("invalid OCI state")

// State is the part of the OCI runtime state podhook uses. The annotations,
// which repeat config.json's, are kept raw and decoded only when config.json
// cannot be loaded.
type State struct {
	OCIVersion  string          `json:"ociVersion"`
	ID          string          `json:"id"`
	Status      string          `json:"status"`
	Pid         int             `json:"pid,omitempty"`
	Bundle      string          `json:"bundle"`
	Annotations json.RawMessage `json:"annotations,omitempty"`
}

// ReadState reads and checks the OCI state from r, at most MaxStateSize bytes.
func ReadState(r io.Reader) (*State, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %w", ErrState, err)
	}
	return ParseState(b)
}

// ParseState decodes and checks an OCI state.
func ParseState(b []byte) (*State, error) {
	if len(b) > MaxStateSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrState, MaxStateSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%w: empty input (the runtime passes the state on stdin)", ErrState)
	}
	// One checking pass; the annotations, which CRI-O repeats from
	// config.json, are kept raw (as json.Unmarshal into State would).
	var s State
	err := jsonscan.Members(b, func(key string, raw []byte, escaped bool) error {
		switch {
		case strings.EqualFold(key, "annotations"):
			s.Annotations = raw // b is ours and never reused: no copy
			return nil
		case strings.EqualFold(key, "pid"):
			v, ok, err := jsonscan.Int(raw, strconv.IntSize)
			if ok {
				s.Pid = int(v)
			}
			return err
		}
		var dst *string
		switch {
		case strings.EqualFold(key, "ociVersion"):
			dst = &s.OCIVersion
		case strings.EqualFold(key, "id"):
			dst = &s.ID
		case strings.EqualFold(key, "status"):
			dst = &s.Status
		case strings.EqualFold(key, "bundle"):
			dst = &s.Bundle
		default:
			return nil
		}
		v, ok, err := jsonscan.OptString(raw, escaped) // null leaves it
		if ok {
			*dst = v
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrState, err)
	}
	switch {
	case s.ID == "":
		return nil, fmt.Errorf("%w: no container id", ErrState)
	case s.Bundle == "":
		return nil, fmt.Errorf("%w: no bundle", ErrState)
	case !filepath.IsAbs(s.Bundle):
		return nil, fmt.Errorf("%w: bundle %q is not absolute", ErrState, s.Bundle)
	case s.Pid < 0:
		return nil, fmt.Errorf("%w: negative pid %d", ErrState, s.Pid)
	}
	return &s, nil
}

// StateAnnotations decodes the state's own annotations.
func (s *State) StateAnnotations() (Annotations, error) {
	var a Annotations
	if len(s.Annotations) == 0 {
		return a, nil
	}
	if err := json.Unmarshal(s.Annotations, &a); err != nil {
		return a, fmt.Errorf("%w: annotations: %w", ErrState, err)
	}
	return a, nil
}
