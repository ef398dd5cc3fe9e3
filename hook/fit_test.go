package hook

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/agentclient/agentv1"
)

func request(annotations map[string]string, mounts int, args ...string) *agentv1.CreateContainerRequest {
	c := &agentv1.Container{Id: strings.Repeat("c", 64), Name: "app", Bundle: "/run/b", Annotations: annotations, Args: args}
	for i := range mounts {
		c.Mounts = append(c.Mounts, &agentv1.Mount{Destination: "/m/" + strings.Repeat("x", i%100), Type: "bind", Source: "/host", Options: []string{"rbind", "ro"}})
	}
	return &agentv1.CreateContainerRequest{
		Container: c,
		Pod:       &agentv1.Pod{Name: "web-0", Namespace: "kube-system", Uid: "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b"},
		Identity:  &agentv1.Identity{Trusted: true, Source: "annotations"},
	}
}

func TestFit(t *testing.T) {
	big := strings.Repeat("v", 5<<20)
	tests := map[string]struct {
		req        *agentv1.CreateContainerRequest
		truncated  []string // prefixes, in order
		keepsKey   string   // an annotation that must survive
		dropsKey   string
		keptArgs   int // -1: not checked
		keptMounts int
	}{
		"small request unchanged": {
			req:      request(map[string]string{"io.kubernetes.pod.namespace": "kube-system"}, 3, "sh", "-c", "true"),
			keepsKey: "io.kubernetes.pod.namespace", keptArgs: 3, keptMounts: 3,
		},
		"5 MB annotation dropped, the runtime's keys kept": {
			req:       request(map[string]string{"io.kubernetes.pod.namespace": "kube-system", "tenant/blob": big}, 3, "sh"),
			truncated: []string{"annotations: kept 1 of 2"}, keepsKey: "io.kubernetes.pod.namespace", dropsKey: "tenant/blob", keptArgs: 1, keptMounts: 3,
		},
		"huge args trimmed": {
			req:       request(map[string]string{"k": "v"}, 0, append([]string{"sh"}, strings.Split(strings.Repeat("a ", 400000), " ")...)...),
			truncated: []string{"args: kept"}, keepsKey: "k", keptArgs: -1,
		},
		"many mounts trimmed": {
			req:       request(map[string]string{"k": "v"}, 40000, "sh"),
			truncated: []string{"mounts: kept"}, keepsKey: "k", keptArgs: 1, keptMounts: -1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fit(func() int { return agentclient.SizeCreateRequest(tc.req) }, tc.req.Container, MaxRequestBytes)
			c := tc.req.Container
			if n := proto.Size(tc.req); n > MaxRequestBytes {
				t.Fatalf("request is %d bytes, over %d", n, MaxRequestBytes)
			}
			if len(c.Truncated) != len(tc.truncated) {
				t.Fatalf("truncated %q, want %q", c.Truncated, tc.truncated)
			}
			for i, p := range tc.truncated {
				if !strings.HasPrefix(c.Truncated[i], p) {
					t.Fatalf("truncated %q, want %q", c.Truncated, tc.truncated)
				}
			}
			if _, ok := c.Annotations[tc.keepsKey]; tc.keepsKey != "" && !ok {
				t.Errorf("annotation %s dropped", tc.keepsKey)
			}
			if _, ok := c.Annotations[tc.dropsKey]; tc.dropsKey != "" && ok {
				t.Errorf("annotation %s kept", tc.dropsKey)
			}
			if tc.keptArgs >= 0 && len(c.Args) != tc.keptArgs || tc.keptMounts >= 0 && len(c.Mounts) != tc.keptMounts {
				t.Errorf("kept %d args, %d mounts", len(c.Args), len(c.Mounts))
			}
			if tc.req.Pod.Namespace != "kube-system" || !tc.req.Identity.Trusted || c.Id == "" {
				t.Error("identity or container fields changed")
			}
		})
	}
}

// FuzzFit: whatever the sizes, the request ends within the bound and the
// identity is untouched.
func FuzzFit(f *testing.F) {
	f.Add(10, 5, 3, 100, 1<<16)
	f.Add(1, 1<<22, 0, 0, MaxRequestBytes)
	f.Fuzz(func(t *testing.T, n, valueLen, mounts, argLen, max int) {
		n, valueLen, mounts, argLen = n%200, valueLen%(1<<21), mounts%2000, argLen%(1<<20)
		if n < 0 || valueLen < 0 || mounts < 0 || argLen < 0 || max < 4096 || max > MaxRequestBytes {
			return
		}
		a := map[string]string{}
		for i := range n {
			a[strings.Repeat("k", i+1)] = strings.Repeat("v", valueLen/(i+1))
		}
		req := request(a, mounts, strings.Repeat("x", argLen))
		fit(func() int { return agentclient.SizeCreateRequest(req) }, req.Container, max)
		if size := proto.Size(req); size > max && len(req.Container.Truncated) != 3 {
			t.Fatalf("%d bytes over %d, truncated %q", size, max, req.Container.Truncated)
		}
		if req.Pod.Namespace != "kube-system" || req.Pod.Uid == "" || !req.Identity.Trusted {
			t.Fatal("identity changed")
		}
	})
}
