// Package agentclient calls the node-local agent over gRPC on a unix socket,
// one deadline per call, and classifies every failure for the fail check.
package agentclient
