package logfile

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// readRecords returns every line of the log and its backups.
func readRecords(t *testing.T, path string, backups int) (lines []string, files int) {
	t.Helper()
	names := []string{path}
	for i := 1; i <= backups+1; i++ {
		names = append(names, fmt.Sprintf("%s.%d", path, i))
	}
	for _, n := range names {
		f, err := os.Open(n)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		files++
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		f.Close()
	}
	return lines, files
}

// TestConcurrentRotation has many writers, each with its own File (its own
// descriptors and locks, as separate processes have), rotate a tiny log
// many times. With enough backups every record survives exactly once and
// no line is torn.
func TestConcurrentRotation(t *testing.T) {
	const writers, perWriter, backups = 16, 50, 1000
	path := filepath.Join(t.TempDir(), "log", "podhook.log")
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Rotating a thousand backups holds the lock for long: this
			// test is about rotation, not about the wait bound.
			l, err := Open(path, 2048, backups, WithLockWait(time.Minute))
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Close()
			for i := range perWriter {
				rec := fmt.Sprintf(`{"writer":%d,"seq":%d,"pad":"%0100d"}`+"\n", w, i, 0)
				if _, err := l.Write([]byte(rec)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	lines, files := readRecords(t, path, backups)
	if files < 10 {
		t.Fatalf("only %d files: the log did not rotate", files)
	}
	seen := map[string]int{}
	for _, line := range lines {
		var rec struct{ Writer, Seq int }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("torn line %q: %v", line, err)
		}
		seen[fmt.Sprint(rec.Writer, "/", rec.Seq)]++
	}
	if len(lines) != writers*perWriter || len(seen) != writers*perWriter {
		t.Fatalf("%d lines, %d distinct records; want %d", len(lines), len(seen), writers*perWriter)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("record %s written %d times", k, n)
		}
	}
	for i := 1; i <= backups; i++ {
		fi, err := os.Stat(fmt.Sprintf("%s.%d", path, i))
		if err == nil && fi.Size() > 2048 {
			t.Fatalf("backup %d is %d bytes, over the bound", i, fi.Size())
		}
	}
}

// TestBackupsBounded checks that the number of backups never exceeds the
// bound and that what is dropped is exactly the oldest records.
func TestBackupsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "podhook.log")
	l, err := Open(path, 110, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 20 {
		// 52-byte records: two fit in a 110-byte file.
		if _, err := fmt.Fprintf(l, `{"seq":%02d,"pad":"%032d"}`+"\n", i, 0); err != nil {
			t.Fatal(err)
		}
	}
	lines, files := readRecords(t, path, 5)
	if files != 3 {
		t.Fatalf("%d files, want the log and 2 backups", files)
	}
	if len(lines) != 6 {
		t.Fatalf("%d records kept, want 6 (3 files of 2)", len(lines))
	}
	// Kept: .2 holds 14,15; .1 holds 16,17; the log holds 18,19.
	if lines[0] != fmt.Sprintf(`{"seq":18,"pad":"%032d"}`, 0) {
		t.Fatalf("newest file starts with %q", lines[0])
	}
}

func TestModesAndSymlinks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	path := filepath.Join(dir, "podhook.log")
	l, err := Open(path, 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("x\n"))
	l.Close()
	for name, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600, path + ".lock": 0o600} {
		fi, err := os.Stat(name)
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode(), err, want)
		}
	}

	link := filepath.Join(t.TempDir(), "podhook.log")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link, 100, 1); !errors.Is(err, ErrSymlink) {
		t.Fatalf("Open(symlink) err = %v, want ErrSymlink", err)
	}

	// A symlink at a rotated name stops rotation, not the write.
	path2 := filepath.Join(t.TempDir(), "podhook.log")
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("keep\n"), 0o600)
	if err := os.Symlink(target, path2+".1"); err != nil {
		t.Fatal(err)
	}
	l, err = Open(path2, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write([]byte("first record\n"))
	if _, err := l.Write([]byte("second record\n")); !errors.Is(err, ErrSymlink) {
		t.Fatalf("rotation over a symlink: err = %v, want ErrSymlink", err)
	}
	if b, _ := os.ReadFile(path2); string(b) != "first record\nsecond record\n" {
		t.Fatalf("log holds %q, want both records", b)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep\n" {
		t.Fatalf("symlink target changed: %q", b)
	}
}

func TestRelativePathRefused(t *testing.T) {
	if _, err := Open("podhook.log", 100, 1); err == nil {
		t.Fatal("relative path accepted")
	}
}

// TestLockHeld: a lock that another holder never releases costs at most
// the wait bound; the record is still appended, whole, and the write says
// so with ErrLockTimeout.
func TestLockHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "podhook.log")
	l, err := Open(path, 10, 1, WithLockWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	holder, err := os.OpenFile(path+".lock", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Write([]byte("first record\n"))
		if err == nil {
			_, err = l.Write([]byte("second record, past the size bound\n"))
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrLockTimeout) {
			t.Fatalf("err = %v, want ErrLockTimeout", err)
		}
	case <-time.After(10 * time.Second): // generous: the bound is 50 ms
		t.Fatal("Write waited on the held lock")
	}
	if b, _ := os.ReadFile(path); !strings.HasPrefix(string(b), "first record\n") {
		t.Fatalf("log holds %q", b)
	}
	unix.Flock(int(holder.Fd()), unix.LOCK_UN)
	if _, err := l.Write([]byte("after release\n")); err != nil {
		t.Fatalf("after the lock is released: %v", err)
	}
}

// TestNotRegular: a FIFO at the log or lock path, with or without a
// reader, and a directory, are refused at once, never opened for a
// blocking write.
func TestNotRegular(t *testing.T) {
	for name, setup := range map[string]func(t *testing.T, path string){
		"fifo, no reader": func(t *testing.T, path string) { mkfifo(t, path) },
		"fifo with a reader": func(t *testing.T, path string) {
			mkfifo(t, path)
			r, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
		},
		"fifo at the lock path": func(t *testing.T, path string) { mkfifo(t, path+".lock") },
		"directory":             func(t *testing.T, path string) { os.Mkdir(path, 0o700) },
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "podhook.log")
			setup(t, path)
			done := make(chan error, 1)
			go func() {
				l, err := Open(path, 10, 1)
				if err == nil {
					l.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrNotRegular) && !strings.Contains(fmt.Sprint(err), "directory") {
					t.Fatalf("err = %v, want ErrNotRegular", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Open blocked")
			}
		})
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestModeRestored: an existing log with a wider mode is brought back to
// 0600.
func TestModeRestored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "podhook.log")
	os.WriteFile(path, []byte("old\n"), 0o644)
	os.Chmod(path, 0o644)
	l, err := Open(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}
