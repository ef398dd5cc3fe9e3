package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/internal/config"
)

// Flag names; each is also PODHOOK_<NAME> in the environment and <name>
// with underscores in the config file.
const (
	flagConfig         = "config"
	flagAgentAddress   = "agent-address"
	flagTimeout        = "timeout"
	flagAgentUID       = "agent-uid"
	flagLogFile        = "log-file"
	flagLogLevel       = "log-level"
	flagLogMaxSize     = "log-max-size"
	flagLogMaxBackups  = "log-max-backups"
	flagFailAllowNS    = "fail-allow-namespaces"
	flagFailAllowRegex = "fail-allow-namespace-regex"
	flagAgentNamespace = "agent-namespace"
	flagRuntime        = "runtime"
)

func env(name string) []string {
	return []string{"PODHOOK_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

// configFlags are the flags every command that talks to the agent takes.
// Defaults are not set here: they live in config.Defaults and are shown in
// the usage text.
func configFlags() []cli.Flag {
	d := config.Defaults()
	return []cli.Flag{
		&cli.StringFlag{Name: flagConfig, EnvVars: env(flagConfig), Usage: "config file (JSON)", DefaultText: "<binary dir>/" + config.FileName},
		&cli.StringFlag{Name: flagAgentAddress, EnvVars: env(flagAgentAddress), Usage: "agent's unix socket", DefaultText: d.AgentAddress},
		&cli.DurationFlag{Name: flagTimeout, EnvVars: env(flagTimeout), Usage: "deadline of the agent call", DefaultText: d.Timeout.String()},
		&cli.IntFlag{Name: flagAgentUID, EnvVars: env(flagAgentUID), Usage: "uid the agent must run as (SO_PEERCRED); -1 for any", DefaultText: fmt.Sprint(*d.AgentUID)},
		&cli.StringFlag{Name: flagLogFile, EnvVars: env(flagLogFile), Usage: `JSON-lines log file; "-" for stderr, "none" for no log`, DefaultText: d.LogFile},
		&cli.StringFlag{Name: flagLogLevel, EnvVars: env(flagLogLevel), Usage: "debug, info, warn or error", DefaultText: d.LogLevel},
		&cli.StringFlag{Name: flagLogMaxSize, EnvVars: env(flagLogMaxSize), Usage: "rotate the log before it passes this size (e.g. 10MiB)", DefaultText: "10MiB"},
		&cli.IntFlag{Name: flagLogMaxBackups, EnvVars: env(flagLogMaxBackups), Usage: "rotated log files kept", DefaultText: fmt.Sprint(*d.LogMaxBackups)},
		&cli.StringSliceFlag{Name: flagFailAllowNS, EnvVars: env(flagFailAllowNS), Usage: "namespaces that start when the agent is unavailable (comma-separated, repeatable)", DefaultText: strings.Join(d.FailAllowNamespaces, ",")},
		&cli.StringSliceFlag{Name: flagFailAllowRegex, EnvVars: env(flagFailAllowRegex), Usage: "RE2 pattern matched against the whole namespace name (repeatable)"},
		&cli.StringFlag{Name: flagAgentNamespace, EnvVars: env(flagAgentNamespace), Usage: "the agent's own namespace, always allowed to fail open"},
		&cli.StringFlag{Name: flagRuntime, EnvVars: env(flagRuntime), Usage: "cri-o, containerd, podman or auto: detection then only confirms it", DefaultText: "auto"},
	}
}

// resolved is the configuration a command runs with.
type resolved struct {
	config.Config
	// Err is set when the configuration was invalid and the safe
	// defaults replaced it.
	Err error
}

// resolveConfig builds the one configuration: flags and environment (urfave
// treats both as set), over the config file, over the defaults. An invalid
// result is replaced by the safe defaults and reported in Err.
func resolveConfig(c *cli.Context) resolved {
	path, explicit := c.String(flagConfig), c.String(flagConfig) != ""
	if !explicit {
		path = config.DefaultFile()
	}
	var fileErr error
	var file config.Config
	if path != "" {
		file, fileErr = config.ReadFile(path)
		if errors.Is(fileErr, os.ErrNotExist) && !explicit {
			fileErr = nil
		}
	}
	cfg := config.Defaults().Merge(file)
	flags, flagErr := fromFlags(c)
	cfg = cfg.Merge(flags)
	if err := errors.Join(fileErr, flagErr, cfg.Validate(false)); err != nil {
		return resolved{Config: cfg.Safe(), Err: err}
	}
	return resolved{Config: cfg}
}

// fromFlags returns the settings given by flags or environment.
func fromFlags(c *cli.Context) (config.Config, error) {
	var f config.Config
	var err error
	// One pass over the flags: Context.IsSet per flag costs a scan of every
	// flag's names, measurable at each container start.
	set := map[string]bool{}
	for _, name := range c.LocalFlagNames() {
		set[name] = true
	}
	if set[flagAgentAddress] {
		f.AgentAddress = c.String(flagAgentAddress)
	}
	if set[flagTimeout] {
		f.Timeout = config.Duration(c.Duration(flagTimeout))
		if f.Timeout <= 0 {
			err = fmt.Errorf("%w: --%s must be positive", config.ErrInvalid, flagTimeout)
		}
	}
	if set[flagAgentUID] {
		uid := c.Int(flagAgentUID)
		f.AgentUID = &uid
	}
	if set[flagLogFile] {
		f.LogFile = c.String(flagLogFile)
	}
	if set[flagLogLevel] {
		f.LogLevel = c.String(flagLogLevel)
	}
	if set[flagLogMaxSize] {
		f.LogMaxSize, err = config.ParseSize(c.String(flagLogMaxSize))
	}
	if set[flagLogMaxBackups] {
		n := c.Int(flagLogMaxBackups)
		f.LogMaxBackups = &n
	}
	if set[flagFailAllowNS] {
		f.FailAllowNamespaces = []string{}
		for _, v := range c.StringSlice(flagFailAllowNS) {
			for _, ns := range strings.Split(v, ",") {
				if ns = strings.TrimSpace(ns); ns != "" {
					f.FailAllowNamespaces = append(f.FailAllowNamespaces, ns)
				}
			}
		}
	}
	if set[flagFailAllowRegex] {
		f.FailAllowNamespaceRegex = c.StringSlice(flagFailAllowRegex)
	}
	if set[flagAgentNamespace] {
		f.AgentNamespace = c.String(flagAgentNamespace)
	}
	if set[flagRuntime] {
		f.Runtime = c.String(flagRuntime)
	}
	return f, err
}
