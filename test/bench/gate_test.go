package main

import (
	"strings"
	"testing"
)

func TestGate(t *testing.T) {
	o := options{maxBinary: 12_000_000, maxHostileExtraKB: 8 << 10}
	base := Baseline{HookFloor: 1.00, SameEnv: 1.10, TwoAgents: 1.17, PeakRSSKB: 12 << 10, Margin: 0.10, RSSMargin: 0.05}
	ratios := func(hook, same, two float64) map[string]float64 {
		return map[string]float64{"hook/grpc-floor": hook, sameEnvRatio: same, "two agents/one agent": two}
	}
	rows := func(rss int64) map[string]Stats {
		return map[string]Stats{"hook live, config 20K": {PeakRSSKB: rss}, besideRow: {PeakRSSKB: 12 << 10}, hostileRow: {PeakRSSKB: 15 << 10}}
	}
	if g := gate(o, base, Results{Ratios: ratios(1.09, 1.20, 1.28), BinaryBytes: 11_500_000}, rows(12<<10+600)); !g.Pass {
		t.Fatalf("within the margins: %+v", g)
	}
	for name, tc := range map[string]struct {
		res  Results
		rss  int64
		want string
	}{
		"10% slower than the baseline": {Results{Ratios: ratios(1.101, 1.1, 1.1), BinaryBytes: 1}, 1, "hook/grpc-floor 1.101 > 1.100"},
		"no ratio":                     {Results{Ratios: ratios(0, 1.1, 1.1), BinaryBytes: 1}, 1, "hook/grpc-floor"},
		"10% slower, same GOMAXPROCS":  {Results{Ratios: ratios(1, 1.22, 1.1), BinaryBytes: 1}, 1, "both GOMAXPROCS=1 1.220 > 1.210"},
		"big binary":                   {Results{Ratios: ratios(1, 1.1, 1.1), BinaryBytes: 12_000_001}, 1, "binary"},
		"RSS past its margin":          {Results{Ratios: ratios(1, 1.1, 1.1), BinaryBytes: 1}, 13 << 10, "peak RSS"},
		"no RSS":                       {Results{Ratios: ratios(1, 1.1, 1.1), BinaryBytes: 1}, 0, "peak RSS"},
		"two agents one after another": {Results{Ratios: ratios(1, 1.1, 1.45), BinaryBytes: 1}, 1, "two agents"},
	} {
		g := gate(o, base, tc.res, rows(tc.rss))
		if g.Pass || len(g.Failed) != 1 || !strings.Contains(g.Failed[0], tc.want) {
			t.Errorf("%s: %+v, want one failure about %s", name, g, tc.want)
		}
	}
	// A hostile container's extra memory beyond the bound fails the gate.
	by := rows(12 << 10)
	by[hostileRow] = Stats{PeakRSSKB: 12<<10 + 9<<10}
	if g := gate(o, base, Results{Ratios: ratios(1, 1.1, 1.1), BinaryBytes: 1}, by); g.Pass || len(g.Failed) != 1 || !strings.Contains(g.Failed[0], "hostile") {
		t.Errorf("hostile RSS: %+v", g)
	}
}

// The committed baseline reads, with every value set.
func TestBaselineReads(t *testing.T) {
	b, err := readBaseline("baseline.json")
	if err != nil || b.Margin != 0.10 || b.HookFloor <= 0 || b.SameEnv <= 0 || b.TwoAgents <= 0 || b.PeakRSSKB <= 0 || b.RSSMargin <= 0 {
		t.Fatalf("%+v %v", b, err)
	}
}
