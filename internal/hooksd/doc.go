// Package hooksd writes podhook's hooks.d registrations, the JSON files
// CRI-O and podman read (containers/common pkg/hooks, schema 1.0.0).
package hooksd
