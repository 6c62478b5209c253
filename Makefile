# campaign-privacy — make targets. `make test` is the one test command: the
# README gives it and .ci/run calls it.

GO ?= go

.PHONY: build test vet interop-deps generate run bench

build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -o campaign-privacy ./cmd/campaign-privacy

run:
	$(GO) run ./cmd/campaign-privacy serve

# interop-deps installs the npm clients (acc-js-sdk, node-soap) and the
# browser driver (playwright-core, driving Debian's chromium) from their lock files.
interop-deps:
	@if command -v npm >/dev/null 2>&1; then \
		for d in interop/js interop/browser; do \
			if [ -f $$d/package-lock.json ]; then (cd $$d && npm ci --no-audit --no-fund --loglevel=error) || exit 1; fi; \
		done; \
	else echo "npm not found: the acc-js-sdk, node-soap and browser tests will be skipped"; fi

# STATICCHECK is pinned: the same checks on every machine.
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# RACE is -race where a C compiler is there for the race detector (.ci/run
# installs one): the packages that hold the service's logic run under it,
# the rest (the command, the real clients, the generated code) as is.
RACE ?= $(shell command -v cc >/dev/null 2>&1 && [ "$$($(GO) env CGO_ENABLED)" = 1 ] && echo -race)
RACE_PKGS = ./server/... ./session/... ./web/... ./privacy/... ./internal/... ./schemas/...

# test runs the Go suite against a throwaway PostgreSQL cluster of its own
# (scripts/with-test-postgres: never the machine's server). The restart
# fault test restarts that cluster, so it runs alone, after the rest.
test: interop-deps vet
	scripts/with-test-postgres $(MAKE) --no-print-directory test-go
	@$(MAKE) --no-print-directory vulncheck

# GOTESTSUM runs go test (pinned, from the Go module proxy): one line per
# package, the failures in full, and a summary that lists every skipped test
# with its reason, ending with "DONE N tests, S skipped, F failures in T".
# Under CI (env CI set) a skip of a required component (PostgreSQL, a SOAP
# client, chromium) is a failure, as the tests say.
GOTESTSUM = $(GO) run gotest.tools/gotestsum@v1.13.0 --format pkgname-and-test-fails --format-hide-empty-pkg --

.PHONY: test-go
test-go:
	$(GOTESTSUM) -count=1 -timeout 25m $(RACE) $(RACE_PKGS)
	$(GOTESTSUM) -count=1 -timeout 25m $$($(GO) list ./... | grep -v -e /server -e /session -e /web -e /privacy -e /internal/ -e /schemas)
	$(GO) test -run '^$$' -bench . -benchtime=100x -benchmem ./server ./internal/querydef
	$(GO) test -run '^$$' -bench . -benchtime=5x -benchmem ./privacy ./web
	CP_TEST_PG_RESTART=1 $(GOTESTSUM) -count=1 -run 'TestPostgresRestartDuringDelete|TestPostgresCrashDuring' ./cmd/campaign-privacy

# vulncheck runs govulncheck (from the Go module proxy, pinned) over every
# package. It needs the Go vulnerability database (vuln.go.dev): where that
# cannot be reached it says so and passes; a finding always fails.
GOVULNCHECK = golang.org/x/vuln/cmd/govulncheck@v1.9.0
.PHONY: vulncheck
vulncheck:
	@out=$$($(GO) run $(GOVULNCHECK) ./... 2>&1); status=$$?; \
	if [ $$status -ne 0 ] && printf '%s' "$$out" | grep -q 'fetching vulnerabilities'; then \
		echo "govulncheck: skipped, the vulnerability database cannot be reached from here:"; \
		printf '%s\n' "$$out" | grep 'fetching vulnerabilities'; \
	else printf '%s\n' "$$out"; exit $$status; fi

generate:
	$(GO) generate ./...

# bench-all runs every benchmark of bench/README.md (about 45 minutes).
.PHONY: bench-all
bench-all:
	bench/run.sh

# bench measures the workflows against hand-written SQL (PostgreSQL); see bench/README.md.
bench:
	$(GO) run ./bench/workflows -recipients 100000 -requests 5000 -access 500

# soak runs the mixed SOAP load (bench/soap) on PostgreSQL at 10 connections
# for 30 minutes, sampling req/s, p99, RSS, threads and FDs every 30 s; see
# bench/README.md. Not part of `make test`.
.PHONY: soak
soak:
	$(GO) run ./bench/soap -soak 30m
