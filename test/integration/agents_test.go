package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/harness"
)

// agentsConfig writes a config file with settings over an agents list and
// returns the hook's arguments for stage (the file, a fresh log) and the
// log's path.
func agentsConfig(t *testing.T, stage string, agents []map[string]any, settings map[string]any) ([]string, string) {
	t.Helper()
	cfg := map[string]any{"agents": agents, "agent_uid": -1}
	for k, v := range settings {
		cfg[k] = v
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(t.TempDir(), "podhook-config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "log", "podhook.log")
	return []string{stage, "--config", path, "--log-file", log}, log
}

func podhookAgent(address string, required bool) map[string]any {
	return map[string]any{"name": "reference", "address": address, "required": required}
}

func tetragonPeer(address string, required bool) map[string]any {
	return map[string]any{"name": "tetragon", "address": address, "protocol": "tetragon", "required": required}
}

// outcomes are the record's agents list, by name.
func outcomes(t *testing.T, rec map[string]any) map[string]map[string]any {
	t.Helper()
	list, ok := rec["agents"].([]any)
	if !ok {
		t.Fatalf("record without agents: %v", rec)
	}
	out := map[string]map[string]any{}
	for _, a := range list {
		m := a.(map[string]any)
		out[m["name"].(string)] = m
	}
	return out
}

// TestTwoAgents: the reference agent and the Tetragon stand-in, each on
// its own socket, both shown the same create at once: both receive the
// trusted identity; a DENY from either stops the container and names it
// (the first in the list's order);
// poststop reaches the agent that has a stop event.
func TestTwoAgents(t *testing.T) {
	t.Run("both receive the trusted identity", func(t *testing.T) {
		ref, tet := startAgent(t), startTetragon(t)
		state, _ := bundle(t, "createRuntime", nil)
		args, log := agentsConfig(t, "createRuntime", []map[string]any{tetragonPeer(tet.address(), true), podhookAgent(ref.address(), true)}, nil)
		if r := runHook(t, state, args...); r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		evs, got := ref.readEvents(t), tet.received(t)
		if len(evs) != 1 || len(got) != 1 {
			t.Fatalf("reference received %d, tetragon %d", len(evs), len(got))
		}
		r := evs[0].Request
		if r.Pod.Namespace != "payments" || r.Pod.Name != "checkout-6c9d8b7f5-x2x9q" || !r.Identity.Trusted || r.Container.ID != fixtureID {
			t.Fatalf("reference received %+v", r)
		}
		if got[0].PodNamespace != "payments" || got[0].PodName != "checkout-6c9d8b7f5-x2x9q" || got[0].ContainerID != fixtureID || got[0].PodUID != r.Pod.UID {
			t.Fatalf("tetragon received %+v", got[0])
		}
		rec := oneRecord(t, log)
		o := outcomes(t, rec)
		if rec["decision"] != "allow" || o["tetragon"]["verdict"] != "allow" || o["tetragon"]["protocol"] != "tetragon" ||
			o["reference"]["verdict"] != "allow" || o["reference"]["protocol"] != "podhook.v1" || rec["agent_protocol"] != nil {
			t.Fatalf("record %v", rec)
		}
		t.Logf("one container, two agents: reference got %s/%s uid %s trusted=%v; tetragon got %s/%s uid %s; record agents %v",
			r.Pod.Namespace, r.Pod.Name, r.Pod.UID, r.Identity.Trusted, got[0].PodNamespace, got[0].PodName, got[0].PodUID, rec["agents"])

		// poststop: podhook's protocol has a stop event, Tetragon's none.
		stop, _ := bundle(t, "poststop", nil)
		args[0] = "poststop"
		if r := runHook(t, stop, args...); r.code != 0 {
			t.Fatalf("poststop: exit %d, %q", r.code, r.stderr)
		}
		if evs := ref.readEvents(t); len(evs) != 2 || evs[1].RPC != "StopContainer" {
			t.Fatalf("reference after poststop: %+v", evs)
		}
	})

	t.Run("a DENY from the reference agent stops it", func(t *testing.T) {
		ref, tet := startAgent(t, "--deny-namespace", "payments"), startTetragon(t)
		state, _ := bundle(t, "createRuntime", nil)
		args, log := agentsConfig(t, "createRuntime", []map[string]any{tetragonPeer(tet.address(), true), podhookAgent(ref.address(), false)},
			map[string]any{"fail_allow_namespaces": []string{"payments"}})
		r := runHook(t, state, args...)
		if line := oneLine(t, r.stderr); r.code != 1 || line != `podhook: agent "reference": denied by agent: namespace "payments" is denied by podhook-agent` {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if len(tet.received(t)) != 1 {
			t.Fatal("tetragon was not shown the create")
		}
		o := outcomes(t, oneRecord(t, log))
		if o["reference"]["verdict"] != "deny" || o["tetragon"]["verdict"] != "allow" {
			t.Fatalf("outcomes %v", o)
		}
	})

	t.Run("a forged identity reaches neither as trusted, and the Tetragon side denies", func(t *testing.T) {
		ref, tet := startAgent(t), startTetragon(t)
		// containerd's marker in a CRI-O container: the trust rule
		// distrusts the identity.
		state, _ := bundle(t, "createRuntime", func(an map[string]string) { an["io.kubernetes.cri.container-type"] = "container" })
		args, log := agentsConfig(t, "createRuntime", []map[string]any{tetragonPeer(tet.address(), true), podhookAgent(ref.address(), true)}, nil)
		r := runHook(t, state, args...)
		if r.code != 1 || !strings.Contains(r.stderr, `agent "tetragon": denied by podhook`) {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if evs := ref.readEvents(t); len(evs) != 1 || evs[0].Request.Identity.Trusted {
			t.Fatalf("reference received %+v", evs)
		}
		if got := tet.received(t); len(got) != 0 {
			t.Fatalf("tetragon received an identity podhook does not trust: %+v", got)
		}
		// The reference agent denies what podhook does not trust, too.
		if o := outcomes(t, oneRecord(t, log)); o["tetragon"]["verdict"] != "deny" || o["reference"]["verdict"] != "deny" {
			t.Fatalf("outcomes %v", o)
		}
	})
}

// TestAgentFaultsRequiredOrOptional: next to a live reference agent, one
// agent hung or down, required or optional. A required one sends the
// container through the fail check; an optional one's failure is recorded
// and stops nothing. A hung agent is decided at the one deadline, not at
// the sum of two.
func TestAgentFaultsRequiredOrOptional(t *testing.T) {
	const timeout = time.Second
	for _, fault := range []string{"hung", "down"} {
		for _, required := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, required=%v", fault, required), func(t *testing.T) {
				ref := startAgent(t)
				sock := filepath.Join(shortDir(t), "faulty.sock")
				if fault == "hung" {
					h, err := harness.NewHangingAgent(sock)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { h.Close() })
				}
				faulty := map[string]any{"name": "faulty", "address": "unix://" + sock, "required": required}
				state, _ := bundle(t, "createRuntime", nil)
				args, log := agentsConfig(t, "createRuntime", []map[string]any{podhookAgent(ref.address(), true), faulty},
					map[string]any{"timeout": timeout.String()})
				r := runHook(t, state, args...)
				if len(ref.readEvents(t)) != 1 {
					t.Fatal("the live agent was not shown the create")
				}
				rec := oneRecord(t, log)
				o := outcomes(t, rec)
				kind := map[string]string{"hung": "deadline", "down": "unreachable"}[fault]
				if o["faulty"]["error_kind"] != kind || o["faulty"]["verdict"] != nil || o["reference"]["verdict"] != "allow" {
					t.Fatalf("outcomes %v", o)
				}
				if required {
					if r.code != 1 || !strings.Contains(r.stderr, `agent "faulty": agent `) || !strings.Contains(r.stderr, `namespace "payments" is not on the fail-allow list: failing closed`) {
						t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
					}
				} else if r.code != 0 || rec["decision"] != "allow" || rec["error"] != nil {
					t.Fatalf("an optional agent's failure stopped it: exit %d, stderr %q, record %v", r.code, r.stderr, rec)
				}
				if fault == "hung" {
					ms := rec["agent_ms"].(float64)
					if ms < float64(timeout.Milliseconds())*0.9 || ms > float64(timeout.Milliseconds())*1.8 {
						t.Fatalf("agents took %.0f ms with a %v deadline: want one deadline, not two", ms, timeout)
					}
				}
			})
		}
	}

	t.Run("both hung, both required: one deadline", func(t *testing.T) {
		var agents []map[string]any
		for _, name := range []string{"one", "two"} {
			sock := filepath.Join(shortDir(t), name+".sock")
			h, err := harness.NewHangingAgent(sock)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Close() })
			agents = append(agents, map[string]any{"name": name, "address": "unix://" + sock})
		}
		state, _ := bundle(t, "createRuntime", nil)
		args, log := agentsConfig(t, "createRuntime", agents, map[string]any{"timeout": timeout.String(), "fail_allow_namespaces": []string{"payments"}})
		r := runHook(t, state, args...)
		rec := oneRecord(t, log)
		if r.code != 0 || rec["fail_open"] != true || !strings.Contains(rec["reason"].(string), `agent "one"`) || !strings.Contains(rec["reason"].(string), `agent "two"`) {
			t.Fatalf("exit %d, record %v", r.code, rec)
		}
		if ms := rec["agent_ms"].(float64); ms > float64(timeout.Milliseconds())*1.8 {
			t.Fatalf("two hung agents took %.0f ms with a %v deadline", ms, timeout)
		}
	})
}

// TestAuditMode: a create that would be stopped (a DENY, or the fail check
// failing closed) starts in audit, and its record says what would have
// happened; the agents are told exactly what they are told in enforce;
// per-namespace audit covers only the trusted identities of its
// namespaces.
func TestAuditMode(t *testing.T) {
	ref := startAgent(t, "--deny-namespace", "payments")
	state, _ := bundle(t, "createRuntime", nil)
	agents := []map[string]any{podhookAgent(ref.address(), true)}

	enforce, elog := agentsConfig(t, "createRuntime", agents, nil)
	if r := runHook(t, state, enforce...); r.code != 1 {
		t.Fatalf("enforce: exit %d", r.code)
	}
	if rec := oneRecord(t, elog); rec["decision"] != "deny" || rec["would_deny"] != nil {
		t.Fatalf("enforce record %v", rec)
	}

	for name, settings := range map[string]map[string]any{
		"global":          {"mode": "audit"},
		"namespace":       {"audit_namespaces": []string{"payments"}},
		"namespace regex": {"audit_namespace_regex": []string{"pay.*"}},
	} {
		t.Run(name, func(t *testing.T) {
			args, log := agentsConfig(t, "createRuntime", agents, settings)
			r := runHook(t, state, args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			rec := oneRecord(t, log)
			if rec["decision"] != "allow" || rec["would_deny"] != true || rec["mode"] != "audit" || rec["level"] != "WARN" ||
				rec["reason"] != `agent "reference": denied by agent: namespace "payments" is denied by podhook-agent` ||
				!strings.HasPrefix(rec["msg"].(string), "audit: would be stopped") {
				t.Fatalf("record %v", rec)
			}
		})
	}
	// Audit never changes what the agent is told.
	evs := ref.readEvents(t)
	if len(evs) != 4 {
		t.Fatalf("agent received %d creates, want 4", len(evs))
	}
	for _, ev := range evs[1:] {
		if !reflect.DeepEqual(ev.Request, evs[0].Request) {
			t.Fatalf("in audit the agent received\n%+v\nin enforce\n%+v", ev.Request, evs[0].Request)
		}
	}

	t.Run("another namespace enforces", func(t *testing.T) {
		args, log := agentsConfig(t, "createRuntime", agents, map[string]any{"audit_namespaces": []string{"staging"}})
		if r := runHook(t, state, args...); r.code != 1 {
			t.Fatalf("exit %d", r.code)
		}
		if rec := oneRecord(t, log); rec["decision"] != "deny" || rec["would_deny"] != nil {
			t.Fatalf("record %v", rec)
		}
	})

	t.Run("a forged identity cannot audit its way in", func(t *testing.T) {
		forged, _ := bundle(t, "createRuntime", func(an map[string]string) { an["io.kubernetes.cri.container-type"] = "container" })
		args, log := agentsConfig(t, "createRuntime", agents, map[string]any{"audit_namespaces": []string{"payments"}})
		if r := runHook(t, forged, args...); r.code != 1 {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if rec := oneRecord(t, log); rec["would_deny"] != nil {
			t.Fatalf("record %v", rec)
		}
	})

	t.Run("failing closed, in audit, starts", func(t *testing.T) {
		down := []map[string]any{{"name": "gone", "address": "unix://" + filepath.Join(shortDir(t), "gone.sock")}}
		args, log := agentsConfig(t, "createRuntime", down, map[string]any{"mode": "audit"})
		if r := runHook(t, state, args...); r.code != 0 {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		rec := oneRecord(t, log)
		if rec["decision"] != "allow" || rec["would_deny"] != true || rec["fail_open"] != false || !strings.Contains(rec["reason"].(string), "failing closed") {
			t.Fatalf("record %v", rec)
		}
	})

	t.Run("the stage flags", func(t *testing.T) {
		args, log := hookArgs(t, "createRuntime", ref.address(), "--agent-uid", "-1", "--audit-namespaces", "payments")
		if r := runHook(t, state, args...); r.code != 0 {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if rec := oneRecord(t, log); rec["would_deny"] != true || rec["reason"] != `denied by agent: namespace "payments" is denied by podhook-agent` {
			t.Fatalf("record %v", rec)
		}
	})
}

// TestCheckAndValidateTheAgentsList: check probes every agent in its own
// protocol and fails only for a required one; validate refuses duplicate
// names and addresses.
func TestCheckAndValidateTheAgentsList(t *testing.T) {
	ref, tet := startAgent(t), startTetragon(t)
	gone := "unix://" + filepath.Join(shortDir(t), "gone.sock")
	write := func(agents []map[string]any) string {
		args, _ := agentsConfig(t, "check", agents, nil)
		return args[2]
	}
	live := write([]map[string]any{podhookAgent(ref.address(), true), tetragonPeer(tet.address(), true)})
	if r := runHook(t, nil, "check", "--config", live); r.code != 0 ||
		!strings.Contains(r.stdout, `agent "reference" at `+ref.address()+` is serving (grpc.health.v1`) ||
		!strings.Contains(r.stdout, `agent "tetragon" at `+tet.address()+` is serving (Tetragon v1.6.0-tetragonagent`) {
		t.Fatalf("check: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	optional := write([]map[string]any{podhookAgent(ref.address(), true), {"name": "inventory", "address": gone, "required": false}})
	if r := runHook(t, nil, "check", "--config", optional); r.code != 0 || !strings.Contains(r.stdout, `agent "inventory" at `+gone+` is not serving (optional`) {
		t.Fatalf("check, optional down: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	required := write([]map[string]any{podhookAgent(ref.address(), true), {"name": "policy", "address": gone}})
	if r := runHook(t, nil, "check", "--config", required); r.code != 1 || !strings.Contains(r.stderr, `agent "policy" at `+gone+` is not serving`) {
		t.Fatalf("check, required down: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	if r := runHook(t, nil, "validate", "--config", live); r.code != 0 {
		t.Fatalf("validate: exit %d, %q", r.code, r.stderr)
	}
	for name, agents := range map[string][]map[string]any{
		"duplicate name":    {podhookAgent(ref.address(), true), podhookAgent(gone, true)},
		"duplicate address": {podhookAgent(ref.address(), true), tetragonPeer(ref.address(), true)},
	} {
		if r := runHook(t, nil, "validate", "--config", write(agents)); r.code == 0 || !strings.Contains(r.stderr, "is also agents[0]'s") {
			t.Errorf("validate, %s: exit %d, stderr %q", name, r.code, r.stderr)
		}
	}
}

// TestAgentsAndAuditInTheMetrics: podhook-monitor counts each agent's
// outcome and every create audit let start.
func TestAgentsAndAuditInTheMetrics(t *testing.T) {
	ref, tet := startAgent(t, "--deny-namespace", "payments"), startTetragon(t)
	state, _ := bundle(t, "createRuntime", nil)
	args, log := agentsConfig(t, "createRuntime", []map[string]any{podhookAgent(ref.address(), true), tetragonPeer(tet.address(), false)},
		map[string]any{"mode": "audit"})
	addr := harness.FreeAddress(t)
	cmd := exec.Command(filepath.Join(filepath.Dir(podhook), "podhook-monitor"), "--log-file", log, "--metrics-address", addr, "--poll-interval", "50ms")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitFor(t, "the monitor serving", func() bool { _, ok := sample(addr, "podhook_log_file_present"); return ok })
	for range 2 {
		if r := runHook(t, state, args...); r.code != 0 {
			t.Fatalf("exit %d, %q", r.code, r.stderr)
		}
	}
	// One agent from the single-agent settings, in enforce.
	single, _ := hookArgs(t, "createRuntime", ref.address(), "--log-file", log, "--agent-uid", "-1")
	if r := runHook(t, state, single...); r.code != 1 {
		t.Fatalf("exit %d, %q", r.code, r.stderr)
	}
	want := map[string]string{
		`podhook_would_deny_total{error_kind="denied",runtime="cri-o"}`:                                                         "2",
		`podhook_agent_outcomes_total{agent="reference",outcome="deny",protocol="podhook.v1",stage="createRuntime"}`:            "2",
		`podhook_agent_outcomes_total{agent="tetragon",outcome="allow",protocol="tetragon",stage="createRuntime"}`:              "2",
		`podhook_agent_outcomes_total{agent="agent",outcome="deny",protocol="podhook.v1",stage="createRuntime"}`:                "1",
		`podhook_decisions_total{decision="allow",error_kind="denied",fail_open="false",runtime="cri-o",stage="createRuntime"}`: "2",
		`podhook_agent_seconds_count{agent="tetragon",stage="createRuntime"}`:                                                   "2",
	}
	for series, value := range want {
		waitFor(t, series+" "+value, func() bool { v, _ := sample(addr, series+" "); return v == value })
	}

}

// TestInstallAndDryRunTakeTheList: install puts a config with the agents
// list in place (refusing one with duplicates) and --check-agent probes
// each; the dry run prints each agent's request in its protocol.
func TestInstallAndDryRunTakeTheList(t *testing.T) {
	ref, tet := startAgent(t), startTetragon(t)
	args, _ := agentsConfig(t, "createRuntime", []map[string]any{podhookAgent(ref.address(), true), tetragonPeer(tet.address(), true)}, nil)
	cfg := args[2]
	root := t.TempDir()
	r := runHook(t, nil, "install", "--host-root", root, "--config-from", cfg, "--check-agent")
	if r.code != 0 || !strings.Contains(r.stdout, `agent "reference" at `+ref.address()+` is serving`) || !strings.Contains(r.stdout, `agent "tetragon" at `+tet.address()+` is serving`) {
		t.Fatalf("install: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	installed, _ := os.ReadFile(filepath.Join(root, "opt/podhook/podhook-config.json"))
	if !strings.Contains(string(installed), `"tetragon"`) {
		t.Fatalf("installed config %s", installed)
	}
	dup, _ := agentsConfig(t, "createRuntime", []map[string]any{podhookAgent(ref.address(), true), podhookAgent(tet.address(), true)}, nil)
	if r := runHook(t, nil, "install", "--host-root", t.TempDir(), "--config-from", dup[2]); r.code == 0 || !strings.Contains(r.stderr, `name "reference" is also agents[0]'s`) {
		t.Fatalf("install of a duplicate name: exit %d, stderr %q", r.code, r.stderr)
	}

	state, _ := bundle(t, "createRuntime", nil)
	dry := runHook(t, state, append(args, "--dry-run")...)
	if dry.code != 0 || !strings.Contains(dry.stdout, `agent "reference" (podhook.v1, required):`) || !strings.Contains(dry.stdout, `agent "tetragon" (tetragon, required):`) ||
		!strings.Contains(dry.stdout, `"createContainer"`) || !strings.Contains(dry.stdout, `"protocolVersion"`) || !strings.Contains(dry.stdout, "if the agents were unreachable: deny (exit 1)") {
		t.Fatalf("dry run: exit %d, stdout %s", dry.code, dry.stdout)
	}
	if len(ref.readEvents(t)) != 0 || len(tet.received(t)) != 0 {
		t.Fatal("the dry run reached an agent")
	}
}
