//go:build !hookonly

package main

import (
	"io"
	"time"
)

// runCommand runs a command other than a stage: the urfave/cli
// application.
func runCommand(args []string, stdin io.Reader, stdout, stderr io.Writer, start time.Time) error {
	return newApp(stdin, stdout, stderr, start).Run(args)
}
