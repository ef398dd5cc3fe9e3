package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/podhook/podhook/internal/config"
)

// Flag names; each is also PODHOOK_<NAME> in the environment and <name>
// with underscores in the config file.
const (
	flagConfig         = "config"
	flagAgentAddress   = "agent-address"
	flagTimeout        = "timeout"
	flagStopTimeout    = "poststop-timeout"
	flagAgentUID       = "agent-uid"
	flagLogFile        = "log-file"
	flagLogLevel       = "log-level"
	flagLogMaxSize     = "log-max-size"
	flagLogMaxBackups  = "log-max-backups"
	flagFailAllowNS    = "fail-allow-namespaces"
	flagFailAllowRegex = "fail-allow-namespace-regex"
	flagAgentNamespace = "agent-namespace"
	flagRuntime        = "runtime"
	flagProtocol       = "agent-protocol"
	flagTetUntrusted   = "tetragon-untrusted"
	flagMode           = "mode"
	flagAuditNS        = "audit-namespaces"
	flagAuditRegex     = "audit-namespace-regex"
)

func env(name string) []string {
	return []string{envName(name)}
}

func envName(name string) string {
	return "PODHOOK_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

type flagKind int

const (
	kindString flagKind = iota
	kindDuration
	kindInt
	kindStrings // repeatable
	kindBoolFlag
)

// flagSpec is one configuration flag, defined once for both parsers: the
// urfave/cli flags of most commands and the stage commands' own.
type flagSpec struct {
	name        string
	kind        flagKind
	usage       string
	defaultText string
}

// configSpecs are the flags every command that talks to the agent takes.
// Defaults are not set here: they live in config.Defaults and are shown in
// the usage text.
func configSpecs() []flagSpec {
	d := config.Defaults()
	return []flagSpec{
		{flagConfig, kindString, "config file (JSON)", "<binary dir>/" + config.FileName},
		{flagAgentAddress, kindString, "agent's unix socket", d.AgentAddress},
		{flagTimeout, kindDuration, "deadline of the agent call at create", d.Timeout.String()},
		{flagStopTimeout, kindDuration, "deadline of the agent call at poststop (short: a stop changes nothing)", d.PoststopTimeout.String()},
		{flagAgentUID, kindInt, "uid the agent must run as (SO_PEERCRED); -1 for any", fmt.Sprint(*d.AgentUID)},
		{flagLogFile, kindString, `JSON-lines log file; "-" for stderr, "none" for no log`, d.LogFile},
		{flagLogLevel, kindString, "debug, info, warn or error; kept for compatibility: every invocation's record is written at its own level whatever this says (decisions are not verbosity)", d.LogLevel},
		{flagLogMaxSize, kindString, "rotate the log before it passes this size (e.g. 10MiB)", "10MiB"},
		{flagLogMaxBackups, kindInt, "rotated log files kept", fmt.Sprint(*d.LogMaxBackups)},
		{flagFailAllowNS, kindStrings, "namespaces that start when the agent is unavailable (comma-separated, repeatable)", strings.Join(d.FailAllowNamespaces, ",")},
		{flagFailAllowRegex, kindStrings, "RE2 pattern matched against the whole namespace name (repeatable)", ""},
		{flagAgentNamespace, kindString, "the agent's own namespace, always allowed to fail open", ""},
		{flagRuntime, kindString, "cri-o, containerd, podman or auto: detection then only confirms it", "auto"},
		{flagProtocol, kindString, "the agent's API: podhook.v1, or tetragon (Tetragon's RuntimeHook)", d.AgentProtocol},
		{flagTetUntrusted, kindString, "tetragon protocol, untrusted identity: deny (podhook stops the container) or send-without-pod", d.TetragonUntrusted},
		{flagMode, kindString, "enforce, or audit: a create that would be stopped starts, and its record says would_deny", config.ModeEnforce},
		{flagAuditNS, kindStrings, "namespaces in audit while the rest enforce (comma-separated, repeatable)", ""},
		{flagAuditRegex, kindStrings, "RE2 pattern matched against the whole namespace name: in audit (repeatable)", ""},
	}
}

// settings is where flag values come from: urfave/cli's context for most
// commands, the stage commands' own parser (stageArgs) on the hook's path.
type settings interface {
	isSet(name string) bool
	String(name string) string
	Duration(name string) time.Duration
	Int(name string) int
	StringSlice(name string) []string
}

// resolved is the configuration a command runs with.
type resolved struct {
	config.Config
	// Err is set when the configuration was invalid and the safe
	// defaults replaced it.
	Err error
}

// resolveConfig builds the one configuration: flags and environment (urfave
// treats both as set), over the config file, over the defaults. An invalid
// result is replaced by the safe defaults and reported in Err.
func resolveConfig(c settings) resolved {
	path, explicit := c.String(flagConfig), c.String(flagConfig) != ""
	if !explicit {
		path = config.DefaultFile()
	}
	var fileErr error
	var file config.Config
	if path != "" {
		file, fileErr = config.ReadFile(path)
		if errors.Is(fileErr, os.ErrNotExist) && !explicit {
			fileErr = nil
		}
	}
	cfg := config.Defaults().Merge(file)
	flags, flagErr := fromFlags(c)
	cfg = cfg.Merge(flags)
	if err := errors.Join(fileErr, flagErr, cfg.Validate(false)); err != nil {
		return resolved{Config: cfg.Safe(), Err: err}
	}
	return resolved{Config: cfg}
}

// fromFlags returns the settings given by flags or environment.
func fromFlags(c settings) (config.Config, error) {
	var f config.Config
	var errs []error
	if c.isSet(flagAgentAddress) {
		f.AgentAddress = c.String(flagAgentAddress)
	}
	if c.isSet(flagTimeout) {
		f.Timeout = config.Duration(c.Duration(flagTimeout))
		if f.Timeout <= 0 {
			errs = append(errs, fmt.Errorf("%w: --%s must be positive", config.ErrInvalid, flagTimeout))
		}
	}
	if c.isSet(flagStopTimeout) {
		f.PoststopTimeout = config.Duration(c.Duration(flagStopTimeout))
		if f.PoststopTimeout <= 0 {
			errs = append(errs, fmt.Errorf("%w: --%s must be positive", config.ErrInvalid, flagStopTimeout))
		}
	}
	if c.isSet(flagAgentUID) {
		uid := c.Int(flagAgentUID)
		f.AgentUID = &uid
	}
	if c.isSet(flagLogFile) {
		f.LogFile = c.String(flagLogFile)
	}
	if c.isSet(flagLogLevel) {
		f.LogLevel = c.String(flagLogLevel)
	}
	if c.isSet(flagLogMaxSize) {
		var err error
		if f.LogMaxSize, err = config.ParseSize(c.String(flagLogMaxSize)); err != nil {
			errs = append(errs, err)
		}
	}
	if c.isSet(flagLogMaxBackups) {
		n := c.Int(flagLogMaxBackups)
		f.LogMaxBackups = &n
	}
	if c.isSet(flagFailAllowNS) {
		f.FailAllowNamespaces = splitList(c.StringSlice(flagFailAllowNS))
	}
	if c.isSet(flagAuditNS) {
		f.AuditNamespaces = splitList(c.StringSlice(flagAuditNS))
	}
	if c.isSet(flagAuditRegex) {
		f.AuditNamespaceRegex = c.StringSlice(flagAuditRegex)
	}
	if c.isSet(flagMode) {
		f.Mode = c.String(flagMode)
	}
	if c.isSet(flagFailAllowRegex) {
		f.FailAllowNamespaceRegex = c.StringSlice(flagFailAllowRegex)
	}
	if c.isSet(flagAgentNamespace) {
		f.AgentNamespace = c.String(flagAgentNamespace)
	}
	if c.isSet(flagRuntime) {
		f.Runtime = c.String(flagRuntime)
	}
	if c.isSet(flagProtocol) {
		f.AgentProtocol = c.String(flagProtocol)
	}
	if c.isSet(flagTetUntrusted) {
		f.TetragonUntrusted = c.String(flagTetUntrusted)
	}
	return f, errors.Join(errs...)
}

// splitList is a repeatable, comma-separated flag's values.
func splitList(values []string) []string {
	out := []string{}
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}
