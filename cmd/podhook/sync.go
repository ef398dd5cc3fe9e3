//go:build !hookonly

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

// syncBinary is the program `podhook sync` runs. The CRI client lives in
// its own binary: linked into podhook, its API's descriptors would be
// built at every hook start. It is started with os.StartProcess, not
// os/exec, which the hook does not otherwise link.
const syncBinary = "podhook-sync"

func syncCommand() *cli.Command {
	return &cli.Command{
		Name:            "sync",
		Usage:           "tell the agent about every running container, from the runtime's CRI records (runs " + syncBinary + " next to podhook; --help for its options)",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			return runProgram(context.Background(), syncBinary, c.Args().Slice(), c.App.Reader, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// runProgram runs a sibling program with args and the given streams, and
// waits for it; ctx ending stops it (SIGTERM, then SIGKILL after 5 s), and
// it gets SIGTERM if this process dies first, so it never outlives its
// parent. A non-zero exit is an error.
func runProgram(ctx context.Context, name string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	bin, err := findSibling(name)
	if err != nil {
		return err
	}
	p, err := os.StartProcess(bin, append([]string{bin}, args...), &os.ProcAttr{
		Files: []*os.File{asFile(stdin, os.Stdin), asFile(stdout, os.Stdout), asFile(stderr, os.Stderr)},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM},
	})
	if err != nil {
		return err
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			p.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				p.Kill()
			}
		case <-done:
		}
	}()
	st, err := p.Wait()
	if err != nil {
		return err
	}
	if !st.Success() {
		return fmt.Errorf("%s: %s", name, st)
	}
	return nil
}

// asFile returns the stream as a file when it is one, else fallback.
func asFile(s any, fallback *os.File) *os.File {
	if f, ok := s.(*os.File); ok {
		return f
	}
	return fallback
}

// findSibling returns the program next to this binary, else on PATH.
func findSibling(name string) (string, error) {
	dirs := filepath.SplitList(os.Getenv("PATH"))
	if exe, err := os.Executable(); err == nil {
		dirs = append([]string{filepath.Dir(exe)}, dirs...)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found next to podhook or on PATH (%s)", name, strings.Join(dirs, ":"))
}
