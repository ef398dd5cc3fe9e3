package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	versionpkg "github.com/podhook/podhook/internal/version"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc/codes"
)

var version = versionpkg.String()

func main() {
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "podhook-agent: %v\n", err)
		os.Exit(1)
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:                      "podhook-agent",
		Usage:                     "reference agent for podhook: logs every container event, denies by namespace or image",
		Version:                   version,
		Writer:                    stdout,
		ErrWriter:                 stderr,
		DisableSliceFlagSeparator: true,
		ExitErrHandler:            func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Value: "/run/podhook/agent.sock", EnvVars: []string{"PODHOOK_AGENT_SOCKET"}, Usage: "unix socket to serve on (mode 0600; a stale socket is replaced)"},
			&cli.StringFlag{Name: "events", Value: "-", Usage: `file the JSON-line events are appended to; "-" for stdout`},
			&cli.StringSliceFlag{Name: "deny-namespace", Usage: "answer DENY for pods in this namespace (repeatable)"},
			&cli.StringSliceFlag{Name: "deny-image", Usage: "answer DENY for images matching this RE2 pattern (repeatable)"},
			&cli.BoolFlag{Name: "allow-untrusted", Usage: "let containers whose pod identity is not trusted start (namespace rules never apply to them; by default they are denied)"},
			&cli.IntSliceFlag{Name: "allow-uid", Value: cli.NewIntSlice(0), Usage: "uids allowed to connect (SO_PEERCRED)"},
			&cli.DurationFlag{Name: "delay", Usage: "wait this long before answering (to play a slow agent)"},
			&cli.StringFlag{Name: "error-code", Usage: "answer every call with this gRPC status code, e.g. INTERNAL or PERMISSION_DENIED (to play a failing agent)"},
		},
		Action: func(c *cli.Context) error {
			cfg := Config{
				Socket:         c.String("socket"),
				DenyNamespaces: c.StringSlice("deny-namespace"),
				AllowUntrusted: c.Bool("allow-untrusted"),
				AllowUIDs:      c.IntSlice("allow-uid"),
				Delay:          c.Duration("delay"),
				Log:            stderr,
			}
			if name := c.String("error-code"); name != "" {
				var code codes.Code
				if err := code.UnmarshalJSON([]byte(strconv.Quote(strings.ToUpper(name)))); err != nil || code == codes.OK {
					return fmt.Errorf("--error-code %q: not a gRPC error code", name)
				}
				cfg.ErrorCode = code
			}
			for _, p := range c.StringSlice("deny-image") {
				re, err := regexp.Compile(p)
				if err != nil {
					return fmt.Errorf("--deny-image %q: %w", p, err)
				}
				cfg.DenyImages = append(cfg.DenyImages, re)
			}
			events := stdout
			switch path := c.String("events"); path {
			case "-":
			case os.DevNull:
				events = io.Discard // not even encoded
			default:
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
				if err != nil {
					return fmt.Errorf("events: %w", err)
				}
				defer f.Close()
				events = f
			}
			cfg.Events = events
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			srv, err := Listen(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "podhook-agent: serving on %s\n", cfg.Socket)
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve() }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			srv.Shutdown(5 * time.Second)
			if err := <-errc; err != nil && !errors.Is(err, errServerStopped) {
				return err
			}
			fmt.Fprintf(stderr, "podhook-agent: stopped\n")
			return nil
		},
	}
}
