//go:build !hookonly

package main

import (
	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/internal/hooksd"
)

func hooksJSONCommand() *cli.Command {
	return &cli.Command{
		Name:  "hooks-json",
		Usage: "print the hooks.d registration for a podhook installed at --path",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "path", Value: hooksd.DefaultPath, Usage: "absolute path of the installed podhook binary"},
			&cli.StringFlag{Name: "stage", Value: "createRuntime", Usage: "createRuntime or poststop"},
			&cli.IntFlag{Name: "hook-timeout", Value: hooksd.DefaultTimeout, Usage: "the runtime's timeout for the hook, seconds (keep it well above --timeout)"},
			&cli.StringSliceFlag{Name: "arg", Usage: "extra argument after the stage (repeatable), e.g. --arg=--config --arg=/opt/podhook/podhook-config.json"},
			&cli.StringSliceFlag{Name: "env", Usage: "the hook's environment, NAME=VALUE (repeatable; default: PATH and GOMAXPROCS=1)"},
		},
		Action: func(c *cli.Context) error {
			h, err := hooksd.Registration(hooksd.Options{
				Path: c.String("path"), Stage: c.String("stage"), Timeout: c.Int("hook-timeout"),
				Args: c.StringSlice("arg"), Env: c.StringSlice("env"),
			})
			if err != nil {
				return err
			}
			b, err := hooksd.Marshal(h)
			if err != nil {
				return err
			}
			_, err = c.App.Writer.Write(b)
			return err
		},
	}
}
