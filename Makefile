# CIDStore — one Makefile for every module of the go.work monorepo.
SHELL := /bin/bash
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

# Every directory with a go.mod is a module; go.work lists them all.
MODULES := $(patsubst %/go.mod,%,$(wildcard */go.mod))
APT_PKGS := pkg-config libhdf5-dev hdf5-tools libzmq3-dev redis-server
FUZZTIME ?= 30s
BENCH_FLAGS ?=

.PHONY: deps-check
.PHONY: cidbench
.PHONY: help deps build run test test-race test-short lint fmt vet tidy bench bench-full fuzz crash clean ci

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

deps: ## install the system libraries and tools a fresh Debian machine lacks (idempotent)
	@command -v $(GO) >/dev/null || { echo "Go toolchain not found: install Go 1.26+ (see README)"; exit 1; }
	@if ! dpkg -s $(APT_PKGS) >/dev/null 2>&1; then \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		echo "installing $(APT_PKGS)"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PKGS) >/dev/null; \
	fi

build: deps ## build bin/cidstore and the tools
	@mkdir -p bin
	@if [ -d app ]; then cd app && $(GO) build -o ../bin/cidstore ./cmd/cidstore && $(GO) build -o ../bin/cidtune ./cmd/cidtune; fi
	@if [ -d tools ]; then cd tools && $(GO) build -o ../bin/ ./cmd/...; fi

run: build ## start the service on ./data with the default endpoints
	./bin/cidstore serve

test: deps lint build ## everything CI runs: lint, unit, property, fuzz seeds, crash and end-to-end tests
	@set -e; for m in $(MODULES); do echo "== test $$m"; (cd $$m && $(GO) test -count=1 ./...); done
	@$(MAKE) --no-print-directory test-race

test-race: ## the concurrency-sensitive packages under the race detector
	@set -e; for m in core storage-mem; do echo "== race $$m"; (cd $$m && $(GO) test -count=1 -race -short ./...); done
	@echo "== race tests (readers, evictor, checkpoints, maintenance on both backends)"; cd tests && $(GO) test -count=1 -race -run 'TestReadersWithEviction' .

test-short: ## quick unit tests only
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) test -short ./...); done

lint: fmt vet deps-check ## gofmt, go vet (each module standalone) and the import rules

deps-check: ## core imports only the stdlib and its own packages; adapters never import core internals
	@bad=$$(cd core && $(GO) list -f '{{join .Imports "\n"}}' ./... | grep '\.' | grep -v '^github.com/cidstore/cidstore/core' || true); \
		if [ -n "$$bad" ]; then echo "core imports outside the stdlib: $$bad"; exit 1; fi
	@set -e; for m in $(filter-out core,$(MODULES)); do \
		bad=$$(cd $$m && $(GO) list -f '{{join .Imports "\n"}}' ./... | grep '^github.com/cidstore/cidstore/core/internal' || true); \
		if [ -n "$$bad" ]; then echo "$$m imports core internals: $$bad"; exit 1; fi; done

fmt:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	@set -e; for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) vet ./...); done

tidy:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy); done

fuzz: ## run every fuzz target for FUZZTIME
	@set -e; for m in $(MODULES); do \
		(cd $$m && for pkg in $$($(GO) list ./...); do \
			for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep ^Fuzz); do \
				echo "== fuzz $$pkg $$f"; $(GO) test -run=NONE -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg; done; done); done

BENCH_OUT ?= bench-results.jsonl
CIDBENCH := $(CURDIR)/bin/cidbench
BENCH_ENGINES ?= cidstore-mem,cidstore-hdf5,cidstore-mem:none,gomap,pebble,badger,bbolt

cidbench:
	@mkdir -p bin && cd tools && $(GO) build -o $(CIDBENCH) ./cmd/cidbench

bench: build ## W1 (1M keys) for every engine, W2, and W6 through the service (< 15 min on 2 cores)
	$(CIDBENCH) --workload W1 --keys 1000000 --sync always --engines $(BENCH_ENGINES) --out $(BENCH_OUT) $(BENCH_FLAGS)
	$(CIDBENCH) --workload W2 --keys 1000000 --engines cidstore-mem,cidstore-mem:none,gomap --out $(BENCH_OUT) $(BENCH_FLAGS)
	$(CIDBENCH) --workload W6 --keys 1000000 --out $(BENCH_OUT) $(BENCH_FLAGS)

bench-full: build ## W1+W2 for every engine, 3 runs (medians), plus charts
	$(CIDBENCH) --workload W1,W2 --keys 1000000 --runs 3 --sync always --engines $(BENCH_ENGINES) --out $(BENCH_OUT) $(BENCH_FLAGS)
	cd tools && $(GO) run ./cmd/cidplot --outdir ../docs/img $(abspath $(BENCH_OUT))

clean:
	rm -rf bin

ci: test

crash: ## the crash tests with many more kills (CRASH_ROUNDS per scenario, default 100)
	set -o pipefail; cd tests && CIDSTORE_CRASH_ROUNDS=$${CRASH_ROUNDS:-100} $(GO) test -count=1 -timeout 0 -run 'TestCrash' -v ./... | grep -E '^(---|ok|FAIL)|kills'
