package hook

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/agentclient/agentv1"
)

// MaxRequestBytes bounds a request's encoded size: a quarter of the 4 MiB
// a gRPC server accepts by default, so that a huge config.json never makes
// the agent refuse the call (RESOURCE_EXHAUSTED) and leave the container
// to the fail check, unseen.
const MaxRequestBytes = 1 << 20

// fit trims c's annotations, mounts and args until the request holding c
// (size is its encoded size) encodes within max bytes, and records what it trimmed in c.Truncated.
// The identity and every other field are kept. Smaller entries are kept
// first: the runtime's own annotation keys are short.
//
//	request within max   nothing changes
//	over max             args get at most a quarter of the room left by the
//	                     other fields, mounts a quarter, annotations the rest
//	                     plus what args and mounts did not use
func fit(size func() int, c *agentv1.Container, max int) {
	if size() <= max {
		return
	}
	annotations, mounts, args := c.Annotations, c.Mounts, c.Args
	c.Annotations, c.Mounts, c.Args = nil, nil, nil
	// Room for the three fields; each entry is counted with an upper bound
	// of its framing (tag and length varints), so the result never passes
	// max.
	const framing = 24
	room := max - size() - 3*framing
	if room <= 0 {
		c.Truncated = []string{fmt.Sprintf("annotations: kept 0 of %d", len(annotations)),
			fmt.Sprintf("mounts: kept 0 of %d", len(mounts)), fmt.Sprintf("args: kept 0 of %d", len(args))}
		return
	}
	used := 0
	for _, a := range args {
		if used+len(a)+framing > room/4 {
			break
		}
		c.Args = append(c.Args, a)
		used += len(a) + framing
	}
	usedArgs := used
	for _, m := range mounts {
		n := agentclient.SizeMount(m) + framing
		if used-usedArgs+n > room/4 {
			break
		}
		c.Mounts = append(c.Mounts, m)
		used += n
	}
	keys := slices.SortedFunc(maps.Keys(annotations), func(a, b string) int {
		return cmp.Or(cmp.Compare(len(a)+len(annotations[a]), len(b)+len(annotations[b])), cmp.Compare(a, b))
	})
	for _, k := range keys {
		n := len(k) + len(annotations[k]) + framing
		if used+n > room {
			break
		}
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[k] = annotations[k]
		used += n
	}
	for _, f := range []struct {
		name        string
		kept, total int
	}{{"annotations", len(c.Annotations), len(annotations)}, {"mounts", len(c.Mounts), len(mounts)}, {"args", len(c.Args), len(args)}} {
		if f.kept < f.total {
			c.Truncated = append(c.Truncated, fmt.Sprintf("%s: kept %d of %d", f.name, f.kept, f.total))
		}
	}
}
