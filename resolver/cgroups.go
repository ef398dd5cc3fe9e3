package resolver

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/podhook/podhook/internal/safetext"
)

// ErrCgroupsPath marks a linux.cgroupsPath that cannot be expanded.
var ErrCgroupsPath = errors.New("invalid cgroups path")

// MaxUnitName is systemd's limit on a unit name (UNIT_NAME_MAX - 1): a
// longer slice or scope name is refused, never expanded. A slice's
// expansion repeats each ancestor's name, so its size grows with the
// square of the name's length; under this limit it stays below 70 bytes
// per byte of input.
const MaxUnitName = 255

// ExpandCgroupsPath turns linux.cgroupsPath into a path relative to the
// cgroup root, the way runc does:
//
//	"/kubepods/besteffort/pod<uid>/crio-<id>"     -> as is (cleaned)
//	"kubepods-besteffort-pod<uid>.slice:crio:<id>" -> "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/crio-<id>.scope"
//	"parent.slice:prefix:child.slice"              -> "/parent.slice/child.slice"
//	":prefix:name"                                 -> "/system.slice/prefix-name.scope"
//
// A path with a "/" is a cgroupfs path; otherwise three ":"-separated parts
// are systemd's "slice:prefix:name" (runc libcontainer/cgroups/systemd).
func ExpandCgroupsPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if strings.Contains(p, "/") {
		return path.Clean("/" + p), nil
	}
	parts := strings.SplitN(p, ":", 4)
	if len(parts) != 3 {
		return "", fmt.Errorf("%w: %s is neither a path nor slice:prefix:name", ErrCgroupsPath, safetext.Quote(p))
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if name == "" {
		return "", fmt.Errorf("%w: %s has no unit name", ErrCgroupsPath, safetext.Quote(p))
	}
	if slice == "" {
		slice = "system.slice"
	}
	dir, err := ExpandSlice(slice)
	if err != nil {
		return "", err
	}
	unit := name
	if !strings.HasSuffix(name, ".slice") {
		unit = prefix + "-" + name + ".scope"
	}
	if len(unit) > MaxUnitName {
		return "", fmt.Errorf("%w: unit name of %d bytes, longer than systemd's %d: %s", ErrCgroupsPath, len(unit), MaxUnitName, safetext.Quote(unit))
	}
	return path.Join(dir, unit), nil
}

// ExpandSlice turns a systemd slice name into its cgroup path:
// "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice", "-.slice" -> "/".
func ExpandSlice(slice string) (string, error) {
	const suffix = ".slice"
	if len(slice) > MaxUnitName {
		return "", fmt.Errorf("%w: slice name of %d bytes, longer than systemd's %d: %s", ErrCgroupsPath, len(slice), MaxUnitName, safetext.Quote(slice))
	}
	if !strings.HasSuffix(slice, suffix) || len(slice) < len(suffix) || strings.Contains(slice, "/") {
		return "", fmt.Errorf("%w: invalid slice name %s", ErrCgroupsPath, safetext.Quote(slice))
	}
	if slice == "-.slice" {
		return "/", nil
	}
	name := strings.TrimSuffix(slice, suffix)
	if name == "" || strings.Contains(name, "--") || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") {
		return "", fmt.Errorf("%w: invalid slice name %s", ErrCgroupsPath, safetext.Quote(slice))
	}
	var b strings.Builder
	prefix := ""
	for _, part := range strings.Split(name, "-") {
		b.WriteString("/" + prefix + part + suffix)
		prefix += part + "-"
	}
	return b.String(), nil
}
