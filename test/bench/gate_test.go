package main

import (
	"strings"
	"testing"
)

func TestGate(t *testing.T) {
	o := options{maxRatio: 1.35, maxBinary: 12_000_000, maxRSSKB: 12 << 10, maxHostileExtraKB: 8 << 10, maxTwoAgents: 1.15}
	ok := Results{Ratios: map[string]float64{"hook/grpc-floor": 1.1, "two agents/one agent": 1.05}, BinaryBytes: 11_500_000}
	plain := Stats{PeakRSSKB: 11 << 10}
	by := map[string]Stats{"hook live, config 20K": {PeakRSSKB: 11 << 10}, "hook live agent": plain, hostileRow: {PeakRSSKB: 15 << 10}}
	if g := gate(o, ok, by); !g.Pass {
		t.Fatalf("within bounds: %+v", g)
	}
	for name, tc := range map[string]struct {
		res  Results
		rss  int64
		want string
	}{
		"slow":                                  {Results{Ratios: map[string]float64{"hook/grpc-floor": 1.4, "two agents/one agent": 1}, BinaryBytes: 1}, 1, "hook/grpc-floor"},
		"no ratio":                              {Results{Ratios: map[string]float64{"two agents/one agent": 1}, BinaryBytes: 1}, 1, "hook/grpc-floor"},
		"big binary":                            {Results{Ratios: map[string]float64{"hook/grpc-floor": 1, "two agents/one agent": 1}, BinaryBytes: 12_000_001}, 1, "binary"},
		"big RSS":                               {Results{Ratios: map[string]float64{"hook/grpc-floor": 1, "two agents/one agent": 1}, BinaryBytes: 1}, 13 << 10, "peak RSS"},
		"two agents called one after the other": {Results{Ratios: map[string]float64{"hook/grpc-floor": 1, "two agents/one agent": 1.6}, BinaryBytes: 1}, 1, "two agents"},
		"no RSS":                                {Results{Ratios: map[string]float64{"hook/grpc-floor": 1, "two agents/one agent": 1}, BinaryBytes: 1}, 0, "peak RSS"},
	} {
		g := gate(o, tc.res, map[string]Stats{"hook live, config 20K": {PeakRSSKB: tc.rss}, "hook live agent": plain, hostileRow: {PeakRSSKB: 15 << 10}})
		if g.Pass || len(g.Failed) != 1 || !strings.Contains(g.Failed[0], tc.want) {
			t.Errorf("%s: %+v, want one failure about %s", name, g, tc.want)
		}
	}
	// A hostile container's extra memory beyond the bound fails the gate.
	by[hostileRow] = Stats{PeakRSSKB: plain.PeakRSSKB + 9<<10}
	if g := gate(o, ok, by); g.Pass || len(g.Failed) != 1 || !strings.Contains(g.Failed[0], "hostile") {
		t.Errorf("hostile RSS: %+v", g)
	}
}
