# Slurmgate. `make dev` and `make test` are the two commands a newcomer runs,
# as root, on a fresh Debian 12 machine; see README.md.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
BIN := bin/slurmgate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Never let the go command download another toolchain: there is no such network here.
export GOTOOLCHAIN := local

.PHONY: build test test-unit bench lint dev cluster-up cluster-down cluster-purge check-go portal browser test-deps

build: check-go portal
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/slurmgate

# The web portal: TypeScript built with esbuild into webportal/dist/, which
# the binary embeds. npm ci runs only when node_modules is missing or the lock
# file changed (npm keeps its own copy of the lock in node_modules).
PORTAL_SRC := $(shell find webportal/src -type f 2>/dev/null) webportal/build.mjs webportal/tsconfig.json
portal: webportal/dist/index.html

webportal/dist/index.html: webportal/node_modules/.package-lock.json $(PORTAL_SRC)
	cd webportal && npm run --silent check && npm run --silent build

webportal/node_modules/.package-lock.json: webportal/package-lock.json
	@command -v npm >/dev/null || { echo "installing Node.js and npm to build the web portal"; apt-get install -y nodejs npm; }
	cd webportal && npm ci --no-audit --no-fund
	@touch $@

# The browser tests drive Debian's Chromium headless (never a downloaded one).
browser:
	@command -v chromium >/dev/null || { echo "installing chromium for the web portal's browser tests"; apt-get install -y chromium; }

# What the integration tests run for real on this host, from Debian's
# repositories: the container runtime, Jupyter (the agent's services), the
# OpenSSH client (slurmgate ssh), unshare; then the test images (cached).
TEST_PACKAGES := charliecloud-runtime squashfs-tools squashfuse fuse3 jupyter-notebook openssh-client util-linux
test-deps:
	@missing=$$(for p in $(TEST_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing" $$missing; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; fi
	testdata/images/build

check-go:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is required: https://go.dev/doc/install (or set GO=/path/to/go)"; exit 1; }

cluster-up:
	testdata/cluster/up

cluster-down:
	testdata/cluster/down

cluster-purge:
	testdata/cluster/down --purge

# Everything: formatting and vet, then every package's tests, unit and
# integration alike, under the race detector against the real test cluster.
# One package at a time (-p 1): packages share one slurmdbd, and slurmdbd
# 22.05 crashes under concurrent accounting writes from several processes.
# Apptainer is not packaged for Debian 12: its instance test is built (with
# the apptainer tag) only where apptainer is on PATH; elsewhere its exact
# command lines are still tested.
APPTAINER_TAGS := $(shell command -v apptainer >/dev/null 2>&1 && echo -tags apptainer)
test: lint cluster-up build browser test-deps
	@[ -n "$(APPTAINER_TAGS)" ] || echo "apptainer is not on PATH: its instance test is not built here (its command lines are tested)"
	$(GO) test $(APPTAINER_TAGS) -race -count=1 -p 1 -timeout 60m ./...

# Tests that need no daemon; quick feedback while editing.
test-unit: check-go
	$(GO) test -count=1 -run 'Parse|Explain|Error|Time|TRES|GRES|Minter|Config|None' ./slurmctl/ ./cmd/... ./apptainer/

# Benchmarks print ratios against a baseline measured in the same run.
bench: cluster-up build test-deps
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m ./...

lint: check-go
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./... ./testdata/cluster/
	$(GO) vet -tags apptainer ./apptainer/

# The gateway's summary (portal URL, logins, keypairs, a first command) comes
# last, after the cluster's.
dev: cluster-up build
	@source .cluster/cluster.env; \
	echo; \
	echo "The one-machine Slurm cluster ($$SLURMGATE_SLURM_CLUSTER):"; \
	echo "  slurmrestd  $$SLURMGATE_SLURM_REST_URL (JWT key $$SLURMGATE_SLURM_JWT_KEY_FILE)"; \
	echo "  PostgreSQL  127.0.0.1:15432 (credentials in .cluster/cluster.env)"; \
	echo "  Slurm CLI   export SLURM_CONF=$$SLURM_CONF; sinfo; squeue; sacctmgr show assoc"; \
	echo "  Logs        .cluster/log/"; \
	echo "  Stop        make cluster-down   (make cluster-purge wipes all state)"
	testdata/cluster/gateway
