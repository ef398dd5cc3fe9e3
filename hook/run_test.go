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
			res := Run(context.Background(), bytes.NewReader(fixtureState(t, dir)), Single(panickingAgent{}, ""), opts, slog.New(slog.NewJSONHandler(&log, nil)))
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
