package hook

import (
	"log/slog"

	"github.com/podhook/podhook/resolver"
)

// Audit says which creates audit mode covers: a covered create that would
// be stopped starts, and its record says it would have been stopped.
// Audit never changes what the agents are told.
type Audit struct {
	// All puts every create in audit (mode "audit").
	All bool
	// Namespaces lists the namespaces in audit while the rest enforce
	// (exact names and anchored patterns, as the fail-allow list). Only a
	// trusted identity's namespace counts: a pod cannot forge its way into
	// audit.
	Namespaces Policy
}

// covers reports whether the create of id is audited. An invalid pattern
// audits nothing (enforcing is the safe side) and is returned.
func (a Audit) covers(id resolver.Identity) (bool, error) {
	if a.All {
		return true, nil
	}
	if len(a.Namespaces.Namespaces) == 0 && len(a.Namespaces.Patterns) == 0 {
		return false, nil
	}
	match, err := a.Namespaces.Match(id.PodNamespace)
	if err != nil || !id.Trusted || id.Runtime == resolver.Unknown {
		return false, err
	}
	return match != "", nil
}

// Apply turns a create that would be stopped into one that starts when
// audit covers it: Allow, WouldDeny, the reason kept, at warn level.
func (a Audit) Apply(stage Stage, d Decision, id resolver.Identity) Decision {
	if d.Allow || !stage.IsCreate() {
		return d
	}
	on, err := a.covers(id)
	if err != nil {
		d.AuditErr = err
	}
	if !on {
		return d
	}
	d.Allow, d.WouldDeny = true, true
	d.Level = slog.LevelWarn
	return d
}
