// Package agentv1 is the generated Go code of the podhook.agent.v1 API
// (agent.proto); `make generate` regenerates it.
package agentv1
