package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/podhook/podhook/agentclient/agentv1"
)

// single is the one required agent the single-agent settings configure.
func single(a Agent) []Peer {
	return []Peer{{Name: "agent", Protocol: "podhook.v1", Required: true, Agent: a}}
}

// panickingAgent panics inside the call, as a bug in the client path would.
type panickingAgent struct{}

func (panickingAgent) CreateContainer(context.Context, *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error) {
	panic("agent client bug")
}

func (panickingAgent) StopContainer(context.Context, *agentv1.StopContainerRequest) error {
	panic("agent client bug")
}

// TestPanicGoesThroughTheFailCheck: a panic during an invocation is an
// internal error decided by the fail check with the identity already
// resolved, and logged once.
func TestPanicGoesThroughTheFailCheck(t *testing.T) {
	dir, _ := filepath.Abs(fixtures) // the capture's namespace is "payments"
	tests := map[string]struct {
		stage   Stage
		allow   []string
		allowed bool
		msg     string
	}{
		"namespace on the fail-allow list": {CreateRuntime, []string{"payments"}, true, "internal error: failed open"},
		"namespace not on it":              {CreateRuntime, []string{"kube-system"}, false, "internal error: failed closed"},
		"poststop":                         {Poststop, nil, true, "container stopped"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var log bytes.Buffer
			opts := Options{Stage: tc.stage, Start: time.Now(), Policy: Policy{Namespaces: tc.allow}, Safe: SafePolicy("")}
			res := Run(context.Background(), bytes.NewReader(fixtureState(t, dir)), single(panickingAgent{}), opts, slog.New(slog.NewJSONHandler(&log, nil)))
			if res.Allow != tc.allowed || !errors.Is(res.AgentErr, ErrInternal) {
				t.Fatalf("allow=%v err=%v, want allow=%v and ErrInternal", res.Allow, res.AgentErr, tc.allowed)
			}
			var rec map[string]any
			if err := json.Unmarshal(log.Bytes(), &rec); err != nil {
				t.Fatalf("one record: %v (%q)", err, log.String())
			}
			if rec["msg"] != tc.msg || rec["error_kind"] != "internal" || rec["pod_namespace"] != "payments" {
				t.Fatalf("record %v", rec)
			}
		})
	}
}

// allowingAgent answers ALLOW.
type allowingAgent struct{}

func (allowingAgent) CreateContainer(context.Context, *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error) {
	return &agentv1.CreateContainerResponse{}, nil
}

func (allowingAgent) StopContainer(context.Context, *agentv1.StopContainerRequest) error { return nil }

// TestPanicInOneOfSeveralAgents: the agents are called on goroutines of
// their own; a panic in one is that agent's internal error (a required one
// goes through the fail check), the others' answers stand, and the record
// says which.
func TestPanicInOneOfSeveralAgents(t *testing.T) {
	dir, _ := filepath.Abs(fixtures)
	for _, required := range []bool{true, false} {
		var log bytes.Buffer
		peers := []Peer{{Name: "ok", Protocol: "podhook.v1", Required: true, Agent: allowingAgent{}},
			{Name: "buggy", Protocol: "podhook.v1", Required: required, Agent: panickingAgent{}}}
		opts := Options{Stage: CreateRuntime, Start: time.Now(), Named: true, Safe: SafePolicy("")}
		res := Run(context.Background(), bytes.NewReader(fixtureState(t, dir)), peers, opts, slog.New(slog.NewJSONHandler(&log, nil)))
		if res.Allow == required || len(res.Outcomes) != 2 || res.Outcomes[0].Err != nil || !errors.Is(res.Outcomes[1].Err, ErrInternal) {
			t.Fatalf("required=%v: allow=%v outcomes %+v", required, res.Allow, res.Outcomes)
		}
		var rec struct {
			Agents []struct {
				Name, Verdict string
				ErrorKind     string `json:"error_kind"`
			}
		}
		if err := json.Unmarshal(log.Bytes(), &rec); err != nil || len(rec.Agents) != 2 || rec.Agents[0].Verdict != "allow" || rec.Agents[1].ErrorKind != "internal" {
			t.Fatalf("required=%v: record %s (%v)", required, log.String(), err)
		}
	}
}
