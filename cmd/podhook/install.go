//go:build !hookonly

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/internal/config"
	"github.com/podhook/podhook/internal/hooksd"
	"github.com/podhook/podhook/internal/hostpath"
	"github.com/podhook/podhook/internal/install"
	"github.com/podhook/podhook/internal/jsonlog"
	"github.com/podhook/podhook/internal/logfile"
	"github.com/podhook/podhook/internal/runtimeconf"
)

const (
	flagHostRoot        = "host-root"
	flagInstallDir      = "install-dir"
	flagHooksDir        = "hooks-dir"
	flagBinary          = "binary"
	flagConfigFrom      = "config-from"
	flagHookTimeout     = "hook-timeout"
	flagCRIODropin      = "crio-dropin"
	flagCheckAgent      = "check-agent"
	flagKeep            = "keep"
	flagKeepInterval    = "keep-interval"
	flagUninstallOnExit = "uninstall-on-exit"
	flagSync            = "sync"
	flagSyncRetryFor    = "sync-retry-for"
	flagRuntimeEndpoint = "runtime-endpoint"
	flagMetricsAddress  = "metrics-address"
)

func hostFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagHostRoot, Value: "/", EnvVars: env(flagHostRoot), Usage: "the host's / (e.g. /host in a container); every other path is as the host sees it"},
		&cli.StringFlag{Name: flagInstallDir, Value: install.DefaultInstallDir, EnvVars: env(flagInstallDir), Usage: "where the binary and its config go (not /run: tmpfs; /opt or /usr may be read-only)"},
		&cli.StringSliceFlag{Name: flagHooksDir, Value: cli.NewStringSlice(install.DefaultHooksDir), EnvVars: env(flagHooksDir), Usage: "hooks.d directory to register in (repeatable)"},
	}
}

// hostOptions are the host paths from the flags.
func hostOptions(c *cli.Context) install.Options {
	return install.Options{
		HostRoot:   c.String(flagHostRoot),
		InstallDir: c.String(flagInstallDir),
		HooksDirs:  c.StringSlice(flagHooksDir),
		Out:        c.App.Writer,
	}
}

func installCommand() *cli.Command {
	// The hook's settings, written to its config file; --config is the
	// installed file itself, so it is left out here.
	var settings []cli.Flag
	for _, fl := range configFlags() {
		if fl.Names()[0] != flagConfig {
			settings = append(settings, fl)
		}
	}
	return &cli.Command{
		Name:  "install",
		Usage: "install podhook on the host: binary, config, then hooks.d registrations; idempotent",
		Flags: append(append(hostFlags(),
			&cli.StringFlag{Name: flagBinary, Usage: "podhook binary to install", DefaultText: "this binary"},
			&cli.StringFlag{Name: flagConfigFrom, EnvVars: env(flagConfigFrom), Usage: "config file to install (e.g. a mounted ConfigMap); the settings flags override it"},
			&cli.IntFlag{Name: flagHookTimeout, Value: hooksd.DefaultTimeout, Usage: "the runtimes' timeout for the hook, seconds"},
			&cli.StringFlag{Name: "interface", Value: "oci-hooks", Usage: "oci-hooks: register in hooks.d (CRI-O, podman); nri: binary and config only, for podhook-nri (containerd)"},
			&cli.BoolFlag{Name: flagCRIODropin, EnvVars: env(flagCRIODropin), Usage: "when CRI-O's hooks_dir lists none of the hooks dirs, add them with a drop-in"},
			&cli.BoolFlag{Name: flagCheckAgent, Usage: "probe the agent through the installed address and warn when it does not answer"},
			&cli.BoolFlag{Name: flagKeep, EnvVars: env(flagKeep), Usage: "stay running, restoring files that disappear or change, until SIGTERM"},
			&cli.DurationFlag{Name: flagKeepInterval, Value: 10 * time.Second, Usage: "how often --keep checks the files"},
			&cli.BoolFlag{Name: flagUninstallOnExit, Usage: "with --keep: uninstall on SIGTERM"},
			&cli.BoolFlag{Name: flagSync, EnvVars: env(flagSync), Usage: "once the hook is in place, tell the agent about the containers already running (podhook sync), retrying while the agent is not up"},
			&cli.DurationFlag{Name: flagSyncRetryFor, Value: 10 * time.Minute, Usage: "with --sync: how long to keep retrying"},
			&cli.StringFlag{Name: flagRuntimeEndpoint, EnvVars: env(flagRuntimeEndpoint), Usage: "with --sync: the runtime's CRI socket as the host sees it (default: containerd's, then CRI-O's)"},
			&cli.StringFlag{Name: flagMetricsAddress, EnvVars: env(flagMetricsAddress), Usage: "with --keep: serve the hook's decisions as Prometheus metrics on host:port (runs podhook-monitor; off when empty)"},
		), settings...),
		Action: func(c *cli.Context) error {
			o := hostOptions(c)
			o.HookTimeout = c.Int(flagHookTimeout)
			switch c.String("interface") {
			case "oci-hooks":
			case "nri":
				o.NRI = true
			default:
				return fmt.Errorf("--interface %q: want oci-hooks or nri", c.String("interface"))
			}
			o.CRIODropin = c.Bool(flagCRIODropin)
			o.Binary = c.String(flagBinary)
			if o.Binary == "" {
				var err error
				if o.Binary, err = hookBinary(); err != nil {
					return err
				}
			}
			cfg, err := installConfig(c)
			if err != nil {
				return err
			}
			if old, err := o.InstalledConfigBytes(); err == nil && !bytes.Equal(old, cfg) {
				fmt.Fprintf(c.App.Writer, "the installed config changes:\n%s", runtimeconf.Diff("installed", "new", old, cfg))
			}
			o.Config = cfg
			// --keep follows --config-from as it changes (a ConfigMap).
			o.ConfigFunc = func() ([]byte, error) { return installConfig(c) }
			if c.Bool(flagKeep) {
				ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
				defer stop()
				var children sync.WaitGroup
				o.Event = func(kind, hostPath string) { keeperRecord(c, o, kind, hostPath) }
				if c.Bool(flagSync) {
					// The hook first, then the catch-up: a container that
					// starts in between gets the hook, and sync reports it
					// too, so nothing falls between the two.
					if err := install.Install(o); err != nil {
						return err
					}
					children.Add(1)
					go func() { defer children.Done(); runSync(ctx, c, o) }()
				}
				if addr := c.String(flagMetricsAddress); addr != "" {
					if err := install.Install(o); err != nil {
						return err
					}
					children.Add(1)
					go func() { defer children.Done(); runMonitor(ctx, c, o, addr) }()
				}
				fmt.Fprintf(c.App.Writer, "keeping podhook installed under %s (every %s)\n", o.HostRoot, c.Duration(flagKeepInterval))
				err := install.Keep(ctx, o, c.Duration(flagKeepInterval), c.Bool(flagUninstallOnExit))
				// The sync and the monitor stop with the keeper: wait for
				// them, so none outlives it.
				stop()
				children.Wait()
				return err
			}
			if err := install.Install(o); err != nil {
				return err
			}
			if c.Bool(flagSync) {
				if err := runSync(context.Background(), c, o); err != nil {
					return err
				}
			}
			if o.NRI {
				fmt.Fprintf(c.App.Writer, "podhook installed in %s for NRI; run podhook-nri --hook-path %s\n", o.InstallDir, filepath.Join(o.InstallDir, install.BinaryName))
			} else {
				fmt.Fprintf(c.App.Writer, "podhook installed in %s, registered in %q\n", o.InstallDir, o.HooksDirs)
			}
			if c.Bool(flagCheckAgent) {
				checkInstalledAgent(c, cfg)
			}
			return nil
		},
	}
}

// runSync runs podhook-sync against the installed config, under the host
// root, retrying for --sync-retry-for; its records go to this command's
// output.
func runSync(ctx context.Context, c *cli.Context, o install.Options) error {
	args := []string{"--host-root", o.HostRoot, "--config", filepath.Join(o.InstallDir, config.FileName),
		"--retry-for", c.Duration(flagSyncRetryFor).String()}
	if e := c.String(flagRuntimeEndpoint); e != "" {
		args = append(args, "--runtime-endpoint", e)
	}
	if err := runProgram(ctx, syncBinary, args, nil, c.App.Writer, c.App.ErrWriter); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "podhook: sync: %v\n", err)
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// runMonitor runs podhook-monitor on the installed config's log, its
// position kept next to the installed binary, restarting it if it exits.
func runMonitor(ctx context.Context, c *cli.Context, o install.Options, addr string) {
	for ctx.Err() == nil {
		cfg, err := o.InstalledConfig()
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "podhook: metrics: the installed config: %v\n", err)
		}
		full := config.Defaults().Merge(cfg)
		args := []string{"--host-root", o.HostRoot, "--log-file", full.LogFile, "--log-max-backups", fmt.Sprint(*full.LogMaxBackups),
			"--metrics-address", addr, "--state-file", filepath.Join(o.InstallDir, install.MonitorPosition)}
		if err := runProgram(ctx, monitorBinary, args, nil, c.App.Writer, c.App.ErrWriter); err != nil && ctx.Err() == nil {
			fmt.Fprintf(c.App.ErrWriter, "podhook: metrics: %v; restarting in 5s\n", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

// keeperRecord appends what the keeper did to the hook's log, as one
// record beside the hooks' (podhook-monitor counts them); the log is the
// installed config's, under the host root.
func keeperRecord(c *cli.Context, o install.Options, kind, hostPath string) {
	cfg, _ := o.InstalledConfig()
	full := config.Defaults().Merge(cfg)
	if full.LogFile == config.LogNone || full.LogFile == config.LogStderr {
		return
	}
	path, err := hostpath.Parent(o.HostRoot, full.LogFile)
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "podhook: keeper record: %v\n", err)
		return
	}
	f, err := logfile.Open(path, int64(full.LogMaxSize), *full.LogMaxBackups)
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "podhook: keeper record: %v\n", err)
		return
	}
	defer f.Close()
	// A config source the keeper cannot install is the operator's to fix:
	// an error, as the hook's own invalid configuration is.
	level := slog.LevelInfo
	if kind == install.EventInvalidConfig {
		level = slog.LevelError
	}
	slog.New(jsonlog.New(f, slog.LevelInfo)).Log(context.Background(), level, "keeper: "+kind,
		slog.String("keeper_event", kind), slog.String("path", hostPath))
}

// monitorBinary serves the metrics (its own binary: the metrics library
// never weighs on the hook's start).
const monitorBinary = "podhook-monitor"

// installConfig is the config file content: --config-from, with the
// settings flags on top.
func installConfig(c *cli.Context) ([]byte, error) {
	var base config.Config
	if path := c.String(flagConfigFrom); path != "" {
		var err error
		if base, err = config.ReadFile(path); err != nil {
			return nil, err
		}
	} else {
		// No source given: the installed config stays, the settings flags
		// on top; a re-run without flags changes nothing.
		o := hostOptions(c)
		installed, err := o.InstalledConfig()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("the installed config (replace it with --config-from): %w", err)
		}
		base = installed
	}
	flags, err := fromFlags(fromContext(c))
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(base.Merge(flags), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func checkInstalledAgent(c *cli.Context, cfgJSON []byte) {
	parsed, _ := config.Parse(cfgJSON)
	cfg := config.Defaults().Merge(parsed)
	for _, p := range probeAll(cfg) {
		switch {
		case p.err == nil:
			fmt.Fprintf(c.App.Writer, "%s at %s is serving\n", p.who, p.agent.Address)
		case !*p.agent.Required:
			fmt.Fprintf(c.App.Writer, "warning: %s at %s does not answer (%v): it is optional, no container waits for it\n", p.who, p.agent.Address, p.err)
		default:
			fmt.Fprintf(c.App.Writer, "warning: %s at %s does not answer (%v): containers outside the fail-allow list will not start until it does\n", p.who, p.agent.Address, p.err)
		}
	}
}

func uninstallCommand() *cli.Command {
	return &cli.Command{
		Name:  "uninstall",
		Usage: "remove podhook from the host: the CRI-O drop-in podhook wrote and the hooks.d registrations first, then the config, the binary last",
		Flags: append(hostFlags(),
			&cli.BoolFlag{Name: "wait", Usage: "once done, stay running until SIGTERM (for a DaemonSet whose pods show completion by running)"},
		),
		Action: func(c *cli.Context) error {
			o := hostOptions(c)
			if err := install.Uninstall(o); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "podhook uninstalled from %s\n", o.InstallDir)
			if c.Bool("wait") {
				ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
				defer stop()
				<-ctx.Done()
			}
			return nil
		},
	}
}

// hookBinary is the binary install puts on the host: this one, or, when
// this is podhook-ctl (which the hook's own build runs for the commands
// other than the stages), the hook's build next to it, "podhook".
func hookBinary() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if filepath.Base(exe) == "podhook-ctl" {
		hook := filepath.Join(filepath.Dir(exe), "podhook")
		if fi, err := os.Stat(hook); err == nil && fi.Mode().IsRegular() {
			return hook, nil
		}
	}
	return exe, nil
}
