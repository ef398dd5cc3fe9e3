//go:build !hookonly

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/internal/atomicfile"
	"github.com/podhook/podhook/internal/hostpath"
	"github.com/podhook/podhook/internal/install"
	"github.com/podhook/podhook/internal/runtimeconf"
)

func setupCommand() *cli.Command {
	dryRun := &cli.BoolFlag{Name: "dry-run", Usage: "print the diff, write nothing"}
	create := &cli.BoolFlag{Name: "create", Usage: "write the runtime's configuration even where it does not exist yet (by default that is refused: the runtime may not be installed here)"}
	return &cli.Command{
		Name:  "setup",
		Usage: "patch a container runtime's configuration for podhook",
		Subcommands: []*cli.Command{{
			Name:  "patch-containerd-conf",
			Usage: "patch containerd's config.toml",
			Subcommands: []*cli.Command{{
				Name:  "enable-nri",
				Usage: "enable NRI and external plugin connections, keeping every other line; prints a diff",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "config-file", Value: "/etc/containerd/config.toml", Usage: "containerd's config.toml (absent: refused unless --create)"},
					&cli.StringFlag{Name: "output", Usage: "write the result here instead of replacing --config-file (always written, changed or not)"},
					&cli.StringFlag{Name: "socket-path", Usage: "NRI socket (default: the file's, else /var/run/nri/nri.sock)"},
					&cli.StringFlag{Name: "plugin-registration-timeout", Usage: "default 5s"},
					&cli.StringFlag{Name: "plugin-request-timeout", Usage: "default 2s"},
					dryRun,
					create,
				},
				Action: func(c *cli.Context) error {
					in, mode, err := readOptional(c.String("config-file"))
					if err != nil {
						return err
					}
					if in == nil && !c.Bool("create") {
						return fmt.Errorf("%s does not exist: is containerd installed here? --create writes a new one", c.String("config-file"))
					}
					out, err := runtimeconf.EnableNRI(in, runtimeconf.NRISettings{
						SocketPath:          c.String("socket-path"),
						RegistrationTimeout: c.String("plugin-registration-timeout"),
						RequestTimeout:      c.String("plugin-request-timeout"),
					})
					if err != nil {
						return fmt.Errorf("%s: %w", c.String("config-file"), err)
					}
					dest := c.String("output")
					if dest == "" {
						dest = c.String("config-file")
					}
					return applyPatch(c, dest, c.IsSet("output"), in, out, mode, fmt.Sprintf(
						"NRI enabled on %s; restart containerd, then run podhook-nri --socket %s", runtimeconf.SocketPath(out), runtimeconf.SocketPath(out)))
				},
			}},
		}, {
			Name:  "patch-crio-conf",
			Usage: "patch CRI-O's configuration",
			Subcommands: []*cli.Command{{
				Name:  "add-hooks-dir",
				Usage: "add podhook's hooks dir to CRI-O's hooks_dir through a drop-in; prints a diff",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: flagHostRoot, Value: "/", Usage: "the host's /"},
					&cli.StringSliceFlag{Name: flagHooksDir, Value: cli.NewStringSlice(install.DefaultHooksDir), Usage: "hooks dir to add (repeatable)"},
					dryRun,
					create,
				},
				Action: func(c *cli.Context) error {
					root := c.String(flagHostRoot)
					crio, err := hostpath.Resolve(root, "/etc/crio")
					if err != nil {
						return err
					}
					if _, err := os.Stat(crio); err != nil && !c.Bool("create") {
						return fmt.Errorf("%s does not exist: is CRI-O installed here? --create writes the drop-in anyway", crio)
					}
					p, err := runtimeconf.AddHooksDir(root, c.StringSlice(flagHooksDir))
					if err != nil {
						return err
					}
					dest, err := hostpath.Parent(root, p.Path)
					if err != nil {
						return err
					}
					return applyPatch(c, dest, false, p.Before, p.After, 0o644,
						"CRI-O reads hooks_dir at start: restart CRI-O")
				},
			}},
		}},
	}
}

// readOptional reads a file that may not exist yet, with its mode.
func readOptional(path string) ([]byte, os.FileMode, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, 0o644, nil
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	return b, fi.Mode().Perm(), nil
}

// diffLabel names path in a diff header the way git and patch -p1 expect:
// "a/etc/containerd/config.toml", "a/config.toml" for a relative path.
func diffLabel(side, path string) string {
	return side + "/" + strings.TrimPrefix(filepath.Clean(path), "/")
}

// applyPatch prints the diff and writes the result atomically, unless there
// is nothing to change (and dest is not an --output, which is always
// written, so a script can read it) or --dry-run.
func applyPatch(c *cli.Context, dest string, output bool, before, after []byte, mode os.FileMode, next string) error {
	w := c.App.Writer
	if string(before) == string(after) {
		fmt.Fprintf(w, "%s: nothing to change\n", dest)
		if !output || c.Bool("dry-run") {
			return nil
		}
		return atomicfile.Write(dest, after, mode, nil)
	}
	fmt.Fprint(w, runtimeconf.Diff(diffLabel("a", dest), diffLabel("b", dest), before, after))
	if c.Bool("dry-run") {
		return nil
	}
	if err := atomicfile.Write(dest, after, mode, nil); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s; %s\n", dest, next)
	return nil
}
