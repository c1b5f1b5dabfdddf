# Sluice. Every target runs as root on a Debian/Ubuntu host; nothing calls sudo.
SHELL := /bin/bash
GO ?= go
BIN := bin/sluice
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/sluicelb/sluice/mgmt.Version=$(VERSION)
ARCH_INCLUDE := /usr/include/$(shell uname -m)-linux-gnu
FUZZTIME ?= 10s

.PHONY: help build generate deps test unit fuzz check-generate bench demo lab clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/sluice
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sluice

generate: ## regenerate the bpf2go objects (installs clang, llvm, libbpf headers if missing)
	@command -v clang >/dev/null && test -e /usr/include/bpf/bpf_helpers.h || scripts/apt-install.sh clang llvm libbpf-dev linux-libc-dev
	cd bpf && BPF2GO_CFLAGS="-I$(ARCH_INCLUDE)" $(GO) generate ./...

check-generate: generate ## fail when the committed bpf2go output differs from a fresh build
	git diff --exit-code -- bpf/

deps: ## install what the tests and the demo need, only what is missing
	@scripts/deps.sh test

test: deps build ## run every tier: vet, unit, BPF (prog.Run) and end-to-end tests, then bounded fuzzing
	$(GO) vet ./...
	SLUICE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m ./...
	@$(MAKE) --no-print-directory fuzz
	@if command -v clang >/dev/null; then $(MAKE) --no-print-directory check-generate; else echo "clang not installed: bpf2go output check skipped"; fi

fuzz: ## run every fuzz target for FUZZTIME each (default 10s)
	@scripts/fuzz.sh $(FUZZTIME)

bench: deps build ## measure Sluice against its peers side by side and print ratios
	@scripts/deps.sh bench
	@scripts/bench.sh

demo: deps build ## a lab of namespaces with Sluice filtering real traffic (root)
	@scripts/demo.sh

lab: build ## bring up the lab for playing: scripts/lab.sh up|down|status
	@scripts/lab.sh up

clean: ## remove build output, the lab and its pins
	-@scripts/lab.sh down >/dev/null 2>&1
	rm -rf bin/
	$(GO) clean -testcache
