package nriplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"

	"github.com/podhook/podhook/internal/catchup"
	"github.com/podhook/podhook/internal/hooksd"
	"github.com/podhook/podhook/resolver"
)

// DefaultSocketPath is where containerd and CRI-O serve NRI.
const DefaultSocketPath = api.DefaultSocketPath

// Options configure the plugin.
type Options struct {
	// SocketPath is the runtime's NRI socket.
	SocketPath string
	// Name and Index register the plugin ("10-podhook").
	Name, Index string
	// Hook is what every container gets, built exactly as the hooks.d
	// registration is (hooksd.Registration); Stage is ignored.
	Hook hooksd.Options
	// Log receives one JSON record per event.
	Log *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between reconnections.
	MinBackoff, MaxBackoff time.Duration
	// Metrics, when set, count connections and containers.
	Metrics *Metrics
	// Agent, when set, is told about every container the runtime created
	// while the plugin was not connected (stage "sync", already running),
	// with the identity the runtime gives the plugin.
	Agent catchup.Agent
}

// Agent receives the catch-up reports (catchup.Agent).
type Agent = catchup.Agent

// plugin implements the stub's CreateContainer, Synchronize and
// RemoveContainer interfaces.
type plugin struct {
	o     Options
	hooks *api.Hooks // the registrations' hooks, before the per-container arguments

	ctx context.Context // the plugin's lifetime, for background catch-up

	mu      sync.Mutex
	runtime string          // the runtime's name from Configure, as podhook's --runtime takes it
	seen    map[string]bool // containers that got the hook, or were reported without it
	syncs   int             // registrations so far: each one synchronizes
}

func newPlugin(o Options) (*plugin, error) {
	p := &plugin{o: o, ctx: context.Background(), hooks: &api.Hooks{}, seen: map[string]bool{}}
	for _, stage := range []string{"createRuntime", "poststop"} {
		ho := o.Hook
		ho.Stage, ho.Via = stage, hooksd.ViaNRI
		reg, err := hooksd.Registration(ho)
		if err != nil {
			return nil, err
		}
		h := &api.Hook{Path: reg.Hook.Path, Args: reg.Hook.Args, Env: reg.Hook.Env}
		if reg.Hook.Timeout != nil {
			h.Timeout = api.Int(*reg.Hook.Timeout)
		}
		if stage == "poststop" {
			p.hooks.Poststop = append(p.hooks.Poststop, h)
		} else {
			p.hooks.CreateRuntime = append(p.hooks.CreateRuntime, h)
		}
	}
	return p, nil
}

// Configure records which runtime the plugin registered with: every hook
// it injects is told that runtime, so the hook never guesses it from
// annotations a pod may have written.
func (p *plugin) Configure(_ context.Context, _, runtime, version string) (api.EventMask, error) {
	rt, ok := resolver.ParseRuntime(runtime)
	if !ok || rt == "" {
		p.o.Log.Warn("runtime name not known to podhook: hooks will detect the runtime from annotations", "runtime", runtime)
	}
	p.mu.Lock()
	p.runtime = string(rt)
	p.mu.Unlock()
	p.o.Log.Info("registered with the runtime", "runtime", runtime, "runtime_version", version, "socket", p.o.SocketPath)
	return 0, nil // subscribe to the events the plugin implements
}

// Synchronize reports containers created without the hook: those whose
// OCI hooks (which the runtime passes) do not include podhook's. A
// container that got the hook from an earlier run of the plugin, before a
// plugin or runtime restart, is not reported. Each is logged and, when an
// agent is configured, delivered to it in the background (Synchronize
// must answer the runtime promptly).
func (p *plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	byID := make(map[string]*api.PodSandbox, len(pods))
	for _, pod := range pods {
		byID[pod.GetId()] = pod
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	missed := 0
	var catchUp []catchup.Container
	rt, _ := resolver.ParseRuntime(p.runtime)
	for _, c := range ctrs {
		if p.seen[c.GetId()] {
			continue
		}
		p.seen[c.GetId()] = true
		if p.hasHook(c.GetHooks()) {
			continue
		}
		missed++
		pod := byID[c.GetPodSandboxId()]
		if c.GetState() == api.ContainerState_CONTAINER_RUNNING {
			g := resolver.Given{PodName: pod.GetName(), PodNamespace: pod.GetNamespace(), PodUID: pod.GetUid(),
				SandboxID: c.GetPodSandboxId(), ContainerName: c.GetName()}
			catchUp = append(catchUp, catchup.Container{ID: c.GetId(), Image: c.GetImage().GetName(), Pid: int(c.GetPid()),
				CgroupsPath: c.GetLinux().GetCgroupsPath(), Identity: resolver.FromRecords(g, rt, resolver.SourceRuntime)})
		}
		p.o.Log.Warn("container created without the hook: the plugin was not connected",
			"container_id", c.GetId(), "container_name", c.GetName(), "state", c.GetState().String(),
			"pod_namespace", pod.GetNamespace(), "pod_name", pod.GetName(), "pod_uid", pod.GetUid())
	}
	p.o.Log.Info("synchronized", "pods", len(pods), "containers", len(ctrs), "without_hook", missed)
	p.syncs++
	if m := p.o.Metrics; m != nil {
		m.Connected.Set(1)
		m.WithoutHook.Add(float64(missed))
		if p.syncs > 1 {
			m.Reconnects.Inc()
		}
	}
	if p.o.Agent != nil && len(catchUp) > 0 {
		go catchup.Deliver(p.ctx, p.o.Agent, catchUp, 4, p.o.Log)
	}
	return nil, nil
}

// hasHook reports whether hooks hold podhook's createRuntime hook.
func (p *plugin) hasHook(h *api.Hooks) bool {
	for _, hk := range h.GetCreateRuntime() {
		if hk.GetPath() == p.hooks.CreateRuntime[0].Path {
			return true
		}
	}
	return false
}

// CreateContainer adds podhook's hooks to the container, each told the
// runtime and the pod identity the runtime gave the plugin.
func (p *plugin) CreateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.mu.Lock()
	p.seen[c.GetId()] = true
	rt := p.runtime
	p.mu.Unlock()
	adj := &api.ContainerAdjustment{}
	adj.AddHooks(p.hooksFor(rt, pod, c))
	if m := p.o.Metrics; m != nil {
		m.Injected.Inc()
	}
	p.o.Log.Info("hook injected", "container_id", c.GetId(), "container_name", c.GetName(),
		"pod_namespace", pod.GetNamespace(), "pod_name", pod.GetName(), "pod_uid", pod.GetUid())
	return adj, nil, nil
}

// hooksFor returns the plugin's hooks with the runtime and identity
// arguments of one container. Each is one "--flag=value" argument, so no
// value can be read as a flag of its own.
func (p *plugin) hooksFor(runtime string, pod *api.PodSandbox, c *api.Container) *api.Hooks {
	var extra []string
	if runtime != "" {
		extra = append(extra, "--runtime="+runtime)
	}
	for _, kv := range [][2]string{
		{"pod-namespace", pod.GetNamespace()}, {"pod-name", pod.GetName()}, {"pod-uid", pod.GetUid()},
		{"sandbox-id", pod.GetId()}, {"container-name", c.GetName()},
	} {
		extra = append(extra, "--"+kv[0]+"="+kv[1])
	}
	with := func(hs []*api.Hook) []*api.Hook {
		out := make([]*api.Hook, len(hs))
		for i, h := range hs {
			out[i] = &api.Hook{Path: h.Path, Args: append(slices.Clip(h.Args), extra...), Env: h.Env, Timeout: h.Timeout}
		}
		return out
	}
	return &api.Hooks{CreateRuntime: with(p.hooks.CreateRuntime), Poststop: with(p.hooks.Poststop)}
}

// RemoveContainer forgets a container.
func (p *plugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.mu.Lock()
	delete(p.seen, c.GetId())
	p.mu.Unlock()
	return nil
}

// Run connects to the runtime and serves until ctx ends. When the runtime
// closes the connection (containerd does on restart) it reconnects with
// back-off: a plugin that exits would leave containers without the hook
// until something restarts it.
func Run(ctx context.Context, o Options) error {
	if o.Name == "" {
		o.Name = "podhook"
	}
	if o.Index == "" {
		o.Index = "10"
	}
	if o.SocketPath == "" {
		o.SocketPath = DefaultSocketPath
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = 5 * time.Second
	}
	p, err := newPlugin(o)
	if err != nil {
		return err
	}
	p.ctx = ctx
	backoff := o.MinBackoff
	for {
		started := time.Now()
		s, err := stub.New(p, stub.WithPluginName(o.Name), stub.WithPluginIdx(o.Index), stub.WithSocketPath(o.SocketPath),
			stub.WithOnClose(func() {
				o.Log.Warn("connection to the runtime closed")
				if o.Metrics != nil {
					o.Metrics.Connected.Set(0)
				}
			}))
		if err != nil {
			return fmt.Errorf("nri plugin: %w", err)
		}
		err = s.Run(ctx)
		if ctx.Err() != nil {
			o.Log.Info("stopped")
			return nil
		}
		if time.Since(started) > 10*o.MaxBackoff {
			backoff = o.MinBackoff // it was up for a while: start over
		}
		o.Log.Warn("not connected to the runtime, retrying", "error", errString(err), "retry_in_ms", backoff.Milliseconds())
		if o.Metrics != nil {
			o.Metrics.Connected.Set(0)
		}
		select {
		case <-ctx.Done():
			o.Log.Info("stopped")
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, o.MaxBackoff)
	}
}

func errString(err error) string {
	if err == nil {
		return "closed"
	}
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	return err.Error()
}
