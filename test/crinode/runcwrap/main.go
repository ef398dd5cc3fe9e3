// Command runcwrap is the end-to-end suites' runc, never shipped: it
// rewrites two things of the bundle's config.json that this machine
// cannot honour, then runs runc with the same arguments. There is no
// CAP_SYS_RESOURCE here, so runc cannot set the negative oom_score_adj an
// infra container or a critical pod asks for (-998, -997): it becomes 0.
// The hugetlb controller is listed but not mounted, so the hugepage limits
// a kubelet sets fail every container: they are dropped.
// Usage: runcwrap RUNC [runc arguments...]
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: runcwrap RUNC [args...]")
		os.Exit(2)
	}
	runc, args := os.Args[1], os.Args[2:]
	if bundle := bundleArg(args); bundle != "" {
		if err := fix(filepath.Join(bundle, "config.json")); err != nil {
			fmt.Fprintf(os.Stderr, "runcwrap: %v\n", err)
			os.Exit(1)
		}
	}
	err := syscall.Exec(runc, append([]string{runc}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "runcwrap: exec %s: %v\n", runc, err)
	os.Exit(1)
}

func bundleArg(args []string) string {
	for i, a := range args {
		switch {
		case (a == "--bundle" || a == "-b") && i+1 < len(args):
			return args[i+1]
		case len(a) > 9 && a[:9] == "--bundle=":
			return a[9:]
		}
	}
	return ""
}

func fix(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return err
	}
	changed := false
	if p, ok := spec["process"].(map[string]any); ok {
		if v, ok := p["oomScoreAdj"].(float64); ok && v < 0 {
			p["oomScoreAdj"] = 0
			changed = true
		}
	}
	if l, ok := spec["linux"].(map[string]any); ok {
		if r, ok := l["resources"].(map[string]any); ok {
			if _, ok := r["hugepageLimits"]; ok {
				delete(r, "hugepageLimits")
				changed = true
			}
		}
	}
	if !changed {
		return nil
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}
