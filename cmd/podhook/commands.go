package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/internal/config"
	"github.com/podhook/podhook/internal/install"
)

func checkCommand(flags []cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "probe the agent through the configured address (grpc.health.v1; Tetragon's GetVersion under --agent-protocol tetragon); exit 0 if it is serving",
		Flags: flags,
		Action: func(c *cli.Context) error {
			cfg := resolveConfig(fromContext(c))
			if cfg.Err != nil {
				return fmt.Errorf("configuration invalid: %w", cfg.Err)
			}
			client, err := agentclient.New(cfg.AgentAddress, agentclient.WithTimeout(cfg.Timeout.Duration()), agentclient.WithPeerUID(*cfg.AgentUID))
			if err != nil {
				return err
			}
			defer client.Close()
			start := time.Now()
			what, err := probe(client, cfg.AgentProtocol)
			if err != nil {
				return fmt.Errorf("agent at %s is not serving: %w", cfg.AgentAddress, err)
			}
			fmt.Fprintf(c.App.Writer, "agent at %s is serving (%s, %.1f ms)\n", cfg.AgentAddress, what, float64(time.Since(start).Microseconds())/1000)
			return nil
		},
	}
}

func validateCommand(flags []cli.Flag) *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check a config file (default: the one next to the binary), the settings from flags and environment, and podhook's registrations in --hooks-dir",
		ArgsUsage: " ",
		Flags: append(flags[:len(flags):len(flags)],
			&cli.StringSliceFlag{Name: flagHooksDir, Usage: "also check podhook's registrations in this hooks.d directory (repeatable)"},
			&cli.StringFlag{Name: flagHostRoot, Value: "/", Usage: "the host's / when checking from a container"},
		),
		Action: func(c *cli.Context) error {
			for _, dir := range c.StringSlice(flagHooksDir) {
				checked, err := install.CheckRegistrations(c.String(flagHostRoot), dir)
				if err != nil {
					return err
				}
				for _, f := range checked {
					fmt.Fprintf(c.App.Writer, "registration valid: %s\n", f)
				}
			}
			path := c.String(flagConfig)
			if !c.IsSet(flagConfig) {
				path = config.DefaultFile()
			}
			cfg := resolveConfig(fromContext(c))
			if cfg.Err != nil {
				return fmt.Errorf("configuration invalid: %w", cfg.Err)
			}
			if err := cfg.Validate(true); err != nil {
				return fmt.Errorf("configuration invalid: %w", err)
			}
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				path += " (absent: defaults)"
			}
			fmt.Fprintf(c.App.Writer, "configuration valid (file %s)\n", path)
			return nil
		},
	}
}

// probe asks the agent whether it serves, in its protocol: grpc.health.v1
// for podhook's API; Tetragon serves no health service, so its own
// GetVersion. It returns what answered.
func probe(client *agentclient.Client, protocol string) (string, error) {
	if protocol == config.ProtocolTetragon {
		v, err := client.TetragonVersion(context.Background())
		if err != nil {
			return "", fmt.Errorf("Tetragon's GetVersion: %w", err)
		}
		return "Tetragon " + v, nil
	}
	return "grpc.health.v1", client.Check(context.Background())
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *cli.Context) error {
			fmt.Fprintln(c.App.Writer, versionLine())
			return nil
		},
	}
}

// versionLine is what `podhook version` and `podhook --version` print.
func versionLine() string {
	return fmt.Sprintf("podhook %s %s %s/%s", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
