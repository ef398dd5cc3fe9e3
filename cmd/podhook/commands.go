//go:build !hookonly

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/internal/config"
	"github.com/podhook/podhook/internal/install"
)

func checkCommand(flags []cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "probe every configured agent (grpc.health.v1; Tetragon's GetVersion for the tetragon protocol); exit 0 if every required one is serving",
		Flags: flags,
		Action: func(c *cli.Context) error {
			cfg := resolveConfig(fromContext(c))
			if cfg.Err != nil {
				return fmt.Errorf("configuration invalid: %w", cfg.Err)
			}
			var failed []string
			for _, p := range probeAll(cfg.Config) {
				switch {
				case p.err == nil:
					fmt.Fprintf(c.App.Writer, "%s at %s is serving (%s, %.1f ms)\n", p.who, p.agent.Address, p.what, float64(p.took.Microseconds())/1000)
				case !*p.agent.Required:
					fmt.Fprintf(c.App.Writer, "%s at %s is not serving (optional: it stops no container): %v\n", p.who, p.agent.Address, p.err)
				default:
					failed = append(failed, fmt.Sprintf("%s at %s is not serving: %v", p.who, p.agent.Address, p.err))
				}
			}
			if len(failed) > 0 {
				return errors.New(strings.Join(failed, "; "))
			}
			return nil
		},
	}
}

// probed is one agent's answer to a probe.
type probed struct {
	agent config.Agent
	who   string // "agent", or `agent "tetragon"` when a list names them
	what  string
	took  time.Duration
	err   error
}

// probeAll probes every configured agent at once.
func probeAll(cfg config.Config) []probed {
	list := cfg.AgentList()
	out := make([]probed, len(list))
	var wg sync.WaitGroup
	for i, a := range list {
		out[i] = probed{agent: a, who: "agent"}
		if len(cfg.Agents) > 0 {
			out[i].who = "agent " + strconv.Quote(a.Name)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			client, err := agentclient.New(a.Address, agentclient.WithTimeout(cfg.Timeout.Duration()), agentclient.WithPeerUID(*a.AgentUID))
			if err == nil {
				defer client.Close()
				out[i].what, err = probe(client, a.Protocol)
			}
			out[i].took, out[i].err = time.Since(start), err
		}()
	}
	wg.Wait()
	return out
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
