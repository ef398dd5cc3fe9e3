#!/usr/bin/env bash
# Builds the single-node Kubernetes the k8s suite runs, from the Go module
# proxy, into DIR (kept outside the clone, so later runs reuse it):
#   kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every
# k8s.io staging module with ./staging/... A wrapper module that requires
# it and replaces each staging module with its published v0.X.Y builds the
# commands; etcd's server module replaces its siblings with ../ paths and
# gets the same wrapper. Usage: tools.sh DIR K8S_VERSION ETCD_VERSION
set -euo pipefail
dir=$1 k8s=$2 etcd=$3
staging=v0${k8s#v1}   # v1.37.2 -> v0.37.2
bin=$dir/bin
want=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd)
missing=0
for b in "${want[@]}"; do [ -x "$bin/$b" ] || missing=1; done
if [ $missing = 0 ]; then echo "kubernetes tools: $bin"; exit 0; fi
mkdir -p "$bin" "$dir/k8s" "$dir/etcd"

# The staging modules k8s.io/kubernetes replaces, from its own go.mod.
modfile=$(go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
mapfile -t mods < <(sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile")
{
	echo "module podhook.test/k8stools"
	echo "go 1.26"
	echo "require k8s.io/kubernetes $k8s"
	for m in "${mods[@]}"; do echo "replace $m => $m $staging"; done
} > "$dir/k8s/go.mod"
ver="-X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/client-go/pkg/version.gitVersion=$k8s"
ver="$ver -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$k8s" | cut -d. -f2)"
(
	cd "$dir/k8s"
	echo "building kubernetes $k8s (wrapper module in $dir/k8s)"
	GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ver" -o "$bin/" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl
)

{
	echo "module podhook.test/etcdtools"
	echo "go 1.26"
	echo "require go.etcd.io/etcd/server/v3 $etcd"
	for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do echo "replace go.etcd.io/etcd/$m => go.etcd.io/etcd/$m $etcd"; done
} > "$dir/etcd/go.mod"
(
	cd "$dir/etcd"
	echo "building etcd $etcd (wrapper module in $dir/etcd)"
	GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
)
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet etcd; do echo "$b: $("$bin/$b" --version 2>&1 | head -1)"; done
echo "kubectl: $("$bin/kubectl" version --client 2>&1 | head -1)"
