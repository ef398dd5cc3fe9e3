package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/podhook/podhook/agentclient"
	"github.com/podhook/podhook/agentclient/agentv1"
	"github.com/podhook/podhook/hook"
	"github.com/podhook/podhook/internal/logfile"
	"github.com/podhook/podhook/resolver"
)

// breakdown measures where the hook's time goes beyond the grpc-go floor,
// part by part, and writes the table as markdown to o.breakdown: the whole
// process (interleaved medians), package initialisation (inittrace), page
// faults and CPU (perf stat), system calls (strace -c), and in this process
// the parts of an invocation on their own (reading and resolving, the log,
// the request against an empty one).
func breakdown(o options) error {
	work, floors, err := prepare(&o, "phd-")
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
	state, _, err := makeBundle(o.fixtures, filepath.Join(work, "bundle"), 0, nil)
	if err != nil {
		return err
	}
	os.WriteFile(filepath.Join(work, "none.json"), []byte("{}"), 0o600)
	// The hook reads the state from a file here, so that perf and strace
	// can run it again and again with nothing on stdin.
	hookArgs := []string{o.podhook, "createRuntime", "--agent-address", "unix://" + sock, "--log-file", filepath.Join(work, "log", "podhook.log"),
		"--config", filepath.Join(work, "none.json"), "--state-file", state}
	floorArgs := []string{floors["grpcfloor"], sock}
	noopArgs := []string{floors["noop"]}

	var t table
	fmt.Fprintf(os.Stderr, "breakdown: whole process, %d interleaved rounds...\n", o.runs)
	// The hook runs as registered (hooksd.DefaultEnv), the floor with the
	// same GOMAXPROCS=1: what is left between them is the hook's own.
	stats, err := alternate([]command{{Name: "noop", Args: noopArgs, Env: bareEnv}, {Name: "floor", Args: floorArgs, Env: floorEnv},
		{Name: "hook", Args: hookArgs, Env: hookEnv}}, o.warmup, o.runs)
	if err != nil {
		return err
	}
	by := map[string]Stats{}
	for _, s := range stats {
		by[s.Name] = s
	}
	gap := by["hook"].MedianMS - by["floor"].MedianMS
	t.row("whole process, median of interleaved runs (both GOMAXPROCS=1)", ms(by["hook"].MedianMS), ms(by["floor"].MedianMS),
		fmt.Sprintf("**%+.2f ms** (ratio %.3f; a Go program that does nothing: %.2f ms)", gap, by["hook"].MedianMS/by["floor"].MedianMS, by["noop"].MedianMS))

	fmt.Fprintln(os.Stderr, "breakdown: package initialisation...")
	hookInit, err := inittrace(hookArgs, hookEnv, 40)
	if err != nil {
		return err
	}
	floorInit, err := inittrace(floorArgs, floorEnv, 40)
	if err != nil {
		return err
	}
	t.row("package initialisation before main (`GODEBUG=inittrace=1`, median total)", ms(hookInit.total), ms(floorInit.total),
		fmt.Sprintf("%+.3f ms; %d packages against %d", hookInit.total-floorInit.total, len(hookInit.pkgs), len(floorInit.pkgs)))
	var only []string
	onlySum := 0.0
	for _, p := range hookInit.order() {
		if _, ok := floorInit.pkgs[p]; !ok {
			onlySum += hookInit.pkgs[p]
			if len(only) < 6 {
				only = append(only, fmt.Sprintf("`%s` %.3f", p, hookInit.pkgs[p]))
			}
		}
	}
	t.row("… of which packages only the hook links", ms(onlySum), "", strings.Join(only, ", "))

	fmt.Fprintln(os.Stderr, "breakdown: perf stat...")
	hp, herr := perfStat(hookArgs, hookEnv, 40)
	fp, ferr := perfStat(floorArgs, floorEnv, 40)
	if herr == nil && ferr == nil {
		t.row("page faults (`perf stat`, mean)", fmt.Sprintf("%.0f", hp["page-faults"]), fmt.Sprintf("%.0f", fp["page-faults"]),
			fmt.Sprintf("%+.0f", hp["page-faults"]-fp["page-faults"]))
		t.row("CPU time, all threads (`perf stat` task-clock, mean)", ms(hp["task-clock"]), ms(fp["task-clock"]), fmt.Sprintf("%+.2f ms", hp["task-clock"]-fp["task-clock"]))
	} else {
		t.row("page faults, CPU time (`perf stat`)", "", "", fmt.Sprintf("not measured: %v", cmpErr(herr, ferr)))
	}
	hb, _ := os.Stat(o.podhook)
	fb, _ := os.Stat(floors["grpcfloor"])
	t.row("binary, stripped", mb(hb.Size()), mb(fb.Size()), fmt.Sprintf("%+.2f MB", float64(hb.Size()-fb.Size())/1e6))

	fmt.Fprintln(os.Stderr, "breakdown: strace -c...")
	hs, herr := straceCount(hookArgs, hookEnv)
	fs, ferr := straceCount(floorArgs, floorEnv)
	if herr == nil && ferr == nil {
		var more []string
		for _, name := range sortedByDiff(hs, fs) {
			if d := hs[name] - fs[name]; d > 0 && len(more) < 8 {
				more = append(more, fmt.Sprintf("%s %+d", name, d))
			}
		}
		t.row("system calls, all threads (`strace -f -c`)", strconv.Itoa(sum(hs)), strconv.Itoa(sum(fs)), strings.Join(more, ", "))
	} else {
		t.row("system calls (`strace -f -c`)", "", "", fmt.Sprintf("not measured: %v", cmpErr(herr, ferr)))
	}

	fmt.Fprintln(os.Stderr, "breakdown: the parts in this process...")
	parts, err := inProcess(o, state, sock, work)
	if err != nil {
		return err
	}
	for _, p := range parts {
		t.row(p[0], p[1], "", p[2])
	}

	host := host()
	md := fmt.Sprintf("| part | hook | grpc-go floor | hook − floor |\n|---|---|---|---|\n%s\n%s, %s, %d rounds; `make breakdown`, %s\n",
		t.String(), host["cpu"], host["go"], o.runs, time.Now().UTC().Format("2006-01-02"))
	fmt.Print(md)
	if err := os.MkdirAll(filepath.Dir(o.breakdown), 0o755); err != nil {
		return err
	}
	return os.WriteFile(o.breakdown, []byte(md), 0o644)
}

// table is the breakdown's rows.
type table struct{ rows []string }

func (t *table) row(cells ...string) { t.rows = append(t.rows, "| "+strings.Join(cells, " | ")+" |") }

func (t *table) String() string { return strings.Join(t.rows, "\n") }

func ms(v float64) string { return fmt.Sprintf("%.2f ms", v) }
func mb(b int64) string   { return fmt.Sprintf("%.2f MB", float64(b)/1e6) }

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// inits is a binary's package initialisation: each package's median clock
// time and the median total, in ms.
type inits struct {
	pkgs  map[string]float64
	total float64
}

// order lists the packages, costliest first.
func (in inits) order() []string {
	out := make([]string, 0, len(in.pkgs))
	for p := range in.pkgs {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b string) int {
		if in.pkgs[a] != in.pkgs[b] {
			if in.pkgs[a] > in.pkgs[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return out
}

// inittrace runs args n times with GODEBUG=inittrace=1 and parses its
// lines: "init <pkg> @<t> ms, <clock> ms clock, <bytes> bytes, <n> allocs".
func inittrace(args, env []string, n int) (inits, error) {
	per := map[string][]float64{}
	var totals []float64
	for range n {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(slices.Clip(env), "GODEBUG=inittrace=1")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		cmd.Run()
		total := 0.0
		for _, line := range strings.Split(errb.String(), "\n") {
			f := strings.Fields(line)
			if len(f) < 7 || f[0] != "init" || f[6] != "clock," {
				continue
			}
			v, err := strconv.ParseFloat(f[4], 64)
			if err != nil {
				continue
			}
			per[f[1]] = append(per[f[1]], v)
			total += v
		}
		totals = append(totals, total)
	}
	if len(per) == 0 {
		return inits{}, fmt.Errorf("%s: no inittrace lines", args[0])
	}
	out := inits{pkgs: map[string]float64{}, total: median(totals)}
	for p, vs := range per {
		out.pkgs[p] = median(vs)
	}
	return out, nil
}

func median(vs []float64) float64 {
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// perfStat runs args n times under perf stat and returns the mean of each
// software event (task-clock in ms).
func perfStat(args, env []string, n int) (map[string]float64, error) {
	cmd := exec.Command("perf", append([]string{"stat", "-x", ",", "-e", "page-faults,task-clock", "-r", strconv.Itoa(n), "--"}, args...)...)
	cmd.Env = env
	var errb bytes.Buffer
	cmd.Stderr, cmd.Stdout = &errb, io.Discard
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			return nil, err
		}
	}
	out := map[string]float64{}
	for _, line := range strings.Split(errb.String(), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[strings.TrimSuffix(f[2], ":u")] = v
	}
	if _, ok := out["page-faults"]; !ok {
		return nil, fmt.Errorf("perf stat: %s", strings.TrimSpace(errb.String()))
	}
	return out, nil
}

// straceCount runs args once under strace -f -c and returns the calls of
// each system call.
func straceCount(args, env []string) (map[string]int, error) {
	out, err := os.CreateTemp("", "phd-strace-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	out.Close()
	cmd := exec.Command("strace", append([]string{"-f", "-c", "-o", out.Name(), "--"}, args...)...)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			return nil, fmt.Errorf("strace: %v: %s", err, b)
		}
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		return nil, err
	}
	calls := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[len(f)-1] == "total" || f[len(f)-1] == "syscall" {
			continue
		}
		// % time, seconds, usecs/call, calls, [errors,] syscall
		n, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		calls[f[len(f)-1]] = n
	}
	if len(calls) == 0 {
		return nil, fmt.Errorf("strace: no summary")
	}
	return calls, nil
}

func sum(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}

// sortedByDiff lists the system calls, most calls beyond the floor first.
func sortedByDiff(h, f map[string]int) []string {
	out := make([]string, 0, len(h))
	for k := range h {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b string) int {
		if d := (h[b] - f[b]) - (h[a] - f[a]); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return out
}

// inProcess times the parts of an invocation on their own, in this
// process (warm: no start-up in them): reading the state and config.json
// and resolving the identity; the log's open, lock, write and close; one
// agent call with the fixture's request against one with an empty request.
func inProcess(o options, state, sock, work string) ([][3]string, error) {
	const n = 300
	stateBytes, err := os.ReadFile(state)
	if err != nil {
		return nil, err
	}
	var inv *hook.Invocation
	prep := timeN(n, func() error {
		var err error
		inv, err = hook.Prepare(bytes.NewReader(stateBytes), hook.Options{Stage: hook.CreateRuntime, Start: time.Now(), Runs: []resolver.Runtime{resolver.CRIO, resolver.Podman}})
		return err
	})
	if prep.err != nil {
		return nil, prep.err
	}
	record := bytes.Repeat([]byte("x"), 1100)
	record[len(record)-1] = '\n'
	logPath := filepath.Join(work, "inproc", "podhook.log")
	os.MkdirAll(filepath.Dir(logPath), 0o700)
	lg := timeN(n, func() error {
		f, err := logfile.Open(logPath, logfile.DefaultMaxSize, 3)
		if err != nil {
			return err
		}
		if _, err := f.Write(record); err != nil {
			return err
		}
		return f.Close()
	})
	if lg.err != nil {
		return nil, lg.err
	}
	client, err := agentclient.New("unix://"+sock, agentclient.WithPeerUID(agentclient.AnyUID))
	if err != nil {
		return nil, err
	}
	defer client.Close()
	full := inv.CreateRequest()
	empty := &agentv1.CreateContainerRequest{ProtocolVersion: full.ProtocolVersion, Stage: full.Stage,
		Container: &agentv1.Container{Id: full.Container.Id}, Pod: &agentv1.Pod{Namespace: full.Pod.Namespace}, Identity: full.Identity}
	call := func(req *agentv1.CreateContainerRequest) func() error {
		return func() error { _, err := client.CreateContainer(context.Background(), req); return err }
	}
	call(full)() // connect
	var fullT, emptyT []time.Duration
	for range n {
		for _, c := range []struct {
			req *agentv1.CreateContainerRequest
			ts  *[]time.Duration
		}{{full, &fullT}, {empty, &emptyT}} {
			start := time.Now()
			if err := call(c.req)(); err != nil {
				return nil, err
			}
			*c.ts = append(*c.ts, time.Since(start))
		}
	}
	us := func(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }
	return [][3]string{
		{"read the state and config.json, resolve the identity (in process, warm)", us(prep.median), fmt.Sprintf("config.json %d bytes", fileSize(filepath.Join(inv.State.Bundle, "config.json")))},
		{"the log: open, lock, append one record, close (in process)", us(lg.median), "flock on `<log>.lock`, O_APPEND, one write"},
		{"one agent call, the fixture's request (in process, connected)", us(medianD(fullT)), fmt.Sprintf("%d bytes; an empty request: %s (%d bytes)", proto.Size(full), us(medianD(emptyT)), proto.Size(empty))},
	}, nil
}

type timed struct {
	median time.Duration
	err    error
}

func timeN(n int, f func() error) timed {
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := f(); err != nil {
			return timed{err: err}
		}
		ds = append(ds, time.Since(start))
	}
	return timed{median: medianD(ds)}
}

func medianD(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
