// Package atomicfile replaces files so that a reader sees the old content
// or the new, never a mix: a temp file in the same directory, renamed over.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with content and mode. The temp file's name starts
// with "." and ends in ".tmp", so a runtime watching a hooks.d directory
// for *.json never reads it half-written, and rename(2) replaces a binary
// that is executing, where an in-place write would fail with ETXTBSY. check,
// when not nil, is given the complete temp file before it is renamed; its
// error stops the replacement. Missing directories are created (0755).
func Write(path string, content []byte, mode os.FileMode, check func(tmp string) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".podhook-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(content)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && check != nil {
		err = check(tmp.Name())
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir makes a directory's entries (a rename, a removal) durable: a
// node that loses power right after an install must not come back with a
// registration whose binary's rename was lost.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
