# The two commands an operator needs: `make run` and `make test`.
# Everything they depend on (PostgreSQL, btcd) is installed and started by
# internal/devstack on first use; nothing has to be set up by hand.

GO       ?= go
BIN      := bin/hashforge
PKGS     := ./...
# Tests that need real components fail instead of skipping when CI is set;
# `make test` always means "against the real parts".
TESTENV  := CI=true

.PHONY: all build build-opencl run test fuzz bench lint lint-generated clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/hashforge

# The miner with its OpenCL path (cgo against the ICD loader). Installs the
# OpenCL headers, loader and PoCL when they are missing.
build-opencl:
	$(GO) run ./internal/devstack/cmd/ensure-opencl
	$(GO) build -tags opencl -trimpath -o $(BIN) ./cmd/hashforge

# The whole stack on this machine: private PostgreSQL, simnet btcd,
# btcwallet, pool with payouts, dashboard and the bundled miner, all kept in
# .hashforge-dev across restarts (ARGS=--fresh starts over). Ctrl-C stops it.
run: build
	./$(BIN) dev $(ARGS)

test: lint build
	$(TESTENV) $(GO) test -count=1 -timeout 15m $(PKGS)
	$(TESTENV) $(GO) test -count=1 -tags purego ./worker/sha256d/
	$(TESTENV) $(GO) test -count=1 -race -timeout 10m ./stratum/ ./pool/... ./worker/ ./web/ ./ledger/ ./payout/... ./loadtest/
	$(GO) run ./internal/devstack/cmd/ensure-opencl
	$(GO) vet -tags opencl ./kernels/ ./worker/... ./cmd/hashforge/
	$(TESTENV) $(GO) test -count=1 -tags opencl -timeout 10m ./kernels/ ./worker/... && $(TESTENV) $(GO) test -count=1 -tags opencl -run OpenCL ./cmd/hashforge/
	@echo "make test: all tests passed"

# Every fuzz target (found with `go test -list`) for FUZZTIME each, then a
# table of executions per minute; the seeds alone run in `make test`.
# FUZZFLAGS="-parallel 1" keeps it to one worker on a shared machine.
FUZZTIME ?= 10s
FUZZFLAGS ?=
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZFLAGS="$(FUZZFLAGS)" ./scripts/fuzz.sh

bench: build
	./$(BIN) bench --impl all --threads 1 --seconds 3
	$(GO) test -run '^$$' -bench . -benchmem ./pool/ ./stratum/ ./worker/sha256d/

lint: lint-generated
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# The committed SHA-256d kernels must be exactly what internal/asmgen makes
# now: it is run into a temporary directory (offline, from the module cache)
# and every file it writes is compared with the package's copy.
ASMGEN_PKG := ./worker/sha256d/internal/asmgen
ASMGEN_OUT := worker/sha256d
lint-generated:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  GOPROXY=off GOFLAGS=-mod=readonly $(GO) build -o "$$tmp/asmgen" $(ASMGEN_PKG) && \
	  mkdir "$$tmp/out" && (cd "$$tmp/out" && "$$tmp/asmgen") && \
	  stale=; for f in "$$tmp"/out/*; do n=$${f##*/}; \
	    if ! cmp -s "$$f" "$(ASMGEN_OUT)/$$n"; then stale="$$stale $$n"; \
	      diff -u "$(ASMGEN_OUT)/$$n" "$$f" 2>&1 | head -n 20; fi; \
	  done; \
	  if [ -n "$$stale" ]; then \
	    echo "generated kernels out of date in $(ASMGEN_OUT):$$stale"; \
	    echo "regenerate with: (cd $(ASMGEN_OUT) && go run ./internal/asmgen), then commit"; exit 1; \
	  fi

clean:
	rm -rf bin .hashforge-dev
