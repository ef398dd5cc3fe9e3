package manifests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/podhook/podhook/internal/config"
)

// What a kubelet makes of these objects on a node decides whether they
// work: a monitor that cannot see the log counts nothing, and an uninstall
// that misses a registration fails every container start on the node.

// argValue is the value of --name= in args, "" when absent.
func argValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// hostMount reports whether c mounts the host path p (a directory) at
// /host<p>, writable, from a hostPath volume of the same path.
func hostMount(ds appsv1.DaemonSet, c corev1.Container, p string) bool {
	volumes := map[string]corev1.Volume{}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	return slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		v := volumes[m.Name].HostPath
		return !m.ReadOnly && v != nil && filepath.Clean(v.Path) == filepath.Clean(p) && m.MountPath == "/host"+filepath.Clean(p)
	})
}

// logFileOf is the hook's log file the ConfigMap installs.
func logFileOf(t *testing.T, cm corev1.ConfigMap) string {
	t.Helper()
	c, err := config.Parse([]byte(cm.Data[config.FileName]))
	if err != nil {
		t.Fatal(err)
	}
	return config.Defaults().Merge(c).LogFile
}

// checkMonitorSeesLog: every container that runs the monitor (install
// --keep --metrics-address) mounts the directory of the log the ConfigMap
// names, where the monitor reads it and the keeper appends.
func checkMonitorSeesLog(t *testing.T, name string, cm corev1.ConfigMap, ds appsv1.DaemonSet) {
	t.Helper()
	log := logFileOf(t, cm)
	monitors := 0
	for _, c := range ds.Spec.Template.Spec.Containers {
		if len(c.Args) == 0 || c.Args[0] != "install" || !slices.Contains(c.Args, "--keep") || argValue(c.Args, "metrics-address") == "" {
			continue
		}
		monitors++
		if !filepath.IsAbs(log) {
			continue // "-" or "none": no file to read
		}
		if !hostMount(ds, c, filepath.Dir(log)) {
			t.Errorf("%s/%s runs the monitor but does not mount %s, the directory of the hook's log %s", name, c.Name, filepath.Dir(log), log)
		}
	}
	if monitors == 0 {
		t.Errorf("%s: no container runs the monitor", name)
	}
}

func TestMonitorSeesTheLog(t *testing.T) {
	for _, v := range []string{".", "hooksd", "nri", "readonly-usr"} {
		_, cm, ds := build(t, v)
		checkMonitorSeesLog(t, v, cm, ds)
	}
	for name, args := range map[string][]string{
		"chart, hooksd":              {},
		"chart, nri":                 {"--set", "interface=nri"},
		"chart, another log file":    {"--set", "logFile=/var/log/node-agents/podhook.log"},
		"chart, extraConfig's log":   {"--set", "extraConfig.log_file=/data/log/podhook.log"},
		"chart, nri and another log": {"--set", "interface=nri", "--set", "logFile=/srv/podhook/hook.log"},
	} {
		cm, ds := render(t, args...)
		checkMonitorSeesLog(t, name, cm, ds)
	}
}

// registrations are the hooks dirs and install dir a DaemonSet's install
// or uninstall containers are told about, each checked mounted.
func registrations(t *testing.T, name string, ds appsv1.DaemonSet) (hooksDirs []string, installDirs []string) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if len(c.Args) == 0 || c.Args[0] != "install" && c.Args[0] != "uninstall" {
			continue
		}
		if d := argValue(c.Args, "install-dir"); d != "" && !slices.Contains(installDirs, d) {
			installDirs = append(installDirs, d)
		}
		if slices.Contains(c.Args, "--interface=nri") {
			continue // registers nothing in a hooks dir
		}
		for _, a := range c.Args {
			if d, ok := strings.CutPrefix(a, "--hooks-dir="); ok {
				if !hostMount(ds, c, d) {
					t.Errorf("%s/%s: --hooks-dir=%s is not mounted", name, c.Name, d)
				}
				if !slices.Contains(hooksDirs, d) {
					hooksDirs = append(hooksDirs, d)
				}
			}
		}
	}
	slices.Sort(hooksDirs)
	slices.Sort(installDirs)
	return hooksDirs, installDirs
}

// TestEveryVariantHasItsUninstall: the documented uninstall of each
// variant removes exactly the registrations that variant writes, from the
// install dir it uses.
func TestEveryVariantHasItsUninstall(t *testing.T) {
	check := func(t *testing.T, name string, installed, uninstall appsv1.DaemonSet) {
		hooks, dirs := registrations(t, name, installed)
		uhooks, udirs := registrations(t, name+" uninstall", uninstall)
		nri := len(hooks) == 0
		if !nri && !slices.Equal(hooks, uhooks) || !slices.Equal(dirs, udirs) {
			t.Errorf("%s registers in %q from %q; its uninstall removes %q from %q", name, hooks, dirs, uhooks, udirs)
		}
		if uninstall.Name != installed.Name || uninstall.Namespace != installed.Namespace {
			t.Errorf("%s: the uninstall DaemonSet %s/%s does not replace %s/%s", name, uninstall.Namespace, uninstall.Name, installed.Namespace, installed.Name)
		}
	}
	for variant, uninstall := range map[string]string{
		".": "uninstall", "hooksd": "uninstall", "nri": "uninstall", "readonly-usr": "readonly-usr/uninstall",
	} {
		t.Run(variant, func(t *testing.T) {
			_, _, ds := build(t, variant)
			_, _, uds := build(t, uninstall)
			check(t, variant, ds, uds)
		})
	}
	for name, args := range map[string][]string{
		"chart":                    {},
		"chart, /etc hooks dir":    {"--set", "hostPaths.hooksDir=/etc/containers/oci/hooks.d"},
		"chart, nri":               {"--set", "interface=nri"},
		"chart, other install dir": {"--set", "hostPaths.installDir=/var/lib/podhook"},
	} {
		t.Run(name, func(t *testing.T) {
			_, ds := render(t, args...)
			_, uds := render(t, append(args, "--set", "uninstall=true")...)
			check(t, name, ds, uds)
		})
	}
}

// TestImageSetOnce: setting the image in components/image, as the README
// says, reaches every variant and every uninstall.
func TestImageSetOnce(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	comp := filepath.Join(root, "components/image/kustomization.yaml")
	b, err := os.ReadFile(comp)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(strings.Replace(string(b), "newName: podhook", "newName: registry.example/sec/podhook", 1), "newTag: latest", "newTag: v9.9.9", 1)
	if edited == string(b) {
		t.Fatal("components/image has no newName/newTag to set")
	}
	os.WriteFile(comp, []byte(edited), 0o644)
	for _, v := range variants {
		buildIn(t, root, v, "registry.example/sec/podhook:v9.9.9")
	}
	// No variant names the image on its own.
	for _, v := range variants {
		b, _ := os.ReadFile(filepath.Join(dir, v, "kustomization.yaml"))
		var k map[string]any
		if err := json.Unmarshal(yamlToJSON(t, b), &k); err != nil {
			t.Fatal(err)
		}
		if _, ok := k["images"]; ok {
			t.Errorf("%s sets images itself: set it in components/image", v)
		}
	}
}

func yamlToJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
