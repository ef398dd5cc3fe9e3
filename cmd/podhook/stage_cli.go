//go:build !hookonly

package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/hook"
)

// stageCommand lists a stage in the help. A stage invocation itself does
// not go through urfave/cli: run calls stageMain directly, since it runs for
// every container (urfave/cli's setup and flag handling cost ~150 µs of
// each start, measured).
func stageCommand(st hook.Stage, start time.Time) *cli.Command {
	usage := "run as the " + string(st) + " hook: state on stdin, exit 0 to let the container start, 1 to stop it"
	if !st.IsCreate() {
		usage = "run as the poststop hook: tell the agent the container is gone; always exits 0"
	}
	return &cli.Command{
		Name:            string(st),
		Usage:           usage + " (--help for its options)",
		SkipFlagParsing: true,
		HideHelp:        true,
		Action: func(c *cli.Context) error {
			return stageMain(st, c.Args().Slice(), stdio{c.App.Reader, c.App.Writer, c.App.ErrWriter}, start)
		},
	}
}
