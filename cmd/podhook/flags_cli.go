//go:build !hookonly

package main

import (
	"github.com/urfave/cli/v2"
)

// urfave returns the spec as a urfave/cli flag.
func (s flagSpec) urfave() cli.Flag {
	switch s.kind {
	case kindDuration:
		return &cli.DurationFlag{Name: s.name, EnvVars: env(s.name), Usage: s.usage, DefaultText: s.defaultText}
	case kindInt:
		return &cli.IntFlag{Name: s.name, EnvVars: env(s.name), Usage: s.usage, DefaultText: s.defaultText}
	case kindStrings:
		return &cli.StringSliceFlag{Name: s.name, EnvVars: env(s.name), Usage: s.usage, DefaultText: s.defaultText}
	}
	return &cli.StringFlag{Name: s.name, EnvVars: env(s.name), Usage: s.usage, DefaultText: s.defaultText}
}

// only keeps the flags named: a command lists only the flags it uses.
func only(flags []cli.Flag, names ...string) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		for _, n := range names {
			if f.Names()[0] == n {
				out = append(out, f)
			}
		}
	}
	return out
}

// configFlags are configSpecs as urfave/cli flags.
func configFlags() []cli.Flag {
	specs := configSpecs()
	out := make([]cli.Flag, len(specs))
	for i, s := range specs {
		out[i] = s.urfave()
	}
	return out
}

// cliSettings reads a urfave/cli context, with the set flags found in one
// pass: Context.IsSet scans every flag's names, a regexp each.
type cliSettings struct {
	*cli.Context
	set map[string]bool
}

func fromContext(c *cli.Context) cliSettings {
	set := map[string]bool{}
	for _, name := range c.LocalFlagNames() {
		set[name] = true
	}
	return cliSettings{c, set}
}

func (s cliSettings) isSet(name string) bool { return s.set[name] }
