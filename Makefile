# volattach: `make demo` runs a full attach, `make test` runs every test.
# Both start what they need first (scripts/env-up.sh).

GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

PKGS := ./...
TEST_TIMEOUT ?= 40m

.PHONY: all env demo serve test vet fmt-check docs docs-check bench bench-all chaos

all: test

## env: install (if missing) and start libvirtd, virtlogd and tgtd.
env:
	bash scripts/env-up.sh

## demo: attach and detach a volume on a real QEMU guest through the whole
## stack, printing every state transition (examples/attach; see README).
## Flags go in DEMO_FLAGS, e.g. make demo DEMO_FLAGS='-backend nbd'.
## The state tables alone: go run ./examples/statetables -format markdown
demo: env
	$(GO) run ./examples/attach $(DEMO_FLAGS)

## serve: start volattachd (OpenStack compute and volume APIs, Keystone auth,
## embedded etcd, iSCSI backend) with one running guest registered as a
## server, and print the environment the openstack client needs (README).
serve:
	bash scripts/serve.sh

## test: vet, gofmt, docs freshness, then every test with the race detector
## (the chaos test among them, with a CHAOS_SHORT workload).
## VOLATTACH_REQUIRE_ENV=1 makes a test that cannot reach a real component fail.
test: env vet fmt-check docs-check
	VOLATTACH_REQUIRE_ENV=1 CHAOS_DURATION=$(CHAOS_SHORT) $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## docs: regenerate docs/state-machines.md and docs/<table>.svg (Graphviz)
## from the tables.
docs:
	@bash scripts/docs.sh write

## docs-check: fail when docs/state-machines.md or an SVG is stale.
docs-check:
	@bash scripts/docs.sh check

## bench: the measurements (scripts/bench.sh, a few minutes): etcd writes
## per attach and per detach counted at the client, fake-hypervisor
## attach+detach at 1/8/64 instances beside raw guarded-Txn throughput,
## whole stack vs go-libvirt on a real guest, memory per attach with etcd in
## another process; then a summary table with the ratios. Raw output
## (benchstat) in bench-out/raw.txt. BENCH_COUNT=5 for benchstat;
## VOLATTACH_BENCH_SCALE=1 adds the scale benchmarks (tens of minutes).
bench: env
	bash scripts/bench.sh

## bench-all: every benchmark of every package, benchstat-friendly.
BENCH_COUNT ?= 5
bench-all: env
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) $(PKGS)

## chaos: the Jepsen-style test (adapters/chaos, docs/reliability.md): a
## three-member etcd cluster, host agents and API servers, each a process in
## its own network namespace, under partitions, kills and pauses, with the
## history checked for linearizability; about three minutes. A longer run:
## make chaos CHAOS_DURATION=20m; a replay: make chaos CHAOS_SEED=<seed>.
CHAOS_DURATION ?= 100s
## CHAOS_SHORT is the workload of the short chaos run `make test` includes.
CHAOS_SHORT ?= 20s
chaos: env
	CHAOS_DURATION=$(CHAOS_DURATION) VOLATTACH_REQUIRE_ENV=1 $(GO) test -count=1 -v -timeout 90m -run '^TestChaos$$' ./adapters/chaos
