package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := map[string]Size{"0": 0, "1024": 1024, "10MiB": 10 << 20, "10mb": 10 << 20, "512K": 512 << 10, "1G": 1 << 30, " 2 KiB ": 2 << 10, "7B": 7}
	for in, want := range tests {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1T", "MiB", "99999999999G"} {
		if _, err := ParseSize(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSize(%q) err = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"agent_address":"unix:///x.sock","timeout":"500ms","log_max_size":"1MiB","fail_allow_namespaces":["a"],"fail_allow_namespace_regex":["team-.*"]}`), 0o600)
	c, err := ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.AgentAddress != "unix:///x.sock" || c.Timeout.Duration() != 500*time.Millisecond || c.LogMaxSize != 1<<20 || c.FailAllowNamespaceRegex[0] != "team-.*" {
		t.Fatalf("got %+v", c)
	}
	merged := Defaults().Merge(c)
	if merged.LogFile != Defaults().LogFile || merged.AgentAddress != "unix:///x.sock" || len(merged.FailAllowNamespaces) != 1 {
		t.Fatalf("merged %+v", merged)
	}
	for name, content := range map[string]string{
		"unknown key": `{"agent_adress":"unix:///x.sock"}`,
		"bad json":    `{`,
		"bad timeout": `{"timeout":"soon"}`,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := ReadFile(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: err = %v", err)
	}
}

func TestValidate(t *testing.T) {
	if err := Defaults().Validate(true); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	tet := Defaults()
	tet.AgentProtocol, tet.TetragonUntrusted, tet.AgentAddress = ProtocolTetragon, TetragonUntrustedSendBare, "unix:///var/run/tetragon/tetragon.sock"
	if err := tet.Validate(true); err != nil {
		t.Fatalf("tetragon settings invalid: %v", err)
	}
	neg := -2
	tests := map[string]func(*Config){
		"tcp address":      func(c *Config) { c.AgentAddress = "tcp://1.2.3.4:5" },
		"relative socket":  func(c *Config) { c.AgentAddress = "unix://agent.sock" },
		"zero timeout":     func(c *Config) { c.Timeout = 0 },
		"relative log":     func(c *Config) { c.LogFile = "podhook.log" },
		"bad level":        func(c *Config) { c.LogLevel = "loud" },
		"zero log size":    func(c *Config) { c.LogMaxSize = 0 },
		"negative backups": func(c *Config) { c.LogMaxBackups = &neg },
		"bad namespace":    func(c *Config) { c.FailAllowNamespaces = []string{"Kube_System"} },
		"bad agent ns":     func(c *Config) { c.AgentNamespace = "-x" },
		"bad pattern":      func(c *Config) { c.FailAllowNamespaceRegex = []string{"("} },
		"bad runtime":      func(c *Config) { c.Runtime = "docker" },
		"bad uid":          func(c *Config) { c.AgentUID = &neg },
		"bad protocol":     func(c *Config) { c.AgentProtocol = "tetragon.v2" },
		"bad untrusted":    func(c *Config) { c.TetragonUntrusted = "allow" },
		"zero poststop":    func(c *Config) { c.PoststopTimeout = 0 },
	}
	for name, mutate := range tests {
		c := Defaults()
		mutate(&c)
		if err := c.Validate(true); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestPolicyAndSafe(t *testing.T) {
	c := Defaults()
	c.AgentNamespace = "security"
	c.FailAllowNamespaceRegex = []string{"("}
	if p := c.FailAllowed(); len(p) != 2 || p[1] != "security" {
		t.Fatalf("fail-allowed %q", p)
	}
	if err := c.Validate(true); !errors.Is(err, ErrInvalid) {
		t.Fatalf("pattern %q validated: %v", "(", err)
	}
	s := c.Safe()
	if s.AgentNamespace != "security" || s.FailAllowNamespaceRegex != nil || s.Validate(true) != nil {
		t.Fatalf("safe %+v", s)
	}
	if ns := c.SafeAgentNamespace(); ns != "security" {
		t.Fatalf("safe agent namespace %q", ns)
	}
	c.AgentNamespace = "Not_Valid"
	if ns := c.SafeAgentNamespace(); ns != "" {
		t.Fatalf("invalid agent namespace kept: %q", ns)
	}
}

func TestAgentsList(t *testing.T) {
	c, err := Parse([]byte(`{"agent_uid":7,"agents":[
		{"name":"tetragon","address":"unix:///run/tetragon/tetragon.sock","protocol":"tetragon","agent_uid":0},
		{"name":"inventory","address":"unix:///run/inventory/agent.sock","required":false}]}`))
	if err != nil {
		t.Fatal(err)
	}
	list := Defaults().Merge(c).AgentList()
	if len(list) != 2 || list[0].Protocol != ProtocolTetragon || *list[0].AgentUID != 0 || !*list[0].Required ||
		list[1].Protocol != ProtocolPodhook || *list[1].AgentUID != 7 || *list[1].Required {
		t.Fatalf("%+v", list)
	}
	if err := Defaults().Merge(c).Validate(true); err != nil {
		t.Fatal(err)
	}
	// The single-agent settings are a list of one.
	one := Defaults().AgentList()
	if len(one) != 1 || one[0].Name != SingleAgent || one[0].Address != Defaults().AgentAddress || !*one[0].Required {
		t.Fatalf("%+v", one)
	}
	// A later source's single address replaces an earlier list.
	if got := Defaults().Merge(c).Merge(Config{AgentAddress: "unix:///x.sock"}).AgentList(); len(got) != 1 || got[0].Address != "unix:///x.sock" {
		t.Fatalf("%+v", got)
	}
	if _, err := Parse([]byte(`{"agent_address":"unix:///x.sock","agents":[{"name":"a","address":"unix:///y.sock"}]}`)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("agents with agent_address: %v", err)
	}
}

func TestAgentsValidate(t *testing.T) {
	tests := map[string]struct {
		agents string
		want   string
	}{
		"duplicate name":    {`[{"name":"a","address":"unix:///x.sock"},{"name":"a","address":"unix:///y.sock"}]`, `name "a" is also agents[0]'s`},
		"duplicate address": {`[{"name":"a","address":"unix:///x.sock"},{"name":"b","address":"unix:///./x.sock"}]`, `is also agents[0]'s`},
		"name not a label":  {`[{"name":"Tetragon Agent","address":"unix:///x.sock"}]`, "not a DNS-1123 label"},
		"no name":           {`[{"address":"unix:///x.sock"}]`, `name ""`},
		"bad address":       {`[{"name":"a","address":"tcp://1.2.3.4:5"}]`, "agents[0]: address"},
		"bad protocol":      {`[{"name":"a","address":"unix:///x.sock","protocol":"grpc"}]`, `protocol "grpc"`},
		"bad uid":           {`[{"name":"a","address":"unix:///x.sock","agent_uid":-2}]`, "agent_uid -2"},
		"too many":          {`[` + strings.Repeat(`{"name":"a","address":"unix:///x.sock"},`, MaxAgents) + `{"name":"a","address":"unix:///x.sock"}]`, "at most 8"},
	}
	for name, tc := range tests {
		c, err := Parse([]byte(`{"agents":` + tc.agents + `}`))
		if err == nil {
			err = Defaults().Merge(c).Validate(true)
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func TestAuditSettings(t *testing.T) {
	ok := Defaults().Merge(Config{Mode: ModeAudit, AuditNamespaces: []string{"staging"}, AuditNamespaceRegex: []string{"team-.*"}})
	if err := ok.Validate(true); err != nil || !ok.Audit() {
		t.Fatalf("%v %v", err, ok.Audit())
	}
	for name, c := range map[string]Config{
		"mode":      {Mode: "dry-run"},
		"namespace": {AuditNamespaces: []string{"Not_A_Label"}},
		"pattern":   {AuditNamespaceRegex: []string{"team-("}},
	} {
		if err := Defaults().Merge(c).Validate(true); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if Defaults().Audit() {
		t.Fatal("the default mode audits")
	}
}
