// Package integration builds the real podhook and podhook-agent binaries and
// runs them against each other over real unix sockets.
package integration
