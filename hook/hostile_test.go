package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/agentclient/agentv1"
	"github.com/podhook/podhook/test/harness"
)

// downAgent is an agent that cannot be reached: the fail check decides,
// and every reason and record field the invocation can write is written.
type downAgent struct{}

func (downAgent) CreateContainer(context.Context, *agentv1.CreateContainerRequest) (*agentv1.CreateContainerResponse, error) {
	return nil, fmt.Errorf("%w: test", agentclient.ErrUnreachable)
}

func (downAgent) StopContainer(context.Context, *agentv1.StopContainerRequest) error {
	return fmt.Errorf("%w: test", agentclient.ErrUnreachable)
}

// hostileBundle writes the fixture's config.json with extra annotations
// over its own and returns the state and config.json's size.
func hostileBundle(t testing.TB, extra map[string]string) ([]byte, int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	json.Unmarshal(b, &spec)
	a := spec["annotations"].(map[string]any)
	for k, v := range extra {
		a[k] = v
	}
	b, _ = json.Marshal(spec)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return fixtureState(t, dir), len(b)
}

// allocated runs one invocation of stage and returns the bytes it
// allocated and its record. Bytes allocated (not RSS or time) are counted
// the same on any machine, loaded or not.
func allocated(t *testing.T, state []byte, stage Stage) (uint64, map[string]any) {
	t.Helper()
	var log bytes.Buffer
	opts := Options{Stage: stage, Start: time.Now(), Policy: Policy{Namespaces: []string{"payments"}}, Safe: SafePolicy("")}
	lg := slog.New(slog.NewJSONHandler(&log, nil))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	Run(context.Background(), bytes.NewReader(state), single(downAgent{}), opts, lg)
	runtime.ReadMemStats(&after)
	var rec map[string]any
	if err := json.Unmarshal(log.Bytes(), &rec); err != nil {
		t.Fatalf("one record: %v", err)
	}
	return after.TotalAlloc - before.TotalAlloc, rec
}

// TestHostileAnnotationsCostLinear: 64 KB values in every identity and
// pass-through key cost memory in proportion to the bytes the pod wrote,
// never to their square, and no record field quotes more than a bounded
// prefix of one.
func TestHostileAnnotationsCostLinear(t *testing.T) {
	for _, stage := range []Stage{CreateRuntime, Poststop} {
		t.Run(string(stage), func(t *testing.T) {
			normalState, normalSize := hostileBundle(t, nil)
			normal, _ := allocated(t, normalState, stage)
			extra := harness.HostileAnnotations(64 << 10)
			hostileState, hostileSize := hostileBundle(t, extra)
			hostile, rec := allocated(t, hostileState, stage)
			added := hostileSize - normalSize
			// Read, decoded into a map, the state's copy skipped, the
			// request built (sharing the strings): a few copies of what
			// was added, whatever its content.
			if limit := uint64(normal) + uint64(8*added); hostile > limit {
				t.Errorf("%d KiB allocated for %d KiB more config.json (normal case %d KiB); want at most %d KiB",
					hostile>>10, added>>10, normal>>10, limit>>10)
			}
			t.Logf("allocated: normal %d KiB, hostile %d KiB (config.json %d KiB larger)", normal>>10, hostile>>10, added>>10)
			if rec["identity_trusted"] != false {
				t.Errorf("hostile identity trusted: %v", rec)
			}
			b, _ := json.Marshal(rec)
			if len(b) > 16<<10 {
				t.Errorf("record of %d bytes", len(b))
			}
			for k, v := range rec {
				s, _ := json.Marshal(v)
				if len(s) > 2048 {
					t.Errorf("record field %s is %d bytes", k, len(s))
				}
			}
			if len(maps.Collect(maps.All(rec))) == 0 {
				t.Fatal("no record")
			}
		})
	}
}
