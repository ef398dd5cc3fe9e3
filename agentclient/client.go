package agentclient

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/podhook/podhook/agentclient/agentv1"
	"github.com/podhook/podhook/internal/safetext"
)

// Default deadlines. A stop changes nothing for the container, so its call
// gets a short one of its own: a hung agent must not add seconds to every
// container stop, or two deadlines to a create that fails.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultStopTimeout = 500 * time.Millisecond
)

// AnyUID disables the peer check.
const AnyUID = -1

// Client calls one agent. It connects lazily on the first call, never
// waits for a connection to become ready, and gives every call its own
// deadline.
type Client struct {
	conn        *grpc.ClientConn
	timeout     time.Duration
	stopTimeout time.Duration
	// dial connects to the agent's socket and checks its peer.
	dial func(context.Context) (net.Conn, error)
	// early is the connection Dial made, until the first dial takes it.
	early atomic.Pointer[dialed]
}

// dialed is a connection made ahead of the first dial, or why not.
type dialed struct {
	conn net.Conn
	err  error
}

type options struct {
	timeout, stopTimeout time.Duration
	peerUID              int
}

// Option configures a Client.
type Option func(*options)

// WithTimeout sets the deadline of each CreateContainer and Check call.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithStopTimeout sets the deadline of each StopContainer call.
func WithStopTimeout(d time.Duration) Option { return func(o *options) { o.stopTimeout = d } }

// WithPeerUID sets the user the agent process must run as, checked with
// SO_PEERCRED on connect; AnyUID disables the check. Default: 0 (root).
func WithPeerUID(uid int) Option { return func(o *options) { o.peerUID = uid } }

// New returns a Client for address (see SocketPath). It does no I/O.
func New(address string, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout, stopTimeout: DefaultStopTimeout, peerUID: 0}
	for _, opt := range opts {
		opt(&o)
	}
	path, err := SocketPath(address)
	if err != nil {
		return nil, err
	}
	c := &Client{timeout: o.timeout, stopTimeout: o.stopTimeout}
	c.dial = func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return nil, err
		}
		if err := checkPeer(nc, o.peerUID); err != nil {
			nc.Close()
			return nil, err
		}
		return nc, nil
	}
	conn, err := grpc.NewClient("passthrough:///agent",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			if d := c.early.Swap(nil); d != nil {
				return d.conn, d.err
			}
			return c.dial(ctx)
		}),
		grpc.WithAuthority("localhost"),
		grpc.WithDisableServiceConfig(),
		grpc.WithDisableRetry(),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAddress, err)
	}
	c.conn = conn
	return c, nil
}

// Dial connects to the agent's socket now, before grpc-go has set up its
// side of the connection (which Connect then starts): the agent accepts
// and answers the handshake while the caller reads its input, in parallel
// on another CPU, and the client's first connection is this one. A failure
// to connect, or a peer that is not the agent's user, is kept as that
// first connection's error, so the first call fails as it would have. A
// unix socket's connect returns at once, even to an agent that never
// accepts (the listen backlog takes it), or fails at once when its backlog
// is full.
func (c *Client) Dial() {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	nc, err := c.dial(ctx)
	c.early.Store(&dialed{nc, err})
}

// Connect starts connecting in the background without waiting, so that the
// dial and the HTTP/2 handshake overlap the caller's own work before its
// first call. Calls never wait for readiness either way.
func (c *Client) Connect() { c.conn.Connect() }

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// MaxReason bounds the agent's reason for a DENY as podhook repeats it (on
// stderr, which the kubelet shows in events, and in the log).
const MaxReason = 512

// CreateContainer asks the agent about a container. A DENY verdict is
// returned as a *DeniedError (errors.Is(err, ErrDenied)) with the response.
// So is a verdict this client does not know (an agent newer than the hook,
// or a broken one), as podhook's own denial naming the number: the agent is
// up and answered, so this is no case for the fail check, whose exemptions
// are for an agent that gave no answer.
func (c *Client) CreateContainer(ctx context.Context, req *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	in, out := AppendCreateRequest(make([]byte, 0, SizeCreateRequest(req)), req), []byte(nil)
	if err := c.conn.Invoke(ctx, agentv1.Agent_CreateContainer_FullMethodName, &in, &out, grpc.ForceCodecV2(rawCodec{})); err != nil {
		return nil, classify(ctx, err)
	}
	resp, err := ParseCreateResponse(out)
	if err != nil {
		return nil, fmt.Errorf("%w: CreateContainerResponse: %w", ErrAgent, err)
	}
	switch v := resp.GetVerdict(); v {
	case agentv1.Verdict_VERDICT_ALLOW:
		return resp, nil
	case agentv1.Verdict_VERDICT_DENY:
		return resp, &DeniedError{Reason: safetext.Cut(resp.GetReason(), MaxReason)}
	default:
		return resp, &DeniedError{ByHook: true, Reason: unknownVerdict(int32(v), resp.GetReason())}
	}
}

// StopContainer tells the agent a container is gone.
func (c *Client) StopContainer(ctx context.Context, req *agentv1.StopContainerRequest) error {
	ctx, cancel := context.WithTimeout(ctx, c.stopTimeout)
	defer cancel()
	in, out := AppendStopRequest(make([]byte, 0, SizeStopRequest(req)), req), []byte(nil)
	if err := c.conn.Invoke(ctx, agentv1.Agent_StopContainer_FullMethodName, &in, &out, grpc.ForceCodecV2(rawCodec{})); err != nil {
		return classify(ctx, err)
	}
	if err := checkEmpty(out); err != nil {
		return fmt.Errorf("%w: StopContainerResponse: %w", ErrAgent, err)
	}
	return nil
}

// Check probes the agent's grpc.health.v1 service ("" = the whole server).
// It returns nil only for SERVING.
func (c *Client) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return classify(ctx, err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%w: health status %s", ErrAgent, s)
	}
	return nil
}

// checkPeer verifies the process on the other end of c runs as uid.
func checkPeer(c net.Conn, uid int) error {
	if uid == AnyUID {
		return nil
	}
	cred, err := PeerCred(c)
	if err != nil {
		return err
	}
	if int(cred.Uid) != uid {
		return fmt.Errorf("agent peer runs as uid %d (pid %d), want uid %d", cred.Uid, cred.Pid, uid)
	}
	return nil
}

// PeerCred returns the SO_PEERCRED credentials of a unix socket connection.
func PeerCred(c net.Conn) (*unix.Ucred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("peer check: %T is not a unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peer check: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, fmt.Errorf("peer check: %w", err)
	}
	if credErr != nil {
		return nil, fmt.Errorf("peer check: %w", credErr)
	}
	return cred, nil
}

// unknownVerdict is the reason podhook gives for a verdict it does not
// know, with the agent's own reason when it gave one.
func unknownVerdict(v int32, reason string) string {
	r := fmt.Sprintf("the agent answered verdict %d, which this podhook does not know", v)
	if reason != "" {
		r += " (its reason: " + safetext.Cut(reason, safetext.Keep) + ")"
	}
	return r
}
