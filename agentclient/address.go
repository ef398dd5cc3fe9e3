package agentclient

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/podhook/podhook/internal/hostpath"
)

// ErrAddress marks an agent address podhook cannot use.
var ErrAddress = errors.New("invalid agent address")

// SocketPath returns the unix socket path of an agent address:
// "unix:///run/podhook/agent.sock", "unix:/run/podhook/agent.sock" or a bare
// absolute path. Other schemes are refused: the agent is node-local.
func SocketPath(address string) (string, error) {
	p := address
	switch {
	case strings.HasPrefix(p, "unix://"):
		p = strings.TrimPrefix(p, "unix://")
	case strings.HasPrefix(p, "unix:"):
		p = strings.TrimPrefix(p, "unix:")
	case strings.Contains(p, "://"):
		return "", fmt.Errorf("%w: %q: only unix sockets are supported", ErrAddress, address)
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%w: %q: socket path must be absolute", ErrAddress, address)
	}
	if len(p) > 107 {
		return "", fmt.Errorf("%w: %q: socket path longer than 107 bytes", ErrAddress, address)
	}
	return filepath.Clean(p), nil
}

// UnderRoot is an agent address as the host sees it, reached from a
// container where the host's / is mounted at root: its symlinks resolve
// inside root, as on the host.
func UnderRoot(root, address string) (string, error) {
	p, err := SocketPath(address)
	if err != nil {
		return "", err
	}
	h, err := hostpath.Resolve(root, p)
	if err != nil {
		return "", err
	}
	return "unix://" + h, nil
}
