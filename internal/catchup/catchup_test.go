package catchup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/agentclient/agentv1"
	"github.com/podhook/podhook/resolver"
	"github.com/podhook/podhook/test/harness"
)

// agent answers by container name: "deny-*" DENY, "fail-*" an error,
// otherwise ALLOW; it counts calls in flight.
type agent struct {
	agentv1.UnimplementedAgentServer
	inFlight, peak atomic.Int32
	got            chan *agentv1.CreateContainerRequest
}

func (a *agent) CreateContainer(_ context.Context, req *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error) {
	n := a.inFlight.Add(1)
	defer a.inFlight.Add(-1)
	for p := a.peak.Load(); n > p && !a.peak.CompareAndSwap(p, n); p = a.peak.Load() {
	}
	time.Sleep(5 * time.Millisecond) // let calls overlap
	a.got <- req
	switch name := req.GetContainer().GetName(); {
	case strings.HasPrefix(name, "deny-"):
		return &agentv1.CreateContainerResponse{Verdict: agentv1.Verdict_VERDICT_DENY, Reason: "no"}, nil
	case strings.HasPrefix(name, "fail-"):
		return nil, status.Error(codes.Internal, "broken")
	}
	return &agentv1.CreateContainerResponse{}, nil
}

func TestDeliver(t *testing.T) {
	a := &agent{got: make(chan *agentv1.CreateContainerRequest, 100)}
	address, _ := harness.ServeAgent(t, a)
	client, err := agentclient.New(address, agentclient.WithPeerUID(os.Getuid()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	var ctrs []Container
	for i := range 20 {
		name := fmt.Sprintf("c%d", i)
		switch i {
		case 3:
			name = "deny-c3"
		case 7:
			name = "fail-c7"
		}
		g := resolver.Given{PodName: "web-0", PodNamespace: "tenant-a", PodUID: "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b", ContainerName: name}
		ctrs = append(ctrs, Container{ID: fmt.Sprintf("id-%d", i), Pid: 100 + i, CgroupsPath: "/k8s.io/x", Identity: resolver.FromRecords(g, resolver.Containerd, resolver.SourceCRI)})
	}
	var log bytes.Buffer
	sum, err := Deliver(context.Background(), client, ctrs, 4, slog.New(slog.NewJSONHandler(&log, nil)))
	if !errors.Is(err, ErrUndelivered) || sum.Containers != 20 || sum.Delivered != 19 || sum.Denied != 1 || sum.Failed != 1 || !sum.Undelivered["id-7"] {
		t.Fatalf("summary %+v, err %v", sum, err)
	}
	if p := a.peak.Load(); p > 4 || p < 2 {
		t.Fatalf("peak concurrency %d, want 2..4", p)
	}
	close(a.got)
	for req := range a.got {
		if !req.GetAlreadyRunning() || req.GetStage() != Stage || req.GetPod().GetNamespace() != "tenant-a" || !req.GetIdentity().GetTrusted() ||
			req.GetIdentity().GetSource() != resolver.SourceCRI || req.GetContainer().GetPid() < 100 || req.GetContainer().GetRuntime() != "containerd" {
			t.Fatalf("request %v", req)
		}
	}
	if lines := strings.Count(log.String(), "\n"); lines != 21 {
		t.Fatalf("%d log lines, want 20 records and a summary:\n%s", lines, log.String())
	}
}
