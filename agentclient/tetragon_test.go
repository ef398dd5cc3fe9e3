package agentclient

import (
	"bytes"
	"testing"

	"github.com/cilium/tetragon/api/v1/tetragon"
	"google.golang.org/protobuf/proto"
)

// TestTetragonWireCompatible: podhook's encoding of RuntimeHookRequest is
// byte for byte what Tetragon's own generated code produces, and Tetragon's
// code decodes it to the same fields. (Only this test binary holds
// Tetragon's types; podhook registers none.)
func TestTetragonWireCompatible(t *testing.T) {
	for name, c := range map[string]TetragonCreateContainer{
		"empty": {},
		"CRI-O-shaped": {
			CgroupsPath:   "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod3f2b9c1e_5a4d_4e8f_9b7a_1c2d3e4f5a6b.slice/crio-73aa.scope",
			RootDir:       "/var/lib/containers/storage/overlay/bdf2/merged",
			Annotations:   map[string]string{"io.kubernetes.pod.namespace": "payments", "io.container.manager": "cri-o", "z": "", "": "empty key", "ünïcode": "✓"},
			ContainerName: "checkout", ContainerID: "73aa9b92", PodName: "checkout-6c9d8b7f5-x2x9q",
			PodUID: "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b", PodNamespace: "payments", ContainerImage: "localhost/busybox:latest",
		},
		"long values": {CgroupsPath: string(bytes.Repeat([]byte("a"), 300)), Annotations: map[string]string{"k": string(bytes.Repeat([]byte("v"), 70000))}},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&tetragon.RuntimeHookRequest{
				Event: &tetragon.RuntimeHookRequest_CreateContainer{CreateContainer: &tetragon.CreateContainer{
					CgroupsPath: c.CgroupsPath, RootDir: c.RootDir, Annotations: c.Annotations, ContainerName: c.ContainerName,
					ContainerID: c.ContainerID, PodName: c.PodName, PodUID: c.PodUID, PodNamespace: c.PodNamespace, ContainerImage: c.ContainerImage,
				}}})
			if err != nil {
				t.Fatal(err)
			}
			got := c.Marshal()
			if !bytes.Equal(got, want) {
				t.Fatalf("podhook's bytes differ from Tetragon's:\n got %x\nwant %x", got, want)
			}
			var back tetragon.RuntimeHookRequest
			if err := proto.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			cc := back.GetCreateContainer()
			if cc == nil || cc.GetPodNamespace() != c.PodNamespace || cc.GetContainerID() != c.ContainerID || len(cc.GetAnnotations()) != len(c.Annotations) {
				t.Fatalf("Tetragon decodes %v", &back)
			}
		})
	}
}
