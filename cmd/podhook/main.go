package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	versionpkg "github.com/podhook/podhook/internal/version"

	"github.com/podhook/podhook/hook"
	"github.com/podhook/podhook/resolver"
)

// version is the release and the commit stamped at build time (see
// internal/version).
var version = versionpkg.String()

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr, time.Now()))
}

// run executes podhook with args and returns the exit code: 0 or 1, never
// anything else. A panic that escapes a stage (hook.Run decides its own
// with the resolved identity) is decided by the fail check with what is
// known then, no identity: a create fails closed, a poststop exits 0.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, start time.Time) (code int) {
	defer func() {
		if r := recover(); r != nil {
			code = 1
			err := fmt.Errorf("%w: %v", hook.ErrInternal, r)
			if st, serr := stageOf(args); serr == nil {
				d := hook.Decide(st, err, resolver.Identity{Runtime: resolver.Unknown}, hook.Policy{}, hook.Policy{})
				if d.Allow {
					code = 0
				}
				fmt.Fprintf(stderr, "podhook: %s\n", cmp.Or(d.Reason, err.Error()))
				return
			}
			fmt.Fprintf(stderr, "podhook: %v\n", err)
		}
	}()
	var err error
	if st, serr := stageOf(args); serr == nil {
		// The hook's path: straight to the stage, without building the
		// command line application.
		err = stageMain(st, args[2:], stdio{stdin, stdout, stderr}, start)
	} else {
		err = newApp(stdin, stdout, stderr, start).Run(args)
	}
	if err == nil {
		return 0
	}
	var stop *stopError
	if errors.As(err, &stop) {
		fmt.Fprintf(stderr, "podhook: %s\n", stop.reason)
		return 1
	}
	fmt.Fprintf(stderr, "podhook: %v\n", err)
	return 1
}

// stopError is returned by a stage command that stops the container.
type stopError struct{ reason string }

func (e *stopError) Error() string { return e.reason }

// stageOf returns the stage that args[1] names, or ErrStage.
func stageOf(args []string) (hook.Stage, error) {
	if len(args) < 2 {
		return "", hook.ErrStage
	}
	return hook.ParseStage(args[1])
}
