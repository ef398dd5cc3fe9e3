//go:build !hookonly

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/hook"
	"github.com/podhook/podhook/internal/regfile"
)

const (
	flagDir         = "dir"
	flagMaxCaptures = "max-captures"
)

func captureCommand() *cli.Command {
	return &cli.Command{
		Name:  "capture",
		Usage: "save the incoming state and its config.json under --dir for replay with --state-file; always exits 0",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagDir, Usage: "directory to save captures in (required)"},
			&cli.IntFlag{Name: flagMaxCaptures, Value: 50, Usage: "captures kept; the oldest are removed"},
		},
		Action: func(c *cli.Context) error {
			if c.String(flagDir) == "" {
				return fmt.Errorf("capture needs --dir DIR")
			}
			dir, err := capture(c.App.Reader, c.String(flagDir), c.Int(flagMaxCaptures), time.Now())
			if err != nil {
				fmt.Fprintf(c.App.ErrWriter, "podhook capture: %v\n", err)
				return nil
			}
			fmt.Fprintf(c.App.ErrWriter, "podhook capture: saved %s\n", dir)
			return nil
		},
	}
}

// capture saves one state and its config.json into a new directory under
// root, with the state's bundle pointing at that directory, so that
// `podhook createRuntime --state-file <dir>/state.json` replays it. The
// original bundle is kept in origin.json. It keeps at most keep captures.
func capture(r io.Reader, root string, keep int, now time.Time) (string, error) {
	raw, err := io.ReadAll(io.LimitReader(r, hook.MaxStateSize+1))
	if err != nil {
		return "", fmt.Errorf("read state: %w", err)
	}
	st, err := hook.ParseState(raw)
	if err != nil {
		return "", err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return "", fmt.Errorf("%w: %w", hook.ErrState, err)
	}
	id := st.ID
	if len(id) > 12 {
		id = id[:12]
	}
	id = strings.Map(func(r rune) rune {
		if r == '/' || r == '.' {
			return '_'
		}
		return r
	}, id)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(root, now.UTC().Format("20060102T150405.000000000Z")+"-"+id+"-")
	if err != nil {
		return "", err
	}
	bundle, _ := json.Marshal(dir)
	fields["bundle"] = bundle
	state, err := json.Marshal(fields)
	if err != nil {
		return "", err
	}
	origin, _ := json.MarshalIndent(map[string]string{"bundle": st.Bundle, "captured_at": now.UTC().Format(time.RFC3339Nano)}, "", "  ")
	files := map[string][]byte{"state.json": state, "origin.json": origin}
	spec, specErr := regfile.Read(filepath.Join(st.Bundle, "config.json"), hook.MaxSpecSize)
	if specErr == nil {
		files["config.json"] = spec
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return dir, err
		}
	}
	if err := prune(root, keep); err != nil {
		return dir, err
	}
	if specErr != nil {
		return dir, fmt.Errorf("saved the state in %s but not config.json: %w", dir, specErr)
	}
	return dir, nil
}

// prune removes the oldest captures beyond keep. Capture directories sort by
// their time prefix.
func prune(root string, keep int) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && len(e.Name()) > 8 && e.Name()[8] == 'T' {
			dirs = append(dirs, e.Name())
		}
	}
	sort.Strings(dirs)
	for len(dirs) > max(keep, 1) {
		if err := os.RemoveAll(filepath.Join(root, dirs[0])); err != nil {
			return err
		}
		dirs = dirs[1:]
	}
	return nil
}
