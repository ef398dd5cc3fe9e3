//go:build hookonly

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// The hook's own build (make build: bin/podhook, the binary hooks.d and
// podhook-nri run) holds the stages and nothing else; every other command
// is podhook-ctl's, the full build of this package, which it runs in its
// place. The hook then links none of the other commands' code, which a
// process pays to map at every container start (measured: make
// breakdown, and the README's Performance).

// CtlName is the full build's file name.
const CtlName = "podhook-ctl"

// runCommand replaces this process with podhook-ctl, found next to this
// binary or on PATH, with the same arguments and environment: its pid,
// signals and exit status are the command's own (the keeper's
// `install --keep` stays the container's process).
func runCommand(args []string, _ io.Reader, _, _ io.Writer, _ time.Time) error {
	ctl, err := findCtl()
	if err != nil {
		return err
	}
	return syscall.Exec(ctl, args, os.Environ())
}

func findCtl() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), CtlName)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(CtlName); err == nil {
		return p, nil
	} else if !errors.Is(err, exec.ErrNotFound) {
		return "", err
	}
	return "", fmt.Errorf("this podhook is the hook's own build, with the stages only; the other commands are %s's, which is neither next to it nor on PATH (in the image: /%s)", CtlName, CtlName)
}
