// Package metrics turns the hook's log records into Prometheus metrics:
// what the hook decided, for whom and how fast, with bounded label values
// (no per-pod or per-container label; a namespace label only when asked,
// with a cap).
package metrics

import (
	"encoding/json"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Options bound the label values.
type Options struct {
	// Namespaces adds podhook_decisions_by_namespace_total, for at most
	// NamespaceCap namespaces (the rest count as "_other").
	Namespaces   bool
	NamespaceCap int
}

// Decisions counts the hook's records.
type Decisions struct {
	o             Options
	decisions     *prometheus.CounterVec
	byNamespace   *prometheus.CounterVec
	conflicts     *prometheus.CounterVec
	hookDuration  *prometheus.HistogramVec
	agentDuration *prometheus.HistogramVec
	invalid       prometheus.Counter
	gaps          prometheus.Counter
	keeper        *prometheus.CounterVec
	logPresent    prometheus.Gauge
	wouldDeny     *prometheus.CounterVec
	agentOutcomes *prometheus.CounterVec
	agentSeconds  *prometheus.HistogramVec

	mu         sync.Mutex
	namespaces map[string]bool
	agents     map[string]bool
}

// AgentCap bounds the agent label's values (the config lists at most 8;
// names past the cap count as "_other").
const AgentCap = 16

// New registers the metrics with reg.
func New(reg prometheus.Registerer, o Options) *Decisions {
	d := &Decisions{o: o, namespaces: map[string]bool{}, agents: map[string]bool{},
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podhook_decisions_total",
			Help: "Hook invocations by stage, decision (allow, deny), fail_open, error_kind (unreachable, deadline, agent_error, denied, invalid_state, internal, or empty) and runtime.",
		}, []string{"stage", "decision", "fail_open", "error_kind", "runtime"}),
		byNamespace: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podhook_decisions_by_namespace_total",
			Help: "Create-stage decisions by pod namespace (only with the namespace label on; namespaces past the cap count as _other).",
		}, []string{"namespace", "decision"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podhook_identity_conflicts_total",
			Help: "Invocations whose pod identity was not trusted because something contradicted it (a forged key, both runtime markers, ...).",
		}, []string{"runtime"}),
		hookDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "podhook_hook_duration_seconds",
			Help:    "Whole hook process time, from its start to its record (duration_ms).",
			Buckets: []float64{.002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"stage"}),
		agentDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "podhook_agent_call_seconds",
			Help:    "Time of the agent call within the hook (agent_ms).",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"stage"}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podhook_log_lines_invalid_total",
			Help: "Log lines that are not records of the hook.",
		}),
		keeper: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podhook_keeper_events_total",
			Help: "What the keeper did: restored (a file disappeared or changed on the host and was put back), reloaded (a new config installed), invalid_config (the config source is invalid; the installed one stays).",
		}, []string{"event"}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podhook_log_rotation_gaps_total",
			Help: "Times the log rotated past log_max_backups before its records were read: those records were dropped before they were counted.",
		}),
	}
	d.wouldDeny = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podhook_would_deny_total",
		Help: "Creates audit mode let start that enforce would have stopped, by error_kind (denied: an agent's DENY; unreachable, deadline, agent_error: the fail check failing closed) and runtime.",
	}, []string{"error_kind", "runtime"})
	d.agentOutcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podhook_agent_outcomes_total",
		Help: "Each agent's answer to each invocation, by agent (its name in the agents list, or \"agent\"), protocol, stage and outcome (allow, deny, delivered, or the error kind: unreachable, deadline, agent_error).",
	}, []string{"agent", "protocol", "stage", "outcome"})
	d.agentSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "podhook_agent_seconds",
		Help:    "Each agent's call time within the hook (the record's agents[].ms, or agent_ms for one agent).",
		Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"agent", "stage"})
	d.logPresent = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "podhook_log_file_present",
		Help: "1 when the hook's log file exists where the monitor reads it, 0 when it does not (nothing is counted: a directory not mounted, or no hook has run yet).",
	})
	reg.MustRegister(d.decisions, d.conflicts, d.hookDuration, d.agentDuration, d.invalid, d.gaps, d.keeper, d.logPresent,
		d.wouldDeny, d.agentOutcomes, d.agentSeconds)
	if o.Namespaces {
		reg.MustRegister(d.byNamespace)
	}
	return d
}

// record is the part of a hook record the metrics read.
type record struct {
	Stage            string   `json:"stage"`
	Decision         string   `json:"decision"`
	FailOpen         bool     `json:"fail_open"`
	ErrorKind        string   `json:"error_kind"`
	Runtime          string   `json:"runtime"`
	PodNamespace     string   `json:"pod_namespace"`
	IdentityConflict []string `json:"identity_conflict"`
	DurationMS       *float64 `json:"duration_ms"`
	AgentMS          *float64 `json:"agent_ms"`
	KeeperEvent      string   `json:"keeper_event"`
	WouldDeny        bool     `json:"would_deny"`
	AgentProtocol    string   `json:"agent_protocol"`
	Agents           []struct {
		Name      string  `json:"name"`
		Protocol  string  `json:"protocol"`
		Verdict   string  `json:"verdict"`
		ErrorKind string  `json:"error_kind"`
		MS        float64 `json:"ms"`
	} `json:"agents"`
}

// Observe counts one log line; it reports whether it was a record.
func (d *Decisions) Observe(line []byte) bool {
	var r record
	if json.Unmarshal(line, &r) == nil && r.KeeperEvent != "" {
		d.keeper.WithLabelValues(r.KeeperEvent).Inc()
		return true
	}
	if json.Unmarshal(line, &r) != nil || r.Stage == "" || r.Decision == "" {
		d.invalid.Inc()
		return false
	}
	d.decisions.WithLabelValues(r.Stage, r.Decision, strconv.FormatBool(r.FailOpen), r.ErrorKind, r.Runtime).Inc()
	if len(r.IdentityConflict) > 0 {
		d.conflicts.WithLabelValues(r.Runtime).Inc()
	}
	if r.DurationMS != nil {
		d.hookDuration.WithLabelValues(r.Stage).Observe(*r.DurationMS / 1000)
	}
	if r.AgentMS != nil {
		d.agentDuration.WithLabelValues(r.Stage).Observe(*r.AgentMS / 1000)
	}
	if d.o.Namespaces && r.Stage != "poststop" {
		d.byNamespace.WithLabelValues(d.namespace(r.PodNamespace), r.Decision).Inc()
	}
	if r.WouldDeny {
		d.wouldDeny.WithLabelValues(r.ErrorKind, r.Runtime).Inc()
	}
	d.observeAgents(r)
	return true
}

// observeAgents counts each agent's outcome: from the record's agents
// list, or, for one agent, from its error_kind (a record of a state that
// could not be read, or of a fault in the hook, called no agent).
func (d *Decisions) observeAgents(r record) {
	for _, a := range r.Agents {
		outcome := a.Verdict
		if outcome == "" {
			outcome = a.ErrorKind
		}
		name := d.agent(a.Name)
		d.agentOutcomes.WithLabelValues(name, a.Protocol, r.Stage, outcome).Inc()
		d.agentSeconds.WithLabelValues(name, r.Stage).Observe(a.MS / 1000)
	}
	if len(r.Agents) > 0 || r.AgentMS == nil || r.ErrorKind == "invalid_state" || r.ErrorKind == "internal" {
		return
	}
	outcome := r.ErrorKind
	switch {
	case outcome == "denied":
		outcome = "deny"
	case outcome != "":
	case r.Stage == "poststop":
		outcome = "delivered"
	default:
		outcome = "allow"
	}
	protocol := r.AgentProtocol
	if protocol == "" {
		protocol = "podhook.v1"
	}
	d.agentOutcomes.WithLabelValues("agent", protocol, r.Stage, outcome).Inc()
	d.agentSeconds.WithLabelValues("agent", r.Stage).Observe(*r.AgentMS / 1000)
}

// agent caps the agent label's values.
func (d *Decisions) agent(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.agents[name] {
		return name
	}
	if len(d.agents) >= AgentCap {
		return "_other"
	}
	d.agents[name] = true
	return name
}

// Gaps counts rotations past the backups.
func (d *Decisions) Gaps(n int) { d.gaps.Add(float64(n)) }

// LogPresent says whether the hook's log file exists.
func (d *Decisions) LogPresent(present bool) {
	v := 0.0
	if present {
		v = 1
	}
	d.logPresent.Set(v)
}

// namespace caps the namespace label's values.
func (d *Decisions) namespace(ns string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.namespaces[ns] {
		return ns
	}
	if len(d.namespaces) >= d.o.NamespaceCap {
		return "_other"
	}
	d.namespaces[ns] = true
	return ns
}
