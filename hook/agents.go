package hook

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/agentclient/agentv1"
	"github.com/podhook/podhook/internal/safetext"
)

// Peer is one agent an invocation is shown to.
type Peer struct {
	// Name names the agent in reasons, records and metrics.
	Name string
	// Protocol is the agent's API ("podhook.v1", "tetragon").
	Protocol string
	// Required sends the container through the fail check when the agent
	// gives no verdict; an optional agent's failure is only recorded.
	Required bool
	Agent    Agent
}

// Outcome is what one agent made of an invocation.
type Outcome struct {
	Name, Protocol string
	Required       bool
	// Err is the agent's classified error (agentclient's sentinels), nil
	// for an ALLOW or a delivered stop.
	Err  error
	Took time.Duration
}

// AgentError names the agent an error came from, when several are
// configured.
type AgentError struct {
	Name string
	Err  error
}

func (e *AgentError) label() string { return "agent " + safetext.Quote(e.Name) + ": " }

func (e *AgentError) Error() string { return e.label() + e.Err.Error() }

func (e *AgentError) Unwrap() error { return e.Err }

// callAll shows the request (req at create, stop at poststop) to every
// peer, all at once, each under its own client's deadline (the same for
// all: the invocation's budget, not their sum). One peer is called on this
// goroutine.
func callAll(ctx context.Context, peers []Peer, req *agentv1.CreateContainerRequest, stop *agentv1.StopContainerRequest) []Outcome {
	out := make([]Outcome, len(peers))
	call := func(i int) {
		p := &peers[i]
		start := time.Now()
		// A panic in an agent's call is that agent's failure: the fail
		// check decides, as for any agent that gives no verdict.
		defer func() {
			if r := recover(); r != nil {
				out[i] = Outcome{Name: p.Name, Protocol: p.Protocol, Required: p.Required, Err: fmt.Errorf("%w: %v", ErrInternal, r), Took: time.Since(start)}
			}
		}()
		var err error
		if req != nil {
			_, err = p.Agent.CreateContainer(ctx, req)
		} else {
			err = p.Agent.StopContainer(ctx, stop)
		}
		out[i] = Outcome{Name: p.Name, Protocol: p.Protocol, Required: p.Required, Err: err, Took: time.Since(start)}
	}
	if len(peers) == 1 {
		call(0)
		return out
	}
	var wg sync.WaitGroup
	for i := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call(i)
		}()
	}
	wg.Wait()
	return out
}

// Combine folds the agents' outcomes into the one error the decision table
// reads: any DENY denies (the first in the list's order); otherwise the
// required agents' failures, all of them; an optional agent's failure
// never stops a container. named wraps each error in an AgentError.
//
//	outcomes                                     error
//	every agent allowed (or optional ones failed) nil
//	any agent denied                             that DENY
//	a required agent unreachable, hung, in error its failure (several: joined with "; ")
func Combine(outcomes []Outcome, named bool) error {
	wrap := func(o Outcome) error {
		if !named {
			return o.Err
		}
		return &AgentError{Name: o.Name, Err: o.Err}
	}
	for _, o := range outcomes {
		if errors.Is(o.Err, agentclient.ErrDenied) {
			return wrap(o)
		}
	}
	var failed error
	for _, o := range outcomes {
		if o.Err == nil || !o.Required {
			continue
		}
		if failed == nil {
			failed = wrap(o)
		} else {
			failed = fmt.Errorf("%w; %w", failed, wrap(o))
		}
	}
	return failed
}
