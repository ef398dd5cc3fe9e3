// Package hook runs one OCI hook invocation: it reads the container state and
// config.json, resolves the pod identity, asks the agent, decides whether the
// container may start, and logs one record of it.
package hook
