package manifests

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/podhook/podhook/hook"
	"github.com/podhook/podhook/internal/config"
)

const dir = "../../contrib/k8s"

// build builds a kustomization with kustomize's own code (what kubectl
// apply -k runs, load restrictions included) and decodes every object
// strictly into its k8s.io/api type: an unknown or misspelt field fails.
func build(t *testing.T, path string) (ns corev1.Namespace, cm corev1.ConfigMap, ds appsv1.DaemonSet) {
	t.Helper()
	return buildIn(t, dir, path, "podhook:latest")
}

// buildIn builds the kustomization at root/path, whose every container
// must run image.
func buildIn(t *testing.T, root, path, image string) (ns corev1.Namespace, cm corev1.ConfigMap, ds appsv1.DaemonSet) {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, path))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", path, err)
	}
	kinds := map[string]int{}
	for _, r := range res.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var into any
		switch r.GetKind() {
		case "Namespace":
			into = &ns
		case "ConfigMap":
			into = &cm
		case "DaemonSet":
			into = &ds
		default:
			t.Fatalf("%s: unexpected %s", path, r.GetKind())
		}
		kinds[r.GetKind()]++
		if err := yaml.UnmarshalStrict(b, into); err != nil {
			t.Fatalf("%s: %s: %v", path, r.GetKind(), err)
		}
	}
	if kinds["Namespace"] != 1 || kinds["ConfigMap"] != 1 || kinds["DaemonSet"] != 1 {
		t.Fatalf("%s built %v, want one Namespace, ConfigMap and DaemonSet", path, kinds)
	}
	if cm.Namespace != ns.Name || ds.Namespace != ns.Name || ns.Name != "podhook" || ds.Name != "podhook" {
		t.Fatalf("%s: namespace %q, configmap in %q, daemonset %s/%s", path, ns.Name, cm.Namespace, ds.Namespace, ds.Name)
	}
	for _, c := range append(slices.Clone(ds.Spec.Template.Spec.InitContainers), ds.Spec.Template.Spec.Containers...) {
		if c.Image != image {
			t.Errorf("%s/%s: image %q", path, c.Name, c.Image)
		}
	}
	return ns, cm, ds
}

// Every kustomization a user applies builds.
var variants = []string{".", "hooksd", "nri", "uninstall", "readonly-usr", "readonly-usr/uninstall"}

func TestKustomizationsBuild(t *testing.T) {
	for _, v := range variants {
		t.Run(v, func(t *testing.T) {
			_, cm, ds := build(t, v)
			podSpecChecks(t, v, ds)
			if strings.HasPrefix(v, "readonly-usr") {
				for _, c := range append(ds.Spec.Template.Spec.InitContainers, ds.Spec.Template.Spec.Containers...) {
					if !slices.Contains(c.Args, "--hooks-dir=/etc/containers/oci/hooks.d") || slices.Contains(c.Args, "--hooks-dir=/usr/share/containers/oci/hooks.d") {
						t.Errorf("%s/%s: args %q", v, c.Name, c.Args)
					}
				}
			}
			if strings.HasSuffix(v, "uninstall") {
				return
			}
			var mounted bool
			for _, vol := range ds.Spec.Template.Spec.Volumes {
				if vol.ConfigMap != nil && vol.ConfigMap.Name == cm.Name {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("%s: the ConfigMap %s is not mounted", v, cm.Name)
			}
		})
	}
}

func TestConfigMap(t *testing.T) {
	ns, cm, _ := build(t, ".")
	c, err := config.Parse([]byte(cm.Data[config.FileName]))
	if err != nil {
		t.Fatalf("ConfigMap's %s: %v", config.FileName, err)
	}
	if err := config.Defaults().Merge(c).Validate(true); err != nil {
		t.Fatal(err)
	}
	// The agent's namespace and this DaemonSet's are always allowed to
	// fail open: neither may deadlock waiting for the agent.
	merged := config.Defaults().Merge(c)
	policy := hook.Policy{Namespaces: merged.FailAllowed(), Patterns: merged.FailAllowNamespaceRegex}
	for _, must := range []string{"kube-system", ns.Name, c.AgentNamespace} {
		if m, _ := policy.Match(must); m == "" {
			t.Errorf("namespace %q is not allowed to fail open", must)
		}
	}
}

func podSpecChecks(t *testing.T, name string, ds appsv1.DaemonSet) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == ""
	}) {
		t.Errorf("%s: no toleration for every taint", name)
	}
	if spec.PriorityClassName != "system-node-critical" || spec.HostNetwork || spec.HostPID {
		t.Errorf("%s: priority %q, hostNetwork %v, hostPID %v", name, spec.PriorityClassName, spec.HostNetwork, spec.HostPID)
	}
	if ds.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != ds.Spec.Template.Labels["app.kubernetes.io/name"] {
		t.Errorf("%s: selector does not match the template", name)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		if v.HostPath != nil && (v.HostPath.Type == nil || *v.HostPath.Type == "") {
			t.Errorf("%s: hostPath volume %s has no explicit type", name, v.Name)
		}
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("%s/%s: security context not minimal: %+v", name, c.Name, sc)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: resources %+v", name, c.Name, c.Resources)
		}
		args := strings.Join(c.Args, " ")
		if c.Args[0] != "install" && c.Args[0] != "uninstall" {
			continue
		}
		// Every host path the container is told about is mounted from
		// the same host path under --host-root.
		for _, flag := range []string{"--install-dir=", "--hooks-dir="} {
			i := strings.Index(args, flag)
			if i < 0 {
				if flag == "--hooks-dir=" && slices.Contains(c.Args, "--interface=nri") {
					continue
				}
				t.Errorf("%s/%s: no %s in %q", name, c.Name, flag, args)
				continue
			}
			hostPath := strings.Fields(args[i+len(flag):])[0]
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
				v := volumes[m.Name]
				return m.MountPath == "/host"+hostPath && v.HostPath != nil && v.HostPath.Path == hostPath
			}) {
				t.Errorf("%s/%s: %s%s is not mounted from the host at /host%s", name, c.Name, flag, hostPath, hostPath)
			}
		}
		if !strings.Contains(args, "--host-root=/host") {
			t.Errorf("%s/%s: args %q lack --host-root=/host", name, c.Name, args)
		}
	}
}

func TestDaemonSet(t *testing.T) {
	_, _, ds := build(t, ".")
	spec := ds.Spec.Template.Spec
	if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		t.Fatalf("want one init container (install) and one container (keep): %d, %d", len(spec.InitContainers), len(spec.Containers))
	}
	install, keep := spec.InitContainers[0], spec.Containers[0]
	if install.Args[0] != "install" || slices.Contains(install.Args, "--keep") {
		t.Errorf("init container args %q", install.Args)
	}
	if keep.Args[0] != "install" || !slices.Contains(keep.Args, "--keep") || slices.Contains(keep.Args, "--uninstall-on-exit") {
		t.Errorf("keep container args %q: it must keep, and leave the hook in place when it stops", keep.Args)
	}
	if !slices.Contains(install.Args, "--config-from=/etc/podhook/podhook-config.json") {
		t.Errorf("install does not read the ConfigMap: %q", install.Args)
	}
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ru == nil || ru.MaxSurge == nil || ru.MaxSurge.IntValue() != 0 {
		t.Errorf("update strategy %+v: want a rolling update without surge", ds.Spec.UpdateStrategy)
	}
	var cm bool
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == "podhook-config" {
			cm = true
		}
	}
	if !cm {
		t.Error("the ConfigMap is not mounted")
	}
}

func TestUninstallDaemonSet(t *testing.T) {
	_, _, ds := build(t, "uninstall")
	_, _, installed := build(t, ".")
	// Applied over the running DaemonSet: same name and selector (a
	// selector cannot change), the files removed by the init container, so
	// a Ready pod means a clean node.
	if ds.Name != installed.Name || !reflect.DeepEqual(ds.Spec.Selector, installed.Spec.Selector) {
		t.Fatalf("uninstall DaemonSet %s %v does not replace %s %v", ds.Name, ds.Spec.Selector, installed.Name, installed.Spec.Selector)
	}
	spec := ds.Spec.Template.Spec
	if len(spec.InitContainers) != 1 || spec.InitContainers[0].Args[0] != "uninstall" || slices.Contains(spec.InitContainers[0].Args, "--wait") {
		t.Errorf("init container %+v", spec.InitContainers)
	}
	c := spec.Containers[0]
	if c.Args[0] != "uninstall" || !slices.Contains(c.Args, "--wait") {
		t.Errorf("args %q", c.Args)
	}
	b, _ := json.Marshal(ds)
	if strings.Contains(string(b), "configMap") {
		t.Error("the uninstall DaemonSet needs no ConfigMap")
	}
}

func TestNRIDaemonSet(t *testing.T) {
	_, _, ds := build(t, "nri")
	spec := ds.Spec.Template.Spec
	if len(spec.InitContainers) != 1 || !slices.Contains(spec.InitContainers[0].Args, "--interface=nri") {
		t.Fatalf("init container %+v", spec.InitContainers)
	}
	var plugin *corev1.Container
	for i, c := range spec.Containers {
		if c.Name == "nri-plugin" {
			plugin = &spec.Containers[i]
		}
		if c.Name == "keep" && (!slices.Contains(c.Args, "--keep") || !slices.Contains(c.Args, "--interface=nri")) {
			t.Errorf("keep container args %q", c.Args)
		}
	}
	if plugin == nil || !slices.Equal(plugin.Command, []string{"/podhook-nri"}) {
		t.Fatalf("no nri-plugin container running /podhook-nri: %+v", spec.Containers)
	}
	args := strings.Join(plugin.Args, " ")
	for _, want := range []string{"--hook-path=/opt/podhook/podhook", "--config=/opt/podhook/podhook-config.json"} {
		if !strings.Contains(args, want) {
			t.Errorf("plugin args %q lack %s", args, want)
		}
	}
	socket := strings.TrimPrefix(plugin.Args[slices.IndexFunc(plugin.Args, func(a string) bool { return strings.HasPrefix(a, "--socket=") })], "--socket=")
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	if !slices.ContainsFunc(plugin.VolumeMounts, func(m corev1.VolumeMount) bool {
		v := volumes[m.Name].HostPath
		return m.MountPath == socket && v != nil && v.Path == socket && v.Type != nil && *v.Type == corev1.HostPathSocket
	}) {
		t.Errorf("the NRI socket %s is not mounted from a hostPath of type Socket", socket)
	}
}
