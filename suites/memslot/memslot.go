// Package memslot checks guest memory slots: the slot limit and the errno
// of every invalid request (nothing half-applied), moves and deletes under
// a guest that reads the slot, deleting the slot of the guest's own code,
// a vCPU with no memory at all, add/delete stress while vCPUs write
// (memslot_modification_stress_test), and the six tests of the kernel's
// memslot_perf_test as measurements over a sweep of slot counts.
//
// Guest code runs at the backend's fast privilege level (CPL3 on kvm-pvm
// hosts, where ring 0 is emulated, and on the emu).
//
// Parameters (kvmspec run --param name=value; defaults in brackets):
//
//	memslot.perf.slots         slot counts of the sweep [1,8,64,512,4096,max]
//	memslot.perf.time          loop time of each run [100ms; kernel 5s]
//	memslot.perf.runs          runs per test and slot count [1]
//	memslot.perf.mem           area of the move tests [512M, as the kernel]
//	memslot.perf.rw.mem        area of the RW test [128M; kernel 512M]
//	memslot.perf.map.mem       area of the map test [32M]
//	memslot.perf.unmap.mem     area of the unmap tests [128M]
//	memslot.perf.setup-budget  skip slot counts whose setup takes longer [5s]
//	memslot.stress.iterations  add+delete pairs of the stress spec [1000]
//	memslot.stress.vcpus       its writing vCPUs [2]
//	memslot.stress.mem         memory each vCPU writes per pass [1M]
//	memslot.stress.delay       pause between pairs [0]
//
// The arm64 perf specs (arm64perf.go) read the same parameters; their
// defaults are sized for KVM/arm64 under TCG: slots 1,8,max and 2M
// areas, counted in the guest's pages.
//
// Nightly runs the kernel's sizes:
//
//	kvmspec run --label-filter 'memslot && perf' --param memslot.perf.time=5s \
//	  --param memslot.perf.runs=3 --param memslot.perf.rw.mem=512M \
//	  --param memslot.perf.setup-budget=10m
package memslot

import (
	"fmt"
	"time"

	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
)

func init() {
	framework.Register(taxonomy.Memslot, specs)
	framework.DeclareParams(taxonomy.Memslot,
		framework.Param{Key: ParamPerfSlots, Kind: framework.KindCounts, Default: "1,8,64,512,4096,max", Meaning: "slot counts of the perf sweep (max: the backend's maximum − 1)"},
		framework.Param{Key: ParamPerfTime, Kind: framework.KindDuration, Default: "100ms", Meaning: "loop time per perf point (nightly: 5s, as the kernel test)"},
		framework.Param{Key: ParamPerfRuns, Kind: framework.KindCount, Default: "1", Meaning: "runs per perf point (nightly: 3)"},
		framework.Param{Key: ParamPerfMem, Kind: framework.KindSize, Default: "512M", Meaning: "test area of the move tests"},
		framework.Param{Key: ParamPerfRWMem, Kind: framework.KindSize, Default: "128M", Meaning: "test area of the RW test (nightly: 512M)"},
		framework.Param{Key: ParamPerfMapMem, Kind: framework.KindSize, Default: "32M", Meaning: "test area of the map test"},
		framework.Param{Key: ParamPerfUnmapMem, Kind: framework.KindSize, Default: "128M", Meaning: "test area of the unmap tests"},
		framework.Param{Key: ParamPerfSetupBudget, Kind: framework.KindDuration, Default: "5s", Meaning: "a slot count whose setup takes longer is skipped with the reason (nightly: 10m)"},
		framework.Param{Key: ParamStressIterations, Kind: framework.KindCount, Default: "1000", Meaning: "add+delete pairs of the modification stress"},
		framework.Param{Key: ParamStressVCPUs, Kind: framework.KindCount, Default: "2", Meaning: "writing vCPUs of the modification stress"},
		framework.Param{Key: ParamStressMem, Kind: framework.KindSize, Default: "1M", Meaning: "memory per vCPU of the modification stress"},
		framework.Param{Key: ParamStressDelay, Kind: framework.KindDelay, Default: "0", Meaning: "pause between add+delete pairs"},
	)
}

// The test area of the perf specs and the update benchmark, at 256 MiB as
// in memslot_perf_test (MEM_GPA).
const perfGPA = 256 << 20

func specs(b *framework.Backend) {
	Describe("limits", func() { limitSpecs(b) })
	Describe("running guest", func() { runningSpecs(b) })
	cpl := b.Modes()[0]
	It(fmt.Sprintf("modification stress [%s]", cpl), taxonomy.Stress, Label(cpl.String()), func(ctx SpecContext) {
		runStress(ctx, b, cpl)
	}, SpecTimeout(5*time.Minute))
	Describe("perf", taxonomy.Perf, Serial, func() { perfSpecs(b) })
}
