// Package cri reads a runtime's running containers and their pods over its
// CRI socket: the runtime's own records, never pod annotations, for
// podhook sync.
package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podhook/podhook/internal/catchup"
	"github.com/podhook/podhook/internal/hostpath"
	"github.com/podhook/podhook/resolver"
)

// DefaultEndpoints are tried in order when none is given: containerd's and
// CRI-O's default sockets.
// (/run, not /var/run: under a host root, /var/run is a symlink that
// points outside it.)
var DefaultEndpoints = []string{"unix:///run/containerd/containerd.sock", "unix:///run/crio/crio.sock"}

// ErrNoEndpoint marks a host where none of the default sockets exists.
var ErrNoEndpoint = errors.New("no CRI socket found")

// Endpoint returns the endpoint to use, reached under root (the host's /
// as this process sees it): the one given, else the first default whose
// socket exists.
func Endpoint(root, given string) (string, error) {
	if given != "" {
		path, ok := strings.CutPrefix(given, "unix://")
		if !ok {
			return "", fmt.Errorf("runtime endpoint %q: want unix:///path", given)
		}
		p, err := hostpath.Resolve(root, path)
		if err != nil {
			return "", err
		}
		return "unix://" + p, nil
	}
	for _, e := range DefaultEndpoints {
		p, err := hostpath.Resolve(root, strings.TrimPrefix(e, "unix://"))
		if err != nil {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == os.ModeSocket {
			return "unix://" + p, nil
		}
	}
	return "", fmt.Errorf("%w under %s (tried %s; --runtime-endpoint chooses)", ErrNoEndpoint, root, strings.Join(DefaultEndpoints, ", "))
}

// List returns the runtime's name and its running containers, each with
// the identity of its pod sandbox as the runtime records it (metadata
// name, namespace and UID; the container's metadata name), its pid and
// cgroups path from the runtime's verbose status. timeout bounds each call.
func List(ctx context.Context, endpoint string, timeout time.Duration) (string, []catchup.Container, error) {
	path, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok {
		return "", nil, fmt.Errorf("runtime endpoint %q: want unix:///path", endpoint)
	}
	conn, err := grpc.NewClient("passthrough:///cri",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}))
	if err != nil {
		return "", nil, err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, timeout) }

	cctx, cancel := call()
	ver, err := rt.Version(cctx, &runtimeapi.VersionRequest{})
	cancel()
	if err != nil {
		return "", nil, fmt.Errorf("%s: version: %w", endpoint, err)
	}
	runtimeName := ver.GetRuntimeName()
	rtName, _ := resolver.ParseRuntime(runtimeName)

	cctx, cancel = call()
	pods, err := rt.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
	cancel()
	if err != nil {
		return runtimeName, nil, fmt.Errorf("%s: list pod sandboxes: %w", endpoint, err)
	}
	byID := map[string]*runtimeapi.PodSandbox{}
	for _, p := range pods.GetItems() {
		byID[p.GetId()] = p
	}
	cctx, cancel = call()
	ctrs, err := rt.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	cancel()
	if err != nil {
		return runtimeName, nil, fmt.Errorf("%s: list containers: %w", endpoint, err)
	}
	var out []catchup.Container
	for _, c := range ctrs.GetContainers() {
		pod := byID[c.GetPodSandboxId()]
		g := resolver.Given{
			PodName: pod.GetMetadata().GetName(), PodNamespace: pod.GetMetadata().GetNamespace(), PodUID: pod.GetMetadata().GetUid(),
			SandboxID: c.GetPodSandboxId(), ContainerName: c.GetMetadata().GetName(),
		}
		id := resolver.FromRecords(g, rtName, resolver.SourceCRI)
		if pod == nil {
			id.Trusted = false
			id.Conflicts = append(id.Conflicts, fmt.Sprintf("pod sandbox %s not listed by the runtime", c.GetPodSandboxId()))
		}
		cc := catchup.Container{ID: c.GetId(), Image: c.GetImage().GetImage(), ImageRef: c.GetImageRef(), Identity: id}
		cctx, cancel = call()
		st, err := rt.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.GetId(), Verbose: true})
		cancel()
		if err == nil {
			cc.Pid, cc.CgroupsPath = verboseInfo(st.GetInfo())
		}
		out = append(out, cc)
	}
	return runtimeName, out, nil
}

// verboseInfo reads the pid and linux.cgroupsPath from a verbose container
// status: containerd and CRI-O both put {"pid":..,"runtimeSpec":{...}} under
// "info".
func verboseInfo(info map[string]string) (pid int, cgroupsPath string) {
	var v struct {
		Pid         int `json:"pid"`
		RuntimeSpec struct {
			Linux struct {
				CgroupsPath string `json:"cgroupsPath"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if json.Unmarshal([]byte(info["info"]), &v) != nil {
		return 0, ""
	}
	return v.Pid, v.RuntimeSpec.Linux.CgroupsPath
}
