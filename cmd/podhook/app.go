//go:build !hookonly

package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/hook"
)

// newApp builds the command line. Commands write only to the writers given.
func newApp(stdin io.Reader, stdout, stderr io.Writer, start time.Time) *cli.App {
	app := &cli.App{
		Name:      "podhook",
		Usage:     "OCI runtime hook that reports every container to a node-local agent before it starts",
		Version:   version,
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		// Regex patterns may hold commas; lists of names are split by us.
		DisableSliceFlagSeparator: true,
		// Errors are mapped to exit codes in run, never inside the library.
		ExitErrHandler: func(*cli.Context, error) {},
		// Shell completion for the commands (podhook completion words with
		// --generate-bash-completion); stage invocations never get here.
		EnableBashCompletion: true,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("unknown stage or command %q (run podhook --help)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	// --version prints what `podhook version` prints.
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, versionLine()) }
	// One set of flag values serves the commands that use urfave/cli's
	// flags: only one runs per process.
	flags := configFlags()
	for _, st := range hook.Stages {
		app.Commands = append(app.Commands, stageCommand(st, start))
	}
	app.Commands = append(app.Commands,
		captureCommand(),
		hooksJSONCommand(),
		installCommand(),
		uninstallCommand(),
		setupCommand(),
		syncCommand(),
		decisionsCommand(only(flags, flagConfig, flagLogFile, flagLogMaxBackups)),
		checkCommand(only(flags, flagConfig, flagAgentAddress, flagTimeout, flagAgentUID, flagProtocol)),
		validateCommand(flags),
		versionCommand(),
	)
	// A flag or PODHOOK_* value that does not parse is one line on stderr
	// (run maps it to exit 1), not a usage dump on stdout.
	app.OnUsageError = usageError
	for _, c := range app.Commands {
		quietUsage(c)
	}
	return app
}

func usageError(c *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%w (podhook %s --help lists the flags)", err, c.Command.FullName())
}

func quietUsage(c *cli.Command) {
	c.OnUsageError = usageError
	for _, sub := range c.Subcommands {
		quietUsage(sub)
	}
}
