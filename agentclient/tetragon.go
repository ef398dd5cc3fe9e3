package agentclient

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/podhook/podhook/agentclient/agentv1"
)

// Tetragon's runtime-hook API, as Tetragon's own hook calls it: the RPC
// tetragon.FineGuidanceSensors/RuntimeHook on the agent's unix socket, with
// a RuntimeHookRequest{createContainer: CreateContainer{...}} (its
// api/v1/tetragon/tetragon.proto, v1.6.0). The request is encoded here
// with protowire, byte for byte as Tetragon's generated code encodes it
// (tested against it), so the hook registers no Tetragon types and pays
// for none of its descriptors.
const tetragonRuntimeHook = "/tetragon.FineGuidanceSensors/RuntimeHook"

// TetragonCreateContainer is tetragon.CreateContainer. Field numbers are
// those of Tetragon's proto; the JSON names are its protojson names.
type TetragonCreateContainer struct {
	CgroupsPath    string            `json:"cgroupsPath,omitempty"`    // 1: relative to the cgroup root, systemd slices expanded
	RootDir        string            `json:"rootDir,omitempty"`        // 2: the container's absolute root directory
	Annotations    map[string]string `json:"annotations,omitempty"`    // 3
	ContainerName  string            `json:"containerName,omitempty"`  // 4
	ContainerID    string            `json:"containerID,omitempty"`    // 5
	PodName        string            `json:"podName,omitempty"`        // 6
	PodUID         string            `json:"podUID,omitempty"`         // 7
	PodNamespace   string            `json:"podNamespace,omitempty"`   // 8
	ContainerImage string            `json:"containerImage,omitempty"` // 9
}

// TetragonRuntimeHookRequest is tetragon.RuntimeHookRequest as protojson
// writes it: what --dry-run shows under the tetragon protocol.
type TetragonRuntimeHookRequest struct {
	CreateContainer TetragonCreateContainer `json:"createContainer"`
}

// Marshal encodes RuntimeHookRequest{createContainer (field 1): c}: fields
// in number order, map entries sorted by key, empty values left out, as
// protobuf-go's deterministic encoding writes them.
func (c TetragonCreateContainer) Marshal() []byte {
	var m []byte
	str := func(b []byte, num protowire.Number, v string) []byte {
		if v == "" {
			return b
		}
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, v)
	}
	m = str(m, 1, c.CgroupsPath)
	m = str(m, 2, c.RootDir)
	keys := make([]string, 0, len(c.Annotations))
	for k := range c.Annotations {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var e []byte
		e = protowire.AppendTag(e, 1, protowire.BytesType)
		e = protowire.AppendString(e, k)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendString(e, c.Annotations[k])
		m = protowire.AppendTag(m, 3, protowire.BytesType)
		m = protowire.AppendBytes(m, e)
	}
	m = str(m, 4, c.ContainerName)
	m = str(m, 5, c.ContainerID)
	m = str(m, 6, c.PodName)
	m = str(m, 7, c.PodUID)
	m = str(m, 8, c.PodNamespace)
	m = str(m, 9, c.ContainerImage)
	out := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(out, m)
}

// rawCodec passes pre-encoded messages through gRPC as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: %T is not *[]byte", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: %T is not *[]byte", v)
	}
	*b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// TetragonRuntimeHook calls Tetragon's RuntimeHook with the client's
// deadline, peer check and error classes. An answer (Tetragon's is an
// empty RuntimeHookResponse) is success.
func (c *Client) TetragonRuntimeHook(ctx context.Context, req TetragonCreateContainer) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	in, out := req.Marshal(), []byte(nil)
	err := c.conn.Invoke(ctx, tetragonRuntimeHook, &in, &out, grpc.ForceCodecV2(rawCodec{}))
	return classify(ctx, err)
}

const tetragonGetVersion = "/tetragon.FineGuidanceSensors/GetVersion"

// TetragonVersion asks a Tetragon agent its version (GetVersion, which
// every Tetragon serves; it has no grpc.health service): the check that
// --agent-protocol tetragon makes through the hook's own address, peer
// check and deadline.
func (c *Client) TetragonVersion(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	in, out := []byte{}, []byte(nil)
	if err := c.conn.Invoke(ctx, tetragonGetVersion, &in, &out, grpc.ForceCodecV2(rawCodec{})); err != nil {
		return "", classify(ctx, err)
	}
	// GetVersionResponse{string version = 1}.
	for len(out) > 0 {
		num, typ, n := protowire.ConsumeTag(out)
		if n < 0 {
			return "", fmt.Errorf("%w: GetVersion: %w", ErrAgent, protowire.ParseError(n))
		}
		out = out[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeString(out)
			if n < 0 {
				return "", fmt.Errorf("%w: GetVersion: %w", ErrAgent, protowire.ParseError(n))
			}
			return v, nil
		}
		if n = protowire.ConsumeFieldValue(num, typ, out); n < 0 {
			return "", fmt.Errorf("%w: GetVersion: %w", ErrAgent, protowire.ParseError(n))
		}
		out = out[n:]
	}
	return "", nil
}

// Tetragon speaks Tetragon's runtime-hook API to the agent on podhook's
// behalf: the hook's agent when agent_protocol is "tetragon".
type Tetragon struct {
	Client *Client
	// SendUntrusted sends a container whose identity is not trusted, with
	// no pod name, namespace or UID; by default podhook stops it itself,
	// since Tetragon's API cannot say "untrusted".
	SendUntrusted bool
}

// CreateContainer sends the container as Tetragon's CreateContainer. An
// untrusted identity is never sent as if it were the pod's: the container
// is stopped by podhook (a *DeniedError with ByHook), or sent without pod
// fields when SendUntrusted.
func (t Tetragon) CreateContainer(ctx context.Context, req *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error) {
	tc, denied := t.Request(req)
	if denied != nil {
		return nil, denied
	}
	if err := t.Client.TetragonRuntimeHook(ctx, tc); err != nil {
		return nil, err
	}
	return &agentv1.CreateContainerResponse{}, nil
}

// Request is what CreateContainer sends for req, or podhook's own denial
// when the identity is not trusted and SendUntrusted is off.
func (t Tetragon) Request(req *agentv1.CreateContainerRequest) (TetragonCreateContainer, *DeniedError) {
	tc := TetragonRequest(req)
	if id := req.GetIdentity(); !id.GetTrusted() {
		if !t.SendUntrusted {
			why := "no identity"
			if c := id.GetConflicts(); len(c) > 0 {
				why = c[0]
			}
			return tc, &DeniedError{ByHook: true, Reason: "pod identity not trusted, and the tetragon protocol cannot say so: " + why}
		}
		tc.PodName, tc.PodNamespace, tc.PodUID = "", "", ""
	}
	return tc, nil
}

// StopContainer makes no call: Tetragon has no stop event.
func (Tetragon) StopContainer(context.Context, *agentv1.StopContainerRequest) error { return nil }

// TetragonRequest maps podhook's request to Tetragon's CreateContainer:
// the cgroups path expanded as Tetragon's agent expects it, the root
// directory absolute (the bundle joined with a relative root.path).
func TetragonRequest(req *agentv1.CreateContainerRequest) TetragonCreateContainer {
	c, p := req.GetContainer(), req.GetPod()
	return TetragonCreateContainer{
		CgroupsPath: c.GetCgroupsPathExpanded(), RootDir: c.GetRootfs(), Annotations: c.GetAnnotations(),
		ContainerName: c.GetName(), ContainerID: c.GetId(),
		PodName: p.GetName(), PodUID: p.GetUid(), PodNamespace: p.GetNamespace(), ContainerImage: c.GetImage(),
	}
}
