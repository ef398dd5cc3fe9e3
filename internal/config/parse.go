package config

import (
	"fmt"
	"strconv"

	"github.com/podhook/podhook/internal/jsonscan"
)

// The config file is decoded with jsonscan as encoding/json would decode
// it into Config with DisallowUnknownFields (keys matched as encoding/json
// matches them, case-insensitively; the last of duplicated keys wins; null
// leaves a field as it is; a value of the wrong type is an error; the
// same for each entry of agents), without encoding/json's reflection: the
// hook reads this file before it can start dialling the agent, on every
// container start, and encoding/json's first decode of Config cost more
// than the rest of reading the file (measured: 165-210 us against 11 us
// for the same decode again; make breakdown). FuzzParse holds it to
// encoding/json.

type fieldFunc func(c *Config, raw []byte, escaped bool) error

// configFields are Config's members by their JSON names.
var configFields = []struct {
	name string
	set  fieldFunc
}{
	{"agent_address", str(func(c *Config) *string { return &c.AgentAddress })},
	{"timeout", duration(func(c *Config) *Duration { return &c.Timeout })},
	{"poststop_timeout", duration(func(c *Config) *Duration { return &c.PoststopTimeout })},
	{"agent_uid", intPtr(func(c *Config) **int { return &c.AgentUID })},
	{"log_file", str(func(c *Config) *string { return &c.LogFile })},
	{"log_level", str(func(c *Config) *string { return &c.LogLevel })},
	{"log_max_size", func(c *Config, raw []byte, _ bool) error { return c.LogMaxSize.UnmarshalJSON(raw) }},
	{"log_max_backups", intPtr(func(c *Config) **int { return &c.LogMaxBackups })},
	{"fail_allow_namespaces", strs(func(c *Config) *[]string { return &c.FailAllowNamespaces })},
	{"fail_allow_namespace_regex", strs(func(c *Config) *[]string { return &c.FailAllowNamespaceRegex })},
	{"agent_namespace", str(func(c *Config) *string { return &c.AgentNamespace })},
	{"runtime", str(func(c *Config) *string { return &c.Runtime })},
	{"agent_protocol", str(func(c *Config) *string { return &c.AgentProtocol })},
	{"tetragon_untrusted", str(func(c *Config) *string { return &c.TetragonUntrusted })},
	{"agents", parseAgents},
	{"mode", str(func(c *Config) *string { return &c.Mode })},
	{"audit_namespaces", strs(func(c *Config) *[]string { return &c.AuditNamespaces })},
	{"audit_namespace_regex", strs(func(c *Config) *[]string { return &c.AuditNamespaceRegex })},
}

// decode decodes a config file's content into c.
func decode(b []byte, c *Config) error {
	return jsonscan.Members(b, func(key string, raw []byte, escaped bool) error {
		set := jsonscan.Lookup(key, len(configFields), func(i int) string { return configFields[i].name })
		if set < 0 {
			return fmt.Errorf("json: unknown field %s", strconv.Quote(key))
		}
		if err := configFields[set].set(c, raw, escaped); err != nil {
			return fmt.Errorf("%s: %w", configFields[set].name, err)
		}
		return nil
	})
}

func str(field func(*Config) *string) fieldFunc {
	return func(c *Config, raw []byte, escaped bool) error {
		return jsonscan.SetString(field(c), raw, escaped)
	}
}

// duration decodes a Duration as encoding/json decodes a TextUnmarshaler:
// from a string; null leaves it.
func duration(field func(*Config) *Duration) fieldFunc {
	return func(c *Config, raw []byte, escaped bool) error {
		v, ok, err := jsonscan.OptString(raw, escaped)
		if ok {
			err = field(c).UnmarshalText([]byte(v))
		}
		return err
	}
}

// setIntPtr decodes an int into a *int as encoding/json does: null sets
// it to nil.
func setIntPtr(dst **int, raw []byte) error {
	n, ok, err := jsonscan.Int(raw, strconv.IntSize)
	switch {
	case ok:
		v := int(n)
		*dst = &v
	case err == nil:
		*dst = nil // null
	}
	return err
}

func intPtr(field func(*Config) **int) fieldFunc {
	return func(c *Config, raw []byte, _ bool) error { return setIntPtr(field(c), raw) }
}

// strs decodes a []string (jsonscan.Strings).
func strs(field func(*Config) *[]string) fieldFunc {
	return func(c *Config, raw []byte, _ bool) error { return jsonscan.Strings(raw, field(c)) }
}

// agentFields are Agent's members by their JSON names.
var agentFields = []struct {
	name string
	set  func(a *Agent, raw []byte, escaped bool) error
}{
	{"name", func(a *Agent, raw []byte, escaped bool) error { return jsonscan.SetString(&a.Name, raw, escaped) }},
	{"address", func(a *Agent, raw []byte, escaped bool) error { return jsonscan.SetString(&a.Address, raw, escaped) }},
	{"protocol", func(a *Agent, raw []byte, escaped bool) error { return jsonscan.SetString(&a.Protocol, raw, escaped) }},
	{"agent_uid", func(a *Agent, raw []byte, _ bool) error { return setIntPtr(&a.AgentUID, raw) }},
	{"required", func(a *Agent, raw []byte, _ bool) error {
		v, ok, err := jsonscan.Bool(raw)
		switch {
		case ok:
			a.Required = &v
		case err == nil:
			a.Required = nil // null
		}
		return err
	}},
}

// parseAgents decodes the agents list: null sets it to nil, a null entry
// is an Agent with nothing set.
func parseAgents(c *Config, raw []byte, _ bool) error {
	if raw[0] == 'n' {
		c.Agents = nil
		return nil
	}
	if raw[0] != '[' {
		return jsonscan.TypeError(raw, "a list of agents")
	}
	out := c.Agents[:0] // as strs: an earlier list's array is reused
	err := jsonscan.Elements(raw, func(e []byte, _ bool) error {
		out = jsonscan.Extend(out)
		a := &out[len(out)-1]
		if e[0] != '{' && e[0] != 'n' {
			return jsonscan.TypeError(e, "an agent")
		}
		return jsonscan.Members(e, func(key string, v []byte, escaped bool) error {
			i := jsonscan.Lookup(key, len(agentFields), func(i int) string { return agentFields[i].name })
			if i < 0 {
				return fmt.Errorf("json: unknown field %s", strconv.Quote(key))
			}
			return agentFields[i].set(a, v, escaped)
		})
	})
	if len(out) == 0 {
		out = []Agent{}
	}
	c.Agents = out
	return err
}
