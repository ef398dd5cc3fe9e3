// Package catchup tells the agent about containers that are already
// running without the hook: those that started before podhook was
// installed (podhook sync, from the runtime's CRI records) and those
// created while podhook-nri was not connected (from NRI's Synchronize).
package catchup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/agentclient/agentv1"
	"github.com/podhook/podhook/internal/config"
	"github.com/podhook/podhook/internal/hostpath"
	"github.com/podhook/podhook/resolver"
)

// Stage is the stage value of a catch-up report.
const Stage = "sync"

// Container is one running container as the runtime's records describe it.
type Container struct {
	ID          string
	Image       string
	ImageRef    string
	Pid         int
	CgroupsPath string
	// Identity comes from the runtime's records (resolver.FromRecords),
	// never from annotations.
	Identity resolver.Identity
}

// Request is the report the agent receives for c: a CreateContainer whose
// stage is "sync" and already_running is true.
func Request(c Container, now time.Time) *agentv1.CreateContainerRequest {
	id := c.Identity
	expanded, _ := resolver.ExpandCgroupsPath(c.CgroupsPath)
	return &agentv1.CreateContainerRequest{
		ProtocolVersion: agentv1.ProtocolVersion_PROTOCOL_VERSION_3,
		Stage:           Stage,
		HookStartTime:   timestamppb.New(now),
		AlreadyRunning:  true,
		Container: &agentv1.Container{
			Id: c.ID, Name: id.ContainerName, Type: "container", Image: c.Image, ImageRef: c.ImageRef,
			Runtime: string(id.Runtime), Pid: int32(c.Pid), Status: "running",
			CgroupsPath: c.CgroupsPath, CgroupsPathExpanded: expanded,
		},
		Pod:      &agentv1.Pod{Name: id.PodName, Namespace: id.PodNamespace, Uid: id.PodUID, SandboxId: id.SandboxID},
		Identity: &agentv1.Identity{Trusted: id.Trusted, Conflicts: id.Conflicts, Source: id.Source},
	}
}

// Agent is what Deliver calls; *agentclient.Client implements it.
type Agent interface {
	CreateContainer(context.Context, *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error)
}

// Fanout reports to every agent at once; it fails when any fails, and a
// retry reports to all again (a report of a running container is
// idempotent).
type Fanout []Agent

// CreateContainer implements Agent.
func (f Fanout) CreateContainer(ctx context.Context, req *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error) {
	if len(f) == 1 {
		return f[0].CreateContainer(ctx, req)
	}
	errs := make([]error, len(f))
	var wg sync.WaitGroup
	for i, a := range f {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = a.CreateContainer(ctx, req)
		}()
	}
	wg.Wait()
	return &agentv1.CreateContainerResponse{}, errors.Join(errs...)
}

// Summary counts what Deliver did.
type Summary struct {
	Containers, Delivered, Failed int
	// Denied counts containers the agent would have stopped: it was told,
	// but a running container is not stopped by podhook.
	Denied int
	// Undelivered names the containers whose call failed.
	Undelivered map[string]bool
}

// ErrUndelivered marks a catch-up in which some container did not reach
// the agent.
var ErrUndelivered = errors.New("containers not delivered to the agent")

// Deliver reports every container to the agent, at most concurrency calls
// at a time (each with the client's own deadline), logs one record per
// container and a summary, and returns ErrUndelivered when any call failed.
// A DENY is delivered: the agent was told.
func Deliver(ctx context.Context, agent Agent, ctrs []Container, concurrency int, log *slog.Logger) (Summary, error) {
	start := time.Now()
	concurrency = max(concurrency, 1)
	var (
		mu  sync.Mutex
		sum = Summary{Containers: len(ctrs), Undelivered: map[string]bool{}}
		wg  sync.WaitGroup
		sem = make(chan struct{}, concurrency)
	)
	for _, c := range ctrs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			callStart := time.Now()
			_, err := agent.CreateContainer(ctx, Request(c, callStart))
			attrs := []slog.Attr{
				slog.String("stage", Stage), slog.String("container_id", c.ID),
				slog.String("pod_namespace", c.Identity.PodNamespace), slog.String("pod_name", c.Identity.PodName),
				slog.String("pod_uid", c.Identity.PodUID), slog.String("container_name", c.Identity.ContainerName),
				slog.String("runtime", string(c.Identity.Runtime)), slog.Int("pid", c.Pid),
				slog.Bool("identity_trusted", c.Identity.Trusted), slog.String("identity_source", c.Identity.Source),
				slog.Float64("agent_ms", float64(time.Since(callStart).Microseconds())/1000),
			}
			if len(c.Identity.Conflicts) > 0 {
				attrs = append(attrs, slog.Any("identity_conflict", c.Identity.Conflicts))
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				sum.Delivered++
				log.LogAttrs(ctx, slog.LevelInfo, "running container reported", attrs...)
			case errors.Is(err, agentclient.ErrDenied):
				sum.Delivered++
				sum.Denied++
				attrs = append(attrs, slog.String("reason", err.Error()))
				log.LogAttrs(ctx, slog.LevelWarn, "running container reported; the agent would deny it (a running container is not stopped)", attrs...)
			default:
				sum.Failed++
				sum.Undelivered[c.ID] = true
				attrs = append(attrs, slog.String("error", err.Error()), slog.String("error_kind", agentclient.Kind(err)))
				log.LogAttrs(ctx, slog.LevelError, "running container not reported", attrs...)
			}
		}()
	}
	wg.Wait()
	log.LogAttrs(ctx, slog.LevelInfo, "catch-up done", slog.String("stage", Stage),
		slog.Int("containers", sum.Containers), slog.Int("delivered", sum.Delivered), slog.Int("failed", sum.Failed),
		slog.Int("denied", sum.Denied), slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
	if sum.Failed > 0 {
		return sum, fmt.Errorf("%w: %d of %d", ErrUndelivered, sum.Failed, sum.Containers)
	}
	return sum, nil
}

// ErrNoPodhookAgent is returned by Clients when no configured agent speaks
// podhook's API: Tetragon finds running containers through the CRI itself.
var ErrNoPodhookAgent = errors.New("no agent speaks podhook.v1: sync reports in podhook's API; Tetragon finds running containers through the CRI itself")

// Clients connects to every configured agent that speaks podhook's API,
// each socket as the host sees it under root.
func Clients(cfg config.Config, root string) (Fanout, func(), error) {
	var out Fanout
	var clients []*agentclient.Client
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	for _, a := range cfg.AgentList() {
		if a.Protocol != config.ProtocolPodhook {
			continue
		}
		address, err := UnderRoot(root, a.Address)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		c, err := agentclient.New(address, agentclient.WithTimeout(cfg.Timeout.Duration()), agentclient.WithPeerUID(*a.AgentUID))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients = append(clients, c)
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, nil, ErrNoPodhookAgent
	}
	return out, closeAll, nil
}

// UnderRoot is an agent address as the host sees it, reached from a
// container where the host's / is mounted at root: its symlinks resolve
// inside root, as on the host.
func UnderRoot(root, address string) (string, error) {
	p, err := agentclient.SocketPath(address)
	if err != nil {
		return "", err
	}
	h, err := hostpath.Resolve(root, p)
	if err != nil {
		return "", err
	}
	return "unix://" + h, nil
}
