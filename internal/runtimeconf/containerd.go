package runtimeconf

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pelletier/go-toml/v2"
)

// ErrUnsupported marks a configuration podhook refuses to patch.
var ErrUnsupported = errors.New("cannot patch")

// NRIPluginID is the NRI plugin's table in containerd's config, the same in
// config versions 2 (containerd 1.7) and 3 (containerd 2.x).
const NRIPluginID = "io.containerd.nri.v1.nri"

// NRISettings are the values EnableNRI writes.
type NRISettings struct {
	SocketPath          string // default /var/run/nri/nri.sock
	RegistrationTimeout string // default 5s
	RequestTimeout      string // default 2s
}

func (s NRISettings) withDefaults() NRISettings {
	if s.SocketPath == "" {
		s.SocketPath = "/var/run/nri/nri.sock"
	}
	if s.RegistrationTimeout == "" {
		s.RegistrationTimeout = "5s"
	}
	if s.RequestTimeout == "" {
		s.RequestTimeout = "2s"
	}
	return s
}

// keys are the NRI settings in the order they are written.
func (s NRISettings) keys() [][2]string {
	return [][2]string{
		{"disable", "false"},
		{"disable_connections", "false"},
		{"socket_path", strconv.Quote(s.SocketPath)},
		{"plugin_registration_timeout", strconv.Quote(s.RegistrationTimeout)},
		{"plugin_request_timeout", strconv.Quote(s.RequestTimeout)},
	}
}

// The patterns compile when used, not at package init: this package is
// linked into the hook, which starts for every container.
var (
	nriHeader = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\s*\[\s*plugins\s*\.\s*(?:"` + regexp.QuoteMeta(NRIPluginID) + `"|'` + regexp.QuoteMeta(NRIPluginID) + `')\s*\]\s*(?:#.*)?$`)
	})
	tableHeader = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*\[`) })
)

// EnableNRI returns containerd's config.toml with NRI enabled and external
// plugins allowed to connect on the socket. Only the NRI table's keys are
// added or changed (the table is appended when absent); every other line is
// kept byte for byte, which the result is checked for. Config version 1
// (or none, in a non-empty file) is refused: containerd reads it with
// other table names.
func EnableNRI(in []byte, s NRISettings) ([]byte, error) {
	before, err := parse(in)
	if err != nil {
		return nil, err
	}
	// An NRI socket the file already names is kept unless one is asked for.
	if p, ok := nriTable(before)["socket_path"].(string); ok && s.SocketPath == "" && p != "" {
		s.SocketPath = p
	}
	s = s.withDefaults()
	if len(bytes.TrimSpace(in)) == 0 {
		in = []byte("version = 2\n")
		before = map[string]any{"version": int64(2)}
	}
	switch v, set := before["version"]; {
	case v == int64(2) || v == int64(3):
	case !set:
		return nil, fmt.Errorf("%w: no version key, so config version 1: podhook patches versions 2 (containerd 1.7) and 3 (containerd 2.x); run `containerd config migrate` first", ErrUnsupported)
	default:
		return nil, fmt.Errorf("%w: config version %v: podhook patches versions 2 (containerd 1.7) and 3 (containerd 2.x)", ErrUnsupported, v)
	}

	lines := strings.SplitAfter(string(in), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	header := -1
	for i, l := range lines {
		if nriHeader().MatchString(strings.TrimRight(l, "\r\n")) {
			if header >= 0 {
				return nil, fmt.Errorf("%w: the [plugins.%q] table appears twice", ErrUnsupported, NRIPluginID)
			}
			header = i
		}
	}
	var out []string
	if header < 0 {
		if nriTable(before) != nil {
			return nil, fmt.Errorf("%w: NRI is configured, but not as a [plugins.%q] table (dotted keys or an inline table): edit it by hand", ErrUnsupported, NRIPluginID)
		}
		out = append(out, lines...)
		if n := len(out); n > 0 && !strings.HasSuffix(out[n-1], "\n") {
			out[n-1] += "\n"
		}
		out = append(out, "\n", fmt.Sprintf("[plugins.%q]\n", NRIPluginID))
		for _, kv := range s.keys() {
			out = append(out, "  "+kv[0]+" = "+kv[1]+"\n")
		}
	} else {
		end := len(lines)
		for j := header + 1; j < len(lines); j++ {
			if tableHeader().MatchString(lines[j]) {
				end = j
				break
			}
		}
		body := slices.Clone(lines[header+1 : end])
		indent := leadingSpace(lines[header]) + "  "
		last := -1 // last key line in the body
		for i, l := range body {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				if last < 0 {
					indent = leadingSpace(l)
				}
				last = i
			}
		}
		current := nriTable(before)
		var missing []string
		for _, kv := range s.keys() {
			re := regexp.MustCompile(`^(\s*)` + regexp.QuoteMeta(kv[0]) + `\s*=`)
			found := false
			for i, l := range body {
				if m := re.FindStringSubmatch(l); m != nil {
					found = true
					if fmt.Sprint(current[kv[0]]) != unquote(kv[1]) {
						body[i] = m[1] + kv[0] + " = " + kv[1] + "\n"
					}
				}
			}
			if !found {
				missing = append(missing, indent+kv[0]+" = "+kv[1]+"\n")
			}
		}
		at := last + 1
		body = append(body[:at], append(missing, body[at:]...)...)
		out = append(append(append(out, lines[:header+1]...), body...), lines[end:]...)
	}
	result := []byte(strings.Join(out, ""))
	if err := verify(before, result, s); err != nil {
		return nil, err
	}
	return result, nil
}

func parse(b []byte) (map[string]any, error) {
	m := map[string]any{}
	if err := toml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: not valid TOML: %w", ErrUnsupported, err)
	}
	return m, nil
}

func nriTable(m map[string]any) map[string]any {
	plugins, _ := m["plugins"].(map[string]any)
	t, _ := plugins[NRIPluginID].(map[string]any)
	return t
}

// verify re-reads the result: NRI must be enabled with the settings, and
// the configuration without the NRI table must equal the original's.
func verify(before map[string]any, result []byte, s NRISettings) error {
	after, err := parse(result)
	if err != nil {
		return fmt.Errorf("patched file does not parse (a bug): %w", err)
	}
	t := nriTable(after)
	if t["disable"] != false || t["disable_connections"] != false || t["socket_path"] != s.SocketPath ||
		t["plugin_registration_timeout"] != s.RegistrationTimeout || t["plugin_request_timeout"] != s.RequestTimeout {
		return fmt.Errorf("%w: the patched NRI table reads %v", ErrUnsupported, t)
	}
	strip := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		if p, ok := m["plugins"].(map[string]any); ok {
			q := map[string]any{}
			for k, v := range p {
				if k != NRIPluginID {
					q[k] = v
				}
			}
			if len(q) == 0 {
				delete(out, "plugins")
			} else {
				out["plugins"] = q
			}
		}
		return out
	}
	// The NRI table's own sub-tables (default_validator, ...) must survive too.
	bt, at := nriTable(before), nriTable(after)
	for k, v := range bt {
		if _, mine := s.keysMap()[k]; !mine && !reflect.DeepEqual(at[k], v) {
			return fmt.Errorf("%w: NRI setting %q changed (a bug)", ErrUnsupported, k)
		}
	}
	if !reflect.DeepEqual(strip(before), strip(after)) {
		return fmt.Errorf("%w: the patch changed settings outside the NRI table (a bug)", ErrUnsupported)
	}
	return nil
}

func (s NRISettings) keysMap() map[string]bool {
	m := map[string]bool{}
	for _, kv := range s.keys() {
		m[kv[0]] = true
	}
	return m
}

// unquote is the value a TOML literal written by keys() stands for.
func unquote(v string) string {
	if u, err := strconv.Unquote(v); err == nil {
		return u
	}
	return v
}

// SocketPath returns the NRI socket the patched file names.
func SocketPath(patched []byte) string {
	m, err := parse(patched)
	if err != nil {
		return ""
	}
	p, _ := nriTable(m)["socket_path"].(string)
	return p
}

func leadingSpace(s string) string {
	return s[:len(s)-len(strings.TrimLeft(s, " \t"))]
}
