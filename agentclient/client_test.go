package agentclient

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/podhook/podhook/agentclient/agentv1"
	"github.com/podhook/podhook/test/harness"
)

// verdictAgent answers every CreateContainer with one verdict.
type verdictAgent struct {
	agentv1.UnimplementedAgentServer
	verdict agentv1.Verdict
}

func (a verdictAgent) CreateContainer(context.Context, *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error) {
	return &agentv1.CreateContainerResponse{Verdict: a.verdict, Reason: "because"}, nil
}

// TestVerdicts: ALLOW and DENY mean what they say; a verdict the client
// does not know is podhook's own DENY naming the number, never ALLOW and
// never a case for the fail check.
func TestVerdicts(t *testing.T) {
	tests := map[string]struct {
		verdict agentv1.Verdict
		want    error
	}{
		"allow":   {agentv1.Verdict_VERDICT_ALLOW, nil},
		"deny":    {agentv1.Verdict_VERDICT_DENY, ErrDenied},
		"unknown": {agentv1.Verdict(7), ErrDenied},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			address, _ := harness.ServeAgent(t, verdictAgent{verdict: tc.verdict})
			c, err := New(address, WithPeerUID(os.Getuid()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.CreateContainer(context.Background(), &agentv1.CreateContainerRequest{})
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var d *DeniedError
			if name == "unknown" && (Kind(err) != "denied" || !errors.As(err, &d) || !d.ByHook ||
				!strings.Contains(d.Reason, "verdict 7") || !strings.Contains(d.Reason, "because")) {
				t.Fatalf("kind %q, err %v", Kind(err), err)
			}
		})
	}
}
