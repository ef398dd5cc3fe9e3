package agentclient

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/podhook/podhook/agentclient/agentv1"
)

var deterministic = proto.MarshalOptions{Deterministic: true}

// fullRequest is a request with every field set, as the hook sends for a
// CRI-O container.
func fullRequest() *agentv1.CreateContainerRequest {
	return &agentv1.CreateContainerRequest{
		ProtocolVersion: agentv1.ProtocolVersion_PROTOCOL_VERSION_3,
		Stage:           "createRuntime",
		HookStartTime:   timestamppb.New(time.Date(2026, 12, 1, 23, 30, 0, 123456789, time.UTC)),
		Container: &agentv1.Container{
			Id: "73aa9b92188892db6a87d9edd97a1d48e4c2ad7d27d4d8c21db6d5ced346b1df", Name: "checkout", Type: "container",
			Image: "localhost/busybox:latest", ImageRef: "sha256:abc", Runtime: "cri-o", Pid: 21437, Bundle: "/run/b",
			Rootfs: "/var/lib/r", CgroupsPath: "/kubepods/x", CgroupsPathExpanded: "/kubepods/x",
			Annotations: map[string]string{"io.kubernetes.pod.namespace": "payments", "b": "", "": "empty key", "ünï": "cødé\x00", "z": strings.Repeat("v", 300)},
			Mounts:      []*agentv1.Mount{{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "", "noexec"}}, {}, {Options: []string{""}}},
			Args:        []string{"/bin/sh", "", "-c"}, Status: "created", Truncated: []string{"mounts: kept 1 of 2"}, SpecError: "x",
		},
		Pod:            &agentv1.Pod{Name: "checkout-1", Namespace: "payments", Uid: "3f2b", SandboxId: "5480"},
		Identity:       &agentv1.Identity{Trusted: true, Conflicts: []string{"a", ""}, Source: "annotations"},
		AlreadyRunning: true,
	}
}

// TestWireMatchesProtobuf: the hand encoding is protobuf-go's
// deterministic Marshal, byte for byte, and its size without encoding.
func TestWireMatchesProtobuf(t *testing.T) {
	negative := fullRequest()
	negative.Container.Pid = -5
	negative.HookStartTime = &timestamppb.Timestamp{Seconds: -62135596800, Nanos: -1}
	creates := map[string]*agentv1.CreateContainerRequest{
		"full":              fullRequest(),
		"empty":             {},
		"empty messages":    {HookStartTime: &timestamppb.Timestamp{}, Container: &agentv1.Container{}, Pod: &agentv1.Pod{}, Identity: &agentv1.Identity{}},
		"negative numbers":  negative,
		"huge annotation":   {Container: &agentv1.Container{Annotations: map[string]string{"k": strings.Repeat("x", 1<<20)}}},
		"unknown version":   {ProtocolVersion: 99},
		"only the identity": {Identity: &agentv1.Identity{Conflicts: []string{"forged"}}},
	}
	for name, r := range creates {
		want, err := deterministic.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendCreateRequest(nil, r); !bytes.Equal(got, want) {
			t.Errorf("%s: create request\n got %x\nwant %x", name, got, want)
		}
		if n := SizeCreateRequest(r); n != len(want) {
			t.Errorf("%s: size %d, want %d", name, n, len(want))
		}
		stop := &agentv1.StopContainerRequest{ProtocolVersion: r.ProtocolVersion, Stage: r.Stage, HookStartTime: r.HookStartTime,
			Container: r.Container, Pod: r.Pod, Identity: r.Identity}
		want, _ = deterministic.Marshal(stop)
		if got := AppendStopRequest([]byte("prefix"), stop); !bytes.Equal(got[6:], want) || string(got[:6]) != "prefix" {
			t.Errorf("%s: stop request differs", name)
		}
		if n := SizeStopRequest(stop); n != len(want) {
			t.Errorf("%s: stop size %d, want %d", name, n, len(want))
		}
	}
	for _, m := range fullRequest().Container.Mounts {
		if SizeMount(m) != proto.Size(m) {
			t.Errorf("mount %v: size %d, want %d", m, SizeMount(m), proto.Size(m))
		}
	}
}

func FuzzWireRequest(f *testing.F) {
	f.Add("createRuntime", "k", "v", "/dest", "opt", int32(7), int64(1700000000), int32(5), true)
	f.Add("", "", "", "", "", int32(-1), int64(-1), int32(-1), false)
	f.Fuzz(func(t *testing.T, stage, key, value, dest, opt string, pid int32, secs int64, nanos int32, trusted bool) {
		r := &agentv1.CreateContainerRequest{
			ProtocolVersion: agentv1.ProtocolVersion(pid), Stage: stage,
			HookStartTime: &timestamppb.Timestamp{Seconds: secs, Nanos: nanos},
			Container: &agentv1.Container{Id: key, Pid: pid, Annotations: map[string]string{key: value, value: key},
				Mounts: []*agentv1.Mount{{Destination: dest, Options: []string{opt, ""}}}, Args: []string{opt}},
			Pod:      &agentv1.Pod{Namespace: value},
			Identity: &agentv1.Identity{Trusted: trusted, Conflicts: []string{key}},
		}
		// protobuf-go refuses strings that are not UTF-8; the hook's are
		// (its inputs are JSON); compare where protobuf-go encodes.
		want, err := deterministic.Marshal(r)
		if err != nil {
			return
		}
		if got := AppendCreateRequest(nil, r); !bytes.Equal(got, want) {
			t.Fatalf("got %x\nwant %x", got, want)
		}
		if SizeCreateRequest(r) != len(want) {
			t.Fatalf("size %d, want %d", SizeCreateRequest(r), len(want))
		}
	})
}

// FuzzParseCreateResponse: the hand decoding gives what proto.Unmarshal
// gives, for any bytes: the same verdict and reason, an error for the
// same inputs.
func FuzzParseCreateResponse(f *testing.F) {
	for _, r := range []*agentv1.CreateContainerResponse{{}, {Verdict: agentv1.Verdict_VERDICT_DENY, Reason: "no"}, {Verdict: 7, Reason: "ünï"}} {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte{0x08, 0x01, 0x08, 0x00, 0x12, 0x01, 'a', 0x12, 0x00})              // last wins
	f.Add([]byte{0x0a, 0x01, 'x', 0x10, 0x05})                                      // fields of the wrong wire type
	f.Add([]byte{0x12, 0x02, 0xff, 0xfe})                                           // not UTF-8
	f.Add([]byte{0x08})                                                             // truncated
	f.Add([]byte{0x00, 0x01})                                                       // field 0
	f.Add([]byte{0x0b, 0x0c})                                                       // an empty group
	f.Add([]byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) // -1
	f.Fuzz(func(t *testing.T, b []byte) {
		var want agentv1.CreateContainerResponse
		werr := proto.Unmarshal(b, &want)
		got, gerr := ParseCreateResponse(b)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%x: proto.Unmarshal error %v, ParseCreateResponse error %v", b, werr, gerr)
		}
		if werr == nil && (got.Verdict != want.Verdict || got.Reason != want.Reason) {
			t.Fatalf("%x: got %v %q, want %v %q", b, got.Verdict, got.Reason, want.Verdict, want.Reason)
		}
		var empty agentv1.StopContainerResponse
		if (proto.Unmarshal(b, &empty) == nil) != (checkEmpty(b) == nil) {
			t.Fatalf("%x: StopContainerResponse: proto.Unmarshal and checkEmpty disagree", b)
		}
	})
}
