# Roster: a Kubernetes operator that manages users and groups as resources.
#
#   make demo    local control plane + operator + samples, no cluster needed
#   make test    unit, integration (real API server) and store tests
#   make fuzz    fuzz the import file readers (FUZZTIME=30s each)
#   make run     the operator against the current kubeconfig

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

KUBE_VERSION ?= 1.37.0
ETCD_VERSION ?= 3.7.0
GOOS   := $(shell go env GOOS)
GOARCH := $(shell go env GOARCH)
ASSETS := $(CURDIR)/bin/k8s/$(KUBE_VERSION)-$(GOOS)-$(GOARCH)
# The release the install pins (config/manager/kustomization.yaml: newTag).
VERSION ?= v0.1.0
IMG     ?= ghcr.io/roster-dev/roster:$(VERSION)

CONTROLLER_GEN := go tool controller-gen
STATICCHECK    := go tool staticcheck

.PHONY: all
all: build

##@ Development

.PHONY: generate
generate: ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: ## Generate CRDs and RBAC from the code's markers.
	$(CONTROLLER_GEN) crd rbac:roleName=roster-manager paths=./... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@# The Helm chart carries the same CRDs and RBAC.
	cp config/crd/bases/*.yaml charts/roster/crds/
	cp config/rbac/role.yaml config/rbac/leader_election_role.yaml config/rbac/leader_election_role_binding.yaml \
		config/rbac/metrics_reader_role.yaml config/rbac/view_role.yaml config/rbac/edit_role.yaml charts/roster/files/

.PHONY: fmt
fmt: ## gofmt the code.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: ## staticcheck, and gofmt without writing.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(STATICCHECK) ./...

.PHONY: verify
verify: generate manifests vet lint ## Regenerate and fail if the tree changed (stale generated files).
	@git diff --exit-code -- api config charts || { echo "Generated files are stale: run 'make generate manifests' and commit."; exit 1; }

.PHONY: control-plane
control-plane: $(ASSETS)/kube-apiserver ## Build kube-apiserver and etcd from source (cached in bin/k8s).

$(ASSETS)/kube-apiserver:
	hack/build-control-plane.sh $(KUBE_VERSION) $(ETCD_VERSION)

.PHONY: test
test: control-plane ## Run every test against the real control plane.
	KUBEBUILDER_ASSETS=$(ASSETS) go test ./... -count=1 -timeout 30m

BENCH_N         ?= 10000
BENCH_SCIM_N    ?= 1000
BENCH_SCIM_RATE ?= 25
# BENCH_LARGE=1 adds the 100,000-User run: memory, latency with that many
# cached, restart and drift pass (about an hour on 2 cores).
BENCH_LARGE     ?=

.PHONY: bench
bench: control-plane build ## Measure N-user imports: embedded and LDAP against a lean client's floor, SCIM at a rate limit; latency, restart and drift pass after the embedded one.
	go build -o bin/bench ./hack/bench
	KUBEBUILDER_ASSETS=$(ASSETS) bin/bench -store embedded -n $(BENCH_N) -phases -manager bin/manager
	KUBEBUILDER_ASSETS=$(ASSETS) bin/bench -store ldap -n $(BENCH_N) -manager bin/manager
	KUBEBUILDER_ASSETS=$(ASSETS) bin/bench -store scim -n $(BENCH_SCIM_N) -scim-rate $(BENCH_SCIM_RATE) -manager bin/manager
	$(if $(BENCH_LARGE),KUBEBUILDER_ASSETS=$(ASSETS) bin/bench -store embedded -n 100000 -skip-floor -invitations -phases -timeout 3h -manager bin/manager)

FUZZTIME ?= 30s

.PHONY: fuzz
fuzz: ## Fuzz the import file readers, FUZZTIME each (default 30s); findings land in testdata/fuzz.
	go test ./internal/importfile -run '^$$' -fuzz '^FuzzReadCSV$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10s
	go test ./internal/importfile -run '^$$' -fuzz '^FuzzReadXLSX$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10s

##@ Running

.PHONY: build
build: ## Build the manager binary into bin/.
	go build -o bin/manager .

.PHONY: run
run: ## Run the operator against the current kubeconfig (namespace roster-system, embedded stores in bin/data; plain HTTP metrics on 127.0.0.1:8080).
	kubectl get namespace roster-system >/dev/null 2>&1 || kubectl create namespace roster-system
	go run . --namespace=roster-system --data-dir=bin/data --metrics-bind-address=127.0.0.1:8080 --metrics-secure=false --health-probe-bind-address=:8081

.PHONY: demo
demo: control-plane ## Start a local control plane, the operator and the samples.
	KUBE_VERSION=$(KUBE_VERSION) hack/demo.sh

.PHONY: install
install: ## Install the CRDs into the current cluster.
	kubectl apply -f config/crd/bases

.PHONY: deploy
deploy: ## Install Roster into the current cluster (CRDs, RBAC, manager).
	kubectl apply -k config/default

.PHONY: docker-build
docker-build: ## Build the container image.
	docker build -t $(IMG) .

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
