package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/agentclient/agentv1"
	"github.com/podhook/podhook/internal/safetext"
)

// Config configures the reference agent.
type Config struct {
	Socket         string
	Events         io.Writer
	DenyNamespaces []string
	DenyImages     []*regexp.Regexp
	// AllowUntrusted lets a container whose identity is not trusted start
	// (namespace rules never apply to it; image rules still do). By
	// default it is denied: its namespace cannot be told.
	AllowUntrusted bool
	AllowUIDs      []int
	Delay          time.Duration
	// ErrorCode, when not OK, is the gRPC status every call answers with.
	ErrorCode codes.Code
	// Log gets one line for each request that says something is missing
	// from it (config.json not used); nil for none.
	Log io.Writer
}

// agent implements agentv1.AgentServer.
type agent struct {
	agentv1.UnimplementedAgentServer
	cfg Config
	mu  sync.Mutex // serialises event lines
}

// CreateContainer records the request and answers with decide's verdict.
func (a *agent) CreateContainer(ctx context.Context, req *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error) {
	resp := a.decide(req)
	if err := a.wait(ctx); err != nil {
		return nil, err
	}
	event := "create"
	if req.GetAlreadyRunning() {
		// Reported after it started (podhook sync, podhook-nri catching
		// up): the verdict cannot stop it.
		event = "already_running"
	}
	a.note(req.GetContainer())
	a.record("CreateContainer", event, req, resp)
	return resp, nil
}

// note logs what podhook said it could not tell about a container.
func (a *agent) note(c *agentv1.Container) {
	if a.cfg.Log == nil || c.GetSpecError() == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	fmt.Fprintf(a.cfg.Log, "podhook-agent: container %s: podhook did not use its config.json (%s): its mounts, args and rootfs are unknown\n",
		safetext.Line(c.GetId(), safetext.Keep), safetext.Line(c.GetSpecError(), safetext.Keep))
}

// decide is the reference policy, in order:
//
//	image matches a --deny-image pattern        DENY
//	identity not trusted, no --allow-untrusted  DENY (its namespace cannot be told)
//	identity not trusted, --allow-untrusted     ALLOW (namespace rules are not applied)
//	trusted namespace on --deny-namespace       DENY
//	otherwise                                   ALLOW
//
// A namespace is read only from a trusted identity: an untrusted one may
// name whatever namespace a pod's author wrote.
func (a *agent) decide(req *agentv1.CreateContainerRequest) *agentv1.CreateContainerResponse {
	deny := func(format string, args ...any) *agentv1.CreateContainerResponse {
		return &agentv1.CreateContainerResponse{Verdict: agentv1.Verdict_VERDICT_DENY, Reason: fmt.Sprintf(format, args...)}
	}
	for _, re := range a.cfg.DenyImages {
		if img := req.GetContainer().GetImage(); re.MatchString(img) {
			return deny("image %q matches denied pattern %q", img, re)
		}
	}
	if id := req.GetIdentity(); !id.GetTrusted() {
		if a.cfg.AllowUntrusted {
			return &agentv1.CreateContainerResponse{}
		}
		why := "no identity"
		if c := id.GetConflicts(); len(c) > 0 {
			why = c[0]
			if len(c) > 1 {
				why += fmt.Sprintf(" (and %d more)", len(c)-1)
			}
		}
		return deny("pod identity not trusted: %s", why)
	}
	if ns := req.GetPod().GetNamespace(); slices.Contains(a.cfg.DenyNamespaces, ns) {
		return deny("namespace %q is denied by podhook-agent", ns)
	}
	return &agentv1.CreateContainerResponse{}
}

// StopContainer records the request.
func (a *agent) StopContainer(ctx context.Context, req *agentv1.StopContainerRequest) (*agentv1.StopContainerResponse, error) {
	if err := a.wait(ctx); err != nil {
		return nil, err
	}
	a.note(req.GetContainer())
	a.record("StopContainer", "stop", req, nil)
	return &agentv1.StopContainerResponse{}, nil
}

// wait plays a slow or failing agent when configured to.
func (a *agent) wait(ctx context.Context) error {
	if a.cfg.ErrorCode != codes.OK {
		return status.Errorf(a.cfg.ErrorCode, "podhook-agent configured to fail with %s", a.cfg.ErrorCode)
	}
	if a.cfg.Delay <= 0 {
		return nil
	}
	select {
	case <-time.After(a.cfg.Delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// record writes {"rpc":..., "event":..., "request":..., "response":...} as
// one line; event is "create", "already_running" or "stop".
func (a *agent) record(rpc, event string, req, resp proto.Message) {
	if a.cfg.Events == io.Discard {
		return
	}
	line := struct {
		RPC      string          `json:"rpc"`
		Event    string          `json:"event"`
		Request  json.RawMessage `json:"request"`
		Response json.RawMessage `json:"response,omitempty"`
	}{RPC: rpc, Event: event}
	line.Request, _ = protojson.Marshal(req)
	if resp != nil {
		line.Response, _ = protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(resp)
	}
	b, _ := json.Marshal(line)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cfg.Events.Write(append(b, '\n'))
}

// Server is a listening reference agent.
type Server struct {
	grpc   *grpc.Server
	health *health.Server
	lis    net.Listener
	socket string
}

var errServerStopped = grpc.ErrServerStopped

// Listen creates the socket (its directory 0700 when missing, the socket
// 0600, a stale socket replaced) and registers the services.
func Listen(cfg Config) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.Socket), 0o700); err != nil {
		return nil, err
	}
	if err := removeStale(cfg.Socket); err != nil {
		return nil, err
	}
	lis, err := net.Listen("unix", cfg.Socket)
	if err != nil {
		return nil, err
	}
	lis.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(cfg.Socket, 0o600); err != nil {
		lis.Close()
		return nil, err
	}
	s := &Server{grpc: grpc.NewServer(), health: health.NewServer(), socket: cfg.Socket,
		lis: &peerListener{Listener: lis, uids: cfg.AllowUIDs}}
	agentv1.RegisterAgentServer(s.grpc, &agent{cfg: cfg})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(agentv1.Agent_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	return s, nil
}

// Serve serves until Shutdown.
func (s *Server) Serve() error { return s.grpc.Serve(s.lis) }

// Shutdown reports NOT_SERVING, lets calls in flight finish for up to
// grace, then stops and removes the socket.
func (s *Server) Shutdown(grace time.Duration) {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.grpc.Stop()
	}
}

// removeStale removes a socket nobody listens on; it refuses to replace a
// live one or anything that is not a socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("another agent is serving on %s", path)
	}
	return os.Remove(path)
}

// peerListener accepts only peers whose uid is allowed (SO_PEERCRED).
type peerListener struct {
	net.Listener
	uids []int
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cred, err := agentclient.PeerCred(c)
		if err == nil && slices.Contains(l.uids, int(cred.Uid)) {
			return c, nil
		}
		c.Close()
	}
}
