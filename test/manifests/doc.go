// Package manifests checks the Kubernetes manifests in contrib/k8s by
// decoding them strictly into the k8s.io/api types.
package manifests
