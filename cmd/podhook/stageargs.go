package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/podhook/podhook/hook"
	"github.com/podhook/podhook/internal/config"
	"github.com/podhook/podhook/resolver"
)

// stageArgs parses a stage command's flags with the standard library's
// flag package, from the same specs as the urfave/cli flags. The hook runs
// for every container: urfave/cli's flag handling (a regexp per flag name
// per lookup) cost ~125 µs of each start, measured; this costs a few.
type stageArgs struct {
	fs  *flag.FlagSet
	set map[string]bool
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// parseStageArgs parses args. A stage reads nothing from the environment:
// a runtime hands a hook an environment that podhook's registration does
// not always control (an NRI plugin's, a runtime's own), so every setting
// comes from the registration's arguments and the config file they name.
// ok is false when help was asked for; err is a flag that does not parse
// or a relative --config (the caller treats either as an invalid
// configuration).
func parseStageArgs(name string, args []string, help io.Writer) (a stageArgs, ok bool, err error) {
	fs := flag.NewFlagSet("podhook "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, s := range append(configSpecs(), stageOnlySpecs()...) {
		usage := s.usage
		if s.defaultText != "" {
			usage += " (default: " + s.defaultText + ")"
		}
		switch s.kind {
		case kindDuration:
			fs.Duration(s.name, 0, usage)
		case kindInt:
			fs.Int(s.name, 0, usage)
		case kindStrings:
			fs.Var(new(stringList), s.name, usage)
		default:
			fs.String(s.name, "", usage)
		}
	}
	fs.Bool(flagDryRun, false, "print the request and the decision an unreachable agent would get; contact nothing, log nothing")
	a = stageArgs{fs: fs, set: map[string]bool{}}
	// Each flag is parsed on its own, so that one bad value does not lose
	// the flags after it (--state-file, --dry-run).
	var errs []error
	for _, group := range flagGroups(args) {
		perr := fs.Parse(group)
		if perr == flag.ErrHelp {
			stageHelp(help, name)
			return a, false, nil
		}
		if perr == nil && fs.NArg() > 0 {
			perr = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		if perr != nil {
			perr = asTyped(perr, group[0])
		}
		if perr != nil {
			errs = append(errs, perr)
		}
	}
	fs.Visit(func(f *flag.Flag) { a.set[f.Name] = true })
	if p := a.String(flagConfig); a.set[flagConfig] && p != "" && !filepath.IsAbs(p) {
		// The runtime runs the hook in the bundle directory: a relative
		// path would name a file there, which the container's image
		// supplies.
		errs = append(errs, fmt.Errorf("%w: --%s %s must be absolute (a runtime runs the hook in the container's bundle)", config.ErrInvalid, flagConfig, strconv.Quote(p)))
	}
	err = errors.Join(errs...)
	return a, true, err
}

// Flags only a stage takes. The identity flags are what podhook-nri passes
// from the runtime's own records (NRI's PodSandbox): they live in the
// hook's arguments, which no pod can write, and never come from the
// environment or the config file.
const (
	flagPodNamespace  = "pod-namespace"
	flagPodName       = "pod-name"
	flagPodUID        = "pod-uid"
	flagSandboxID     = "sandbox-id"
	flagContainerName = "container-name"
	flagVia           = "via"
)

func stageOnlySpecs() []flagSpec {
	const given = ", as the runtime gave it to the injection path (podhook-nri passes it; never from the environment)"
	return []flagSpec{
		{flagStateFile, kindString, "read the OCI state from FILE instead of stdin (replay a capture)", ""},
		{flagVia, kindString, `how the runtime runs the hook: "hooksd" (a hooks.d file: only CRI-O and podman read it) or "nri" (podhook-nri); the registration passes it`, ""},
		{flagPodNamespace, kindString, "the pod's namespace" + given, ""},
		{flagPodName, kindString, "the pod's name" + given, ""},
		{flagPodUID, kindString, "the pod's UID" + given, ""},
		{flagSandboxID, kindString, "the pod sandbox's ID" + given, ""},
		{flagContainerName, kindString, "the container's name" + given, ""},
	}
}

// runs returns the runtimes that can have run the hook, from --via (nil
// for any), or an error for a value podhook does not know.
func (a stageArgs) runs() ([]resolver.Runtime, error) {
	switch v := a.String(flagVia); v {
	case "", hook.ViaNRI:
		return nil, nil
	case hook.ViaHooksD:
		return []resolver.Runtime{resolver.CRIO, resolver.Podman}, nil
	default:
		return nil, fmt.Errorf("--%s %q: want %s or %s", flagVia, v, hook.ViaHooksD, hook.ViaNRI)
	}
}

// given is the identity passed in the stage's arguments, nil when none.
func (a stageArgs) given() *resolver.Given {
	g := resolver.Given{
		PodNamespace: a.String(flagPodNamespace), PodName: a.String(flagPodName), PodUID: a.String(flagPodUID),
		SandboxID: a.String(flagSandboxID), ContainerName: a.String(flagContainerName),
	}
	if g == (resolver.Given{}) {
		return nil
	}
	return &g
}

// asTyped rewrites the flag package's error to quote the flag as it was
// typed ("--bogus", not "-bogus").
func asTyped(err error, typed string) error {
	typed, _, _ = strings.Cut(typed, "=")
	name := strings.TrimLeft(typed, "-")
	msg := err.Error()
	if strings.HasPrefix(msg, "flag provided but not defined") {
		return fmt.Errorf("flag provided but not defined: %s", typed)
	}
	return errors.New(strings.Replace(msg, "-"+name+":", typed+":", 1))
}

// stageHelp prints a stage's help in urfave/cli's layout, from the same
// specs, with each flag's environment variable where it has one.
func stageHelp(w io.Writer, name string) {
	usage := "run as the " + name + " hook: reads the OCI state on stdin (or --state-file); exit 0 lets the container start, 1 stops it"
	if name == "poststop" {
		usage = "run as the poststop hook: tell the agent the container is gone; always exits 0"
	}
	fmt.Fprintf(w, "NAME:\n   podhook %s - %s\n\nUSAGE:\n   podhook %s [command options]\n\nOPTIONS:\n", name, usage, name)
	specs := append(configSpecs(), stageOnlySpecs()...)
	specs = append(specs, flagSpec{flagDryRun, kindBoolFlag, "print the request and the decision an unreachable agent would get; contact nothing, log nothing", ""})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range specs {
		arg := " value"
		if s.kind == kindBoolFlag {
			arg = ""
		}
		line := s.usage
		if s.defaultText != "" {
			line += " (default: " + s.defaultText + ")"
		}
		fmt.Fprintf(tw, "   --%s%s\t%s\n", s.name, arg, line)
	}
	fmt.Fprintf(tw, "   --help, -h\tshow help\n")
	tw.Flush()
}

// flagGroups splits args before each flag: ["--a", "1", "--b"] becomes
// [["--a", "1"], ["--b"]]. A negative number is a value, not a flag.
func flagGroups(args []string) [][]string {
	var groups [][]string
	for _, arg := range args {
		isFlag := strings.HasPrefix(arg, "-") && len(arg) > 1 && (arg[1] < '0' || arg[1] > '9')
		if isFlag || len(groups) == 0 {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], arg)
	}
	return groups
}

func (a stageArgs) isSet(name string) bool { return a.set[name] }

func (a stageArgs) String(name string) string {
	if f := a.fs.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

func (a stageArgs) Duration(name string) time.Duration {
	if f := a.fs.Lookup(name); f != nil {
		return f.Value.(flag.Getter).Get().(time.Duration)
	}
	return 0
}

func (a stageArgs) Int(name string) int {
	if f := a.fs.Lookup(name); f != nil {
		return f.Value.(flag.Getter).Get().(int)
	}
	return 0
}

func (a stageArgs) StringSlice(name string) []string {
	if f := a.fs.Lookup(name); f != nil {
		if l, ok := f.Value.(*stringList); ok {
			return *l
		}
	}
	return nil
}

func (a stageArgs) Bool(name string) bool {
	if f := a.fs.Lookup(name); f != nil {
		return f.Value.String() == "true"
	}
	return false
}
