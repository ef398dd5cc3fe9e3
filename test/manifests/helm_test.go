package manifests

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/podhook/podhook/internal/config"
)

const chart = "../../contrib/helm/podhook"

// helmBin is the real helm (make manifests builds it and sets
// PODHOOK_HELM); without it these tests say so and skip.
func helmBin(t *testing.T) string {
	t.Helper()
	h := os.Getenv("PODHOOK_HELM")
	if h == "" {
		t.Skip("PODHOOK_HELM is not set: make manifests builds helm and runs these tests")
	}
	return h
}

// render runs helm template with args and decodes every object strictly.
func render(t *testing.T, args ...string) (cm corev1.ConfigMap, ds appsv1.DaemonSet) {
	t.Helper()
	out, err := exec.Command(helmBin(t), append([]string{"template", "podhook", chart, "--namespace", "podhook"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm template %q: %v\n%s", args, err, out)
	}
	kinds := map[string]int{}
	for _, doc := range bytes.Split(out, []byte("\n---\n")) {
		var meta struct{ Kind string }
		if yaml.Unmarshal(doc, &meta) != nil || meta.Kind == "" {
			continue
		}
		kinds[meta.Kind]++
		var into any
		switch meta.Kind {
		case "ConfigMap":
			into = &cm
		case "DaemonSet":
			into = &ds
		default:
			t.Fatalf("unexpected %s", meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			t.Fatalf("%s: %v\n%s", meta.Kind, err, doc)
		}
	}
	if kinds["ConfigMap"] != 1 || kinds["DaemonSet"] != 1 {
		t.Fatalf("rendered %v", kinds)
	}
	return cm, ds
}

func configOf(t *testing.T, cm corev1.ConfigMap) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(cm.Data[config.FileName]), &m); err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse([]byte(cm.Data[config.FileName]))
	if err != nil {
		t.Fatal(err)
	}
	if err := config.Defaults().Merge(c).Validate(true); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestHelmLint(t *testing.T) {
	for _, set := range [][]string{nil, {"--set", "interface=nri"}} {
		out, err := exec.Command(helmBin(t), append([]string{"lint", chart}, set...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm lint %q: %v\n%s", set, err, out)
		}
	}
}

// TestHelmMatchesKustomize: the chart's default values render the same
// DaemonSet and configuration as the kustomize variants, for each
// interface.
func TestHelmMatchesKustomize(t *testing.T) {
	for iface, variant := range map[string]string{"hooksd": ".", "nri": "nri"} {
		t.Run(iface, func(t *testing.T) {
			cm, ds := render(t, "--set", "interface="+iface)
			_, kcm, kds := build(t, variant)
			podSpecChecks(t, "helm "+iface, ds)
			if !reflect.DeepEqual(ds.Spec, kds.Spec) {
				a, _ := yaml.Marshal(ds.Spec)
				b, _ := yaml.Marshal(kds.Spec)
				t.Fatalf("helm's DaemonSet spec differs from kustomize's:\n--- helm\n%s\n--- kustomize\n%s", a, b)
			}
			if ds.Name != kds.Name || cm.Name != kcm.Name || !reflect.DeepEqual(configOf(t, cm), configOf(t, kcm)) {
				t.Fatalf("names or config differ: %s %s, %v vs %v", ds.Name, cm.Name, configOf(t, cm), configOf(t, kcm))
			}
		})
	}
}

// TestHelmUninstall: uninstall=true renders the kustomize uninstall
// variant's DaemonSet.
func TestHelmUninstall(t *testing.T) {
	_, ds := render(t, "--set", "uninstall=true")
	_, _, kds := build(t, "uninstall")
	if !reflect.DeepEqual(ds.Spec, kds.Spec) {
		a, _ := yaml.Marshal(ds.Spec)
		b, _ := yaml.Marshal(kds.Spec)
		t.Fatalf("helm's uninstall DaemonSet differs from kustomize's:\n--- helm\n%s\n--- kustomize\n%s", a, b)
	}
}

// TestHelmValues: each documented value reaches the objects.
func TestHelmValues(t *testing.T) {
	cm, ds := render(t,
		"--set", "image.repository=registry.invalid/podhook", "--set", "image.tag=v9",
		"--set", "agent.address=unix:///var/run/tetragon/tetragon.sock", "--set", "agent.protocol=tetragon",
		"--set", "agent.namespace=tetragon", "--set", "timeout=1s",
		"--set", "failAllow.namespaces={kube-system,monitoring}", "--set", "failAllow.patterns={platform-.*}",
		"--set", "hostPaths.hooksDir=/etc/containers/oci/hooks.d", "--set", "priorityClassName=custom",
		"--set", "nodeSelector.role=worker", "--set", "updateStrategy.rollingUpdate.maxUnavailable=3",
		"--set", "resources.installer.limits.memory=128Mi")
	m := configOf(t, cm)
	if m["agent_address"] != "unix:///var/run/tetragon/tetragon.sock" || m["agent_protocol"] != "tetragon" || m["agent_namespace"] != "tetragon" ||
		m["timeout"] != "1s" || len(m["fail_allow_namespace_regex"].([]any)) != 1 {
		t.Fatalf("config %v", m)
	}
	spec := ds.Spec.Template.Spec
	keep := spec.Containers[0]
	if keep.Image != "registry.invalid/podhook:v9" || spec.PriorityClassName != "custom" || spec.NodeSelector["role"] != "worker" ||
		ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.IntValue() != 3 || keep.Resources.Limits.Memory().String() != "128Mi" ||
		!strings.Contains(strings.Join(keep.Args, " "), "--hooks-dir=/etc/containers/oci/hooks.d") {
		t.Fatalf("daemonset %+v", ds.Spec)
	}

	_, nri := render(t, "--set", "interface=nri")
	if nri.Spec.Template.Annotations["podhook.io/tolerate-missing-plugins"] != "true" {
		t.Fatalf("NRI pods lack the validator toleration: %v", nri.Spec.Template.Annotations)
	}
	out, err := exec.Command(helmBin(t), "template", "podhook", chart, "--set", "interface=docker").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `interface "docker"`) {
		t.Fatalf("a bad interface rendered: %v\n%s", err, out)
	}
}

// TestHelmAgentsAndAudit: the chart's agents list and audit values render
// a config the hook reads as written (config.Parse and Validate, in
// configOf): the list in place of the single agent, the mode, and the
// audited namespaces and patterns.
func TestHelmAgentsAndAudit(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	os.WriteFile(values, []byte(`agents:
  - {name: tetragon, address: "unix:///var/run/tetragon/tetragon.sock", protocol: tetragon}
  - {name: inventory, address: "unix:///run/inventory/agent.sock", required: false}
mode: audit
audit:
  namespaces: [staging]
  patterns: [team-.*]
`), 0o600)
	cm, _ := render(t, "-f", values)
	m := configOf(t, cm)
	c, _ := config.Parse([]byte(cm.Data[config.FileName]))
	list := config.Defaults().Merge(c).AgentList()
	if m["agent_address"] != nil || m["agent_protocol"] != nil || len(list) != 2 || list[0].Name != "tetragon" || list[0].Protocol != "tetragon" ||
		!*list[0].Required || list[1].Name != "inventory" || *list[1].Required || list[1].Protocol != "podhook.v1" {
		t.Fatalf("config %v, agents %+v", m, list)
	}
	if m["mode"] != "audit" || len(m["audit_namespaces"].([]any)) != 1 || m["audit_namespace_regex"].([]any)[0] != "team-.*" {
		t.Fatalf("config %v", m)
	}
	// The defaults: one agent, enforce, nothing in audit.
	cm, _ = render(t)
	if m := configOf(t, cm); m["agents"] != nil || m["mode"] != nil || m["audit_namespaces"] != nil || m["agent_address"] == nil {
		t.Fatalf("default config %v", m)
	}
}

// TestHelmMonitoring: the chart's optional ServiceMonitor scrapes the
// metrics ports the pods expose, and its PrometheusRule carries the rules
// promtool checks (contrib/prometheus/podhook-rules.yaml is the same file).
func TestHelmMonitoring(t *testing.T) {
	out, err := exec.Command(helmBin(t), "template", "podhook", chart, "--namespace", "podhook", "--set", "interface=nri",
		"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	objs := map[string]map[string]any{}
	for _, doc := range bytes.Split(out, []byte("\n---\n")) {
		var m map[string]any
		if yaml.Unmarshal(doc, &m) == nil && m["kind"] != nil {
			objs[m["kind"].(string)] = m
		}
	}
	var svc corev1.Service
	b, _ := yaml.Marshal(objs["Service"])
	if err := yaml.UnmarshalStrict(b, &svc); err != nil || svc.Spec.Ports[0].Port != 9464 || svc.Spec.Ports[1].Port != 9465 {
		t.Fatalf("service %v, %v", objs["Service"], err)
	}
	sm, _ := json.Marshal(objs["ServiceMonitor"])
	if !strings.Contains(string(sm), `"port":"metrics"`) || !strings.Contains(string(sm), `"port":"nri-metrics"`) {
		t.Fatalf("servicemonitor %s", sm)
	}
	rules, err := os.ReadFile("../../contrib/prometheus/podhook-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	yaml.Unmarshal(rules, &want)
	if !reflect.DeepEqual(objs["PrometheusRule"]["spec"], want) {
		t.Fatalf("PrometheusRule spec differs from the rules file")
	}
	_, ds := render(t, "--set", "interface=nri")
	ports := map[string]int32{}
	for _, c := range ds.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
	}
	if ports["metrics"] != 9464 || ports["nri-metrics"] != 9465 || ds.Spec.Template.Annotations["prometheus.io/port"] != "9464" {
		t.Fatalf("ports %v, annotations %v", ports, ds.Spec.Template.Annotations)
	}
}
