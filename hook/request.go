package hook

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/agentclient/agentv1"
	"github.com/podhook/podhook/internal/safetext"
	"github.com/podhook/podhook/resolver"
)

// Invocation is everything one hook call knows about its container before
// it asks the agent.
type Invocation struct {
	Stage       Stage
	Start       time.Time
	State       *State
	Spec        *Spec // nil when config.json could not be loaded
	SpecErr     error
	Annotations map[string]string
	Identity    resolver.Identity
	Cgroups     string // expanded cgroups path
	CgroupsErr  error
	// Truncated says what the last request built left out to stay within
	// MaxRequestBytes (see fit).
	Truncated []string
}

func (inv *Invocation) container() *agentv1.Container {
	id := inv.Identity
	c := &agentv1.Container{
		Id:                  inv.State.ID,
		Name:                id.ContainerName,
		Type:                id.ContainerType,
		Image:               id.Image,
		ImageRef:            id.ImageRef,
		Runtime:             string(id.Runtime),
		Pid:                 int32(inv.State.Pid),
		Bundle:              inv.State.Bundle,
		Status:              inv.State.Status,
		Annotations:         inv.Annotations,
		CgroupsPathExpanded: inv.Cgroups,
	}
	if inv.SpecErr != nil {
		c.SpecError = safetext.Line(inv.SpecErr.Error(), safetext.Keep)
	}
	if s := inv.Spec; s != nil {
		c.Rootfs = s.Rootfs(inv.State.Bundle)
		c.CgroupsPath = s.CgroupsPath()
		if s.Process != nil {
			c.Args = s.Process.Args
		}
		c.Mounts = make([]*agentv1.Mount, len(s.Mounts))
		for i, m := range s.Mounts {
			c.Mounts[i] = &agentv1.Mount{Destination: m.Destination, Type: m.Type, Source: m.Source, Options: m.Options}
		}
	}
	return c
}

func (inv *Invocation) pod() (*agentv1.Pod, *agentv1.Identity) {
	id := inv.Identity
	return &agentv1.Pod{Name: id.PodName, Namespace: id.PodNamespace, Uid: id.PodUID, SandboxId: id.SandboxID},
		&agentv1.Identity{Trusted: id.Trusted, Conflicts: id.Conflicts, Source: id.Source}
}

// CreateRequest is the request sent at the create stages.
func (inv *Invocation) CreateRequest() *agentv1.CreateContainerRequest {
	pod, ident := inv.pod()
	req := &agentv1.CreateContainerRequest{
		ProtocolVersion: agentv1.ProtocolVersion_PROTOCOL_VERSION_3,
		Stage:           string(inv.Stage),
		HookStartTime:   timestamppb.New(inv.Start),
		Container:       inv.container(),
		Pod:             pod,
		Identity:        ident,
	}
	fit(func() int { return agentclient.SizeCreateRequest(req) }, req.Container, MaxRequestBytes)
	inv.Truncated = req.Container.Truncated
	return req
}

// StopRequest is the request sent at poststop.
func (inv *Invocation) StopRequest() *agentv1.StopContainerRequest {
	pod, ident := inv.pod()
	req := &agentv1.StopContainerRequest{
		ProtocolVersion: agentv1.ProtocolVersion_PROTOCOL_VERSION_3,
		Stage:           string(inv.Stage),
		HookStartTime:   timestamppb.New(inv.Start),
		Container:       inv.container(),
		Pod:             pod,
		Identity:        ident,
	}
	fit(func() int { return agentclient.SizeStopRequest(req) }, req.Container, MaxRequestBytes)
	inv.Truncated = req.Container.Truncated
	return req
}
