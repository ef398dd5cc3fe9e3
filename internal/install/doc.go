// Package install puts podhook on a host, binary first and hooks.d JSON
// last, each file replaced atomically; removes it in the reverse order; and
// keeps it in place while running.
package install
