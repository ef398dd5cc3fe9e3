package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/podhook/podhook/internal/logfile"
	versionpkg "github.com/podhook/podhook/internal/version"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/internal/catchup"
	"github.com/podhook/podhook/internal/config"
	"github.com/podhook/podhook/internal/hooksd"
	"github.com/podhook/podhook/internal/hostpath"
	"github.com/podhook/podhook/internal/nriplugin"
)

var version = versionpkg.String()

func main() {
	if err := newApp(os.Stdout).Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "podhook-nri: %v\n", err)
		os.Exit(1)
	}
}

func newApp(stdout io.Writer) *cli.App {
	return &cli.App{
		Name:           "podhook-nri",
		Usage:          "NRI plugin that adds podhook's hooks to every container (containerd, CRI-O with NRI)",
		Version:        version,
		Writer:         stdout,
		ExitErrHandler: func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Value: nriplugin.DefaultSocketPath, EnvVars: []string{"PODHOOK_NRI_SOCKET"}, Usage: "the runtime's NRI socket"},
			&cli.StringFlag{Name: "hook-path", Value: hooksd.DefaultPath, Usage: "the installed podhook binary, as the runtime sees it"},
			&cli.StringFlag{Name: "config", Value: "/opt/podhook/podhook-config.json", Usage: `the hook's config file, passed as --config ("" for none)`},
			&cli.IntFlag{Name: "hook-timeout", Value: hooksd.DefaultTimeout, Usage: "the runtime's timeout for the hook, seconds"},
			&cli.StringFlag{Name: "plugin-name", Value: "podhook", Usage: "NRI plugin name"},
			&cli.StringFlag{Name: "plugin-index", Value: "10", Usage: "NRI plugin index (order among plugins)"},
			&cli.StringFlag{Name: "log-file", Value: "-", Usage: `JSON-lines log, rotated as the hook's is (10 MiB, 3 backups); "-" for stdout`},
			&cli.StringFlag{Name: "metrics-address", Usage: "serve Prometheus metrics (connected, reconnects, containers injected and created without the hook) on host:port; off when empty"},
			&cli.StringFlag{Name: "host-root", Value: "/", Usage: "the host's / in this container: the config file and the agent's socket, as the host sees them, are read under it"},
		},
		Action: func(c *cli.Context) error {
			w, closeLog, err := logfile.Writer(c.String("log-file"), c.App.Writer)
			if err != nil {
				return err
			}
			defer closeLog()
			var args []string
			hookCfg := config.Defaults()
			if cfg := c.String("config"); cfg != "" {
				args = []string{"--config", cfg}
				// The hook timeout must leave the deadline the hook will
				// read from this file (checked when the hooks are built);
				// containers created while the plugin was away are
				// reported to the agent it names.
				path, err := hostpath.Resolve(c.String("host-root"), cfg)
				if err != nil {
					return err
				}
				f, err := config.ReadFile(path)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
				hookCfg = hookCfg.Merge(f)
			}
			log := slog.New(slog.NewJSONHandler(w, nil))
			// The hook refuses what this file gets wrong (a pattern that
			// does not compile on its own, say) and decides with its safe
			// defaults: say so here, and size the hooks for those.
			if err := hookCfg.Validate(true); err != nil {
				log.Error("hook configuration invalid: the hook will use its built-in safe defaults", "config", cfgPath(c), "config_error", err.Error())
				hookCfg = hookCfg.Safe()
			}
			// Containers created while the plugin was away are reported to
			// every agent that speaks podhook's API; Tetragon finds running
			// containers through the CRI itself.
			var catchUp nriplugin.Agent
			agents, closeAgents, err := catchup.Clients(hookCfg, c.String("host-root"))
			switch {
			case err == nil:
				defer closeAgents()
				catchUp = agents
			case !errors.Is(err, catchup.ErrNoPodhookAgent):
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			var metrics *nriplugin.Metrics
			if addr := c.String("metrics-address"); addr != "" {
				reg := prometheus.NewRegistry()
				metrics = nriplugin.NewMetrics(reg)
				lis, err := net.Listen("tcp", addr)
				if err != nil {
					return err
				}
				srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
				go srv.Serve(lis)
				defer srv.Close()
			}
			return nriplugin.Run(ctx, nriplugin.Options{
				SocketPath: c.String("socket"),
				Name:       c.String("plugin-name"),
				Index:      c.String("plugin-index"),
				Hook:       hooksd.Options{Path: c.String("hook-path"), Args: args, Timeout: c.Int("hook-timeout"), AgentTimeout: hookCfg.Timeout.Duration()},
				Agent:      catchUp,
				Metrics:    metrics,
				Log:        log,
			})
		},
	}
}

// cfgPath is the hook's config file as the host names it.
func cfgPath(c *cli.Context) string { return c.String("config") }
