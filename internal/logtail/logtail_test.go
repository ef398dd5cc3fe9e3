package logtail

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/podhook/podhook/internal/logfile"
)

// record writes one record through the hook's own rotating log.
func record(t *testing.T, l *logfile.File, seq int) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"seq": seq, "pad": fmt.Sprintf("%0200d", 0)})
	if _, err := l.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

func seqs(t *testing.T, lines [][]byte) []int {
	var out []int
	for _, line := range lines {
		var r struct{ Seq int }
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("torn line %q", line)
		}
		out = append(out, r.Seq)
	}
	return out
}

// TestFollowAcrossRotationsAndRestarts: every record once, in order,
// whether the log rotates between polls (once or several times), the
// follower restarts from its saved position, or a line is half written.
func TestFollowAcrossRotationsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "podhook.log")
	state := filepath.Join(dir, "pos.json")
	const backups = 5
	l, err := logfile.Open(path, 1000, backups) // ~4 records a file
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	record(t, l, 0)
	f, _, err := New(path, backups, Position{})
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	collect := func(line []byte) { got = append(got, append([]byte{}, line...)) }
	seq := 1
	for round := 0; round < 12; round++ {
		// 1 to 9 records a round: zero, one or two rotations between polls.
		for range round%9 + 1 {
			record(t, l, seq)
			seq++
		}
		if err := f.Poll(collect); err != nil {
			t.Fatal(err)
		}
		if round == 5 { // restart from the saved position
			if err := Save(state, f.Position()); err != nil {
				t.Fatal(err)
			}
			f.Close()
			pos, err := Load(state)
			if err != nil {
				t.Fatal(err)
			}
			if f, _, err = New(path, backups, pos); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A torn last line is not a record until it is whole.
	fd, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	fd.Write([]byte(`{"seq":`))
	if err := f.Poll(collect); err != nil {
		t.Fatal(err)
	}
	n := len(got)
	fd.Write([]byte(fmt.Sprintf("%d}\n", seq)))
	fd.Close()
	seq++
	if err := f.Poll(collect); err != nil {
		t.Fatal(err)
	}
	if len(got) != n+1 {
		t.Fatalf("the completed line counted %d times", len(got)-n)
	}
	s := seqs(t, got)
	// The first record was there before the follower started at the end.
	for i, v := range s {
		if v != i+1 {
			t.Fatalf("records %v: want 1..%d once each, in order", s, seq-1)
		}
	}
	if len(s) != seq-1 || f.Gaps != 0 {
		t.Fatalf("%d records, %d gaps; want %d and none", len(s), f.Gaps, seq-1)
	}
}

// TestGapPastBackups: when the log rotates past its backups between polls,
// the follower counts a gap and goes on with what is kept.
func TestGapPastBackups(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "podhook.log")
	l, err := logfile.Open(path, 500, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	record(t, l, 0)
	f, _, _ := New(path, 1, Position{})
	for i := 1; i <= 20; i++ {
		record(t, l, i)
	}
	var got [][]byte
	if err := f.Poll(func(line []byte) { got = append(got, line) }); err != nil {
		t.Fatal(err)
	}
	if f.Gaps != 1 || len(got) == 0 || seqs(t, got)[len(got)-1] != 20 {
		t.Fatalf("gaps %d, records %v", f.Gaps, seqs(t, got))
	}
}
