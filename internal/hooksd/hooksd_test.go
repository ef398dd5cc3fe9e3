package hooksd

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/containers/common/pkg/hooks"
	current "github.com/containers/common/pkg/hooks/1.0.0"
)

// TestShippedRegistrations loads every file in hooks.d/ through the same
// containers/common reader CRI-O and podman use, and checks the fields that
// decide whether the hook runs and who decides the container's fate.
func TestShippedRegistrations(t *testing.T) {
	files, err := filepath.Glob("../../hooks.d/*")
	if err != nil || len(files) != 2 {
		t.Fatalf("hooks.d holds %v, %v; want the create and poststop registrations", files, err)
	}
	stages := map[string]bool{}
	for _, f := range files {
		h, err := readShipped(t, f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(h.Stages) != 1 {
			t.Fatalf("%s: stages %v", f, h.Stages)
		}
		stage := h.Stages[0]
		stages[stage] = true
		if h.Hook.Path != DefaultPath {
			t.Errorf("%s: path %q", f, h.Hook.Path)
		}
		if !slices.Equal(h.Hook.Args[:3], []string{"podhook", stage, "--via=hooksd"}) {
			t.Errorf("%s: args %v do not start with podhook %s --via=hooksd", f, h.Hook.Args, stage)
		}
		if h.Hook.Timeout == nil || *h.Hook.Timeout < 5 {
			t.Errorf("%s: timeout %v is not well above the 2s agent deadline", f, h.Hook.Timeout)
		}
		if h.When.Always == nil || !*h.When.Always || len(h.When.Annotations) != 0 {
			t.Errorf("%s: when %+v: must be always, never gated on annotations", f, h.When)
		}
		if len(h.Hook.Env) == 0 {
			t.Errorf("%s: empty env: runc would pass its own environment", f)
		}
		if !slices.Contains(h.Hook.Env, "GOMAXPROCS=1") {
			t.Errorf("%s: env %v: the Go runtime would start a scheduler thread per CPU (0.3 ms a start)", f, h.Hook.Env)
		}
		// The shipped file is exactly what `podhook hooks-json` prints.
		want, err := Registration(Options{Path: DefaultPath, Stage: stage})
		if err != nil {
			t.Fatal(err)
		}
		wantJSON, _ := Marshal(want)
		got, _ := os.ReadFile(f)
		if !bytes.Equal(got, wantJSON) {
			t.Errorf("%s differs from the generated registration:\n%s\nwant:\n%s", f, got, wantJSON)
		}
	}
	if !stages["createRuntime"] || !stages["poststop"] {
		t.Fatalf("stages registered: %v", stages)
	}
}

func TestRegistrationRefuses(t *testing.T) {
	for name, o := range map[string]Options{
		"relative path": {Path: "podhook", Stage: "createRuntime"},
		"bad stage":     {Path: DefaultPath, Stage: "poststart"},
	} {
		if _, err := Registration(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	h, err := Registration(Options{Path: "/usr/local/bin/podhook", Stage: "createRuntime", Args: []string{"--config", "/etc/podhook.json"}, Timeout: 7})
	if err != nil || *h.Hook.Timeout != 7 || h.Hook.Args[4] != "/etc/podhook.json" {
		t.Fatalf("got %+v, %v", h, err)
	}
}

// readShipped reads a shipped registration with hooks.Read, which also
// checks that hook.path exists: the file is read from a temp dir with the
// installed path swapped for an executable that exists here, and the path
// is swapped back in the result.
func readShipped(t *testing.T, f string) (*current.Hook, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		return nil, err
	}
	exe, _ := os.Executable()
	tmp := filepath.Join(t.TempDir(), filepath.Base(f))
	if !bytes.Contains(b, []byte(`"`+DefaultPath+`"`)) {
		t.Fatalf("%s does not point at %s", f, DefaultPath)
	}
	os.WriteFile(tmp, bytes.ReplaceAll(b, []byte(`"`+DefaultPath+`"`), []byte(`"`+exe+`"`)), 0o600)
	h, err := hooks.Read(tmp, nil)
	if err == nil {
		h.Hook.Path = DefaultPath
	}
	return h, err
}

func TestTimeoutAndArgsRefused(t *testing.T) {
	tests := map[string]struct {
		o    Options
		want error
	}{
		"hook timeout below the default agent deadline": {Options{Path: DefaultPath, Stage: "createRuntime", Timeout: 2}, ErrTimeout},
		"hook timeout below the configured deadline":    {Options{Path: DefaultPath, Stage: "createRuntime", Timeout: 5, AgentTimeout: 15 * time.Second}, ErrTimeout},
		"hook timeout below --timeout in args":          {Options{Path: DefaultPath, Stage: "poststop", Timeout: 5, Args: []string{"--timeout", "15s"}}, ErrTimeout},
		"--timeout= form":                               {Options{Path: DefaultPath, Stage: "createRuntime", Timeout: 5, Args: []string{"--timeout=9s"}}, ErrTimeout},
		"--dry-run":                                     {Options{Path: DefaultPath, Stage: "createRuntime", Args: []string{"--dry-run"}}, ErrDecidesNothing},
		"-help":                                         {Options{Path: DefaultPath, Stage: "createRuntime", Args: []string{"-help"}}, ErrDecidesNothing},
		"-h":                                            {Options{Path: DefaultPath, Stage: "poststop", Args: []string{"-h"}}, ErrDecidesNothing},
		"--dry-run=false is still refused":              {Options{Path: DefaultPath, Stage: "createRuntime", Args: []string{"--dry-run=false"}}, ErrDecidesNothing},
		"enough: 2s + 1s lock + 1s":                     {Options{Path: DefaultPath, Stage: "createRuntime", Timeout: 4}, nil},
		"enough for 15s":                                {Options{Path: DefaultPath, Stage: "createRuntime", Timeout: 17, AgentTimeout: 15 * time.Second}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Registration(tc.o)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if MinTimeout(1500*time.Millisecond) != 4 || MinTimeout(2*time.Second) != 4 {
		t.Fatalf("MinTimeout: %d, %d", MinTimeout(1500*time.Millisecond), MinTimeout(2*time.Second))
	}
}
