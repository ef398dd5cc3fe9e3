package hook

import (
	"errors"
	"fmt"
)

// Stage is the OCI hook stage podhook was run for.
type Stage string

// The stages podhook accepts. Prestart and CreateContainer are handled as
// CreateRuntime (containers/common maps a hooks.d "prestart" registration to
// createRuntime).
const (
	CreateRuntime   Stage = "createRuntime"
	Prestart        Stage = "prestart"
	CreateContainer Stage = "createContainer"
	Poststop        Stage = "poststop"
)

// ErrStage marks a stage name podhook does not know.
var ErrStage = errors.New("unknown stage")

// Stages lists every stage name podhook accepts, create stages first.
var Stages = []Stage{CreateRuntime, Prestart, CreateContainer, Poststop}

// ParseStage returns the Stage named s.
func ParseStage(s string) (Stage, error) {
	for _, st := range Stages {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("%w %q (want createRuntime, prestart, createContainer or poststop)", ErrStage, s)
}

// IsCreate reports whether s runs before the container starts, so that a
// non-zero exit stops it.
func (s Stage) IsCreate() bool { return s != Poststop }

// How a runtime runs the hook, as the registration says in --via:
// ViaHooksD, a hooks.d file (read only by CRI-O and podman), or ViaNRI,
// podhook-nri.
const (
	ViaHooksD = "hooksd"
	ViaNRI    = "nri"
)
