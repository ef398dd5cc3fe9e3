package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/podhook/podhook/internal/safetext"
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
				say(stderr, cmp.Or(d.Reason, err.Error()))
				return
			}
			say(stderr, err.Error())
		}
	}()
	var err error
	if st, serr := stageOf(args); serr == nil {
		// The hook's path: straight to the stage, without building the
		// command line application.
		err = stageMain(st, args[2:], stdio{stdin, stdout, stderr}, start)
	} else {
		err = runCommand(args, stdin, stdout, stderr, start)
	}
	if err == nil {
		return 0
	}
	var stop *stopError
	if errors.As(err, &stop) {
		say(stderr, stop.reason)
		return 1
	}
	say(stderr, err.Error())
	return 1
}

// MaxStderr bounds the one line podhook writes on stderr, newline
// included: the runtime passes a failing hook's stderr to the kubelet,
// which shows it in the pod's events.
const MaxStderr = 1024

// say writes msg as podhook's one stderr line: our own multi-line errors
// (errors.Join) joined with "; ", then every control character escaped (a
// reason or a name from outside cannot start a line of its own or reach a
// terminal as a control sequence), cut to MaxStderr.
func say(w io.Writer, msg string) {
	const lead = "podhook: "
	fmt.Fprintf(w, "%s%s\n", lead, safetext.Line(msg, MaxStderr-len(lead)-1))
}

// flat joins the lines of an error of ours (errors.Join) with "; ", so
// that only text from outside is left to escape.
func flat(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

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
