package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/podhook/podhook/internal/hostpath"
	"github.com/podhook/podhook/internal/logfile"
	versionpkg "github.com/podhook/podhook/internal/version"

	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/internal/catchup"
	"github.com/podhook/podhook/internal/config"
	"github.com/podhook/podhook/internal/cri"
)

var version = versionpkg.String()

func main() {
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "podhook sync: %v\n", err)
		os.Exit(1)
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:           "podhook-sync",
		Usage:          "tell the agent about every running container, from the runtime's CRI records (exit 0 when all were delivered)",
		Version:        version,
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "runtime-endpoint", EnvVars: []string{"PODHOOK_RUNTIME_ENDPOINT"}, Usage: "the runtime's CRI socket, unix:///path (default: containerd's, then CRI-O's, whichever exists)"},
			&cli.StringFlag{Name: "config", Usage: "podhook's config file as the host sees it (read under --host-root), for the agent address, deadline and peer uid (default: the one next to this binary, if any)"},
			&cli.StringFlag{Name: "agent-address", EnvVars: []string{"PODHOOK_AGENT_ADDRESS"}, Usage: "the agent's unix socket (overrides the config file)"},
			&cli.DurationFlag{Name: "timeout", Usage: "deadline of each agent call (overrides the config file)"},
			&cli.IntFlag{Name: "agent-uid", Value: -2, DefaultText: "from the config file", Usage: "uid the agent must run as; -1 for any"},
			&cli.IntFlag{Name: "concurrency", Value: 8, Usage: "agent calls at a time"},
			&cli.DurationFlag{Name: "cri-timeout", Value: 10 * time.Second, Usage: "deadline of each CRI call"},
			&cli.DurationFlag{Name: "retry-for", Usage: "keep retrying what was not delivered (the runtime or the agent not up yet) for this long; 0: once"},
			&cli.StringFlag{Name: "log-file", Value: "-", Usage: `JSON-lines log, one record per container and a summary, rotated as the hook's is; "-" for stdout`},
			&cli.StringFlag{Name: "host-root", Value: "/", Usage: "the host's / (e.g. /host in a container): the agent's and the runtime's sockets are as the host sees them, under it"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := agentConfig(c)
			if err != nil {
				return err
			}
			root := c.String("host-root")
			agents, closeAgents, err := catchup.Clients(cfg, root)
			if err != nil {
				return err
			}
			defer closeAgents()
			w, closeLog, err := logfile.Writer(c.String("log-file"), c.App.Writer)
			if err != nil {
				return err
			}
			defer closeLog()
			log := slog.New(slog.NewJSONHandler(w, nil))
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return syncAll(ctx, syncOptions{
				endpoint: c.String("runtime-endpoint"), root: root, criTimeout: c.Duration("cri-timeout"),
				concurrency: c.Int("concurrency"), retryFor: c.Duration("retry-for"),
			}, agents, log)
		},
	}
}

// agentConfig is the agent's address, deadline and peer uid: flags over the
// config file over the defaults.
func agentConfig(c *cli.Context) (config.Config, error) {
	cfg := config.Defaults()
	path, explicit := c.String("config"), c.IsSet("config")
	if !explicit {
		path = config.DefaultFile()
	} else if path != "" {
		var err error
		if path, err = hostpath.Resolve(c.String("host-root"), path); err != nil {
			return cfg, err
		}
	}
	if path != "" {
		f, err := config.ReadFile(path)
		if err != nil && (explicit || !errors.Is(err, os.ErrNotExist)) {
			return cfg, err
		}
		cfg = cfg.Merge(f)
	}
	if c.IsSet("agent-address") {
		cfg = cfg.Merge(config.Config{AgentAddress: c.String("agent-address")}) // one agent, in place of a list
	}
	if c.IsSet("timeout") {
		cfg.Timeout = config.Duration(c.Duration("timeout"))
	}
	if c.IsSet("agent-uid") {
		uid := c.Int("agent-uid")
		cfg.AgentUID = &uid
	}
	return cfg, cfg.Validate(false)
}

type syncOptions struct {
	endpoint    string
	root        string
	criTimeout  time.Duration
	concurrency int
	retryFor    time.Duration
}

// syncAll lists the running containers and delivers them; with retryFor it
// lists again and delivers what was not delivered yet until all were or
// the time is up, backing off between rounds.
func syncAll(ctx context.Context, o syncOptions, agent catchup.Agent, log *slog.Logger) error {
	deadline := time.Now().Add(o.retryFor)
	delivered := map[string]bool{}
	backoff := 500 * time.Millisecond
	for {
		err := round(ctx, o, agent, log, delivered)
		if err == nil || o.retryFor <= 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		log.Warn("sync incomplete, retrying", "error", err.Error(), "retry_in_ms", backoff.Milliseconds())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// round lists once and delivers the containers not delivered before.
func round(ctx context.Context, o syncOptions, agent catchup.Agent, log *slog.Logger, delivered map[string]bool) error {
	endpoint, err := cri.Endpoint(o.root, o.endpoint)
	if err != nil {
		return err
	}
	runtimeName, ctrs, err := cri.List(ctx, endpoint, o.criTimeout)
	if err != nil {
		return err
	}
	var todo []catchup.Container
	for _, c := range ctrs {
		if !delivered[c.ID] {
			todo = append(todo, c)
		}
	}
	log.Info("running containers listed", "runtime", runtimeName, "endpoint", endpoint, "running", len(ctrs), "to_report", len(todo))
	sum, err := catchup.Deliver(ctx, agent, todo, o.concurrency, log)
	for _, c := range todo {
		if !sum.Undelivered[c.ID] {
			delivered[c.ID] = true
		}
	}
	return err
}
