package agentclient

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

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

// aheadListener hands the agent the connection accepted before it
// served, then counts any other it accepts.
type aheadListener struct {
	net.Listener
	first net.Conn
	more  atomic.Int32
}

func (l *aheadListener) Accept() (net.Conn, error) {
	if c := l.first; c != nil {
		l.first = nil
		return c, nil
	}
	c, err := l.Listener.Accept()
	if err == nil {
		l.more.Add(1)
	}
	return c, err
}

// TestDialAhead: Dial connects before grpc-go starts (the agent can accept
// the connection then), the first call goes over that connection and no
// other, and what made Dial fail is the first call's error, classified as
// without Dial.
func TestDialAhead(t *testing.T) {
	t.Run("connection used", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "agent.sock")
		raw, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		c, err := New("unix://"+sock, WithPeerUID(os.Getuid()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Dial()
		raw.(*net.UnixListener).SetDeadline(time.Now().Add(5 * time.Second))
		first, err := raw.Accept()
		if err != nil {
			t.Fatalf("no connection after Dial, before Connect: %v", err)
		}
		raw.(*net.UnixListener).SetDeadline(time.Time{})
		lis := &aheadListener{Listener: raw, first: first}
		srv := grpc.NewServer()
		agentv1.RegisterAgentServer(srv, verdictAgent{})
		t.Cleanup(srv.Stop)
		go srv.Serve(lis)
		c.Connect()
		if _, err := c.CreateContainer(context.Background(), &agentv1.CreateContainerRequest{}); err != nil {
			t.Fatal(err)
		}
		if n := lis.more.Load(); n != 0 {
			t.Fatalf("the call needed %d more connections besides Dial's", n)
		}
	})
	for name, tc := range map[string]struct {
		uid  int
		sock func(t *testing.T) string
		want string
	}{
		"socket missing": {os.Getuid(), func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent.sock") }, "no such file"},
		"peer not the agent's user": {os.Getuid() + 1, func(t *testing.T) string {
			a, _ := harness.ServeAgent(t, verdictAgent{})
			return strings.TrimPrefix(a, "unix://")
		}, "want uid"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := New("unix://"+tc.sock(t), WithPeerUID(tc.uid))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Dial()
			c.Connect()
			_, err = c.CreateContainer(context.Background(), &agentv1.CreateContainerRequest{})
			if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %v naming %q", err, ErrUnreachable, tc.want)
			}
		})
	}
}
