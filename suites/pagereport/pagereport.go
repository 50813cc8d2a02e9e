// Package pagereport checks free page reporting end to end: the guest
// reporter (a guest program with the v5 policy, harness/pagereport)
// drives the free-page-reporting device model through MMIO on the backend
// under test, and the specs judge what the host did with the memory.
//
// The checks are those of shared/reference/devices.md part (c) that need
// no Linux guest: queue wiring and refusal, buffer direction and used
// length 0, discard semantics (host residency falls by the reported bytes
// and returns on re-touch; a reported page reads zero), ignored ranges,
// inhibit and poison, the guest-side policy (order >= 9, batches of 32,
// the high-water mark) and lifecycle (a reset with a report in flight).
// Beside them, reporting meets the features the other areas test: a
// discarded page is missing again for a missing-page handler, a re-written
// reported page is in the next dirty harvest, and reports racing with
// writes on other vCPUs lose none. The perf spec measures reclaim (MiB/s)
// and the guest-visible cost of re-touching reported memory.
//
// All test code runs at CPL3. Specs are skipped on a backend without
// hv.CapGuestMemoryTrack (device access to guest memory, contract v2).
package pagereport

import (
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
)

func init() {
	framework.Register(taxonomy.PageReport, specs)
	framework.DeclareParams(taxonomy.PageReport,
		framework.Param{Key: paramBlocks, Kind: framework.KindCount, Default: "64", Meaning: "2 MiB blocks reported per perf sample (a multiple of 32)"},
		framework.Param{Key: paramSamples, Kind: framework.KindCount, Default: "3", Meaning: "samples of the perf spec"},
	)
}

// specTimeout bounds one spec; a hung guest fails its spec only.
const specTimeout = 2 * time.Minute

func specs(b *framework.Backend) {
	// Every spec needs the device to reach guest memory (newRig requires it).
	needs := taxonomy.Needs(hv.CapGuestMemoryTrack)
	Describe("device", taxonomy.CPL3, needs, func() { deviceSpecs(b) })
	Describe("discard", taxonomy.CPL3, needs, func() { discardSpecs(b) })
	Describe("policy", taxonomy.CPL3, needs, func() { policySpecs(b) })
	Describe("interplay", taxonomy.CPL3, needs, func() { interplaySpecs(b) })
	Describe("perf", taxonomy.CPL3, needs, taxonomy.Perf, Serial, func() { perfSpecs(b) })
}
