package nriplugin

import "github.com/prometheus/client_golang/prometheus"

// Metrics are what the plugin counts, for podhook-nri --metrics-address.
type Metrics struct {
	Connected   prometheus.Gauge
	Reconnects  prometheus.Counter
	Injected    prometheus.Counter
	WithoutHook prometheus.Counter
}

// NewMetrics registers the plugin's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podhook_nri_connected",
			Help: "1 while podhook-nri is registered with the runtime's NRI: containers get the hook.",
		}),
		Reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podhook_nri_reconnects_total",
			Help: "Times podhook-nri lost the runtime and registered again.",
		}),
		Injected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podhook_nri_containers_injected_total",
			Help: "Containers podhook-nri added podhook's hooks to.",
		}),
		WithoutHook: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podhook_nri_containers_without_hook_total",
			Help: "Containers the runtime created while podhook-nri was not connected, found when it synchronized.",
		}),
	}
	reg.MustRegister(m.Connected, m.Reconnects, m.Injected, m.WithoutHook)
	return m
}
