package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/hook"
	"github.com/podhook/podhook/internal/config"
	"github.com/podhook/podhook/internal/jsonlog"
	"github.com/podhook/podhook/internal/logfile"
	"github.com/podhook/podhook/resolver"
)

const (
	flagStateFile = "state-file"
	flagDryRun    = "dry-run"
)

// stdio are the streams a command reads and writes.
type stdio struct {
	in          io.Reader
	out, errOut io.Writer
}

// stageMain runs a stage with its arguments (after the stage name).
func stageMain(st hook.Stage, argv []string, std stdio, start time.Time) error {
	args, ok, err := parseStageArgs(string(st), argv, std.out)
	if !ok {
		return nil
	}
	return runStage(std, st, start, args, err)
}

func runStage(std stdio, st hook.Stage, start time.Time, args stageArgs, argsErr error) error {
	runs, viaErr := args.runs()
	argsErr = errors.Join(argsErr, viaErr)
	cfg := resolveConfig(args)
	if argsErr != nil {
		cfg = resolved{Config: cfg.Safe(), Err: errors.Join(argsErr, cfg.Err)}
	}
	if args.String(flagStateFile) == "" && isTerminal(std.in) {
		// Run by hand: say what it waits for.
		fmt.Fprintf(std.errOut, "podhook: reading the OCI state from stdin (as a runtime passes it), or give --state-file FILE\n")
	}
	in, closeIn := stateInput(std.in, args.String(flagStateFile))
	defer closeIn()
	rt, _ := resolver.ParseRuntime(cfg.Runtime)
	opts := hook.Options{
		Stage: st, Start: start, Runtime: rt, Given: args.given(), Runs: runs,
		Policy: hook.Policy{Namespaces: cfg.FailAllowed(), Patterns: cfg.FailAllowNamespaceRegex}, Safe: hook.SafePolicy(cfg.SafeAgentNamespace()),
		LogPath: cfg.LogFile,
		Audit:   hook.Audit{All: cfg.Audit(), Namespaces: hook.Policy{Namespaces: cfg.AuditNamespaces, Patterns: cfg.AuditNamespaceRegex}},
	}
	if args.Bool(flagDryRun) {
		return dryRun(std.out, in, opts, cfg)
	}

	peers, err := connectAgents(cfg.Config)
	if err != nil {
		return err // the addresses were validated: unreachable in practice
	}
	opts.Named = len(cfg.Agents) > 0
	if !opts.Named {
		opts.Protocol = cfg.AgentProtocol
	}

	// Everything said on stderr is one line: the runtime shows a failing
	// hook's stderr to the operator (kubectl describe), so the reason a
	// container stopped comes first and the notes after it.
	var notes notes
	log, closeLog := openLog(cfg.Config, std.errOut, notes.add)
	defer closeLog()
	if cfg.Err != nil {
		opts.ConfigErr = cfg.Err
		notes.add("configuration invalid, using the built-in safe defaults: " + flat(cfg.Err))
	}
	res := hook.Run(context.Background(), in, peers, opts, log)
	if res.PolicyErr != nil {
		notes.add("fail-allow policy invalid, the safe one decided: " + flat(res.PolicyErr))
	}
	if !res.Allow {
		return &stopError{reason: notes.after(res.Reason)}
	}
	if !st.IsCreate() && res.Reason != "" {
		say(std.errOut, notes.after(res.Reason))
	} else if len(notes) > 0 {
		say(std.errOut, notes.after(""))
	}
	return nil
}

// connectAgents returns a client for every configured agent, each
// connecting while the log is opened and the state and config.json are
// read and decoded. Every socket is connected first (Dial), so that each
// agent accepts and answers the handshake while this process sets up
// grpc-go and reads its input; then grpc-go starts on those connections
// (Connect). No Close: the process exits right after the decision, and a
// graceful close costs time on every container start.
func connectAgents(cfg config.Config) ([]hook.Peer, error) {
	list := cfg.AgentList()
	peers := make([]hook.Peer, len(list))
	clients := make([]*agentclient.Client, len(list))
	for i, a := range list {
		client, err := agentclient.New(a.Address, agentclient.WithTimeout(cfg.Timeout.Duration()),
			agentclient.WithStopTimeout(cfg.PoststopTimeout.Duration()), agentclient.WithPeerUID(*a.AgentUID))
		if err != nil {
			return nil, err
		}
		client.Dial()
		clients[i] = client
	}
	for i, a := range list {
		client := clients[i]
		client.Connect()
		var agent hook.Agent = client
		if a.Protocol == config.ProtocolTetragon {
			agent = agentclient.Tetragon{Client: client, SendUntrusted: cfg.TetragonUntrusted == config.TetragonUntrustedSendBare}
		}
		peers[i] = hook.Peer{Name: a.Name, Protocol: a.Protocol, Required: *a.Required, Agent: agent}
	}
	return peers, nil
}

// notes collects what the invocation has to say besides its decision,
// so that stderr gets one line.
type notes []string

func (n *notes) add(s string) { *n = append(*n, s) }

// after joins the notes after a lead: "lead; note; note".
func (n notes) after(lead string) string {
	parts := append([]string{}, n...)
	if lead != "" {
		parts = append([]string{lead}, parts...)
	}
	return strings.Join(parts, "; ")
}

// isTerminal reports whether r is a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// stateInput is the state's reader: the --state-file path, or stdin. A
// file that cannot be opened reads as that error, so the invocation reports
// and logs it like any other unreadable state.
func stateInput(stdin io.Reader, path string) (io.Reader, func()) {
	if path == "" {
		return stdin, func() {}
	}
	f, err := os.Open(path)
	if err != nil {
		return errReader{err}, func() {}
	}
	return f, func() { f.Close() }
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// openLog returns the JSON-lines logger the configuration asks for; it
// filters nothing (see level below).
// Records go to stderr when log_file is "-". A log that cannot be opened
// or written is told to note (the decision stands).
func openLog(cfg config.Config, stderr io.Writer, note func(string)) (*slog.Logger, func()) {
	// Decisions are not verbosity: the one record of each invocation is
	// written at its own level whatever log_level says, so the log, podhook
	// decisions and the metrics count every container.
	level := slog.LevelDebug
	var w io.Writer
	closeFn := func() {}
	switch cfg.LogFile {
	case config.LogNone:
		return slog.New(slog.DiscardHandler), closeFn
	case config.LogStderr:
		w = stderr
	default:
		f, err := logfile.Open(cfg.LogFile, int64(cfg.LogMaxSize), *cfg.LogMaxBackups)
		if err != nil {
			note(fmt.Sprintf("cannot write the log (the decision stands): %v", err))
			return slog.New(slog.DiscardHandler), closeFn
		}
		w = &reportingWriter{w: f, note: note}
		closeFn = func() { f.Close() }
	}
	// jsonlog writes what slog's JSON handler would, times in UTC, without
	// the encoding/json calls slog makes for every float (measured:
	// README, Performance).
	return slog.New(jsonlog.New(w, level)), closeFn
}

// reportingWriter passes records to the log file and notes a write that
// fails, since slog drops handler errors.
type reportingWriter struct {
	w    io.Writer
	note func(string)
}

func (r *reportingWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	switch {
	case errors.Is(err, logfile.ErrLockTimeout):
		r.note(fmt.Sprintf("log: %v", err))
	case err != nil:
		r.note(fmt.Sprintf("cannot write the log (the decision stands): %v", err))
	}
	return n, err
}

// dryRun prints the request the hook would send, in the configured
// protocol, and what the fail check would decide if the agent were
// unreachable.
func dryRun(w io.Writer, in io.Reader, opts hook.Options, cfg resolved) error {
	inv, err := hook.Prepare(in, opts)
	if err != nil {
		return err
	}
	for _, a := range cfg.AgentList() {
		if len(cfg.Agents) > 0 {
			need := "required"
			if !*a.Required {
				need = "optional"
			}
			fmt.Fprintf(w, "agent %s (%s, %s):\n", strconv.Quote(a.Name), a.Protocol, need)
		}
		if a.Protocol == config.ProtocolTetragon {
			err = printTetragonRequest(w, inv, opts, cfg)
		} else {
			err = printRequest(w, inv, opts)
		}
		if err != nil {
			return err
		}
	}
	if inv.SpecErr != nil {
		fmt.Fprintf(w, "note: %v (using the state's annotations)\n", inv.SpecErr)
	}
	d := hook.Decide(opts.Stage, fmt.Errorf("%w: dry run", agentclient.ErrUnreachable), inv.Identity, opts.Policy, opts.Safe)
	d = opts.Audit.Apply(opts.Stage, d, inv.Identity)
	verdict := "allow (exit 0)"
	switch {
	case d.WouldDeny:
		verdict = "allow (exit 0), audit: would be stopped"
	case !d.Allow:
		verdict = "deny (exit 1)"
	}
	who := "the agent were"
	if len(cfg.Agents) > 0 {
		who = "the agents were"
	}
	fmt.Fprintf(w, "if %s unreachable: %s: %s\n", who, verdict, d.Reason)
	if err := errors.Join(cfg.Err, d.PolicyErr, d.AuditErr); err != nil {
		fmt.Fprintf(w, "configuration invalid, the built-in safe defaults would apply: %v\n", err)
	}
	return nil
}

// printRequest prints podhook's own request as protojson.
func printRequest(w io.Writer, inv *hook.Invocation, opts hook.Options) error {
	var req proto.Message = inv.CreateRequest()
	if !opts.Stage.IsCreate() {
		req = inv.StopRequest()
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(req)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\n", b)
	return nil
}

// printTetragonRequest prints what the tetragon protocol would send at
// create: Tetragon's RuntimeHookRequest as protojson writes it, or
// podhook's own denial of an identity it cannot send; at poststop nothing.
func printTetragonRequest(w io.Writer, inv *hook.Invocation, opts hook.Options, cfg resolved) error {
	if !opts.Stage.IsCreate() {
		fmt.Fprintln(w, "agent_protocol tetragon: nothing is sent at poststop (Tetragon has no stop event)")
		return nil
	}
	t := agentclient.Tetragon{SendUntrusted: cfg.TetragonUntrusted == config.TetragonUntrustedSendBare}
	tc, denied := t.Request(inv.CreateRequest())
	if denied != nil {
		fmt.Fprintf(w, "agent_protocol tetragon: nothing is sent; exit 1: %s\n", denied.Error())
		return nil
	}
	b, err := json.MarshalIndent(agentclient.TetragonRuntimeHookRequest{CreateContainer: tc}, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\n", b)
	return nil
}
