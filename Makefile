# podhook: `make help` lists the targets.
SHELL         := bash
.SHELLFLAGS   := -eu -o pipefail -c
GO       ?= go
COMMIT   ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
VERSION  := $(shell sed -n 's/^const Version = "\(.*\)"/\1/p' internal/version/version.go)
LDFLAGS  := -s -w -X github.com/podhook/podhook/internal/version.Commit=$(COMMIT)
# Leave out what the hook never uses but would pay for at every start:
# urfave/cli's man/markdown generator and grpc-go's x/net/trace (html/template).
GOTAGS   := urfave_cli_no_docs,grpcnotrace
BIN      := bin
FUZZTIME ?= 20s
BENCH_RUNS  ?= 200
PODMAN_RUNS ?= 30
FIXTURES ?= $(firstword $(wildcard ../shared/fixtures/crio-1.37) testdata/crio-1.37)

# Tools for `make generate`, pinned so the generated code is reproducible.
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
TOOLS              := $(CURDIR)/$(BIN)/tools

# A real containerd for `make e2e-containerd`, built from source with the Go
# module proxy once and kept outside the clone, so later runs reuse it.
CONTAINERD_VERSION ?= v2.4.2
CRICTL_VERSION     ?= v1.37.0
CONTAINERD_TOOLS   ?= $(HOME)/.cache/podhook/containerd-$(CONTAINERD_VERSION)
# A real CRI-O for `make e2e-crio`: upstream binaries from ../shared/tools
# (CRI-O is neither packaged for Debian 12 nor served by the module proxy),
# unpacked and checked once outside the clone.
CRIO_VERSION ?= 1.37.0
CRIO_SRC     ?= ../shared/tools/crio-$(CRIO_VERSION)
CRIO_TOOLS   ?= $(HOME)/.cache/podhook/crio-$(CRIO_VERSION)
# A single-node Kubernetes for `make e2e-k8s`, built from the Go module
# proxy through wrapper modules (test/k8s/tools.sh), once, outside the clone.
K8S_VERSION  ?= v1.37.2
ETCD_VERSION ?= v3.7.3
K8S_TOOLS    ?= $(HOME)/.cache/podhook/kubernetes-$(K8S_VERSION)
# helm for `make manifests`, built the same way.
HELM_VERSION       ?= v3.22.0
HELM_TOOLS         ?= $(HOME)/.cache/podhook/helm-$(HELM_VERSION)

FUZZ_TARGETS := ./internal/config:FuzzParse ./agentclient:FuzzWireRequest ./agentclient:FuzzParseCreateResponse ./hook:FuzzFit ./hook:FuzzParseState ./hook:FuzzParseSpec ./hook:FuzzAnnotations ./hook:FuzzAgentListJSON ./internal/jsonlog:FuzzHandler ./resolver:FuzzResolve ./resolver:FuzzExpandCgroupsPath ./resolver:FuzzExpandSlice ./internal/safetext:FuzzLine

.PHONY: breakdown image help build test unit lint fuzz manifests helm-tool e2e e2e-containerd containerd-tools e2e-crio crio-tools k8s-tools e2e-k8s bench-k8s bench bench-gate generate check-generate demo clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## static podhook (the hook: the stages only), podhook-ctl (every command), podhook-agent, podhook-nri, podhook-sync and podhook-monitor in bin/
	CGO_ENABLED=0 $(GO) build -tags $(GOTAGS),hookonly -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/podhook ./cmd/podhook
	CGO_ENABLED=0 $(GO) build -tags $(GOTAGS) -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/podhook-ctl ./cmd/podhook
	CGO_ENABLED=0 $(GO) build -tags $(GOTAGS) -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/podhook-agent ./cmd/podhook-agent
	CGO_ENABLED=0 $(GO) build -tags $(GOTAGS) -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/podhook-nri ./cmd/podhook-nri
	CGO_ENABLED=0 $(GO) build -tags $(GOTAGS) -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/podhook-sync ./cmd/podhook-sync
	CGO_ENABLED=0 $(GO) build -tags $(GOTAGS) -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/podhook-monitor ./cmd/podhook-monitor

test: lint check-generate unit manifests fuzz ## everything: lint, generated code unchanged, unit and integration tests with -race, the chart, fuzzing

unit: ## unit and integration tests, with the race detector
	$(GO) test -race -count=1 ./...

lint: ## gofmt, go vet, and no build output tracked by git
	@bash .ci/check-tracked
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags hookonly ./cmd/podhook
	$(GO) vet -tags e2e,containerd,crio,k8s ./test/...

helm-tool: ## build helm into HELM_TOOLS (once)
	@if [ -x $(HELM_TOOLS)/helm ]; then echo "helm: $(HELM_TOOLS)/helm"; else \
		echo "building helm $(HELM_VERSION) into $(HELM_TOOLS)"; \
		CGO_ENABLED=0 GOBIN=$(HELM_TOOLS) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); fi

manifests: helm-tool ## every kustomization (kustomize's Go API) and the Helm chart (helm lint, helm template) built and decoded strictly
	PODHOOK_HELM=$(HELM_TOOLS)/helm $(GO) test -count=1 -v ./test/manifests 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)'

# A fuzz run that fails writes its input to testdata/fuzz/<target>/ and
# fails here. A run that fails without writing one is the fuzz engine's own
# shutdown race at -fuzztime (golang/go#51484): its output is shown and the
# target runs once more, which must pass. Minimising a new interesting input
# (not a failure) is cut at 2s: an 8 KB fixture would otherwise hold a
# worker for the whole run.
fuzz: ## run every fuzz target for FUZZTIME (default 20s)
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; corpus=$$pkg/testdata/fuzz/$$name; \
		for try in 1 2; do \
			echo "fuzz $$name for $(FUZZTIME)"; \
			before=$$(ls $$corpus 2>/dev/null || true); \
			if out=$$($(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg 2>&1); then \
				tail -3 <<<"$$out"; break; \
			fi; \
			echo "$$out"; \
			if [ "$$(ls $$corpus 2>/dev/null || true)" != "$$before" ] || [ $$try = 2 ]; then \
				echo "fuzz $$name failed; a new input is in $$corpus"; exit 1; \
			fi; \
			echo "fuzz $$name failed without writing an input; running it once more"; \
		done; \
	done

e2e: ## real podman and runc run the hook from hooks.d (root; installs podman, runc, busybox-static when missing)
	$(GO) test -tags e2e -count=1 -v ./test/e2e 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)'

containerd-tools: ## build containerd, its runc shim, ctr and crictl into CONTAINERD_TOOLS (once)
	@if [ -x $(CONTAINERD_TOOLS)/containerd ] && [ -x $(CONTAINERD_TOOLS)/containerd-shim-runc-v2 ] && [ -x $(CONTAINERD_TOOLS)/ctr ] && [ -x $(CONTAINERD_TOOLS)/crictl ]; then \
		echo "containerd tools: $(CONTAINERD_TOOLS)"; \
	else \
		echo "building containerd $(CONTAINERD_VERSION) and crictl $(CRICTL_VERSION) into $(CONTAINERD_TOOLS)"; \
		CGO_ENABLED=0 GOBIN=$(CONTAINERD_TOOLS) $(GO) install \
			github.com/containerd/containerd/v2/cmd/containerd@$(CONTAINERD_VERSION) \
			github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$(CONTAINERD_VERSION) \
			github.com/containerd/containerd/v2/cmd/ctr@$(CONTAINERD_VERSION); \
		CGO_ENABLED=0 GOBIN=$(CONTAINERD_TOOLS) $(GO) install sigs.k8s.io/cri-tools/cmd/crictl@$(CRICTL_VERSION); \
	fi

e2e-containerd: containerd-tools ## a private containerd with NRI runs pods through crictl; podhook-nri injects the hook (root; needs runc, podman)
	PODHOOK_CONTAINERD_BIN=$(CONTAINERD_TOOLS) $(GO) test -tags containerd -count=1 -v ./test/containerd 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)'

crio-tools: ## unpack CRI-O and pinns from CRIO_SRC into CRIO_TOOLS and check their SHA256SUMS (once)
	@if [ -x $(CRIO_TOOLS)/crio ] && [ -x $(CRIO_TOOLS)/pinns ] && (cd $(CRIO_TOOLS) && sha256sum --quiet -c SHA256SUMS); then \
		echo "CRI-O: $(CRIO_TOOLS)"; \
	else \
		echo "unpacking CRI-O $(CRIO_VERSION) from $(CRIO_SRC) into $(CRIO_TOOLS)"; \
		mkdir -p $(CRIO_TOOLS); \
		gzip -dc $(CRIO_SRC)/crio.gz > $(CRIO_TOOLS)/crio; gzip -dc $(CRIO_SRC)/pinns.gz > $(CRIO_TOOLS)/pinns; \
		cp $(CRIO_SRC)/SHA256SUMS $(CRIO_TOOLS)/; chmod 0755 $(CRIO_TOOLS)/crio $(CRIO_TOOLS)/pinns; \
		cd $(CRIO_TOOLS) && sha256sum -c SHA256SUMS; \
	fi

e2e-crio: crio-tools containerd-tools ## a private CRI-O runs pods through crictl; podhook from hooks.d as install writes it (root; needs runc, conmon, podman, containernetworking-plugins)
	PODHOOK_CRIO_BIN=$(CRIO_TOOLS) PODHOOK_CRICTL=$(CONTAINERD_TOOLS)/crictl $(GO) test -tags crio -count=1 -v ./test/crio 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)'

k8s-tools: ## build kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl and etcd into K8S_TOOLS (once; about 25 min on 2 cores)
	test/k8s/tools.sh $(K8S_TOOLS) $(K8S_VERSION) $(ETCD_VERSION)

e2e-k8s: k8s-tools crio-tools containerd-tools helm-tool ## a single-node Kubernetes (etcd, API server, controller manager, scheduler, kubelet) on a real CRI-O runs the shipped manifests (root)
	PODHOOK_K8S_BIN=$(K8S_TOOLS)/bin PODHOOK_CONTAINERD_BIN=$(CONTAINERD_TOOLS) PODHOOK_CRIO_BIN=$(CRIO_TOOLS) PODHOOK_CRICTL=$(CONTAINERD_TOOLS)/crictl PODHOOK_HELM=$(HELM_TOOLS)/helm \
		$(GO) test -tags k8s -count=1 -timeout 30m -v ./test/k8s 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)'

bench-k8s: k8s-tools crio-tools containerd-tools helm-tool ## 30 pods at once on the Kubernetes node, without and with podhook: p50 and p99 time to Running, and their ratio (root)
	PODHOOK_K8S_BENCH=1 PODHOOK_K8S_BIN=$(K8S_TOOLS)/bin PODHOOK_CONTAINERD_BIN=$(CONTAINERD_TOOLS) PODHOOK_CRIO_BIN=$(CRIO_TOOLS) PODHOOK_CRICTL=$(CONTAINERD_TOOLS)/crictl PODHOOK_HELM=$(HELM_TOOLS)/helm \
		$(GO) test -tags k8s -count=1 -timeout 30m -v -run '^TestPodStartBenchmark$$' ./test/k8s 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)'

bench: build ## whole-process timings vs grpc-go and noop floors (bin/bench/results.json), then podman start overhead
	$(GO) run ./test/bench -podhook $(BIN)/podhook -agent $(BIN)/podhook-agent -out $(BIN)/bench/results.json -runs $(BENCH_RUNS)
	@if command -v podman >/dev/null && [ "$$(id -u)" = 0 ]; then contrib/bench/podman-overhead.sh $(BIN) $(PODMAN_RUNS); else echo "podman start overhead: skipped (needs podman and root)"; fi

BREAKDOWN_RUNS ?= 200
breakdown: build ## where the hook's time goes beyond the grpc-go floor: whole process, package init, page faults, system calls, and each part on its own (bin/bench/breakdown.md; needs perf and strace)
	$(GO) run ./test/bench -breakdown $(BIN)/bench/breakdown.md -runs $(BREAKDOWN_RUNS) -podhook $(BIN)/podhook -agent $(BIN)/podhook-agent

GATE_RUNS ?= 150
bench-gate: build ## CI's gate: hook/grpc-go floor and two agents/one (same run, interleaved) within 10% of test/bench/baseline.json, peak RSS within 5%, binary <= 12 MB; a failure prints the breakdown
	$(GO) run ./test/bench -quick -gate -runs $(GATE_RUNS) -warmup 10 -podhook $(BIN)/podhook -agent $(BIN)/podhook-agent -out $(BIN)/bench/gate.json

image: build ## the FROM scratch images: podhook (podhook, podhook-nri, podhook-sync, podhook-monitor) and podhook-agent, each as :$(VERSION) and :latest (the names the manifests run)
	podman build --network none -f contrib/image/Containerfile --ignorefile contrib/image/.containerignore \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(COMMIT) -t podhook:$(VERSION) -t podhook:latest $(BIN)
	podman build --network none -f contrib/image/agent.Containerfile --ignorefile contrib/image/agent.containerignore \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(COMMIT) -t podhook-agent:$(VERSION) -t podhook-agent:latest $(BIN)

generate: ## regenerate agentclient/agentv1 from agent.proto (needs protoc)
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO_GRPC)
	cd agentclient/agentv1 && PATH=$(TOOLS):$$PATH protoc -I. -I/usr/include \
		--go_out=paths=source_relative:. --go-grpc_out=paths=source_relative:. agent.proto

check-generate: generate ## fail if the committed generated code differs from a fresh generation
	@git diff --exit-code -- agentclient/agentv1 || { echo "generated code is stale: run make generate and commit"; exit 1; }

demo: build ## the whole job: hook -> reference agent -> decision -> log, then with the agent down
	@contrib/demo/demo.sh $(BIN) $(FIXTURES)

clean: ## remove bin/
	rm -rf $(BIN)
