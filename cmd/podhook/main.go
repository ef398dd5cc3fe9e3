package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/podhook/podhook/hook"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr, time.Now()))
}

// run executes podhook with args and returns the exit code: 0 or 1, never
// anything else. A panic that escapes a command stops a container only
// through the same one-line path as any other failure.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, start time.Time) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "podhook: internal error: %v\n", r)
			code = 1
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
