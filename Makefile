# kvmspec — conformance and regression suite for hypervisors.
#   make run    all suites on the best backend available, reports in reports/out
#   make test   unit tests + the suites on every backend; what CI runs
#   make bench  harness benchmarks beside the C reference (tools/refbench)
#   make lint   gofmt, go vet, staticcheck
#   make fuzz   every fuzz target for FUZZTIME each
#   make build  the static kvmspec binary in bin/ (GOARCH=arm64 make build cross-builds)
#   make build-arm64  the arm64 binary in bin/kvmspec-arm64 and go vet for arm64
#   make test-arm64   the suites on real KVM/arm64: an arm64 kernel under qemu-system-aarch64
#   make merge-report one report of both: reports/out/merged (make test writes it too)
#   make bench-arm64  memslot update cost there, Go harness beside C (opt-in)

GO        ?= go
BIN       := bin/kvmspec
OUT       := reports/out
FUZZTIME  ?= 30s
# Minimising each new input may take this long (Go's default is 60 s): with
# the report fuzzers' inputs of a few KiB it took the whole FUZZTIME, 0 execs/s
# (FuzzReadJSON: 2047 execs in 20 s; with 2 s, 117415 in 40 s).
FUZZMINTIME ?= 2s
BENCHTIME ?= 20000x
DIRTYLOG_MIB    ?= 64
DIRTYLOG_PASSES ?= 5
MEMSLOT_ROUNDS  ?= 200
MEMSLOT_EMU_SLOTS ?= 1,8,64,512,4096,max
DISCARD_MIB     ?= 64
DISCARD_PASSES  ?= 10
CC        ?= cc
# Unit tests: every package, but not the suites themselves (TestSuites),
# which `make test` runs through the kvmspec binary so its reports are the
# CLI's own; the suites package's other tests (its --param schema, its
# option checks) are unit tests.
UNIT_PKGS  = $(shell $(GO) list ./...)
# A package whose tests hang fails after this, naming the tests that ran
# (the CLI tests also stop any kvmspec they started after 3 minutes).
UNIT_TIMEOUT ?= 6m

.PHONY: all build build-arm64 run test unit suites bench lint fuzz refbench clean xmllint aarch64-as

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./tools/kvmspec

# The one binary must build for arm64 boards too (the kvm backend says
# there that it is x86-64 only so far; the emu runs): lint checks it.
build-arm64:
	GOARCH=arm64 CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)-arm64 ./tools/kvmspec
	GOARCH=arm64 $(GO) vet ./...
	@if command -v qemu-aarch64-static >/dev/null 2>&1; then \
	  echo "== arm64 unit tests of the backends under qemu-user"; \
	  GOARCH=arm64 CGO_ENABLED=0 $(GO) test -count=1 -timeout 5m -exec qemu-aarch64-static ./harness/kvm/ ./harness/hv/... ./harness/lapic/; \
	else echo "no qemu-aarch64-static: arm64 tests not run (apt-get install qemu-user-static)"; fi

run: build
	./$(BIN) run --backend auto --report-dir $(OUT)

test:
	@mkdir -p $(OUT) && touch $(OUT)/.test-start
	@ARM64_TIMEOUT=$${ARM64_TIMEOUT:-$(ARM64_TEST_TIMEOUT)} ARM64_SUITE_TIMEOUT=$${ARM64_SUITE_TIMEOUT:-$$(($(ARM64_TEST_TIMEOUT) - 120))}; export ARM64_TIMEOUT ARM64_SUITE_TIMEOUT; \
	$(call arm64_stage,$(ARM64_TEST_LABELS)) > $(OUT)/arm64.log 2>&1 & arm64=$$!; \
	$(MAKE) --no-print-directory unit suites; status=$$?; \
	wait $$arm64; a=$$?; echo "== arm64 stage (make test-arm64; log: $(OUT)/arm64.log)"; cat $(OUT)/arm64.log; \
	if [ $$a != 0 ]; then echo "make test: FAIL: the arm64 stage failed (reports: $(OUT)/arm64)"; status=1; fi; \
	$(MAKE) --no-print-directory merge-report MERGE_SINCE=$(OUT)/.test-start MERGE_ARM64_LOG=$(OUT)/arm64.log || \
	  { echo "make test: FAIL: the merged report of both architectures fails or was not written ($(MERGED))"; status=1; }; exit $$status

# The JUnit schema test (reports) validates with xmllint when it is there;
# install it where this user can, else the test uses its Go check.
xmllint:
	@command -v xmllint >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then apt-get install -y -qq libxml2-utils >/dev/null 2>&1; \
	  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then sudo -n apt-get install -y -qq libxml2-utils >/dev/null 2>&1; fi; \
	  command -v xmllint >/dev/null 2>&1 || echo "xmllint: libxml2-utils not installed; the JUnit schema test uses its Go check"; }

# harness/a64's TestGNUAs byte-compares every encoding with GNU as for
# AArch64 (a 3 MB package); install it where this user can, else the test
# skips and says why.
aarch64-as:
	@command -v aarch64-linux-gnu-as >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then apt-get install -y -qq binutils-aarch64-linux-gnu >/dev/null 2>&1; \
	  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then sudo -n apt-get install -y -qq binutils-aarch64-linux-gnu >/dev/null 2>&1; fi; \
	  command -v aarch64-linux-gnu-as >/dev/null 2>&1 || echo "aarch64-linux-gnu-as: binutils-aarch64-linux-gnu not installed; harness/a64's GNU as comparison skips"; }

unit: xmllint aarch64-as
	@mkdir -p $(OUT)
	@$(GO) test -count=1 -timeout $(UNIT_TIMEOUT) -v -skip '^TestSuites$$' $(UNIT_PKGS) > $(OUT)/unit.txt 2>&1; status=$$?; \
	$(GO) tool go-junit-report -in $(OUT)/unit.txt -out $(OUT)/unit.xml; \
	grep -E '^(ok|FAIL)\s|^(--- FAIL|panic:)|^\s+--- FAIL' $(OUT)/unit.txt; \
	grep -A6 '^panic: test timed out' $(OUT)/unit.txt | grep -E '^\s+(running tests:|Test)'; \
	echo "unit test log: $(OUT)/unit.txt, JUnit: $(OUT)/unit.xml"; exit $$status

suites: build
	./$(BIN) run --backend all --report-dir $(OUT)/suites

refbench:
	@mkdir -p bin
	@if command -v $(CC) >/dev/null 2>&1; then $(CC) -O2 -Wall -o bin/refbench tools/refbench/refbench.c && \
	  $(CC) -O2 -Wall -pthread -o bin/refbench-uffd tools/refbench/uffd.c && \
	  $(CC) -O2 -Wall -o bin/refbench-dirtylog tools/refbench/dirtylog.c && \
	  $(CC) -O2 -Wall -o bin/refbench-memslot tools/refbench/memslot.c && \
	  $(CC) -O2 -Wall -o bin/refbench-madvise tools/refbench/madvise.c; \
	else echo "no C compiler: the C reference is skipped"; fi

bench: refbench
	@mkdir -p $(OUT)
	$(GO) test -run '^$$' -bench . -skip Uffd -benchtime $(BENCHTIME) ./harness/kvm/ | tee $(OUT)/bench-kvm.txt
	@echo "== userfaultfd first touch, Go then C (both pinned to CPU 0: cross-CPU wake-ups dominate otherwise)"
	GOMAXPROCS=2 taskset -c 0 $(GO) test -run '^$$' -bench Uffd -benchtime 5000x ./harness/kvm/ | tee $(OUT)/bench-uffd.txt
	@if [ -x bin/refbench-uffd ]; then taskset -c 0 ./bin/refbench-uffd host 5000; taskset -c 0 ./bin/refbench-uffd guest 5000; fi
	@echo "== dirty-log harvest per page, Go then C ($(DIRTYLOG_MIB) MiB, $(DIRTYLOG_PASSES) passes)"
	$(GO) test -run '^$$' -bench Harvest -benchtime $(DIRTYLOG_PASSES)x ./suites/dirtylog/ -args -dirtylog.mem=$(DIRTYLOG_MIB)M | tee $(OUT)/bench-dirtylog.txt
	@if [ -x bin/refbench-dirtylog ]; then bin/refbench-dirtylog all $(DIRTYLOG_MIB) $(DIRTYLOG_PASSES) | tee $(OUT)/bench-dirtylog-c.txt; \
	  ./tools/refbench/compare-dirtylog.sh $(OUT)/bench-dirtylog.txt $(OUT)/bench-dirtylog-c.txt; fi
	@echo "== memslot create/move/delete with N slots present, median per operation: Go on kvm, then C, then the emu's curve"
	$(GO) test -run '^$$' -bench 'Update/kvm' -benchtime $(MEMSLOT_ROUNDS)x ./suites/memslot/ | tee $(OUT)/bench-memslot.txt
	@if [ -x bin/refbench-memslot ]; then bin/refbench-memslot $(MEMSLOT_ROUNDS) | tee $(OUT)/bench-memslot-c.txt; \
	  ./tools/refbench/compare-memslot.sh $(OUT)/bench-memslot.txt $(OUT)/bench-memslot-c.txt; fi
	$(GO) test -run '^$$' -bench 'Update/emu' -benchtime $(MEMSLOT_ROUNDS)x ./suites/memslot/ -args -memslot.slots=$(MEMSLOT_EMU_SLOTS) | tee $(OUT)/bench-memslot-emu.txt
	@echo "== free page reporting: discard of $(DISCARD_MIB) MiB in 2 MiB ranges, Go device then C loop (no KVM needed)"
	$(GO) test -run '^$$' -bench Discard -benchtime $(DISCARD_PASSES)x ./harness/pagereport/ -args -pagereport.mib=$(DISCARD_MIB) | tee $(OUT)/bench-discard.txt
	@if [ -x bin/refbench-madvise ]; then bin/refbench-madvise all $(DISCARD_MIB) $(DISCARD_PASSES) | tee $(OUT)/bench-discard-c.txt; fi
	@echo "== emulator and assembler"
	$(GO) test -run '^$$' -bench . ./harness/asm/ ./harness/emu/ | tee $(OUT)/bench-go.txt
	@if [ -x bin/refbench ]; then ./tools/refbench/compare.sh bin/refbench $(OUT)/bench-kvm.txt; fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@# actionlint runs offline once installed; installing it needs the
	@# module proxy, so lint only says how when it is missing.
	@al=$$(command -v actionlint || ls "$$($(GO) env GOPATH)/bin/actionlint" 2>/dev/null); \
	  if [ -n "$$al" ]; then echo "$$al .github/workflows/*.yml"; "$$al" .github/workflows/*.yml || exit 1; \
	  else echo "actionlint not installed (go install github.com/rhysd/actionlint/cmd/actionlint@latest): workflows not linted"; fi
	$(MAKE) --no-print-directory build-arm64

fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) $$pkg || exit 1; \
	  done; \
	done

# The arm64 stage (tools/arm64/run.sh, README "Real KVM/arm64"): Debian's
# arm64 kernel under qemu-system-aarch64 at EL2 runs the arm64 kvmspec on
# real KVM/arm64; reports in $(OUT)/arm64, backends kvm-arm64/emu-arm64.
# It installs qemu-system-arm where this user may (root/sudo and apt),
# else says "skipped: <reason>". `make test` runs it beside the x86 tests
# (ARM64=0 leaves it out). Under TCG it is the slowest stage: inside
# `make test` it runs every arm64 unit test (the real KVM/arm64 ones) and
# the specs of ARM64_TEST_LABELS (smoke and every arm64 spec but the
# kind:stress ones, such as creating KVM/arm64's 32767 slots, 2 minutes
# under TCG; the x86 emu suites already run natively), which keeps CI
# within its budget; `make test-arm64` (and the
# nightly) leaves out only the perf specs and shortens the dirty-log
# stress (ARM64_LABELS= ARM64_ARGS= runs everything at full size).
ARM64        ?= 1
ARM64_LABELS ?= !perf
ARM64_TEST_LABELS ?= smoke || (arch:arm64 && !kind:stress)
# make test's bound on the arm64 boot (QEMU ran 70-170 s for that
# selection here, loaded): a guest kernel that hangs (once, a hard lockup
# on a vCPU mid-suite) fails the stage within CI's 10 minutes instead of
# at run.sh's 1080 s.
ARM64_TEST_TIMEOUT ?= 480
ARM64_ARGS   ?= --param dirtylog.iterations=8
arm64_stage   = if [ "$(ARM64)" = 0 ]; then echo "test-arm64: skipped: ARM64=0"; \
	else ARM64_LABELS='$(1)' ARM64_SUITE_ARGS='$(ARM64_ARGS)' GO='$(GO)' ./tools/arm64/run.sh; fi
.PHONY: test-arm64
test-arm64:
	@$(call arm64_stage,$(ARM64_LABELS))

# make merge-report (README "One report of both architectures"): one
# report of the x86 suites ($(OUT)/suites) and the arm64 stage
# ($(OUT)/arm64) in $(MERGED): junit.xml, report.ktap, report.json and
# report.html, every testcase under its own backend, counts per
# architecture (kvmspec merge --platforms). make test runs it after both
# stages with MERGE_SINCE, a file touched when it started (reports older
# than it are an earlier run's and are not merged), and MERGE_ARM64_LOG,
# the stage's log: its "test-arm64: skipped: <reason>" is recorded as the
# arm64 platform's reason (the report is the x86 one alone, and passes),
# and a stage that wrote no report is a failure. On its own it merges
# what the two directories hold (no arm64 report: recorded as skipped).
MERGED          := $(OUT)/merged
MERGE_SINCE     ?=
MERGE_ARM64_LOG ?=
.PHONY: merge-report
merge-report: build
	@fresh() { [ -s "$$1/report.json" ] && { [ -z "$(MERGE_SINCE)" ] || [ "$$1/report.json" -nt "$(MERGE_SINCE)" ]; }; }; \
	fresh $(OUT)/suites || { echo "merge-report: no report of the x86 suites from this run in $(OUT)/suites (make suites writes it): no merged report"; exit 1; }; \
	skip=; if [ -n "$(MERGE_ARM64_LOG)" ]; then skip=$$(sed -n 's/^test-arm64: skipped: //p' "$(MERGE_ARM64_LOG)" | tail -n 1); fi; \
	if [ -n "$$skip" ]; then set -- --skipped-platform "arm64=$$skip"; \
	elif fresh $(OUT)/arm64; then set -- $(OUT)/arm64; \
	elif [ -n "$(MERGE_ARM64_LOG)" ]; then why=$$(sed -n 's/^test-arm64: FAIL: //p' "$(MERGE_ARM64_LOG)" | tail -n 1); \
	  set -- --failed-platform "arm64=the arm64 stage wrote no report$${why:+: $$why} (log: $(MERGE_ARM64_LOG))"; \
	else set -- --skipped-platform "arm64=no report in $(OUT)/arm64 (make test-arm64 writes it)"; fi; \
	echo "== one report of both architectures: kvmspec merge --platforms $(MERGED) $(OUT)/suites $$*"; \
	./$(BIN) merge --platforms $(MERGED) $(OUT)/suites "$$@"

# make bench-arm64 (opt-in, README "Real KVM/arm64"): the memslot update
# cost on real KVM/arm64, suites/memslot BenchmarkUpdate/kvm beside
# tools/refbench/memslot.c (cross-compiled with aarch64-linux-gnu-gcc),
# per slot count of MEMSLOT_ARM64_SLOTS, MEMSLOT_ROUNDS rounds each; no
# unit tests, no suites; one vCPU (ARM64_SMP=1: with two, the same
# count's medians swung 10x between runs on a loaded host). ARM64_MEMSLOT_REPEAT=K runs each count K times (C, Go,
# C, Go, ...; the comparison takes the median). Outputs and
# memslot-compare.txt in $(OUT)/arm64-bench.
MEMSLOT_ARM64_SLOTS ?= 1 8 64 512 4096 max
.PHONY: bench-arm64
bench-arm64:
	ARM64_MEMSLOT_BENCH=1 ARM64_UNITS=0 ARM64_SUITES=0 ARM64_BENCH= ARM64_REQUIRE=1 \
	  ARM64_MEMSLOT_ROUNDS='$(MEMSLOT_ROUNDS)' ARM64_MEMSLOT_SLOTS='$(MEMSLOT_ARM64_SLOTS)' \
	  ARM64_OUT=$${ARM64_OUT:-$(OUT)/arm64-bench} ARM64_TIMEOUT=$${ARM64_TIMEOUT:-3600} ARM64_SMP=$${ARM64_SMP:-1} GO='$(GO)' ./tools/arm64/run.sh

clean:
	rm -rf bin $(OUT)
