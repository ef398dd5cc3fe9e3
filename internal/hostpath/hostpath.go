// Package hostpath reaches a host's path from a process that sees the
// host's / at a root directory (--host-root): every symlink on the way,
// absolute ones included, resolves inside that root, as it would on the
// host, never out of it into the process's own filesystem.
package hostpath

import (
	"fmt"
	"path/filepath"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// Resolve returns the host path p under root with every component
// resolved, the last too: for what is read, executed or dialled. With root
// "" or "/" the path is the host's own and is returned cleaned.
func Resolve(root, p string) (string, error) {
	if root == "" || filepath.Clean(root) == "/" {
		return filepath.Clean("/" + p), nil
	}
	h, err := securejoin.SecureJoin(root, p)
	if err != nil {
		return "", fmt.Errorf("resolve %s under %s: %w", p, root, err)
	}
	return h, nil
}

// Parent returns the host path p under root with its directory resolved
// and its last component kept as named: for a file that is created,
// replaced by rename, or opened with O_NOFOLLOW, whose own name must not
// be followed.
func Parent(root, p string) (string, error) {
	clean := filepath.Clean("/" + p)
	dir, err := Resolve(root, filepath.Dir(clean))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(clean)), nil
}
