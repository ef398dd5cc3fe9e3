//go:build !hookonly

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/podhook/podhook/internal/hostpath"
	"github.com/podhook/podhook/internal/logtail"
	"github.com/podhook/podhook/internal/safetext"
)

// decisionRecord is what the decisions view shows of a record.
type decisionRecord struct {
	Time          time.Time `json:"time"`
	Stage         string    `json:"stage"`
	Decision      string    `json:"decision"`
	FailOpen      bool      `json:"fail_open"`
	WouldDeny     bool      `json:"would_deny"`
	PodNamespace  string    `json:"pod_namespace"`
	PodName       string    `json:"pod_name"`
	ContainerName string    `json:"container_name"`
	ContainerID   string    `json:"container_id"`
	Reason        string    `json:"reason"`
	Msg           string    `json:"msg"`
}

// decisionFilter selects records.
type decisionFilter struct {
	since     time.Time
	namespace string
	decision  string
	failOpen  bool
	wouldDeny bool
}

func (f decisionFilter) match(r decisionRecord) bool {
	return (f.since.IsZero() || !r.Time.Before(f.since)) && (f.namespace == "" || r.PodNamespace == f.namespace) &&
		(f.decision == "" || r.Decision == f.decision) && (!f.failOpen || r.FailOpen) && (!f.wouldDeny || r.WouldDeny)
}

func decisionsCommand(flags []cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "decisions",
		Usage: "show the hook's recent decisions across the rotated log files, newest last; reads without disturbing the hooks writing it",
		Flags: append(flags[:len(flags):len(flags)],
			&cli.StringFlag{Name: flagHostRoot, Value: "/", Usage: "the host's / when reading from a container"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep showing new decisions as they come"},
			&cli.DurationFlag{Name: "since", Usage: "only decisions this recent (e.g. 10m)"},
			&cli.StringFlag{Name: "namespace", Usage: "only this pod namespace"},
			&cli.StringFlag{Name: "decision", Usage: "only allow or deny"},
			&cli.BoolFlag{Name: "fail-open", Usage: "only containers allowed without an agent verdict"},
			&cli.BoolFlag{Name: "would-deny", Usage: "only containers audit mode let start that enforce would have stopped"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table or json (the records as they are, one a line)"},
		),
		Action: func(c *cli.Context) error {
			cfg := resolveConfig(fromContext(c))
			if cfg.Err != nil {
				return fmt.Errorf("configuration invalid: %w", cfg.Err)
			}
			if c.String("output") != "table" && c.String("output") != "json" {
				return fmt.Errorf("--output %q: want table or json", c.String("output"))
			}
			filter := decisionFilter{namespace: c.String("namespace"), decision: c.String("decision"), failOpen: c.Bool("fail-open"), wouldDeny: c.Bool("would-deny")}
			if d := c.Duration("since"); d > 0 {
				filter.since = time.Now().Add(-d)
			}
			path, err := hostpath.Parent(c.String(flagHostRoot), cfg.LogFile)
			if err != nil {
				return err
			}
			out := newDecisionPrinter(c.App.Writer, c.String("output") == "json")
			backups := *cfg.LogMaxBackups
			if err := showDecisions(path, backups, filter, out); err != nil {
				return err
			}
			out.flush()
			if !c.Bool("follow") {
				return nil
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return followDecisions(ctx, path, backups, filter, out)
		},
	}
}

// showDecisions prints the records of every kept file, oldest file first.
func showDecisions(path string, backups int, filter decisionFilter, out *decisionPrinter) error {
	for _, p := range slices.Backward(logtail.Names(path, backups)) {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			out.line([]byte(line), filter)
		}
	}
	return nil
}

// followDecisions prints new records as the hooks write them, across
// rotations.
func followDecisions(ctx context.Context, path string, backups int, filter decisionFilter, out *decisionPrinter) error {
	f, _, err := logtail.New(path, backups, logtail.Position{})
	if err != nil {
		return err
	}
	defer f.Close()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if err := f.Poll(func(line []byte) { out.line(line, filter) }); err != nil {
			return err
		}
		out.flush()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// decisionPrinter writes matching records as a table or as JSON lines.
type decisionPrinter struct {
	w    io.Writer
	tw   *tabwriter.Writer
	json bool
	head bool
}

func newDecisionPrinter(w io.Writer, asJSON bool) *decisionPrinter {
	return &decisionPrinter{w: w, tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0), json: asJSON}
}

func (p *decisionPrinter) line(line []byte, filter decisionFilter) {
	var r decisionRecord
	if len(line) == 0 || json.Unmarshal(line, &r) != nil || r.Decision == "" || !filter.match(r) {
		return
	}
	if p.json {
		fmt.Fprintf(p.w, "%s\n", line)
		return
	}
	if !p.head {
		fmt.Fprintln(p.tw, "TIME\tSTAGE\tDECISION\tNAMESPACE/POD/CONTAINER\tREASON")
		p.head = true
	}
	decision := r.Decision
	switch {
	case r.WouldDeny:
		decision = "allow (audit: would DENY)"
	case r.FailOpen:
		decision = "allow (fail open)"
	case r.Decision == "deny":
		decision = "DENY"
	}
	// Every field came from outside (a pod's names, an agent's reason):
	// escaped, a newline cannot forge a row nor a tab shift a column, and
	// no control sequence reaches the terminal.
	who := strings.Join([]string{cell(r.PodNamespace), cell(r.PodName), cell(r.ContainerName)}, "/")
	fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), cell(r.Stage), cell(decision), who, safetext.Line(r.Reason, 100))
}

func (p *decisionPrinter) flush() { p.tw.Flush() }

// cell is one field of the table: escaped, cut, "-" when empty.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return safetext.Line(s, 80)
}
