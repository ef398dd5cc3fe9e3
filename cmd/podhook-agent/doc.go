// Command podhook-agent is the reference agent: it serves the
// podhook.agent.v1 API and grpc.health.v1 on a unix socket, writes every
// request it receives as one JSON line, and denies by namespace or image
// when told to. It is small on purpose: start here to write an agent.
package main
