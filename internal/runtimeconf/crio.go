package runtimeconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/podhook/podhook/internal/hostpath"
)

// readHost reads the host's file p under hostRoot.
func readHost(hostRoot, p string) ([]byte, error) {
	h, err := hostpath.Resolve(hostRoot, p)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(h)
}

// CRI-O's configuration, as read by CRI-O itself: crio.conf, then every
// crio.conf.d/*.conf in lexical order, a later file's value replacing an
// earlier one (arrays are replaced, not merged).
const (
	CRIOConf       = "/etc/crio/crio.conf"
	CRIODropinDir  = "/etc/crio/crio.conf.d"
	CRIODropinName = "99-podhook.conf"
	// CRIODefaultHooksDir is CRI-O's hooks_dir when nothing sets it.
	CRIODefaultHooksDir = "/usr/share/containers/oci/hooks.d"
)

// CRIOConfig is CRI-O's effective hooks_dir.
type CRIOConfig struct {
	// Found is false when no CRI-O configuration file exists under the
	// host root (CRI-O is not installed, or runs on its defaults).
	Found bool
	// HooksDirs is the effective hooks_dir (CRIODefaultHooksDir when unset).
	HooksDirs []string
	// Files are the files read, in order.
	Files []string
}

type crioFile struct {
	Crio struct {
		Runtime struct {
			HooksDir *[]string `toml:"hooks_dir"`
		} `toml:"runtime"`
	} `toml:"crio"`
}

// ReadCRIOConfig reads CRI-O's configuration under hostRoot, its symlinks
// resolved inside hostRoot as on the host.
func ReadCRIOConfig(hostRoot string) (CRIOConfig, error) {
	c := CRIOConfig{HooksDirs: []string{CRIODefaultHooksDir}}
	files := []string{CRIOConf}
	dir, err := hostpath.Resolve(hostRoot, CRIODropinDir)
	if err != nil {
		return c, err
	}
	dropins, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
	sort.Strings(dropins)
	for _, d := range dropins {
		files = append(files, filepath.Join(CRIODropinDir, filepath.Base(d)))
	}
	for _, f := range files {
		b, err := readHost(hostRoot, f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		var cf crioFile
		if err == nil {
			err = toml.Unmarshal(b, &cf)
		}
		if err != nil {
			return c, fmt.Errorf("%w: CRI-O config %s: %w", ErrUnsupported, f, err)
		}
		c.Found = true
		c.Files = append(c.Files, f)
		if cf.Crio.Runtime.HooksDir != nil {
			c.HooksDirs = *cf.Crio.Runtime.HooksDir
		}
	}
	return c, nil
}

// Lists reports whether any of dirs is in CRI-O's hooks_dir.
func (c CRIOConfig) Lists(dirs []string) bool {
	for _, d := range dirs {
		if slices.Contains(c.HooksDirs, filepath.Clean(d)) || slices.Contains(c.HooksDirs, d) {
			return true
		}
	}
	return false
}

// Dropin is the content of a CRI-O drop-in that keeps CRI-O's effective
// hooks_dir and adds dirs to it.
func (c CRIOConfig) Dropin(dirs []string) []byte {
	all := slices.Clone(c.HooksDirs)
	for _, d := range dirs {
		if !slices.Contains(all, d) {
			all = append(all, d)
		}
	}
	quoted := make([]string, len(all))
	for i, d := range all {
		quoted[i] = strconv.Quote(d)
	}
	return []byte("# Written by podhook: CRI-O's hooks_dir with podhook's added.\n" +
		"# CRI-O reads hooks_dir at start: restart CRI-O for a change to apply.\n" +
		"[crio.runtime]\nhooks_dir = [" + strings.Join(quoted, ", ") + "]\n")
}

// Patch is a change to one file under a host root: its path as the host
// sees it, and its content before (nil when absent) and after.
type Patch struct {
	Path          string
	Before, After []byte
}

// AddHooksDir returns the CRI-O drop-in (CRIODropinDir/CRIODropinName) that
// makes CRI-O's effective hooks_dir list dirs while keeping what it lists.
// When CRI-O already lists one of them, After equals Before: nothing to do.
func AddHooksDir(hostRoot string, dirs []string) (Patch, error) {
	p := Patch{Path: filepath.Join(CRIODropinDir, CRIODropinName)}
	if b, err := readHost(hostRoot, p.Path); err == nil {
		p.Before = b
	} else if !errors.Is(err, os.ErrNotExist) {
		return p, err
	}
	c, err := ReadCRIOConfig(hostRoot)
	if err != nil {
		return p, err
	}
	if c.Lists(dirs) {
		p.After = p.Before
		return p, nil
	}
	p.After = c.Dropin(dirs)
	return p, nil
}
