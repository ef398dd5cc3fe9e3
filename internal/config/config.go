package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/internal/logfile"
	"github.com/podhook/podhook/internal/nspattern"
	"github.com/podhook/podhook/internal/regfile"
	"github.com/podhook/podhook/resolver"
)

// FileName is the config file looked for next to the podhook binary.
const FileName = "podhook-config.json"

// Special log_file values.
const (
	LogStderr = "-"
	LogNone   = "none"
)

// MaxFileSize caps the config file.
const MaxFileSize = 1 << 20

// ErrInvalid marks a configuration value or file podhook cannot use.
var ErrInvalid = errors.New("invalid configuration")

// Config is podhook's resolved configuration. The JSON names are those of
// the config file; each field also has a flag and, on the commands other
// than the stages, a PODHOOK_* variable (see cmd/podhook).
type Config struct {
	AgentAddress            string   `json:"agent_address,omitempty"`
	Timeout                 Duration `json:"timeout,omitempty"`
	PoststopTimeout         Duration `json:"poststop_timeout,omitempty"`
	AgentUID                *int     `json:"agent_uid,omitempty"`
	LogFile                 string   `json:"log_file,omitempty"`
	LogLevel                string   `json:"log_level,omitempty"`
	LogMaxSize              Size     `json:"log_max_size,omitempty"`
	LogMaxBackups           *int     `json:"log_max_backups,omitempty"`
	FailAllowNamespaces     []string `json:"fail_allow_namespaces,omitempty"`
	FailAllowNamespaceRegex []string `json:"fail_allow_namespace_regex,omitempty"`
	AgentNamespace          string   `json:"agent_namespace,omitempty"`
	Runtime                 string   `json:"runtime,omitempty"`
	AgentProtocol           string   `json:"agent_protocol,omitempty"`
	TetragonUntrusted       string   `json:"tetragon_untrusted,omitempty"`
	// Agents lists every agent a create is shown to, in parallel; without
	// it the single-agent settings above are a list of one.
	Agents              []Agent  `json:"agents,omitempty"`
	Mode                string   `json:"mode,omitempty"`
	AuditNamespaces     []string `json:"audit_namespaces,omitempty"`
	AuditNamespaceRegex []string `json:"audit_namespace_regex,omitempty"`
}

// Agent is one entry of the agents list. Protocol defaults to podhook.v1,
// AgentUID to the top-level agent_uid, Required to true.
type Agent struct {
	Name     string `json:"name"`
	Address  string `json:"address"`
	Protocol string `json:"protocol,omitempty"`
	AgentUID *int   `json:"agent_uid,omitempty"`
	Required *bool  `json:"required,omitempty"`
}

// The modes: enforce stops what the agents or the fail check stop; audit
// lets it start and records that it would have been stopped.
const (
	ModeEnforce = "enforce"
	ModeAudit   = "audit"
)

// MaxAgents bounds the agents list: every create waits for the slowest.
const MaxAgents = 8

// SingleAgent is the name of the agent the single-agent settings describe.
const SingleAgent = "agent"

// The agent protocols podhook speaks, and what the tetragon protocol does
// with a container whose identity is not trusted.
const (
	ProtocolPodhook           = "podhook.v1"
	ProtocolTetragon          = "tetragon"
	TetragonUntrustedDeny     = "deny"
	TetragonUntrustedSendBare = "send-without-pod"
)

// Defaults returns the built-in configuration.
func Defaults() Config {
	uid, backups := 0, logfile.DefaultMaxBackups
	return Config{
		AgentAddress:        "unix:///run/podhook/agent.sock",
		Timeout:             Duration(agentclient.DefaultTimeout),
		PoststopTimeout:     Duration(agentclient.DefaultStopTimeout),
		AgentUID:            &uid,
		LogFile:             "/var/log/podhook/podhook.log",
		LogLevel:            "info",
		LogMaxSize:          logfile.DefaultMaxSize,
		LogMaxBackups:       &backups,
		FailAllowNamespaces: []string{"kube-system"},
		AgentProtocol:       ProtocolPodhook,
		TetragonUntrusted:   TetragonUntrustedDeny,
	}
}

// DefaultFile is the config file next to the running binary ("" if the
// binary's path is unknown).
func DefaultFile() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(exe), FileName)
}

// ReadFile decodes a config file. Unknown keys are errors, so a typo cannot
// silently leave a default in force. A missing file is reported with
// os.ErrNotExist in the chain.
func ReadFile(path string) (Config, error) {
	b, err := regfile.Read(path, MaxFileSize)
	if err != nil {
		return Config{}, fmt.Errorf("config file: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a config file's content; unknown keys are errors, and so
// is an agents list next to the single agent's address or protocol (which
// of the two was meant cannot be told).
func Parse(b []byte) (Config, error) {
	var c Config
	if err := decode(b, &c); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if c.Agents != nil && (c.AgentAddress != "" || c.AgentProtocol != "") {
		return Config{}, fmt.Errorf("%w: agents and agent_address or agent_protocol in one file: give the list, or the single agent", ErrInvalid)
	}
	return c, nil
}

// AgentList is every agent with its defaults filled in: the agents list,
// or a list of one from the single-agent settings.
func (c Config) AgentList() []Agent {
	if len(c.Agents) == 0 {
		req := true
		return []Agent{{Name: SingleAgent, Address: c.AgentAddress, Protocol: c.AgentProtocol, AgentUID: c.AgentUID, Required: &req}}
	}
	out := make([]Agent, len(c.Agents))
	for i, a := range c.Agents {
		if a.Protocol == "" {
			a.Protocol = ProtocolPodhook
		}
		if a.AgentUID == nil {
			a.AgentUID = c.AgentUID
		}
		if a.Required == nil {
			req := true
			a.Required = &req
		}
		out[i] = a
	}
	return out
}

// Audit reports whether the mode is audit everywhere.
func (c Config) Audit() bool { return c.Mode == ModeAudit }

// Merge returns c with every field set in o replacing c's.
func (c Config) Merge(o Config) Config {
	if o.AgentAddress != "" {
		c.AgentAddress = o.AgentAddress
	}
	if o.Timeout != 0 {
		c.Timeout = o.Timeout
	}
	if o.PoststopTimeout != 0 {
		c.PoststopTimeout = o.PoststopTimeout
	}
	if o.AgentUID != nil {
		c.AgentUID = o.AgentUID
	}
	if o.LogFile != "" {
		c.LogFile = o.LogFile
	}
	if o.LogLevel != "" {
		c.LogLevel = o.LogLevel
	}
	if o.LogMaxSize != 0 {
		c.LogMaxSize = o.LogMaxSize
	}
	if o.LogMaxBackups != nil {
		c.LogMaxBackups = o.LogMaxBackups
	}
	if o.FailAllowNamespaces != nil {
		c.FailAllowNamespaces = o.FailAllowNamespaces
	}
	if o.FailAllowNamespaceRegex != nil {
		c.FailAllowNamespaceRegex = o.FailAllowNamespaceRegex
	}
	if o.AgentNamespace != "" {
		c.AgentNamespace = o.AgentNamespace
	}
	if o.Runtime != "" {
		c.Runtime = o.Runtime
	}
	if o.AgentProtocol != "" {
		c.AgentProtocol = o.AgentProtocol
	}
	if o.TetragonUntrusted != "" {
		c.TetragonUntrusted = o.TetragonUntrusted
	}
	// A later source's list replaces the earlier; its single agent's
	// address replaces an earlier list.
	if o.Agents != nil {
		c.Agents = o.Agents
	} else if o.AgentAddress != "" {
		c.Agents = nil
	}
	if o.Mode != "" {
		c.Mode = o.Mode
	}
	if o.AuditNamespaces != nil {
		c.AuditNamespaces = o.AuditNamespaces
	}
	if o.AuditNamespaceRegex != nil {
		c.AuditNamespaceRegex = o.AuditNamespaceRegex
	}
	return c
}

// Validate checks every field; compilePatterns also compiles the fail-allow
// patterns (skipped on the hook's path, where they compile only if the fail
// check runs).
func (c Config) Validate(compilePatterns bool) error {
	var errs []error
	bad := func(field string, v any, why string) {
		errs = append(errs, fmt.Errorf("%w: %s %v: %s", ErrInvalid, field, v, why))
	}
	if _, err := agentclient.SocketPath(c.AgentAddress); err != nil {
		errs = append(errs, fmt.Errorf("%w: agent_address: %w", ErrInvalid, err))
	}
	if c.Timeout <= 0 {
		bad("timeout", c.Timeout, "must be positive")
	}
	if c.PoststopTimeout <= 0 {
		bad("poststop_timeout", c.PoststopTimeout, "must be positive")
	}
	if c.AgentUID != nil && *c.AgentUID < agentclient.AnyUID {
		bad("agent_uid", *c.AgentUID, "must be a uid or -1 (any)")
	}
	if c.LogFile != LogStderr && c.LogFile != LogNone && !filepath.IsAbs(c.LogFile) {
		bad("log_file", strconv.Quote(c.LogFile), `must be absolute, "-" (stderr) or "none"`)
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogMaxSize <= 0 {
		bad("log_max_size", c.LogMaxSize, "must be positive")
	}
	if c.LogMaxBackups != nil && *c.LogMaxBackups < 0 {
		bad("log_max_backups", *c.LogMaxBackups, "must not be negative")
	}
	for _, ns := range append(append(append([]string{}, c.FailAllowNamespaces...), c.AuditNamespaces...), c.AgentNamespace) {
		if ns != "" && !resolver.IsDNS1123Label(ns) {
			bad("namespace", strconv.Quote(ns), "is not a DNS-1123 label")
		}
	}
	if compilePatterns {
		for _, p := range append(append([]string{}, c.FailAllowNamespaceRegex...), c.AuditNamespaceRegex...) {
			if _, err := nspattern.Compile(p); err != nil {
				errs = append(errs, fmt.Errorf("%w: %w", ErrInvalid, err))
			}
		}
	}
	if c.Mode != "" && c.Mode != ModeEnforce && c.Mode != ModeAudit {
		bad("mode", strconv.Quote(c.Mode), "want "+ModeEnforce+" or "+ModeAudit)
	}
	errs = append(errs, c.validateAgents()...)
	if c.AgentProtocol != ProtocolPodhook && c.AgentProtocol != ProtocolTetragon {
		bad("agent_protocol", strconv.Quote(c.AgentProtocol), "want "+ProtocolPodhook+" or "+ProtocolTetragon)
	}
	if c.TetragonUntrusted != TetragonUntrustedDeny && c.TetragonUntrusted != TetragonUntrustedSendBare {
		bad("tetragon_untrusted", strconv.Quote(c.TetragonUntrusted), "want "+TetragonUntrustedDeny+" or "+TetragonUntrustedSendBare)
	}
	if _, ok := resolver.ParseRuntime(c.Runtime); !ok {
		bad("runtime", strconv.Quote(c.Runtime), "want cri-o, containerd, podman or auto")
	}
	return errors.Join(errs...)
}

// validateAgents checks the agents list: at most MaxAgents, each named
// with a DNS-1123 label (it is a metric label), names and sockets unique,
// each protocol and uid valid.
func (c Config) validateAgents() []error {
	var errs []error
	bad := func(i int, why string) {
		errs = append(errs, fmt.Errorf("%w: agents[%d]: %s", ErrInvalid, i, why))
	}
	if len(c.Agents) > MaxAgents {
		errs = append(errs, fmt.Errorf("%w: agents: %d listed, at most %d", ErrInvalid, len(c.Agents), MaxAgents))
	}
	names, sockets := map[string]int{}, map[string]int{}
	for i, a := range c.Agents {
		if !resolver.IsDNS1123Label(a.Name) {
			bad(i, fmt.Sprintf("name %s is not a DNS-1123 label", strconv.Quote(a.Name)))
		} else if j, dup := names[a.Name]; dup {
			bad(i, fmt.Sprintf("name %s is also agents[%d]'s", strconv.Quote(a.Name), j))
		} else {
			names[a.Name] = i
		}
		if path, err := agentclient.SocketPath(a.Address); err != nil {
			bad(i, fmt.Sprintf("address: %v", err))
		} else if j, dup := sockets[filepath.Clean(path)]; dup {
			bad(i, fmt.Sprintf("address %s is also agents[%d]'s", strconv.Quote(a.Address), j))
		} else {
			sockets[filepath.Clean(path)] = i
		}
		if a.Protocol != "" && a.Protocol != ProtocolPodhook && a.Protocol != ProtocolTetragon {
			bad(i, fmt.Sprintf("protocol %s: want %s or %s", strconv.Quote(a.Protocol), ProtocolPodhook, ProtocolTetragon))
		}
		if a.AgentUID != nil && *a.AgentUID < agentclient.AnyUID {
			bad(i, fmt.Sprintf("agent_uid %d: must be a uid or -1 (any)", *a.AgentUID))
		}
	}
	return errs
}

// FailAllowed is every namespace name allowed to fail open: the allow-list
// plus the agent's own namespace, which is always allowed so that the agent
// itself can start.
func (c Config) FailAllowed() []string {
	ns := c.FailAllowNamespaces
	if c.AgentNamespace != "" {
		ns = append(append([]string{}, ns...), c.AgentNamespace)
	}
	return ns
}

// SafeAgentNamespace is the agent namespace the safe policy keeps: the
// configured one when it is valid.
func (c Config) SafeAgentNamespace() string {
	if resolver.IsDNS1123Label(c.AgentNamespace) {
		return c.AgentNamespace
	}
	return ""
}

// Safe returns the built-in defaults, keeping only the agent namespace and
// the log file when they are valid: what podhook runs with when its
// configuration is invalid.
func (c Config) Safe() Config {
	d := Defaults()
	if resolver.IsDNS1123Label(c.AgentNamespace) {
		d.AgentNamespace = c.AgentNamespace
	}
	// Where the record goes weakens nothing: keep a valid log file, so
	// the record of a misconfigured hook lands where the operator looks.
	if c.LogFile == LogStderr || c.LogFile == LogNone || filepath.IsAbs(c.LogFile) {
		d.LogFile = c.LogFile
	}
	return d
}

// ParseLevel maps a log level name to a slog.Level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%w: log_level %q: want debug, info, warn or error", ErrInvalid, s)
	}
	return l, nil
}

// Duration is a time.Duration written as "2s" in JSON.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// Size is a byte count written as 10485760, "10MiB", "512KiB" or "1G".
type Size int64

// ParseSize parses a byte count with an optional K, M or G suffix (powers
// of 1024; "KiB", "KB" and "K" are the same).
func ParseSize(s string) (Size, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "B")
	mult := int64(1)
	if base, ok := strings.CutSuffix(t, "I"); ok {
		t = base
	}
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			t = strings.TrimSpace(t[:n-1])
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%w: size %q", ErrInvalid, s)
	}
	return Size(n * mult), nil
}

// UnmarshalJSON accepts a number or a string with a suffix.
func (z *Size) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		*z = Size(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: size %s", ErrInvalid, b)
	}
	v, err := ParseSize(s)
	*z = v
	return err
}
