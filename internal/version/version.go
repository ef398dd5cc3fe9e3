// Package version names the release every podhook binary belongs to.
package version

// Version is podhook's semantic version; a release changes it here.
const Version = "0.5.0"

// Commit is the source revision, stamped at build time:
// -ldflags "-X github.com/podhook/podhook/internal/version.Commit=<rev>".
var Commit = "unknown"

// String is "0.5.0 (commit <rev>)".
func String() string { return Version + " (commit " + Commit + ")" }
