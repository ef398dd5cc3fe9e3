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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/internal/config"
	"github.com/podhook/podhook/internal/hostpath"
	"github.com/podhook/podhook/internal/logtail"
	"github.com/podhook/podhook/internal/metrics"
	versionpkg "github.com/podhook/podhook/internal/version"
)

func main() {
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "podhook-monitor: %v\n", err)
		os.Exit(1)
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	d := config.Defaults()
	return &cli.App{
		Name:           "podhook-monitor",
		Usage:          "follow the hook's log and serve its decisions as Prometheus metrics",
		Version:        versionpkg.String(),
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-file", Value: d.LogFile, Usage: "the hook's log, as the host sees it"},
			&cli.IntFlag{Name: "log-max-backups", Value: *d.LogMaxBackups, Usage: "rotated files the hook keeps (its log_max_backups)"},
			&cli.StringFlag{Name: "host-root", Value: "/", Usage: "the host's / in this container"},
			&cli.StringFlag{Name: "metrics-address", Value: "127.0.0.1:9464", Usage: "host:port to serve /metrics on"},
			&cli.StringFlag{Name: "state-file", Usage: "where the position in the log is kept across restarts, as the host sees it (none: start at the end of the log, and say so)"},
			&cli.DurationFlag{Name: "poll-interval", Value: time.Second, Usage: "how often the log is read"},
			&cli.BoolFlag{Name: "namespace-label", Usage: "also count create decisions by pod namespace"},
			&cli.IntFlag{Name: "namespace-cap", Value: 100, Usage: "with --namespace-label: namespaces counted by name; the rest count as _other"},
		},
		Action: func(c *cli.Context) error {
			log := slog.New(slog.NewJSONHandler(c.App.Writer, nil))
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			m := metrics.New(reg, metrics.Options{Namespaces: c.Bool("namespace-label"), NamespaceCap: c.Int("namespace-cap")})
			// Both are the host's paths: resolved inside --host-root, so a
			// host's absolute symlink (/var/log -> /data/log) leads where
			// it leads on the host.
			path, err := hostpath.Parent(c.String("host-root"), c.String("log-file"))
			if err != nil {
				return err
			}
			state := c.String("state-file")
			if state != "" {
				if state, err = hostpath.Parent(c.String("host-root"), state); err != nil {
					return err
				}
			}
			var pos logtail.Position
			if state != "" {
				var err error
				if pos, err = logtail.Load(state); err != nil {
					log.Warn("position unreadable, starting at the end of the log", "error", err.Error())
					pos = logtail.Position{}
				}
			}
			f, atEnd, err := logtail.New(path, c.Int("log-max-backups"), pos)
			if err != nil {
				return err
			}
			defer f.Close()
			if atEnd {
				log.Warn("no saved position: counting from the end of the log; what it already holds is not counted", "log_file", path)
			}
			lis, err := net.Listen("tcp", c.String("metrics-address"))
			if err != nil {
				return err
			}
			mux := http.NewServeMux()
			mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			go srv.Serve(lis)
			log.Info("serving metrics", "address", lis.Addr().String(), "log_file", path)
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			t := time.NewTicker(c.Duration("poll-interval"))
			defer t.Stop()
			gaps := 0
			present := true // say so the first time it is missing
			for {
				// A log that is not there counts nothing: say so, in the
				// log and in a metric an alert can watch.
				_, serr := os.Stat(path)
				m.LogPresent(serr == nil)
				switch {
				case serr != nil && present:
					log.Warn("the hook's log does not exist here: nothing is counted until it does (is its directory mounted, and has a hook run?)", "log_file", path, "error", serr.Error())
				case serr == nil && !present:
					log.Info("the hook's log is here: counting", "log_file", path)
				}
				present = serr == nil
				if err := f.Poll(func(line []byte) { m.Observe(line) }); err != nil {
					log.Warn("reading the log", "error", err.Error())
				}
				if f.Gaps > gaps {
					m.Gaps(f.Gaps - gaps)
					gaps = f.Gaps
				}
				if state != "" {
					if err := logtail.Save(state, f.Position()); err != nil && !errors.Is(err, os.ErrNotExist) {
						log.Warn("saving the position", "error", err.Error())
					}
				}
				select {
				case <-ctx.Done():
					shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					defer cancel()
					return srv.Shutdown(shutdown)
				case <-t.C:
				}
			}
		},
	}
}
