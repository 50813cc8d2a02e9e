// Package dirtylog checks dirty page tracking in its three KVM forms: the
// dirty bitmap (GetDirtyLog clears it), manual protect (ClearDirtyLog
// re-protects what it is given, INITIALLY_SET) and per-vCPU dirty rings.
//
// The centre is a port of the kernel's dirty_log_test: a vCPU writes the
// iteration number into random pages while the host harvests, and every
// page's value is checked against the log after each iteration. Around it:
// exact-set scenarios, ring-full behaviour, several vCPUs with their own
// rings, bad input, and the phases of dirty_log_perf_test as measurements.
//
// A fourth mode, dirty rings with the backup bitmap, collects the pages a
// device writes through hv.GuestMemory (hostwrite.go).
//
// Every spec runs in each log mode the backend offers and at each
// privilege level (b.Modes), the host's fast one first. Spec IDs read
// "dirtylog/<mode> / <spec> [cplN]"; the dirty ring at CPL0 is declared
// harmful to kvm-pvm hosts in fixtures/hosts/pvm.json and not run there.
//
// Parameters (kvmspec run --param name=value; defaults in brackets):
//
//	dirtylog.iterations       concurrent check iterations [32; 8 at an emulated CPL0]
//	dirtylog.interval         guest writing time per iteration [10ms]
//	dirtylog.mem              its slot, plus 3 pages [16M; 4M at an emulated CPL0]
//	dirtylog.ring             its dirty ring in bytes [the smallest accepted]
//	dirtylog.ring.reserve     entries below the ring size at which it is full [64]
//	dirtylog.seed             the guest's random writes [the run's --seed]
//	dirtylog.vcpus            vCPUs of the several-rings spec [2]
//	dirtylog.perf.mem         memory the perf specs dirty [64M]
//	dirtylog.perf.iterations  timed dirty passes [3]
//	dirtylog.perf.vcpus       vCPUs that dirty it [1]
//	dirtylog.perf.ring        ring of the dirty-ring perf spec in bytes [64K]
//
// Nightly runs measure 256 MiB as the kernel's perf test suggests:
//
//	kvmspec run --label-filter 'dirtylog && perf' --param dirtylog.perf.mem=256M
package dirtylog

import (
	"fmt"
	"time"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
)

func init() {
	framework.Register(taxonomy.DirtyLog, specs)
	framework.DeclareParams(taxonomy.DirtyLog,
		framework.Param{Key: ParamIterations, Kind: framework.KindCount, Default: "32", Meaning: "iterations of the concurrent writer/harvester check"},
		framework.Param{Key: ParamInterval, Kind: framework.KindDuration, Default: "10ms", Meaning: "how long the guest writes per iteration"},
		framework.Param{Key: ParamMem, Kind: framework.KindSize, Default: "16M", Meaning: "slot size of the concurrent check (plus 3 pages)"},
		framework.Param{Key: ParamRing, Kind: framework.KindSize, Default: "smallest ring", Meaning: "dirty ring size in bytes of the concurrent check"},
		framework.Param{Key: ParamRingReserve, Kind: framework.KindCount, Default: "64", Meaning: "entries below the ring size where the full exit comes (576 on VMX hosts with PML)"},
		framework.Param{Key: ParamSeed, Kind: framework.KindInt, Default: "run seed", Meaning: "seed of the guest's random writes"},
		framework.Param{Key: ParamVCPUs, Kind: framework.KindCount, Default: "2", Meaning: "vCPUs of the several-rings spec"},
		framework.Param{Key: ParamPerfMem, Kind: framework.KindSize, Default: "64M", Meaning: "memory the perf specs dirty (nightly: 256M)"},
		framework.Param{Key: ParamPerfVCPUs, Kind: framework.KindCount, Default: "1", Meaning: "vCPUs the perf specs dirty with"},
		framework.Param{Key: ParamPerfIterations, Kind: framework.KindCount, Default: "3", Meaning: "dirty passes the perf specs time"},
		framework.Param{Key: ParamPerfRing, Kind: framework.KindSize, Default: "64K", Meaning: "dirty ring size of the dirty-ring perf spec"},
	)
}

// Spec texts, named so the host-profile test can build the IDs it checks.
const (
	textConcurrent   = "concurrent writer and harvester"
	textExactSet     = "exact set"
	textClearExactly = "clear re-protects exactly the pages and range given"
	textSoftLimit    = "ring-full exits come at the soft limit and repeat until reset"
	textTwice        = "a page written twice before a reset is one entry"
	textPerVCPU      = "each vcpu's ring holds only its own pages"
	textInterrupted  = "a reset interrupted by signals re-protects every page it counts"
	textBackupSplit  = "vcpu writes go to the rings and device writes to the backup bitmap"
)

// specTimeout bounds the short specs; a hung guest fails its spec only.
const specTimeout = 30 * time.Second

// concurrentTimeout bounds the concurrent check from its parameters, so a
// nightly run with more iterations still has a bound.
func concurrentTimeout(b *framework.Backend) time.Duration {
	prm, err := readConcurrentParams(b, false)
	if err != nil {
		return specTimeout // the spec reports the bad parameter
	}
	return specTimeout + time.Duration(prm.iterations)*(prm.interval+time.Second)
}

func specs(b *framework.Backend) {
	for _, mode := range logModes {
		mode := mode
		Describe(mode.name, mode.labels(), func() {
			for _, cpl := range b.Modes() {
				cpl := cpl
				cplLabel := framework.ModeLabel(cpl)
				name := func(s string) string { return fmt.Sprintf("%s [%s]", s, cpl) }

				It(name(textConcurrent), cplLabel, taxonomy.Stress, func(ctx SpecContext) {
					runConcurrent(ctx, b, mode, cpl)
				}, SpecTimeout(concurrentTimeout(b)))

				DescribeTable(textExactSet, cplLabel,
					func(ctx SpecContext, needs []hv.Cap, run exactCase) {
						for _, c := range needs {
							b.Require(c)
						}
						e := newExactEnv(b, mode, cpl, 0)
						run(e)
						e.run(ctx)
					},
					exactEntries(name),
				)

				modeSpecs(b, mode, cpl, name, cplLabel)
			}
		})
	}

	Describe("bad input", func() { badInputSpecs(b) })

	// Perf specs run at the host's fast privilege level only: they
	// measure the hypervisor's logging, not its instruction emulator.
	Describe("perf", taxonomy.Perf, Serial, func() {
		cpl := b.Modes()[0]
		for _, mode := range logModes {
			mode := mode
			It(fmt.Sprintf("%s phases [%s]", mode, cpl), mode.labels(), framework.ModeLabel(cpl), func(ctx SpecContext) {
				runPerf(ctx, b, mode, cpl)
			}, SpecTimeout(10*time.Minute))
		}
	})
}

// modeSpecs are the specs of one log mode only.
func modeSpecs(b *framework.Backend, mode *logMode, cpl guest.Mode, name func(string) string, cplLabel Labels) {
	switch mode {
	case modeClearLog:
		It(name(textClearExactly), cplLabel, func(ctx SpecContext) {
			runClearExactly(ctx, b, cpl)
		}, SpecTimeout(specTimeout))
	case modeDirtyRing:
		It(name(textSoftLimit), cplLabel, func(ctx SpecContext) {
			runSoftLimit(ctx, b, cpl)
		}, SpecTimeout(specTimeout))
		It(name(textTwice), cplLabel, func(ctx SpecContext) {
			runTwice(ctx, b, cpl)
		}, SpecTimeout(specTimeout))
		It(name(textPerVCPU), cplLabel, taxonomy.Needs(hv.CapMultiVCPU), func(ctx SpecContext) {
			runRingsPerVCPU(ctx, b, cpl)
		}, SpecTimeout(specTimeout))
		It(name(textInterrupted), cplLabel, func(ctx SpecContext) {
			runInterruptedReset(ctx, b, cpl)
		}, SpecTimeout(specTimeout))
	case modeRingBackup:
		DescribeTable(name(textBackupSplit), cplLabel, taxonomy.Needs(hv.CapGuestMemoryTrack),
			func(ctx SpecContext, order string) { runBackupSplit(ctx, b, cpl, order) },
			Entry(ringsThenBitmap, ringsThenBitmap, SpecTimeout(specTimeout)),
			Entry(bitmapThenRings, bitmapThenRings, SpecTimeout(specTimeout)),
		)
	}
}

// exactEntries makes one Entry per exact-set scenario, named for cpl.
func exactEntries(name func(string) string) []TableEntry {
	var out []TableEntry
	for _, c := range exactCases {
		out = append(out, Entry(name(c.name), c.needs, c.run, SpecTimeout(specTimeout)))
	}
	return out
}
