// Package logtail follows the hook's JSON-lines log across its rotations,
// by inode, yielding each complete record once: records are neither
// counted twice nor missed, a torn or unfinished last line waits until it
// is whole, and a rotation past the kept backups is counted as a gap.
package logtail

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Position is where the follower stands: a file by inode and an offset in
// it. It is what a follower saves to resume after a restart.
type Position struct {
	Inode uint64 `json:"inode"`
	// Born is the file's birth time (statx), which tells a file from a
	// newer one that reuses a freed inode number; 0 where the filesystem
	// does not record it.
	Born   int64 `json:"born"`
	Offset int64 `json:"offset"`
}

// Follower reads the log at Path and its backups Path.1 ... Path.N.
type Follower struct {
	Path string
	// Backups is how many rotated files the writer keeps (log_max_backups).
	Backups int

	pos     Position
	f       *os.File // the file being read (may have been renamed since)
	partial []byte   // an unfinished last line
	// Gaps counts rotations that went past the kept backups before the
	// follower read the files: their records are lost to it.
	Gaps int
}

// New returns a follower starting at pos; a zero pos starts at the end of
// the current log (what is already there is not counted), and says so in
// startedAtEnd.
func New(path string, backups int, pos Position) (f *Follower, startedAtEnd bool, err error) {
	f = &Follower{Path: path, Backups: backups, pos: pos}
	if pos.Inode == 0 {
		fi, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return f, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		ino, born := identity(path, fi)
		f.pos = Position{Inode: ino, Born: born, Offset: fi.Size()}
		return f, true, nil
	}
	return f, false, nil
}

// Position is where the follower stands now.
func (f *Follower) Position() Position { return f.pos }

// Close releases the open file.
func (f *Follower) Close() error {
	if f.f != nil {
		return f.f.Close()
	}
	return nil
}

// Poll reads whatever was appended since the last poll, in order, across
// rotations, and calls fn with each complete line.
func (f *Follower) Poll(fn func(line []byte)) error {
	for {
		if f.f == nil {
			if err := f.open(); err != nil || f.f == nil {
				return err
			}
		}
		if err := f.drain(fn); err != nil {
			return err
		}
		// Still the live file? Then wait for more.
		fi, err := os.Stat(f.Path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if ino, born := identity(f.Path, fi); ino == f.pos.Inode && born == f.pos.Born {
			return nil
		}
		// Rotated away: what we hold is finished (a writer appends only
		// under the rotation lock, to the file at Path). Move on to the
		// next newer file.
		f.f.Close()
		f.f = nil
		f.partial = nil
		next, born, gap := f.successor()
		if gap {
			f.Gaps++
		}
		f.pos = Position{Inode: next, Born: born, Offset: 0}
	}
}

// open finds the file holding pos.Inode among Path and its backups.
func (f *Follower) open() error {
	for _, p := range f.names() {
		fd, err := os.Open(p)
		if err != nil {
			continue
		}
		if ino, born := identityOf(fd); ino == f.pos.Inode && born == f.pos.Born {
			if _, err := fd.Seek(f.pos.Offset, io.SeekStart); err != nil {
				fd.Close()
				return err
			}
			f.f = fd
			return nil
		}
		fd.Close()
	}
	// Not found: rotated past the backups (a gap), or the log is new.
	if fi, err := os.Stat(f.Path); err == nil {
		if f.pos.Inode != 0 {
			f.Gaps++
		}
		ino, born := identity(f.Path, fi)
		f.pos = Position{Inode: ino, Born: born, Offset: 0}
		fd, err := os.Open(f.Path)
		if err != nil {
			return err
		}
		f.f = fd
	}
	return nil
}

// successor is the inode of the file rotated in after pos.Inode: the
// backup just newer than it, or the live file. gap is true when pos.Inode
// is no longer among the files at all.
func (f *Follower) successor() (uint64, int64, bool) {
	type id struct {
		ino  uint64
		born int64
	}
	var ids []id // Path, Path.1, ..., Path.N: newest first
	for _, p := range f.names() {
		fi, err := os.Stat(p)
		if err != nil {
			ids = append(ids, id{})
			continue
		}
		ino, born := identity(p, fi)
		ids = append(ids, id{ino, born})
	}
	for i, x := range ids {
		if x.ino == f.pos.Inode && x.born == f.pos.Born && i > 0 {
			for j := i - 1; j >= 0; j-- {
				if ids[j].ino != 0 {
					return ids[j].ino, ids[j].born, false
				}
			}
		}
	}
	// Ours is gone: start at the oldest file kept.
	for i := len(ids) - 1; i >= 0; i-- {
		if ids[i].ino != 0 {
			return ids[i].ino, ids[i].born, true
		}
	}
	return 0, 0, true
}

func (f *Follower) names() []string {
	out := []string{f.Path}
	for i := 1; i <= f.Backups; i++ {
		out = append(out, f.Path+"."+strconv.Itoa(i))
	}
	return out
}

// drain reads the open file to its end, passing complete lines to fn and
// keeping an unfinished last line for the next read.
func (f *Follower) drain(fn func([]byte)) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := f.f.Read(buf)
		if n > 0 {
			f.partial = append(f.partial, buf[:n]...)
			for {
				i := bytes.IndexByte(f.partial, '\n')
				if i < 0 {
					break
				}
				line := f.partial[:i]
				f.pos.Offset += int64(i + 1)
				if len(line) > 0 {
					fn(line)
				}
				f.partial = f.partial[i+1:]
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// identityOf is identity of an open file: no rename can come between.
func identityOf(fd *os.File) (uint64, int64) {
	var sx unix.Statx_t
	if unix.Statx(int(fd.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_INO|unix.STATX_BTIME, &sx) != nil {
		return 0, 0
	}
	born := int64(0)
	if sx.Mask&unix.STATX_BTIME != 0 {
		born = sx.Btime.Sec*1e9 + int64(sx.Btime.Nsec)
	}
	return sx.Ino, born
}

// identity is a file's inode and birth time: a freed inode number may be
// reused by the next log file at once.
func identity(path string, fi os.FileInfo) (uint64, int64) {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	var sx unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &sx) == nil && sx.Mask&unix.STATX_BTIME != 0 {
		return ino, sx.Btime.Sec*1e9 + int64(sx.Btime.Nsec)
	}
	return ino, 0
}

// Load reads a saved position; a missing file is the zero position.
func Load(path string) (Position, error) {
	var p Position
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return Position{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Save writes the position atomically.
func Save(path string, p Position) error {
	b, _ := json.Marshal(p)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
