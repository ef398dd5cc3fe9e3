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
		id, size, err := statPath(path)
		if errors.Is(err, os.ErrNotExist) {
			return f, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		f.pos = Position{Inode: id.ino, Born: id.born, Offset: size}
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
		id, _, err := statPath(f.Path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if id == f.pos.id() {
			return nil
		}
		// Rotated away: what we hold is finished (a writer appends only
		// under the rotation lock, to the file at Path). Move on to the
		// next newer file.
		f.f.Close()
		f.f = nil
		f.partial = nil
		next, gap := f.successor()
		if gap {
			f.Gaps++
		}
		f.pos = Position{Inode: next.ino, Born: next.born, Offset: 0}
	}
}

// open finds the file holding pos.Inode among Path and its backups.
func (f *Follower) open() error {
	for _, p := range f.names() {
		fd, err := os.Open(p)
		if err != nil {
			continue
		}
		if id, _, err := statFile(fd); err == nil && id == f.pos.id() {
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
	fd, err := os.Open(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	id, _, err := statFile(fd)
	if err != nil {
		fd.Close()
		return err
	}
	if f.pos.Inode != 0 {
		f.Gaps++
	}
	f.pos = Position{Inode: id.ino, Born: id.born, Offset: 0}
	f.f = fd
	return nil
}

// successor is the inode of the file rotated in after pos.Inode: the
// backup just newer than it, or the live file. gap is true when pos.Inode
// is no longer among the files at all.
func (f *Follower) successor() (fileID, bool) {
	var ids []fileID // Path, Path.1, ..., Path.N: newest first; zero where absent
	for _, p := range f.names() {
		id, _, _ := statPath(p)
		ids = append(ids, id)
	}
	for i, id := range ids {
		if id == f.pos.id() && i > 0 {
			for j := i - 1; j >= 0; j-- {
				if ids[j].ino != 0 {
					return ids[j], false
				}
			}
		}
	}
	// Ours is gone: start at the oldest file kept.
	for i := len(ids) - 1; i >= 0; i-- {
		if ids[i].ino != 0 {
			return ids[i], true
		}
	}
	return fileID{}, true
}

func (f *Follower) names() []string { return Names(f.Path, f.Backups) }

// Names are the log's files, newest first: path, path.1 ... path.backups.
func Names(path string, backups int) []string {
	out := []string{path}
	for i := 1; i <= backups; i++ {
		out = append(out, path+"."+strconv.Itoa(i))
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

// fileID tells files apart: the inode and the birth time, since a freed
// inode number may be reused by the next log file at once (birth time is 0
// where the filesystem does not record it).
type fileID struct {
	ino  uint64
	born int64
}

func (p Position) id() fileID { return fileID{p.Inode, p.Born} }

// statPath is the identity and size of the file at path (not following a
// symlink), in one statx.
func statPath(path string) (fileID, int64, error) {
	return statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW)
}

// statFile is the identity and size of an open file: no rename can come
// between the open and the look.
func statFile(fd *os.File) (fileID, int64, error) {
	return statx(int(fd.Fd()), "", unix.AT_EMPTY_PATH)
}

func statx(dirfd int, path string, flags int) (fileID, int64, error) {
	var sx unix.Statx_t
	if err := unix.Statx(dirfd, path, flags, unix.STATX_INO|unix.STATX_SIZE|unix.STATX_BTIME, &sx); err != nil {
		return fileID{}, 0, &os.PathError{Op: "statx", Path: path, Err: err}
	}
	id := fileID{ino: sx.Ino}
	if sx.Mask&unix.STATX_BTIME != 0 {
		id.born = sx.Btime.Sec*1e9 + int64(sx.Btime.Nsec)
	}
	return id, int64(sx.Size), nil
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
