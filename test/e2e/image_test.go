//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageInstall builds the podhook image (FROM scratch, no registry),
// installs from it into a host directory bind-mounted as the host root,
// and starts a container with podman reading the installed hooks dir: the
// installed hook must fire. Then it uninstalls from the image.
func TestImageInstall(t *testing.T) {
	const tag = "localhost/podhook:e2e"
	if out, err := exec.Command("podman", "build", "--network", "none", "-f", "../../contrib/image/Containerfile",
		"--ignorefile", "../../contrib/image/.containerignore", "--build-arg", "VERSION=0.0.0-e2e", "--build-arg", "REVISION=e2e",
		"-t", tag, filepath.Dir(podhook)).CombinedOutput(); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	// The image holds the three binaries and nothing else, and says what
	// it is.
	labels, err := exec.Command("podman", "image", "inspect", "--format", "{{json .Labels}}", tag).Output()
	if err != nil || !strings.Contains(string(labels), `"org.opencontainers.image.version":"0.0.0-e2e"`) ||
		!strings.Contains(string(labels), `"org.opencontainers.image.licenses":"Apache-2.0"`) {
		t.Fatalf("labels %s, %v", labels, err)
	}
	ctr, err := exec.Command("podman", "create", tag).Output()
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(ctr))
	defer exec.Command("podman", "rm", id).Run()
	var files []string
	if out, err := exec.Command("sh", "-c", "podman export "+id+" | tar -t").Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if f := strings.TrimSuffix(f, "/"); f != "dev" && f != "etc" && f != "proc" && f != "run" && f != "sys" && !strings.HasPrefix(f, "dev/") &&
				!strings.HasPrefix(f, "etc/") && !strings.HasPrefix(f, "proc/") && !strings.HasPrefix(f, "run/") && !strings.HasPrefix(f, "sys/") {
				files = append(files, f)
			}
		}
	}
	if strings.Join(files, " ") != "podhook podhook-ctl podhook-monitor podhook-nri podhook-sync" {
		t.Fatalf("the image holds %q", files)
	}
	e := newEnv(t)
	e.startAgent()
	host := filepath.Join(e.dir, "node")
	os.MkdirAll(host, 0o755)
	installDir, hooksDir := filepath.Join(host, "opt", "podhook"), filepath.Join(host, "hooks.d")
	fromImage := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("podman", append([]string{"--runtime", "runc", "run", "--rm", "--network", "none", "--read-only",
			"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
			"-v", host + ":/host" + host, tag}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("podhook %v from the image: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := fromImage("install", "--host-root", "/host", "--install-dir", installDir, "--hooks-dir", hooksDir,
		"--agent-address", "unix://"+e.socket, "--log-file", e.log)
	for _, want := range []string{"wrote " + installDir + "/podhook", "wrote " + hooksDir + "/podhook.json"} {
		if !strings.Contains(out, want) {
			t.Fatalf("install output lacks %q:\n%s", want, out)
		}
	}
	e.hooksDir = hooksDir
	r := e.podman(crio("payments", "checkout-1", "checkout"), "echo", "hello")
	if r.code != 0 || r.out != "hello\n" {
		t.Fatalf("exit %d, out %q, err %q", r.code, r.out, r.err)
	}
	evs := e.readEvents()
	if len(evs) != 2 || evs[0].Request.Container.ID != r.id || evs[0].Request.Pod.Namespace != "payments" || evs[1].RPC != "StopContainer" {
		t.Fatalf("the installed hook did not fire as expected: %+v", evs)
	}
	if rec := e.createRecord(r.id); rec["decision"] != "allow" {
		t.Fatalf("record %v", rec)
	}

	fromImage("uninstall", "--host-root", "/host", "--install-dir", installDir, "--hooks-dir", hooksDir)
	for _, p := range []string{installDir + "/podhook", hooksDir + "/podhook.json", hooksDir + "/podhook-poststop.json"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after uninstall", p)
		}
	}
	r = e.podman(crio("payments", "checkout-2", "checkout"), "true")
	if r.code != 0 || len(e.readEvents()) != 2 {
		t.Fatalf("after uninstall: exit %d, %d events", r.code, len(e.readEvents()))
	}
}
