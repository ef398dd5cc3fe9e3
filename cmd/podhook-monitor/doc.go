// Command podhook-monitor follows the hook's log on a node and serves what
// the hook decided as Prometheus metrics. The keeper (podhook install
// --keep --metrics-address) runs it; it is its own binary so that the
// metrics library never weighs on the hook's start.
package main
