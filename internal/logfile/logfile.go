package logfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrSymlink marks a log path, or a rotated name, that is a symbolic link.
var ErrSymlink = errors.New("log path is a symlink")

// Defaults for rotation.
const (
	DefaultMaxSize    = 10 << 20
	DefaultMaxBackups = 3
)

// File appends whole records to path. Each Write is one write(2) on an
// O_APPEND descriptor, made under an exclusive flock on "<path>.lock" that
// also covers the size check and rotation ("<path>" -> "<path>.1" -> ... ->
// "<path>.<maxBackups>"), so a writer never appends to a file a concurrent
// rotation has moved away, a record is in exactly one file, and no file
// passes the bound (unless one record alone is larger). The lock is held
// for microseconds: one record per hook process. A File is safe for use by one goroutine at a time (slog's handlers
// serialise their writes).
type File struct {
	path       string
	maxSize    int64
	maxBackups int
	f          *os.File
	lock       *os.File
}

// Open opens (creating, mode 0600, its directory 0700) the log at path.
// maxSize <= 0 disables rotation; maxBackups < 0 is taken as 0.
func Open(path string, maxSize int64, maxBackups int) (*File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("log file %q: path must be absolute", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	lock, err := openNoFollow(path+".lock", os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, err
	}
	f, err := openNoFollow(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &File{path: path, maxSize: maxSize, maxBackups: max(maxBackups, 0), f: f, lock: lock}, nil
}

func openNoFollow(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%w: %s (refused)", ErrSymlink, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return f, nil
}

// Close closes the log.
func (l *File) Close() error {
	return errors.Join(l.f.Close(), l.lock.Close())
}

// Write appends p as one write(2). It rotates first when p would take the
// file past its size bound.
func (l *File) Write(p []byte) (int, error) {
	if err := l.flock(unix.LOCK_EX); err != nil {
		return 0, err
	}
	size, err := l.current()
	if err == nil && l.maxSize > 0 && size > 0 && size+int64(len(p)) > l.maxSize {
		err = l.rotate()
	}
	if err != nil && !errors.Is(err, ErrSymlink) {
		l.flock(unix.LOCK_UN)
		return 0, err
	}
	// A refused rotation still appends the record (past the bound) and
	// reports the refusal: a record is never dropped for it.
	n, werr := l.f.Write(p)
	l.flock(unix.LOCK_UN)
	if werr != nil {
		return n, fmt.Errorf("write log: %w", werr)
	}
	return n, err
}

func (l *File) flock(how int) error {
	for {
		err := unix.Flock(int(l.lock.Fd()), how)
		if err != unix.EINTR {
			if err != nil {
				return fmt.Errorf("lock log: %w", err)
			}
			return nil
		}
	}
}

// current makes l.f the file now at l.path (reopening it when another
// process rotated it away) and returns its size. Callers hold the lock.
func (l *File) current() (int64, error) {
	fi, err := l.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat log: %w", err)
	}
	pi, err := os.Lstat(l.path)
	if err == nil && os.SameFile(fi, pi) {
		return fi.Size(), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("stat log: %w", err)
	}
	f, err := openNoFollow(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE)
	if err != nil {
		return 0, err
	}
	l.f.Close()
	l.f = f
	fi, err = f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat log: %w", err)
	}
	return fi.Size(), nil
}

// rotate shifts the backups up by one, dropping the oldest, moves the log to
// "<path>.1" and opens a new one. Callers hold the exclusive lock.
func (l *File) rotate() error {
	for i := 1; i <= l.maxBackups; i++ {
		if fi, err := os.Lstat(l.backup(i)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%w: %s (refused to rotate)", ErrSymlink, l.backup(i))
		}
	}
	if l.maxBackups == 0 {
		if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate log: %w", err)
		}
	} else {
		for i := l.maxBackups - 1; i >= 1; i-- {
			if err := os.Rename(l.backup(i), l.backup(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("rotate log: %w", err)
			}
		}
		if err := os.Rename(l.path, l.backup(1)); err != nil {
			return fmt.Errorf("rotate log: %w", err)
		}
	}
	_, err := l.current()
	return err
}

func (l *File) backup(i int) string { return l.path + "." + strconv.Itoa(i) }
