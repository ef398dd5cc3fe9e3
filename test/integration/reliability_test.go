package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/harness"
)

// customBundle writes a config.json with the given annotations and cgroups
// path into a new world-readable bundle and returns the state for id.
func customBundle(t *testing.T, id string, annotations map[string]string, cgroupsPath string) []byte {
	t.Helper()
	dir, err := os.MkdirTemp("", "phb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	spec := map[string]any{"ociVersion": "1.2.0", "annotations": annotations, "linux": map[string]any{"cgroupsPath": cgroupsPath},
		"root": map[string]any{"path": "rootfs"}, "process": map[string]any{"args": []string{"sh"}}}
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	st, _ := json.Marshal(map[string]any{"ociVersion": "1.2.0", "id": id, "status": "creating", "pid": 4242, "bundle": dir})
	return st
}

func crioAnnotations(ns string) map[string]string {
	return map[string]string{
		"io.container.manager":              "cri-o",
		"io.kubernetes.pod.namespace":       ns,
		"io.kubernetes.pod.name":            "web-1",
		"io.kubernetes.pod.uid":             "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b",
		"io.kubernetes.container.name":      "web",
		"io.kubernetes.cri-o.ContainerType": "container",
	}
}

// TestConcurrentHooksAndRotation runs 200 hook processes at once against the
// live agent with a log so small it rotates dozens of times.
func TestConcurrentHooksAndRotation(t *testing.T) {
	const n = 200
	states := make([][]byte, n)
	for i := range states {
		states[i] = customBundle(t, fmt.Sprintf("c-%03d", i), crioAnnotations("tenant-a"), "")
	}
	run := func(t *testing.T, backups int) (logPath string, a *agent) {
		a = startAgent(t)
		logPath = filepath.Join(t.TempDir(), "podhook.log")
		var wg sync.WaitGroup
		codes := make([]int, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := runHook(t, states[i], "createRuntime", "--agent-address", a.address(), "--log-file", logPath,
					"--log-max-size", "4KiB", "--log-max-backups", fmt.Sprint(backups))
				codes[i] = r.code
			}()
		}
		wg.Wait()
		for i, c := range codes {
			if c != 0 {
				t.Fatalf("hook %d exited %d", i, c)
			}
		}
		evs := a.readEvents(t)
		ids := map[string]bool{}
		for _, e := range evs {
			ids[e.Request.Container.ID] = true
		}
		if len(evs) != n || len(ids) != n {
			t.Fatalf("agent received %d events for %d containers, want %d", len(evs), len(ids), n)
		}
		return logPath, a
	}
	// readAll returns the records of every log file, newest file first, and
	// how many files there were.
	readAll := func(t *testing.T, logPath string) (recs []map[string]any, files int, sizes []int64) {
		names := []string{logPath}
		for i := 1; i <= 1000; i++ {
			names = append(names, fmt.Sprintf("%s.%d", logPath, i))
		}
		for _, name := range names {
			f, err := os.Open(name)
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := f.Stat()
			files++
			sizes = append(sizes, fi.Size())
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var rec map[string]any
				if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
					t.Fatalf("%s: torn or interleaved line %q", name, sc.Text())
				}
				recs = append(recs, rec)
			}
			f.Close()
		}
		return recs, files, sizes
	}

	t.Run("every record exactly once", func(t *testing.T) {
		logPath, _ := run(t, 1000)
		recs, files, _ := readAll(t, logPath)
		seen := map[string]int{}
		for _, r := range recs {
			seen[r["container_id"].(string)]++
		}
		if files < 20 {
			t.Fatalf("only %d files: the log did not rotate many times", files)
		}
		if len(recs) != n || len(seen) != n {
			t.Fatalf("%d records for %d containers across %d files, want %d", len(recs), len(seen), files, n)
		}
		t.Logf("%d processes, %d records, %d files", n, len(recs), files)
	})

	t.Run("backups bounded, only the oldest dropped", func(t *testing.T) {
		const backups = 3
		logPath, _ := run(t, backups)
		recs, files, sizes := readAll(t, logPath)
		if files != backups+1 {
			t.Fatalf("%d files, want the log and %d backups", files, backups)
		}
		// Every backup was rotated because the next record did not fit.
		minRecord := int64(1 << 30)
		seen := map[string]int{}
		for _, r := range recs {
			b, _ := json.Marshal(r)
			minRecord = min(minRecord, int64(len(b)))
			seen[r["container_id"].(string)]++
		}
		for i, size := range sizes[1:] {
			if size > 4096 || size+minRecord <= 4096-64 {
				t.Errorf("backup %d holds %d bytes: not a full file of at most 4096", i+1, size)
			}
		}
		for id, c := range seen {
			if c != 1 {
				t.Fatalf("record of %s present %d times", id, c)
			}
		}
		dropped := n - len(recs)
		perFile := 4096 / int(minRecord+1)
		if dropped != n-len(seen) || dropped < n-(backups+1)*perFile-1 || dropped <= 0 {
			t.Fatalf("%d kept, %d dropped, with at most %d records per file", len(recs), dropped, perFile)
		}
		t.Logf("%d kept in %d files, %d dropped by the bound", len(recs), files, dropped)
	})
}

func TestAgentFaults(t *testing.T) {
	state, _ := bundle(t, "createRuntime", nil)

	t.Run("gRPC error", func(t *testing.T) {
		a := startAgent(t, "--error-code", "INTERNAL")
		args, log := hookArgs(t, "createRuntime", a.address())
		r := runHook(t, state, args...)
		if r.code != 1 || !strings.Contains(oneLine(t, r.stderr), "agent error") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if rec := oneRecord(t, log); rec["error_kind"] != "agent_error" || rec["level"] != "ERROR" || rec["msg"] != "agent error: failed closed" {
			t.Fatalf("record %v", rec)
		}
		args, log = hookArgs(t, "createRuntime", a.address(), "--fail-allow-namespaces", "payments")
		if r := runHook(t, state, args...); r.code != 0 || oneRecord(t, log)["fail_open"] != true {
			t.Fatalf("allowed namespace: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("permission denied is an error, not a verdict", func(t *testing.T) {
		a := startAgent(t, "--error-code", "PERMISSION_DENIED")
		args, log := hookArgs(t, "createRuntime", a.address(), "--fail-allow-namespaces", "payments")
		if r := runHook(t, state, args...); r.code != 0 || oneRecord(t, log)["error_kind"] != "agent_error" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("dies in the middle of a call", func(t *testing.T) {
		// The agent dies once it holds the request: the connection drops
		// mid-call, which ends the call long before the 5 s deadline.
		a := newHoldingAgent(t)
		args, log := hookArgs(t, "createRuntime", a.address(), "--timeout", "5s")
		go func() {
			<-a.received
			a.srv.Stop()
		}()
		r := runHook(t, state, args...)
		if r.code != 1 || !strings.Contains(oneLine(t, r.stderr), "failing closed") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if r.elapsed >= 5*time.Second {
			t.Errorf("decided after %v: the dead connection should end the call, not the 5s deadline", r.elapsed)
		}
		if rec := oneRecord(t, log); rec["error_kind"] != "unreachable" {
			t.Fatalf("record %v", rec)
		}
	})

	t.Run("hung at poststop costs the short poststop deadline", func(t *testing.T) {
		hang := shortDir(t) + "/hung.sock"
		h, err := harness.NewHangingAgent(hang)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		st, _ := bundle(t, "poststop", nil)
		args, log := hookArgs(t, "poststop", "unix://"+hang)
		r := runHook(t, st, args...)
		rec := oneRecord(t, log)
		ms, _ := rec["agent_ms"].(float64)
		// The create deadline is 2 s; poststop's own is 500 ms.
		if r.code != 0 || rec["error_kind"] != "deadline" || ms < 500 || ms >= 2000 {
			t.Fatalf("exit %d, agent_ms %v, record %v", r.code, rec["agent_ms"], rec)
		}
	})

	t.Run("restarted between calls", func(t *testing.T) {
		a := startAgent(t)
		args, _ := hookArgs(t, "createRuntime", a.address())
		if r := runHook(t, state, args...); r.code != 0 {
			t.Fatalf("first call: %q", r.stderr)
		}
		a.stop()
		b := startAgentAt(t, a.socket)
		if r := runHook(t, state, args...); r.code != 0 {
			t.Fatalf("after restart: %q", r.stderr)
		}
		if len(a.readEvents(t)) != 1 || len(b.readEvents(t)) != 1 {
			t.Fatal("each agent should have seen one call")
		}
	})

	t.Run("socket without permission for the hook's user", func(t *testing.T) {
		a := startAgent(t)
		os.Chmod(filepath.Dir(a.socket), 0o755) // the socket itself stays 0600 root
		logDir, _ := os.MkdirTemp("", "phl-")
		defer os.RemoveAll(logDir)
		os.Chmod(logDir, 0o777)
		st := customBundle(t, "c-perm", crioAnnotations("tenant-a"), "")
		cmd := exec.Command(podhook, "createRuntime", "--agent-address", a.address(), "--log-file", filepath.Join(logDir, "podhook.log"), "--agent-uid", "-1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Stdin = strings.NewReader(string(st))
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "permission denied") {
			t.Fatalf("exit %v, output %q", err, out)
		}
		if rec := oneRecord(t, filepath.Join(logDir, "podhook.log")); rec["error_kind"] != "unreachable" {
			t.Fatalf("record %v", rec)
		}
	})
}

// TestOversizedRequest: a 5 MB config.json would make a request above the
// 4 MiB a gRPC server accepts; the hook trims it, so the agent still sees
// the container, its identity and what was left out.
func TestOversizedRequest(t *testing.T) {
	a := startAgent(t)
	state, _ := bundle(t, "createRuntime", func(an map[string]string) { an["tenant.example/blob"] = strings.Repeat("x", 5<<20) })
	args, log := hookArgs(t, "createRuntime", a.address())
	if r := runHook(t, state, args...); r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	evs := a.readEvents(t)
	if len(evs) != 1 || evs[0].Request.Pod.Namespace != "payments" {
		t.Fatalf("agent events %+v", evs)
	}
	c := evs[0].Request.Container
	if len(c.Truncated) != 1 || !strings.HasPrefix(c.Truncated[0], "annotations: kept") || c.Annotations["io.kubernetes.pod.namespace"] != "payments" {
		t.Fatalf("container truncated %q, %d annotations", c.Truncated, len(c.Annotations))
	}
	if rec := oneRecord(t, log); rec["truncated"] == nil || rec["decision"] != "allow" {
		t.Fatalf("record %v", rec)
	}
}

// TestBadBundles: config.json that cannot be used never hangs the hook; it
// goes on with the state's annotations and says so.
func TestBadBundles(t *testing.T) {
	cases := map[string]func(t *testing.T, path string){
		"symlink to /dev/zero": func(t *testing.T, path string) { os.Symlink("/dev/zero", path) },
		"fifo":                 func(t *testing.T, path string) { syscall.Mkfifo(path, 0o600) },
		"directory":            func(t *testing.T, path string) { os.Mkdir(path, 0o700) },
		"invalid":              func(t *testing.T, path string) { os.WriteFile(path, []byte("{"), 0o600) },
		"larger than 16 MiB": func(t *testing.T, path string) {
			f, _ := os.Create(path)
			f.Truncate(16<<20 + 1)
			f.Close()
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			state, dir := bundle(t, "createRuntime", nil)
			path := filepath.Join(dir, "config.json")
			os.Remove(path)
			setup(t, path)
			args, log := hookArgs(t, "createRuntime", "unix:///nonexistent/agent.sock", "--fail-allow-namespaces", "payments")
			r := runHook(t, state, args...)
			if r.code != 0 || r.elapsed > 2*time.Second {
				t.Fatalf("exit %d after %v, stderr %q", r.code, r.elapsed, r.stderr)
			}
			rec := oneRecord(t, log)
			if rec["spec_error"] == nil || rec["pod_namespace"] != "payments" || rec["fail_open"] != true {
				t.Fatalf("record %v", rec)
			}
		})
	}
	t.Run("huge annotation", func(t *testing.T) {
		a := crioAnnotations("tenant-a")
		a["example.com/"+strings.Repeat("k", 250)] = strings.Repeat("v", 2<<20)
		st := customBundle(t, "c-huge", a, "")
		ag := startAgent(t)
		args, log := hookArgs(t, "createRuntime", ag.address())
		if r := runHook(t, st, args...); r.code != 0 {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if rec := oneRecord(t, log); rec["decision"] != "allow" {
			t.Fatalf("record %v", rec)
		}
	})
}

func TestLogPathFaults(t *testing.T) {
	a := startAgent(t)
	state, _ := bundle(t, "createRuntime", nil)

	t.Run("symlink at the log path", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "target")
		os.WriteFile(target, []byte("untouched\n"), 0o600)
		link := filepath.Join(dir, "podhook.log")
		os.Symlink(target, link)
		r := runHook(t, state, "createRuntime", "--agent-address", a.address(), "--log-file", link)
		if r.code != 0 || !strings.Contains(oneLine(t, r.stderr), "symlink") || !strings.Contains(r.stderr, "decision stands") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if b, _ := os.ReadFile(target); string(b) != "untouched\n" {
			t.Fatalf("symlink target written: %q", b)
		}
	})

	t.Run("log directory cannot be created", func(t *testing.T) {
		for _, stage := range []string{"createRuntime", "poststop"} {
			st, _ := bundle(t, stage, nil)
			r := runHook(t, st, stage, "--agent-address", a.address(), "--log-file", "/dev/null/podhook/podhook.log")
			if r.code != 0 || !strings.Contains(oneLine(t, r.stderr), "cannot write the log") {
				t.Fatalf("%s: exit %d, stderr %q", stage, r.code, r.stderr)
			}
		}
		// A stop still stops, and says why first, with the log broken too:
		// one line, the reason then the note.
		r := runHook(t, state, "createRuntime", "--agent-address", "unix:///nonexistent/a.sock", "--log-file", "/dev/null/podhook/podhook.log")
		line := oneLine(t, r.stderr)
		if r.code != 1 || !strings.HasPrefix(line, "podhook: agent unreachable") || !strings.Contains(line, "failing closed") ||
			!strings.Contains(line, "cannot write the log") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	// A log lock that another process never releases, and a FIFO at the
	// log path, must not hold the decision: it arrives within the lock's
	// wait bound (1 s) plus the time the same invocation takes without the
	// fault, measured here, with a margin for a loaded machine.
	down := []string{"createRuntime", "--agent-address", "unix:///nonexistent/a.sock", "--fail-allow-namespaces", "payments"}
	timed := func(args ...string) (result, time.Duration) {
		start := time.Now()
		r := runHook(t, state, append(append([]string{}, down...), args...)...)
		return r, time.Since(start)
	}
	t.Run("log lock held by another process", func(t *testing.T) {
		log := filepath.Join(t.TempDir(), "podhook.log")
		_, floor := timed("--log-file", log)
		holder, err := os.OpenFile(log+".lock", os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Close()
		if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		r, took := timed("--log-file", log)
		if r.code != 0 || !strings.Contains(r.stderr, "log lock held by another process") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if took > floor+time.Second+3*time.Second {
			t.Fatalf("decided after %v (%v without the fault)", took, floor)
		}
		if recs := logRecords(t, log); len(recs) != 2 || recs[1]["fail_open"] != true {
			t.Fatalf("records %v", recs)
		}
	})
	t.Run("FIFO at the log path", func(t *testing.T) {
		log := filepath.Join(t.TempDir(), "podhook.log")
		_, floor := timed("--log-file", filepath.Join(t.TempDir(), "podhook.log"))
		if err := syscall.Mkfifo(log, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, reader := range []bool{false, true} {
			if reader {
				f, err := os.OpenFile(log, os.O_RDONLY|syscall.O_NONBLOCK, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
			}
			r, took := timed("--log-file", log)
			if r.code != 0 || !strings.Contains(r.stderr, "not a regular file") {
				t.Fatalf("reader=%v: exit %d, stderr %q", reader, r.code, r.stderr)
			}
			if took > floor+3*time.Second {
				t.Fatalf("reader=%v: decided after %v (%v without the fault)", reader, took, floor)
			}
		}
	})

	t.Run("modes of created files", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new", "logs")
		log := filepath.Join(dir, "podhook.log")
		if r := runHook(t, state, "createRuntime", "--agent-address", a.address(), "--log-file", log); r.code != 0 {
			t.Fatal(r.stderr)
		}
		for path, want := range map[string]os.FileMode{dir: os.ModeDir | 0o700, log: 0o600, log + ".lock": 0o600} {
			if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
				t.Errorf("%s: %v %v, want %v", path, fi.Mode(), err, want)
			}
		}
	})
}

// TestForgedIdentityMatrix: with the agent down and only kube-system
// allowed to fail open, no forged key lets a tenant's container start.
func TestForgedIdentityMatrix(t *testing.T) {
	uid := "3f2b9c1e-5a4d-4e8f-9b7a-1c2d3e4f5a6b"
	base := map[string]map[string]string{
		"cri-o": crioAnnotations("tenant-a"),
		"podman": func() map[string]string {
			a := crioAnnotations("tenant-a")
			a["io.container.manager"] = "libpod"
			return a
		}(),
		"containerd": {
			"io.kubernetes.cri.container-type":    "container",
			"io.kubernetes.cri.sandbox-namespace": "tenant-a",
			"io.kubernetes.cri.sandbox-name":      "web-1",
			"io.kubernetes.cri.sandbox-uid":       uid,
			"io.kubernetes.cri.container-name":    "web",
		},
	}
	forgeries := map[string]map[string]string{
		"containerd's namespace key": {"io.kubernetes.cri.sandbox-namespace": "kube-system"},
		"cri-o's namespace key":      {"io.kubernetes.pod.namespace": "kube-system"},
		"cri-o pass-through key":     {"io.kubernetes.cri-o.Namespace": "kube-system"},
		"containerd marker and keys": {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-namespace": "kube-system", "io.kubernetes.cri.sandbox-name": "x", "io.kubernetes.cri.sandbox-uid": uid},
		"cri-o marker and keys":      {"io.container.manager": "cri-o", "io.kubernetes.pod.namespace": "kube-system", "io.kubernetes.pod.name": "x", "io.kubernetes.pod.uid": uid},
	}
	count := 0
	for rt, annotations := range base {
		for name, forged := range forgeries {
			a := map[string]string{}
			for k, v := range annotations {
				a[k] = v
			}
			// A pod adds keys; it cannot change the ones its runtime writes
			// (CRI-O and containerd write theirs after the pod's).
			overwrites := false
			for k, v := range forged {
				if old, ok := a[k]; ok && old != v {
					overwrites = true
				}
				a[k] = v
			}
			if overwrites {
				continue
			}
			for _, hint := range []string{"auto", rt} {
				count++
				t.Run(rt+"/"+name+"/runtime="+hint, func(t *testing.T) {
					st := customBundle(t, "c-forged", a, "")
					args, log := hookArgs(t, "createRuntime", "unix:///nonexistent/a.sock", "--fail-allow-namespaces", "kube-system", "--runtime", hint)
					r := runHook(t, st, args...)
					rec := oneRecord(t, log)
					if r.code != 1 || rec["fail_open"] != false {
						t.Fatalf("a forged identity failed open: exit %d, record %v", r.code, rec)
					}
				})
			}
		}
	}
	// Duplicated keys: the last says kube-system, the first tenant-a.
	t.Run("duplicated namespace key", func(t *testing.T) {
		st := customBundle(t, "c-dup", crioAnnotations("tenant-a"), "")
		var s map[string]string
		json.Unmarshal(st, &s)
		var state map[string]any
		json.Unmarshal(st, &state)
		path := filepath.Join(state["bundle"].(string), "config.json")
		b, _ := os.ReadFile(path)
		b = []byte(strings.Replace(string(b), `"annotations":{`, `"annotations":{"io.kubernetes.pod.namespace":"tenant-a",`, 1))
		b = []byte(strings.Replace(string(b), `"io.kubernetes.pod.namespace":"tenant-a"}`, `"io.kubernetes.pod.namespace":"kube-system"}`, 1))
		os.WriteFile(path, b, 0o644)
		args, log := hookArgs(t, "createRuntime", "unix:///nonexistent/a.sock", "--fail-allow-namespaces", "kube-system")
		r := runHook(t, st, args...)
		rec := oneRecord(t, log)
		if r.code != 1 || !strings.Contains(fmt.Sprint(rec["identity_conflict"]), "more than once") {
			t.Fatalf("exit %d, record %v, config %s", r.code, rec, b)
		}
	})
	t.Logf("%d forged combinations refused", count+1)
}
