// Command bench measures podhook the way a runtime experiences it: whole
// processes, fork to exit, alternating with two floors it builds itself (a
// static Go program that does nothing, and one that makes a single grpc-go
// health call to the same agent). It prints a table with the ratios
// hook/grpc-floor and hook/noop and writes the results as JSON. It fails
// when a command does not behave (wrong exit code) and, with -gate, when
// the hook passes a bound: the ratio to the grpc-go floor measured in the
// same run (not an absolute time, so a loaded machine does not fail it),
// the stripped binary's size, or its peak RSS.
//
//	go run ./test/bench -podhook bin/podhook -agent bin/podhook-agent -out bin/bench/results.json
//	go run ./test/bench -quick -gate ...   # CI: the commands the gate needs, fewer rounds
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/podhook/podhook/internal/hooksd"
	"github.com/podhook/podhook/test/harness"
)

type options struct {
	podhook, agent, out, fixtures string
	breakdown                     string
	asBuilt                       bool
	runs, warmup, burst           int
	quick, gate                   bool
	baseline                      string
	maxBinary                     int64
	maxHostileExtraKB             int64
}

func main() {
	var o options
	flag.StringVar(&o.podhook, "podhook", "bin/podhook", "podhook binary, as shipped")
	flag.StringVar(&o.agent, "agent", "bin/podhook-agent", "podhook-agent binary")
	flag.StringVar(&o.out, "out", "bin/bench/results.json", "results file")
	flag.StringVar(&o.fixtures, "fixtures", "testdata/crio-1.37", "CRI-O fixture directory")
	flag.IntVar(&o.runs, "runs", 200, "measured runs per command")
	flag.IntVar(&o.warmup, "warmup", 20, "warm-up runs per command")
	flag.IntVar(&o.burst, "burst", 100, "concurrent invocations in the burst")
	flag.BoolVar(&o.quick, "quick", false, "time only what the gate needs (noop, grpc-floor, hook live 8K and 20K); no burst")
	flag.BoolVar(&o.gate, "gate", false, "fail when a bound below is passed")
	flag.StringVar(&o.baseline, "baseline", "test/bench/baseline.json", "gate: the committed ratios and peak RSS a run may pass by at most their margins")
	flag.Int64Var(&o.maxBinary, "max-binary", 12_000_000, "gate: stripped podhook binary, bytes")
	flag.Int64Var(&o.maxHostileExtraKB, "max-hostile-extra-kb", 8<<10, "gate: peak RSS of the hostile 64K row above the plain one, KiB")
	flag.BoolVar(&o.asBuilt, "as-built", false, "time the binaries from the files the Go linker wrote, not from copies written as podhook install writes them")
	flag.StringVar(&o.breakdown, "breakdown", "", "instead: measure where the hook's time goes beyond the grpc-go floor and write the table (markdown) here")
	flag.Parse()
	asBuilt = o.asBuilt
	do := run
	if o.breakdown != "" {
		do = breakdown
	}
	if err := do(o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// command is one thing to time.
type command struct {
	Name  string   `json:"name"`
	Args  []string `json:"args"`
	Env   []string `json:"env"`
	stdin string
	code  int // expected exit code
}

// The environments commands run with: a hook's is its registration's (what
// CRI-O, podman and podhook-nri pass it); a floor's is bare, as any grpc-go
// program runs, or the hook's setting for the Go runtime alone.
var (
	bareEnv  = []string{"PATH=/usr/bin:/bin"}
	hookEnv  = hooksd.DefaultEnv
	floorEnv = append(slices.Clip(bareEnv), "GOMAXPROCS=1")
)

// Stats summarise one command's runs.
type Stats struct {
	Name      string  `json:"name"`
	Runs      int     `json:"runs"`
	MedianMS  float64 `json:"median_ms"`
	P90MS     float64 `json:"p90_ms"`
	P99MS     float64 `json:"p99_ms"`
	MinMS     float64 `json:"min_ms"`
	MaxMS     float64 `json:"max_ms"`
	PeakRSSKB int64   `json:"peak_rss_kb"`
}

// Results is the JSON written to -out.
type Results struct {
	Time        time.Time          `json:"time"`
	Host        map[string]string  `json:"host"`
	Commands    []Stats            `json:"commands"`
	Ratios      map[string]float64 `json:"ratios"`
	Burst       map[string]float64 `json:"burst"`
	BinaryBytes int64              `json:"binary_bytes"`
	ConfigBytes map[string]int     `json:"config_bytes"`
	Gate        *GateResult        `json:"gate,omitempty"`
}

func run(o options) error {
	work, floors, err := prepare(&o, "phb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	sock := filepath.Join(work, "agent.sock")
	stop, err := startAgent(o.agent, sock)
	if err != nil {
		return err
	}
	defer stop()
	// A second agent, for the rows that show a create to two at once.
	sock2 := filepath.Join(work, "agent2.sock")
	stop2, err := startAgent(o.agent, sock2)
	if err != nil {
		return err
	}
	defer stop2()
	stale := filepath.Join(work, "stale.sock")
	if l, err := net.Listen("unix", stale); err == nil {
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
	}

	sizes := map[string]int{"8K": 0, "20K": 20 << 10, "200K": 200 << 10, "2M": 2 << 20}
	states := map[string]string{}
	configBytes := map[string]int{}
	for name, size := range sizes {
		st, n, err := makeBundle(o.fixtures, filepath.Join(work, "bundle-"+name), size, nil)
		if err != nil {
			return err
		}
		states[name], configBytes[name] = st, n
	}
	// A pod's author at Kubernetes' limits: 64 KB in every identity and
	// pass-through key (the reference agent denies the untrusted identity).
	st, n, err := makeBundle(o.fixtures, filepath.Join(work, "bundle-hostile"), 0, harness.HostileAnnotations(64<<10))
	if err != nil {
		return err
	}
	states["hostile"], configBytes["hostile 64K"] = st, n
	hook := func(name, state, address string, code int, extra ...string) command {
		args := append([]string{o.podhook, "createRuntime", "--agent-address", "unix://" + address,
			"--log-file", filepath.Join(work, "log", name+".log"), "--config", filepath.Join(work, "none.json")}, extra...)
		return command{Name: name, Args: args, Env: hookEnv, stdin: state, code: code}
	}
	os.WriteFile(filepath.Join(work, "none.json"), []byte("{}"), 0o600)
	// agents is a command whose config lists agents at the addresses
	// (each required).
	agents := func(name, state string, code int, addresses ...string) command {
		var list []map[string]string
		for i, a := range addresses {
			list = append(list, map[string]string{"name": fmt.Sprintf("agent-%d", i), "address": "unix://" + a})
		}
		b, _ := json.Marshal(map[string]any{"agents": list})
		cfg := filepath.Join(work, strings.NewReplacer(" ", "-", ",", "", "(", "", ")", "").Replace(name)+".json")
		os.WriteFile(cfg, b, 0o600)
		args := []string{o.podhook, "createRuntime", "--log-file", filepath.Join(work, "log", name+".log"), "--config", cfg}
		return command{Name: name, Args: args, Env: hookEnv, stdin: state, code: code}
	}

	// The floor and the hook are timed in pairs, with a do-nothing
	// program: nothing heavier runs between them to even them out (the
	// hostile row's 900 KB request keeps the agent busy after it). The
	// other rows run in a second set, with the hook again for their
	// ratios.
	//
	// The floor runs bare, and again with the hook's GOMAXPROCS=1 (see
	// hooksd.DefaultEnv), and the hook again without it: what that setting
	// saves, and how far the hook is from a grpc-go call given it too.
	bareHook := hook(bareHookRow, states["8K"], sock, 0)
	bareHook.Env = bareEnv
	pairs := []command{
		{Name: "noop", Args: []string{floors["noop"]}, Env: bareEnv},
		{Name: "grpc-floor", Args: []string{floors["grpcfloor"], sock}, Env: bareEnv},
		{Name: floorEnvRow, Args: []string{floors["grpcfloor"], sock}, Env: floorEnv},
		hook("hook live agent", states["8K"], sock, 0),
		bareHook,
	}
	rest := []command{
		hook(besideRow, states["8K"], sock, 0),
		hook("hook socket missing", states["8K"], filepath.Join(work, "absent.sock"), 1),
		hook("hook stale socket", states["8K"], stale, 1),
		hook("hook live, config 20K", states["20K"], sock, 0),
		hook("hook live, config 200K", states["200K"], sock, 0),
		hook("hook live, config 2M", states["2M"], sock, 0),
		hook(hostileRow, states["hostile"], sock, 1),
		agents(twoAgentsRow, states["8K"], 0, sock, sock2),
		// What a second agent costs any grpc-go program on this machine:
		// the floor's Check to one agent and to two at once.
		{Name: floorBesideRow, Args: []string{floors["grpcfloor"], sock}, Env: floorEnv},
		{Name: floorTwoRow, Args: []string{floors["grpcfloor"], sock, sock2}, Env: floorEnv},
	}
	if o.quick {
		rest = slices.DeleteFunc(rest, func(c command) bool {
			return !slices.Contains([]string{besideRow, "hook live, config 20K", hostileRow, twoAgentsRow, floorBesideRow, floorTwoRow}, c.Name)
		})
	}
	fmt.Fprintf(os.Stderr, "timing %d commands in pairs and %d more, %d warm-up + %d runs each, alternating...\n", len(pairs), len(rest), o.warmup, o.runs)
	stats, err := alternate(pairs, o.warmup, o.runs)
	if err != nil {
		return err
	}
	more, err := alternate(rest, o.warmup, o.runs)
	if err != nil {
		return err
	}
	stats = append(stats, more...)

	burst := map[string]float64{}
	if !o.quick {
		if stats, burst, err = slowParts(o, stats, work, sock, hook, agents, states["8K"]); err != nil {
			return err
		}
	}
	fi, err := os.Stat(o.podhook)
	if err != nil {
		return err
	}
	res := Results{
		Time: time.Now().UTC(), Host: host(), Commands: stats, Burst: burst,
		BinaryBytes: fi.Size(), ConfigBytes: configBytes, Ratios: map[string]float64{},
	}
	by := map[string]Stats{}
	for _, s := range stats {
		by[s.Name] = s
	}
	ratio := func(name, a, b string) {
		if x, y := by[a].MedianMS, by[b].MedianMS; x > 0 && y > 0 {
			res.Ratios[name] = x / y
		}
	}
	ratio("hook/grpc-floor", "hook live agent", "grpc-floor")
	ratio(sameEnvRatio, "hook live agent", floorEnvRow)
	ratio("hook without GOMAXPROCS=1/grpc-floor", bareHookRow, "grpc-floor")
	ratio("hook/noop", "hook live agent", "noop")
	ratio("socket missing/live agent", "hook socket missing", besideRow)
	ratio("stale socket/live agent", "hook stale socket", besideRow)
	ratio("config 2M/config 200K", "hook live, config 2M", "hook live, config 200K")
	ratio("config 200K/config 20K", "hook live, config 200K", "hook live, config 20K")
	ratio("hostile 64K/live agent", hostileRow, besideRow)
	ratio("two agents/one agent", twoAgentsRow, besideRow)
	ratio("two agents/one agent, grpc-floor", floorTwoRow, floorBesideRow)
	ratio("two agents one hung/one hung", twoHungRow, hungRow)
	if o.gate {
		base, err := readBaseline(o.baseline)
		if err != nil {
			return err
		}
		res.Gate = gate(o, base, res, by)
	}
	report(os.Stdout, res)
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	if res.Gate != nil && !res.Gate.Pass {
		// Where the time went, to read the failure by.
		fmt.Fprintln(os.Stderr, "benchmark gate failed; the breakdown of this machine's hook against the floor:")
		bo := o
		bo.runs, bo.warmup, bo.breakdown = 60, 10, filepath.Join(filepath.Dir(o.out), "breakdown-gate.md")
		if err := breakdown(bo); err != nil {
			fmt.Fprintf(os.Stderr, "breakdown: %v\n", err)
		}
		return fmt.Errorf("benchmark gate failed: %s", strings.Join(res.Gate.Failed, "; "))
	}
	return nil
}

// hostileRow names the row of a container whose identity and pass-through
// keys each carry 64 KB; the others, the rows of two agents at once and of
// a hung agent.
const (
	sameEnvRatio   = "hook/grpc-floor, both GOMAXPROCS=1"
	floorEnvRow    = "grpc-floor, GOMAXPROCS=1"
	bareHookRow    = "hook live agent, without GOMAXPROCS=1"
	besideRow      = "hook live agent, beside the rows below"
	floorBesideRow = "grpc-floor, GOMAXPROCS=1, beside the rows below"
	floorTwoRow    = "grpc-floor, two agents at once, GOMAXPROCS=1"
	hostileRow     = "hook live, hostile 64K values"
	twoAgentsRow   = "hook two live agents"
	hungRow        = "hook hung agent (--timeout 500ms)"
	twoHungRow     = "hook two agents, one hung (--timeout 500ms)"
)

// Baseline is test/bench/baseline.json: what the gate holds a run to.
type Baseline struct {
	HookFloor float64 `json:"hook_grpc_floor"`
	// SameEnv is the hook against the floor given the hook's
	// GOMAXPROCS=1 too: the hook's own cost, which the setting does not
	// hide.
	SameEnv   float64 `json:"hook_grpc_floor_same_env"`
	TwoAgents float64 `json:"two_agents_one_agent"`
	PeakRSSKB int64   `json:"peak_rss_kb"`
	Margin    float64 `json:"margin"`
	RSSMargin float64 `json:"rss_margin"`
}

func readBaseline(path string) (Baseline, error) {
	var b Baseline
	raw, err := os.ReadFile(path)
	if err != nil {
		return b, err
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return b, fmt.Errorf("%s: %w", path, err)
	}
	if b.HookFloor <= 0 || b.TwoAgents <= 0 || b.PeakRSSKB <= 0 || b.Margin <= 0 || b.RSSMargin <= 0 {
		return b, fmt.Errorf("%s: every value must be positive", path)
	}
	return b, nil
}

// GateResult is the gate's verdict, kept in results.json.
type GateResult struct {
	Pass   bool     `json:"pass"`
	Failed []string `json:"failed,omitempty"`
	Bounds struct {
		Ratio     float64 `json:"hook_grpc_floor_ratio"`
		SameEnv   float64 `json:"hook_grpc_floor_same_env"`
		TwoAgents float64 `json:"two_agents_one_agent"`
		BinaryB   int64   `json:"binary_bytes"`
		PeakRSSKB int64   `json:"peak_rss_kb"`
	} `json:"bounds"`
}

// gate checks the bounds: ratios to a floor measured in the same run (a
// loaded machine slows both sides alike), each within its margin of the
// committed baseline, so that a 10% regression fails.
func gate(o options, base Baseline, res Results, by map[string]Stats) *GateResult {
	g := &GateResult{}
	g.Bounds.Ratio = base.HookFloor * (1 + base.Margin)
	g.Bounds.SameEnv = base.SameEnv * (1 + base.Margin)
	g.Bounds.TwoAgents = base.TwoAgents * (1 + base.Margin)
	g.Bounds.PeakRSSKB = int64(float64(base.PeakRSSKB) * (1 + base.RSSMargin))
	g.Bounds.BinaryB = o.maxBinary
	if r := res.Ratios["hook/grpc-floor"]; !(r > 0 && r <= g.Bounds.Ratio) {
		g.Failed = append(g.Failed, fmt.Sprintf("hook/grpc-floor %.3f > %.3f (baseline %.3f + %.0f%%)", r, g.Bounds.Ratio, base.HookFloor, 100*base.Margin))
	}
	if r := res.Ratios[sameEnvRatio]; !(r > 0 && r <= g.Bounds.SameEnv) {
		g.Failed = append(g.Failed, fmt.Sprintf("%s %.3f > %.3f (baseline %.3f + %.0f%%)", sameEnvRatio, r, g.Bounds.SameEnv, base.SameEnv, 100*base.Margin))
	}
	if res.BinaryBytes > o.maxBinary {
		g.Failed = append(g.Failed, fmt.Sprintf("binary %d bytes > %d", res.BinaryBytes, o.maxBinary))
	}
	if rss := by["hook live, config 20K"].PeakRSSKB; rss == 0 || rss > g.Bounds.PeakRSSKB {
		g.Failed = append(g.Failed, fmt.Sprintf("peak RSS %d KiB > %d (baseline %d + %.0f%%)", rss, g.Bounds.PeakRSSKB, base.PeakRSSKB, 100*base.RSSMargin))
	}
	// What a pod's author writes costs in proportion: the hostile row's
	// extra memory stays within a few MiB of the plain one's.
	if h, p := by[hostileRow].PeakRSSKB, by[besideRow].PeakRSSKB; h == 0 || h > p+o.maxHostileExtraKB {
		g.Failed = append(g.Failed, fmt.Sprintf("hostile 64K peak RSS %d KiB > %d + %d", h, p, o.maxHostileExtraKB))
	}
	// Several agents are called at once: a second one costs its client
	// and its share of the machine, not a second call in sequence.
	if r := res.Ratios["two agents/one agent"]; !(r > 0 && r <= g.Bounds.TwoAgents) {
		g.Failed = append(g.Failed, fmt.Sprintf("two agents/one agent %.3f > %.3f (baseline %.3f + %.0f%%)", r, g.Bounds.TwoAgents, base.TwoAgents, 100*base.Margin))
	}
	g.Pass = len(g.Failed) == 0
	return g
}

// slowParts times the hung agent and the burst: not needed by the gate.
func slowParts(o options, stats []Stats, work, sock string, hook func(string, string, string, int, ...string) command,
	agents func(string, string, int, ...string) command, state string) ([]Stats, map[string]float64, error) {
	// An agent that accepts and never answers: time to decision, alone
	// and next to a live one (one deadline, not two).
	hang := filepath.Join(work, "hang.sock")
	hl, err := harness.NewHangingAgent(hang)
	if err != nil {
		return nil, nil, err
	}
	two := agents(twoHungRow, state, 1, sock, hang)
	two.Args = append(two.Args, "--timeout", "500ms")
	hs, err := alternate([]command{hook(hungRow, state, hang, 1, "--timeout", "500ms"), two}, 0, 5)
	hl.Close()
	if err != nil {
		return nil, nil, err
	}
	burst, err := runBurst(hook("burst", state, sock, 0), o.burst)
	return append(stats, hs...), burst, err
}

// alternate runs every command once per round, warm-up rounds first.
func alternate(cmds []command, warmup, runs int) ([]Stats, error) {
	times := make([][]time.Duration, len(cmds))
	// Each round runs every command once, in a new random order: what ran
	// just before (an agent still tearing down the last connection, a cold
	// cache) then weighs on every command alike.
	rng := rand.New(rand.NewPCG(1, 2))
	order := make([]int, len(cmds))
	for i := range order {
		order[i] = i
	}
	for round := 0; round < warmup+runs; round++ {
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, i := range order {
			c := cmds[i]
			d, err := once(c)
			if err != nil {
				return nil, err
			}
			if round >= warmup {
				times[i] = append(times[i], d)
			}
		}
	}
	out := make([]Stats, len(cmds))
	for i, c := range cmds {
		out[i] = summarise(c.Name, times[i], 0)
		// Peak RSS in separate, untimed runs under rsswrap.
		for range 5 {
			kb, err := peakRSS(c)
			if err != nil {
				return nil, err
			}
			out[i].PeakRSSKB = max(out[i].PeakRSSKB, kb)
		}
	}
	return out, nil
}

// rsswrap is the path of the fork-based wrapper that reports peak RSS.
var rsswrap string

// peakRSS runs c under rsswrap and returns the child's peak RSS in KiB.
func peakRSS(c command) (int64, error) {
	w := c
	w.Args = append([]string{rsswrap}, c.Args...)
	var stderr strings.Builder
	if _, err := run1(w, &stderr); err != nil {
		return 0, err
	}
	out := stderr.String()
	i := strings.LastIndex(out, "maxrss_kb=")
	if i < 0 {
		return 0, fmt.Errorf("%s: no maxrss from rsswrap: %q", c.Name, out)
	}
	var kb int64
	fmt.Sscanf(out[i:], "maxrss_kb=%d", &kb)
	return kb, nil
}

// once runs c and returns its wall time, fork to exit.
func once(c command) (time.Duration, error) {
	var stderr strings.Builder
	return run1(c, &stderr)
}

// run1 runs c, checks its exit code and returns its wall time.
func run1(c command, stderr *strings.Builder) (time.Duration, error) {
	cmd := exec.Command(c.Args[0], c.Args[1:]...)
	cmd.Env = c.Env
	if c.stdin != "" {
		f, err := os.Open(c.stdin)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	cmd.Stderr = stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return 0, err
	}
	if code != c.code {
		return 0, fmt.Errorf("%s: exit %d, want %d: %s", c.Name, code, c.code, stderr.String())
	}
	return d, nil
}

func summarise(name string, ds []time.Duration, rssKB int64) Stats {
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(p float64) float64 {
		i := int(p*float64(len(ds))+0.5) - 1
		return ms(ds[min(max(i, 0), len(ds)-1)])
	}
	med := ds[len(ds)/2]
	if len(ds)%2 == 0 {
		med = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
	}
	return Stats{Name: name, Runs: len(ds), MedianMS: ms(med), P90MS: pct(0.90), P99MS: pct(0.99),
		MinMS: ms(ds[0]), MaxMS: ms(ds[len(ds)-1]), PeakRSSKB: rssKB}
}

// runBurst starts n invocations at once, as a node does when a burst of
// pods lands.
func runBurst(c command, n int) (map[string]float64, error) {
	times := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			times[i], errs[i] = once(c)
		}()
	}
	wg.Wait()
	total := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := summarise("burst", times, 0)
	return map[string]float64{"invocations": float64(n), "total_ms": float64(total.Microseconds()) / 1000,
		"p50_ms": s.MedianMS, "p99_ms": s.P99MS, "max_ms": s.MaxMS}, nil
}

func report(w io.Writer, r Results) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "command\truns\tmedian ms\tp90 ms\tp99 ms\tmin ms\tmax ms\tpeak RSS MiB\t")
	for _, s := range r.Commands {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\t\n", s.Name, s.Runs, s.MedianMS, s.P90MS, s.P99MS, s.MinMS, s.MaxMS, float64(s.PeakRSSKB)/1024)
	}
	tw.Flush()
	if len(r.Burst) > 0 {
		fmt.Fprintf(w, "\nburst: %.0f concurrent invocations in %.1f ms; per invocation p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
			r.Burst["invocations"], r.Burst["total_ms"], r.Burst["p50_ms"], r.Burst["p99_ms"], r.Burst["max_ms"])
	}
	fmt.Fprintf(w, "binary: %.2f MB (%d bytes), stripped as shipped\n", float64(r.BinaryBytes)/1e6, r.BinaryBytes)
	fmt.Fprintf(w, "config.json sizes: 8K=%d 20K=%d 200K=%d 2M=%d hostile=%d bytes\n", r.ConfigBytes["8K"], r.ConfigBytes["20K"], r.ConfigBytes["200K"], r.ConfigBytes["2M"], r.ConfigBytes["hostile 64K"])
	keys := make([]string, 0, len(r.Ratios))
	for k := range r.Ratios {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "ratio %-38s %.3f\n", k, r.Ratios[k])
	}
	fmt.Fprintf(w, "host: %s\n", r.Host["summary"])
	if g := r.Gate; g != nil {
		verdict := "pass"
		if !g.Pass {
			verdict = "FAIL: " + strings.Join(g.Failed, "; ")
		}
		fmt.Fprintf(w, "gate (hook/grpc-floor <= %.3f, both GOMAXPROCS=1 <= %.3f, two agents/one <= %.3f, binary <= %d bytes, peak RSS <= %d KiB; test/bench/baseline.json): %s\n",
			g.Bounds.Ratio, g.Bounds.SameEnv, g.Bounds.TwoAgents, g.Bounds.BinaryB, g.Bounds.PeakRSSKB, verdict)
	}
}

func host() map[string]string {
	cpu := "unknown cpu"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				_, cpu, _ = strings.Cut(line, ": ")
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	h := map[string]string{"cpu": cpu, "cpus": fmt.Sprint(runtime.NumCPU()), "kernel": strings.TrimSpace(string(kernel)), "go": runtime.Version()}
	h["summary"] = fmt.Sprintf("%s x%s, Linux %s, %s", h["cpu"], h["cpus"], h["kernel"], h["go"])
	return h
}

// installed copies a binary into dir with one write, as podhook install
// writes it on a node, and returns the copy's path. How a file was written
// changes what starting it costs (measured here: the same bytes started
// 0.3-0.4 ms slower from the file the Go linker wrote, which it writes
// through a mapping, than from a copy; most likely the page cache then
// holds it in smaller pieces for the kernel to map at every start). The
// hook and the floors are timed from copies made alike.
var asBuilt bool // -as-built

func installed(bin, dir string) (string, error) {
	if asBuilt {
		return bin, nil
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(dir, "installed"), 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "installed", filepath.Base(bin))
	return out, os.WriteFile(out, b, 0o755)
}

func buildFloors(dir string) (map[string]string, error) {
	out := map[string]string{"rsswrap": filepath.Join(dir, "rsswrap")}
	if b, err := exec.Command("cc", "-O2", "-o", out["rsswrap"], "test/bench/rsswrap/rsswrap.c").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build rsswrap (needs cc): %v\n%s", err, b)
	}
	// Built with the tags podhook ships with, so the floor is as low as it
	// can be.
	floors := map[string]string{}
	for _, name := range []string{"noop", "grpcfloor"} {
		out[name] = filepath.Join(dir, name)
		floors[out[name]] = "./test/bench/" + name
	}
	if err := harness.Build(floors); err != nil {
		return nil, err
	}
	for _, name := range []string{"noop", "grpcfloor"} {
		p, err := installed(out[name], filepath.Join(dir, "floor"))
		if err != nil {
			return nil, err
		}
		out[name] = p
	}
	return out, nil
}

// prepare makes the run's work directory, builds the floors there and
// points o.podhook at a copy of it (installed); the caller removes work.
func prepare(o *options, prefix string) (work string, floors map[string]string, err error) {
	if work, err = os.MkdirTemp("", prefix); err != nil {
		return "", nil, err
	}
	if floors, err = buildFloors(work); err == nil {
		rsswrap = floors["rsswrap"]
		o.podhook, err = installed(o.podhook, work)
	}
	if err != nil {
		os.RemoveAll(work)
	}
	return work, floors, err
}

// startAgent runs podhook-agent on sock, recording nothing, and waits
// until it listens; stop ends it.
func startAgent(bin, sock string) (stop func(), err error) {
	agent := exec.Command(bin, "--socket", sock, "--events", "/dev/null")
	if err := agent.Start(); err != nil {
		return nil, err
	}
	stop = func() { agent.Process.Signal(syscall.SIGTERM); agent.Wait() }
	if err := waitSocket(sock); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

func waitSocket(path string) error {
	for range 500 {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("agent did not listen on %s", path)
}

// makeBundle writes the fixture's config.json grown to at least size bytes
// (more mounts and annotations, as a pod with many volumes has) and the
// fixture's state pointing at it. It returns the state file and the size.
func makeBundle(fixtures, dir string, size int, extra map[string]string) (string, int, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, err
	}
	b, err := os.ReadFile(filepath.Join(fixtures, "config.json"))
	if err != nil {
		return "", 0, err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return "", 0, err
	}
	mounts := spec["mounts"].([]any)
	annotations := spec["annotations"].(map[string]any)
	if len(extra) > 0 {
		for k, v := range extra {
			annotations[k] = v
		}
		if b, err = json.Marshal(spec); err != nil {
			return "", 0, err
		}
	}
	for i := 0; len(b) < size; i++ {
		for j := range 50 {
			k := i*50 + j
			mounts = append(mounts, map[string]any{
				"destination": fmt.Sprintf("/var/lib/app/volume-%d", k), "type": "bind",
				"source":  fmt.Sprintf("/var/lib/kubelet/pods/3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b/volumes/kubernetes.io~configmap/volume-%d", k),
				"options": []string{"rbind", "rprivate", "ro"},
			})
			annotations[fmt.Sprintf("example.com/annotation-%d", k)] = strings.Repeat("v", 64)
		}
		spec["mounts"], spec["annotations"] = mounts, annotations
		if b, err = json.Marshal(spec); err != nil {
			return "", 0, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		return "", 0, err
	}
	sb, err := os.ReadFile(filepath.Join(fixtures, "state-createRuntime.json"))
	if err != nil {
		return "", 0, err
	}
	var state map[string]any
	json.Unmarshal(sb, &state)
	state["bundle"] = dir
	sb, _ = json.Marshal(state)
	statePath := filepath.Join(dir, "state.json")
	return statePath, len(b), os.WriteFile(statePath, sb, 0o600)
}
