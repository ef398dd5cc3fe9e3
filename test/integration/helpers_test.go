package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/podhook/podhook/agentclient/agentv1"
	"github.com/podhook/podhook/test/harness"
)

var podhook, agentBin, tetragonAgentBin, nriBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "podhook-bin-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755) // one test runs the hook as an unprivileged user
	podhook, agentBin, tetragonAgentBin = filepath.Join(dir, "podhook"), filepath.Join(dir, "podhook-agent"), filepath.Join(dir, "tetragonagent")
	nriBin = filepath.Join(dir, "podhook-nri")
	if err := harness.Build(map[string]string{podhook: "../../cmd/podhook", agentBin: "../../cmd/podhook-agent", tetragonAgentBin: "../tetragonagent",
		nriBin:                                "../../cmd/podhook-nri",
		filepath.Join(dir, "podhook-sync"):    "../../cmd/podhook-sync",
		filepath.Join(dir, "podhook-monitor"): "../../cmd/podhook-monitor"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shortDir is a temp dir short enough for a unix socket path.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ph-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// bundle writes the CRI-O fixture's config.json (its annotations changed by
// edit) to a new bundle dir and returns the matching state.
func bundle(t *testing.T, stage string, edit func(annotations map[string]string)) (stateJSON []byte, dir string) {
	t.Helper()
	dir = t.TempDir()
	var spec map[string]any
	b, err := os.ReadFile("../../testdata/crio-1.37/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		a := map[string]string{}
		for k, v := range spec["annotations"].(map[string]any) {
			a[k] = v.(string)
		}
		edit(a)
		spec["annotations"] = a
	}
	b, _ = json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	var state map[string]any
	b, err = os.ReadFile("../../testdata/crio-1.37/state-" + stage + ".json")
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &state)
	state["bundle"] = dir
	stateJSON, _ = json.Marshal(state)
	return stateJSON, dir
}

const fixtureID = "73aa9b92188892db6a87d9edd97a1d48e4c2ad7d27d4d8c21db6d5ced346b1df"

type agent struct {
	socket, events string
	cmd            *exec.Cmd
	stderr         harness.SyncBuffer
}

// startAgent runs podhook-agent on a new socket and waits until it serves.
func startAgent(t *testing.T, args ...string) *agent {
	t.Helper()
	return startAgentAt(t, filepath.Join(shortDir(t), "agent.sock"), args...)
}

// startAgentAt runs podhook-agent on socket.
func startAgentAt(t *testing.T, socket string, args ...string) *agent {
	t.Helper()
	a := &agent{socket: socket, events: filepath.Join(shortDir(t), "events.jsonl")}
	a.cmd = exec.Command(agentBin, append([]string{"--socket", a.socket, "--events", a.events}, args...)...)
	a.cmd.Stderr = io.MultiWriter(os.Stderr, &a.stderr)
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", a.socket); err == nil {
			c.Close()
			return a
		}
		if time.Now().After(deadline) {
			t.Fatal("agent did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (a *agent) address() string { return "unix://" + a.socket }

func (a *agent) stop() {
	if a.cmd.ProcessState != nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	a.cmd.Wait()
}

// event is what the agent received, as podhook-agent records it.
type event = harness.Event

func (a *agent) readEvents(t *testing.T) []event {
	t.Helper()
	evs, err := harness.ReadEvents(a.events)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

type result struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

// runHook runs podhook with stdin and args, with no environment of its own.
func runHook(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.Command(podhook, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// logRecords reads the hook's JSON-lines log.
func logRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// oneRecord asserts the log holds exactly one record and returns it.
func oneRecord(t *testing.T, path string) map[string]any {
	t.Helper()
	recs := logRecords(t, path)
	if len(recs) != 1 {
		t.Fatalf("log has %d records, want 1: %v", len(recs), recs)
	}
	return recs[0]
}

// oneLine asserts s is exactly one non-empty line.
func oneLine(t *testing.T, s string) string {
	t.Helper()
	s = strings.TrimSuffix(s, "\n")
	if s == "" || strings.Contains(s, "\n") {
		t.Fatalf("stderr is not one line: %q", s)
	}
	return s
}

// holdingAgent is an agent served in this process that, for each
// CreateContainer, signals received and holds the call until the server
// stops: a test can act once the agent has the request in hand.
type holdingAgent struct {
	agentv1.UnimplementedAgentServer
	srv      *grpc.Server
	addr     string
	received chan struct{}
}

func newHoldingAgent(t *testing.T) *holdingAgent {
	t.Helper()
	a := &holdingAgent{received: make(chan struct{}, 16)}
	a.addr, a.srv = harness.ServeAgent(t, a)
	return a
}

func (a *holdingAgent) address() string { return a.addr }

func (a *holdingAgent) CreateContainer(ctx context.Context, _ *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error) {
	a.received <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}
