package agentclient

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
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
