# gockpt build, test and generation entry points.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
STATICCHECK_VERSION := v0.8.2

.PHONY: all gockpt test generate lint bench bench-criu bench-lazy demo clean vm-selinux vm-softdirty

all: gockpt

# The first build downloads the Go modules and compiles every package, which
# takes a while in silence: say so.
gockpt:
	@if ! GOPROXY=off $(GO) list -deps ./cmd/gockpt >/dev/null 2>&1; then \
		echo "First build: downloading Go modules, then building bin/gockpt (a minute or two)"; \
	elif [ ! -e bin/gockpt ]; then \
		echo "Building bin/gockpt (a first build compiles every package: it can take a minute)"; \
	fi
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/gockpt ./cmd/gockpt

# Unit tests and end-to-end tests with real processes, then the zdtm suite
# (its summary line is the last line); they need root.
test: gockpt
	$(GO) test -count=1 -timeout 20m ./...
	cd test/bench && $(GO) test -count=1 -timeout 5m ./...
	$(MAKE) --no-print-directory zdtm

# Regenerate every committed generated file (protobuf Go code, parasite blob).
generate:
	./proto/gen.sh
	./internal/parasite/gen.sh
	./internal/restore/gen.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	cd test/bench && $(GO) vet ./... && $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Dump and restore of a process with 1 GiB of touched memory, each against a
# raw baseline measured in the same run; page reading by vmsplice vs
# process_vm_readv. Numbers are ratios and MB/s per benchmark line.
bench: gockpt
	$(GO) test -run XXX -bench '^Benchmark(Dump|Restore)1GiB$$' -benchtime 5x -count 1 ./internal/dump/ ./internal/restore/
	$(GO) test -run XXX -bench '^BenchmarkMixedFds$$' -benchtime 5x -count 1 ./internal/restore/
	$(GO) test -run XXX -bench '^BenchmarkTCP(Frozen|FirstEcho)$$' -benchtime 5x -count 1 ./internal/restore/
	$(GO) test -run XXX -bench 'PreDump1GiB' -benchtime 3x -count 1 ./internal/dump/
	$(GO) test -run XXX -bench . -benchtime 5x -count 1 ./internal/parasite/

# gockpt and CRIU 4.2 side by side (test/bench, its own Go module): every
# workload (memory 4 MiB-4 GiB, trees of 1-1000 tasks, 1-1024 threads,
# 10,000 fds, 1,000 VMAs) dumped and restored by each tool in turn, images on
# tmpfs and on disk, 3 runs; prints medians, ratios gockpt/CRIU and peak RSS
# as a markdown table and draws bench-criu.png. Slow (tens of minutes): not in
# make test. BENCH_FLAGS passes options, e.g. BENCH_FLAGS="-quick" or
# BENCH_FLAGS="-only 'tree-100$$|mem-1GiB' -storage tmpfs -out bench-criu.md".
CRIU ?= ../shared/anchors/criu-4.2/criu
BENCH_FLAGS ?=
bench-criu: gockpt
	cd test/bench && $(GO) build -o ../../bin/criubench ./criubench
	./bin/criubench -gockpt bin/gockpt -criu $(CRIU) $(BENCH_FLAGS)

# Post-copy, gockpt and CRIU 4.2 side by side (criubench -lazy): processes of
# 16 MiB, 256 MiB and 1 GiB dumped, then restored with lazy-pages + restore
# --lazy-pages -d, the pages from the images (local), from a page server on
# 127.0.0.1 (loopback) and by faults only (gockpt --push-pages 0); the time
# until the tree runs, until every page is in place, and the latency of the
# workload's first touches that faulted, as it timed them; 3 runs, alternating,
# medians and ratios gockpt/CRIU as markdown. CRIU's loopback runs raise
# fs.pipe-max-size to 4 MiB and put it back after each. About ten minutes
# (CRIU's loopback runs of 1 GiB take one or two each): not in make test. BENCH_FLAGS as above, e.g. BENCH_FLAGS="-quick" or
# BENCH_FLAGS="-only 1GiB -lazy-settings local,faults-only -out bench-lazy.md".
bench-lazy: gockpt
	cd test/bench && $(GO) build -o ../../bin/criubench ./criubench
	./bin/criubench -lazy -gockpt bin/gockpt -criu $(CRIU) $(BENCH_FLAGS)

# SELinux in the test VM (Debian 6.1, enforcing; ../shared/vm), one PASS/FAIL
# line per check: a single- and a 5-thread program in vmtest_a_t dumped and
# restored with the same PID, TIDs and label in every thread, without an AVC
# denial; a restore writing the label after creating threads gets EPERM from
# the kernel (the order restore keeps matters); a parasite socket without the
# target's label is denied connectto (the label matters). ~1-2 min (qemu
# without KVM): not in make test.
vm-selinux:
	./test/vm/selinux.sh

# Pre-dumps and an incremental dump tracked by soft-dirty in the test VM
# (Debian 6.1: soft-dirty, no PAGEMAP_SCAN): exact pages per iteration, then
# restore. Slow (qemu without KVM): not in make test.
vm-softdirty:
	./test/vm/softdirty.sh

# The main job on a demo process: start it, checkpoint it, show the images
# (kept in bin/demo/images), restore it.
demo: gockpt
	./scripts/demo.sh

clean:
	rm -rf bin

# zdtm: build gockpt and the zdtm tests, run every test in every checkpoint
# mode, end with "zdtm: N passed, M failed, K skipped" (exit 1 on a failure).
# ZDTM_FLAGS passes runner options, e.g. ZDTM_FLAGS="-t mem_anon -m snapshot -keep -v".
.PHONY: zdtm
ZDTM_FLAGS ?=
zdtm: gockpt
	$(GO) build -o test/zdtm/build/zdtm-runner ./test/zdtm/runner
	@./test/zdtm/build/zdtm-runner -gockpt bin/gockpt $(ZDTM_FLAGS)
