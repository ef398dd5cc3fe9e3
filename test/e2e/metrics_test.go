//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podhook/podhook/test/harness"
)

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(harness.FreeAddress(t))
	n, _ := strconv.Atoi(port)
	return n
}

// startDaemon starts a long-running program for the test and waits until
// its port answers.
func startDaemon(t *testing.T, port int, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, _ := os.Create(filepath.Join(t.TempDir(), filepath.Base(name)+".log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("%s:\n%s", name, b)
		}
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		if i == 1000 {
			t.Fatalf("%s did not listen on %d", name, port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// promQuery runs an instant query against Prometheus's HTTP API.
func promQuery(t *testing.T, port int, q string) []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
} {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/query?query=%s", port, url.QueryEscape(q)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("query %q: %v %+v", q, err, r)
	}
	return r.Data.Result
}

// TestMetricsInPrometheus: podman runs containers through the hook (allow,
// deny, fail closed, fail open); podhook-monitor follows the hook's log; a
// real Prometheus scrapes it; what Prometheus answers equals the log's
// records, and podhook's alert rules load in it.
func TestMetricsInPrometheus(t *testing.T) {
	for _, bin := range []string{"prometheus", "promtool"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s: %v (apt-get install prometheus)", bin, err)
		}
	}
	e := newEnv(t)
	metricsPort, promPort := freePort(t), freePort(t)
	startDaemon(t, metricsPort, filepath.Join(filepath.Dir(podhook), "podhook-monitor"), "--log-file", e.log,
		"--metrics-address", fmt.Sprintf("127.0.0.1:%d", metricsPort), "--poll-interval", "200ms")

	e.startAgent("--deny-namespace", "denied")
	for _, ns := range []string{"payments", "payments", "denied"} {
		e.podman(crio(ns, "web-1", "web"), "true")
	}
	e.agent.Process.Signal(syscall.SIGTERM)
	e.agent.Wait()
	e.podman(crio("payments", "web-1", "web"), "true")        // fails closed
	e.podman(crio("kube-system", "proxy-1", "proxy"), "true") // fails open

	want := map[string]int{}
	for _, r := range e.records() {
		want[fmt.Sprintf("%v/%v/%v", r["stage"], r["decision"], r["fail_open"])]++
	}

	rules, _ := filepath.Abs("../../contrib/prometheus/podhook-rules.yaml")
	if out, err := exec.Command("promtool", "check", "rules", rules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := exec.Command("promtool", "test", "rules", strings.TrimSuffix(rules, ".yaml")+".test.yaml").CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [%q]\nscrape_configs:\n  - job_name: podhook\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n", rules, metricsPort)
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600)
	startDaemon(t, promPort, "prometheus", "--config.file", filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", fmt.Sprintf("127.0.0.1:%d", promPort))

	// Prometheus listens before it is ready to answer queries.
	for i := 0; ; i++ {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/-/ready", promPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if i == 1500 {
			t.Fatal("Prometheus never became ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Prometheus answers the log's counts once it has scraped them.
	var got map[string]int
	deadline := time.Now().Add(60 * time.Second)
	for {
		got = map[string]int{}
		for _, s := range promQuery(t, promPort, `sum by (stage, decision, fail_open) (podhook_decisions_total)`) {
			var n int
			fmt.Sscan(s.Value[1].(string), &n)
			got[fmt.Sprintf("%s/%s/%s", s.Metric["stage"], s.Metric["decision"], s.Metric["fail_open"])] = n
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus counts %v, the log's records %v", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("Prometheus and the log agree: %v", got)
	if want["createRuntime/deny/false"] != 2 || want["createRuntime/allow/true"] != 1 || want["createRuntime/allow/false"] != 2 {
		t.Fatalf("the runs did not decide as planned: %v", want)
	}

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/rules", promPort))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"name":"PodhookFailingClosed"`) || strings.Contains(string(b), `"health":"err"`) {
		t.Fatalf("rules in Prometheus: %s", b)
	}
}
