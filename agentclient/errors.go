package agentclient

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinels for what callers act on. Every error a Client returns wraps
// exactly one of them.
var (
	// ErrUnreachable: no connection to the agent (socket missing, stale,
	// refused, or the peer is not the expected user).
	ErrUnreachable = errors.New("agent unreachable")
	// ErrDeadline: the agent did not answer within the call's deadline.
	ErrDeadline = errors.New("agent deadline exceeded")
	// ErrAgent: the agent answered with a gRPC error.
	ErrAgent = errors.New("agent error")
	// ErrDenied: the agent answered with a DENY verdict.
	ErrDenied = errors.New("denied by agent")
)

// DeniedError carries the reason for a DENY: the agent's verdict, or
// (ByHook) podhook's own when the agent's protocol cannot carry what
// podhook knows (an untrusted identity under the tetragon protocol).
type DeniedError struct {
	Reason string
	ByHook bool
}

func (e *DeniedError) Error() string {
	who := "denied by agent"
	if e.ByHook {
		who = "denied by podhook"
	}
	if e.Reason == "" {
		return who
	}
	return who + ": " + e.Reason
}

// Is makes errors.Is(err, ErrDenied) true for a *DeniedError.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Kind names the class of err for logs: "unreachable", "deadline",
// "agent_error", "denied", or "" for nil.
func Kind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrDenied):
		return "denied"
	case errors.Is(err, ErrUnreachable):
		return "unreachable"
	case errors.Is(err, ErrDeadline):
		return "deadline"
	default:
		return "agent_error"
	}
}

// classify maps a gRPC call error to one of the sentinels, keeping the
// original error in the chain. Context errors come first: a call cut by its
// deadline while connecting reports Unavailable on some paths.
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrDeadline, err)
	}
	switch status.Code(err) {
	case codes.Unavailable:
		return fmt.Errorf("%w: %s", ErrUnreachable, dialError(status.Convert(err).Message()))
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: %w", ErrDeadline, err)
	case codes.Canceled:
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	default:
		return fmt.Errorf("%w: %w", ErrAgent, err)
	}
}

// dialError shortens grpc-go's wrapping of a dial failure,
// `connection error: desc = "transport: Error while dialing: dial unix
// /run/x.sock: connect: connection refused"`, to the dial error itself.
func dialError(msg string) string {
	const marker = "Error while dialing: "
	if i := strings.Index(msg, marker); i >= 0 {
		return strings.TrimSuffix(msg[i+len(marker):], `"`)
	}
	return msg
}
