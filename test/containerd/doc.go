//go:build containerd

// Package containerd runs podhook under a real containerd 2.x with NRI: a
// private containerd (its own root, state and sockets, host-network pods,
// no CNI) runs pods that crictl creates, podhook-nri injects the hook, and
// podhook-agent answers it. Run with `make e2e-containerd`, as root.
package containerd
