package logfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Sentinels for what callers act on.
var (
	// ErrSymlink marks a log path, or a rotated name, that is a symbolic link.
	ErrSymlink = errors.New("log path is a symlink")
	// ErrNotRegular marks a log or lock path that is not a regular file
	// (a FIFO, a device, a directory): it is refused without blocking.
	ErrNotRegular = errors.New("log path is not a regular file")
	// ErrLockTimeout marks a record written without the lock, and so
	// without rotation, because the lock was held past the wait bound.
	ErrLockTimeout = errors.New("log lock held by another process")
)

// Defaults for rotation and the lock.
const (
	DefaultMaxSize    = 10 << 20
	DefaultMaxBackups = 3
	// DefaultLockWait bounds the wait for the log lock. Each holder keeps
	// it for one record, so only a stuck or hostile holder (or a burst far
	// beyond hundreds of hooks) reaches it; past it the record is still
	// written, without rotation, and the decision never waits longer.
	DefaultLockWait = time.Second
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
	lockWait   time.Duration
	f          *os.File
	lock       *os.File
}

// Option configures Open.
type Option func(*File)

// WithLockWait bounds the wait for the lock (default DefaultLockWait).
func WithLockWait(d time.Duration) Option { return func(l *File) { l.lockWait = d } }

// Open opens (creating, mode 0600, its directory 0700) the log at path.
// maxSize <= 0 disables rotation; maxBackups < 0 is taken as 0. Nothing in
// it blocks: a FIFO or device at the path is refused (ErrNotRegular), a
// symlink too (ErrSymlink), and an existing file's mode is brought back to
// 0600.
func Open(path string, maxSize int64, maxBackups int, opts ...Option) (*File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("log file %q: path must be absolute", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	lock, err := openRegular(path+".lock", os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, err
	}
	f, err := openRegular(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE)
	if err != nil {
		lock.Close()
		return nil, err
	}
	l := &File{path: path, maxSize: maxSize, maxBackups: max(maxBackups, 0), lockWait: DefaultLockWait, f: f, lock: lock}
	for _, o := range opts {
		o(l)
	}
	return l, nil
}

// openRegular opens path without following a symlink and without blocking
// (O_NONBLOCK: a FIFO without a reader fails at once, one with a reader is
// refused below), and accepts only a regular file, mode 0600.
func openRegular(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0o600)
	switch {
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("%w: %s (refused)", ErrSymlink, path)
	case errors.Is(err, syscall.ENXIO):
		return nil, fmt.Errorf("%w: %s (refused)", ErrNotRegular, path)
	case errors.Is(err, syscall.EISDIR):
		return nil, fmt.Errorf("%w: %s is a directory (refused)", ErrNotRegular, path)
	case err != nil:
		return nil, fmt.Errorf("open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat log: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is a %s (refused)", ErrNotRegular, path, fi.Mode().Type())
	}
	if fi.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("log mode: %w", err)
		}
	}
	return f, nil
}

// Close closes the log.
func (l *File) Close() error {
	return errors.Join(l.f.Close(), l.lock.Close())
}

// Write appends p as one write(2). It rotates first when p would take the
// file past its size bound. When the lock is not had within the wait bound,
// p is appended without it (so without rotation: O_APPEND keeps the record
// whole) and ErrLockTimeout is returned with the count.
func (l *File) Write(p []byte) (int, error) {
	if err := l.lockBounded(); err != nil {
		if !errors.Is(err, ErrLockTimeout) {
			return 0, err
		}
		l.current() // follow a rotation, never make one: best effort
		n, werr := l.f.Write(p)
		if werr != nil {
			return n, fmt.Errorf("write log: %w", werr)
		}
		return n, fmt.Errorf("%w past %v: record written without rotation", ErrLockTimeout, l.lockWait)
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

// lockBounded takes the exclusive lock, polling a non-blocking flock until
// the wait bound passes (flock(2) itself has no timeout).
func (l *File) lockBounded() error {
	deadline := time.Now().Add(l.lockWait)
	pause := 50 * time.Microsecond
	for {
		err := l.flock(unix.LOCK_EX | unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return ErrLockTimeout
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Millisecond)
	}
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
	f, err := openRegular(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE)
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
	// One directory read finds the backups there are, so that rotation
	// costs what exists, not max backups' worth of system calls.
	entries, err := os.ReadDir(filepath.Dir(l.path))
	if err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	prefix := filepath.Base(l.path) + "."
	var present []int
	for _, e := range entries {
		i, err := strconv.Atoi(strings.TrimPrefix(e.Name(), prefix))
		if !strings.HasPrefix(e.Name(), prefix) || err != nil || i < 1 || i > l.maxBackups || e.Name() != prefix+strconv.Itoa(i) {
			continue
		}
		if e.Type()&os.ModeSymlink != 0 {
			return fmt.Errorf("%w: %s (refused to rotate)", ErrSymlink, l.backup(i))
		}
		present = append(present, i)
	}
	if l.maxBackups == 0 {
		if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate log: %w", err)
		}
	} else {
		slices.Sort(present)
		for _, i := range slices.Backward(present) {
			if i == l.maxBackups {
				continue // the oldest: overwritten by the next one down
			}
			if err := os.Rename(l.backup(i), l.backup(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("rotate log: %w", err)
			}
		}
		if err := os.Rename(l.path, l.backup(1)); err != nil {
			return fmt.Errorf("rotate log: %w", err)
		}
	}
	_, err = l.current()
	return err
}

func (l *File) backup(i int) string { return l.path + "." + strconv.Itoa(i) }

// Writer is where a long-running podhook program writes its JSON lines:
// stdout for "-", else the rotating log at path (the defaults' size and
// backups). close releases it.
func Writer(path string, stdout io.Writer) (w io.Writer, close func() error, err error) {
	if path == "-" {
		return stdout, func() error { return nil }, nil
	}
	f, err := Open(path, DefaultMaxSize, DefaultMaxBackups)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}
