//go:build e2e

// Package e2e runs podhook where it lives: real podman and runc execute it
// from real hooks.d registrations for real containers. Run with `make e2e`
// (go test -tags e2e), as root.
package e2e
