package pmu

import (
	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// filterCase is one pmu_event_filter_test case: which of instructions
// (GP counter 0), branches (GP counter 1) and fixed counter 0 count.
type filterCase struct {
	f                 hv.PMUEventFilter
	insts, br, fixed0 bool
}

// filterBranches is NUM_BRANCHES of pmu_event_filter_test.
const filterBranches = 42

func filterSpecs(b *framework.Backend, mode guest.Mode) {
	DescribeTable("the PMU event filter",
		func(ctx SpecContext, fc filterCase) {
			r := newRig(b, mode, rigOpts{filter: &fc.f})
			r.requireCounter(counter{fixed: true})
			r.wrmsr(hv.MSRPerfGlobalCtrl, 0)
			r.wrmsr(hv.MSRPerfEvtSel0, hv.EventInstructions|r.ring()|hv.EvtSelEN)
			r.wrmsr(hv.MSRPerfEvtSel0+1, hv.EventBranches|r.ring()|hv.EvtSelEN)
			r.wrmsr(hv.MSRFixedCtrCtrl, r.fixedRing())
			r.write(hv.MSRPerfGlobalCtrl, 3|hv.PerfGlobalFixed0)
			p := r.p
			p.Mov(asm.ECX, asm.Imm(filterBranches))
			l := p.Here()
			p.Loop(l)
			r.write(hv.MSRPerfGlobalCtrl, 0)
			r.checkWrite()
			r.rdpmc(asm.R9, 0)
			r.rdpmc(asm.R10, 1)
			r.rdpmc(asm.R11, hv.RDPMCFixed)
			p.Sync(1, asm.R9, asm.R10, asm.R11)
			got := r.run(ctx)[1]
			// pmu_event_filter_test's criterion: counting is non-zero.
			Expect(got[0] != 0).To(Equal(fc.insts), "instructions retired counted (%d)", got[0])
			Expect(got[1] != 0).To(Equal(fc.br), "branches retired counted (%d)", got[1])
			Expect(got[2] != 0).To(Equal(fc.fixed0), "fixed counter 0 counted (%d)", got[2])
		},
		entry("deny list with both events", filterCase{hv.PMUEventFilter{Action: hv.PMUFilterDeny,
			Events: []uint64{hv.EventInstructions, hv.EventBranches}}, false, false, true}),
		entry("allow list with both events", filterCase{hv.PMUEventFilter{Action: hv.PMUFilterAllow,
			Events: []uint64{hv.EventInstructions, hv.EventBranches}}, true, true, false}),
		entry("deny list without them", filterCase{hv.PMUEventFilter{Action: hv.PMUFilterDeny,
			Events: []uint64{hv.EventLLCMisses}}, true, true, true}),
		entry("allow list without them", filterCase{hv.PMUEventFilter{Action: hv.PMUFilterAllow,
			Events: []uint64{hv.EventLLCMisses}}, false, false, false}),
		entry("an entry of ~0 is accepted and matches nothing", filterCase{hv.PMUEventFilter{Action: hv.PMUFilterAllow,
			Events: []uint64{^uint64(0), hv.EventBranches}}, false, true, false}),
		entry("fixed-counter bitmap allows fixed counter 0", filterCase{hv.PMUEventFilter{Action: hv.PMUFilterAllow,
			FixedCounterBitmap: 1}, false, false, true}),
		entry("fixed-counter bitmap denies fixed counter 0", filterCase{hv.PMUEventFilter{Action: hv.PMUFilterDeny,
			FixedCounterBitmap: 1}, true, true, false}),
		entry("the bitmap decides a fixed counter over the events", filterCase{hv.PMUEventFilter{Action: hv.PMUFilterAllow,
			Events: []uint64{hv.EventInstructions}, FixedCounterBitmap: 0}, true, false, false}),
	)
}

// faultCase is one access and whether it must #GP.
type faultCase struct {
	access func(r *rig) // leaves R8: MSRGateOK or the vector
	gp     bool
}

// Accesses relative to the vCPU's PMU shape.
func wr(idx func(r *rig) uint32, v func(r *rig) uint64) func(r *rig) {
	return func(r *rig) { r.tryWrmsr(idx(r), v(r)) }
}

func rd(idx func(r *rig) uint32) func(r *rig) {
	return func(r *rig) { r.tryRdmsr(idx(r)) }
}

func pmc(ecx func(r *rig) uint32) func(r *rig) {
	return func(r *rig) { r.tryRdpmc(ecx(r)) }
}

func msr(i uint32) func(*rig) uint32 { return func(*rig) uint32 { return i } }
func val(v uint64) func(*rig) uint64 { return func(*rig) uint64 { return v } }

func faultSpecs(b *framework.Backend, mode guest.Mode) {
	nGP := func(r *rig) uint32 { return uint32(r.pmu.GPCounters) }
	nFixed := func(r *rig) uint32 { return uint32(r.pmu.FixedCounters) }
	DescribeTable("#GP exactly where the architecture puts it",
		func(ctx SpecContext, fc faultCase) {
			r := newRig(b, mode, rigOpts{})
			fc.access(r)
			r.p.Sync(1, asm.R8)
			got := r.run(ctx)[1][0]
			if fc.gp {
				Expect(got).To(Equal(uint64(gpFault)), "the access must #GP")
			} else {
				Expect(got).To(Equal(gateOK), "the access must not fault")
			}
		},
		entry("EVTSEL bit 32", faultCase{wr(msr(hv.MSRPerfEvtSel0), val(1<<32|hv.EventInstructions)), true}),
		entry("EVTSEL AnyThread", faultCase{wr(msr(hv.MSRPerfEvtSel0), val(hv.EvtSelAnyThread)), true}),
		entry("EVTSEL with every defined bit", faultCase{wr(msr(hv.MSRPerfEvtSel0), val(0xffffffff&^hv.EvtSelAnyThread)), false}),
		entry("EVTSEL of the first missing counter", faultCase{wr(func(r *rig) uint32 { return hv.MSRPerfEvtSel0 + nGP(r) }, val(0)), true}),
		entry("PMC of the first missing counter", faultCase{rd(func(r *rig) uint32 { return hv.MSRPMC0 + nGP(r) }), true}),
		entry("GLOBAL_CTRL bit of the first missing GP counter", faultCase{wr(msr(hv.MSRPerfGlobalCtrl), func(r *rig) uint64 { return 1 << nGP(r) }), true}),
		entry("GLOBAL_CTRL bit of the first missing fixed counter", faultCase{wr(msr(hv.MSRPerfGlobalCtrl), func(r *rig) uint64 { return hv.PerfGlobalFixed0 << nFixed(r) }), true}),
		entry("GLOBAL_CTRL with every counter", faultCase{wr(msr(hv.MSRPerfGlobalCtrl), func(r *rig) uint64 {
			return 1<<nGP(r) - 1 | (1<<nFixed(r)-1)*hv.PerfGlobalFixed0
		}), false}),
		entry("FIXED_CTR_CTRL AnyThread", faultCase{wr(msr(hv.MSRFixedCtrCtrl), val(hv.FixedCtrAnyThread)), true}),
		entry("FIXED_CTR_CTRL field of the first missing fixed counter", faultCase{wr(msr(hv.MSRFixedCtrCtrl), func(r *rig) uint64 {
			return hv.FixedCtrOS << (hv.FixedCtrBits * nFixed(r))
		}), true}),
		entry("FIXED_CTR of the first missing fixed counter", faultCase{rd(func(r *rig) uint32 { return hv.MSRFixedCtr0 + nFixed(r) }), true}),
		entry("guest write of GLOBAL_STATUS", faultCase{wr(msr(hv.MSRPerfGlobalStatus), val(1)), true}),
		entry("RDPMC of the last GP counter", faultCase{pmc(func(r *rig) uint32 { return nGP(r) - 1 }), false}),
		entry("RDPMC of the first missing GP counter", faultCase{pmc(nGP), true}),
		entry("RDPMC of the first missing fixed counter", faultCase{pmc(func(r *rig) uint32 { return hv.RDPMCFixed | nFixed(r) }), true}),
		entry("RDPMC fast read (bit 31)", faultCase{pmc(func(*rig) uint32 { return hv.RDPMCFast }), true}),
	)

	if mode == guest.CPL3 {
		It("RDPMC at CPL3 without CR4.PCE is #GP", func(ctx SpecContext) {
			r := newRig(b, mode, rigOpts{})
			r.tryRdpmc(0)
			r.p.Sync(1, asm.R8)
			r.noPCE = true
			Expect(r.run(ctx)[1][0]).To(Equal(uint64(gpFault)))
		}, SpecTimeout(specTimeout))
	}
}

// absentCase is one check on a vCPU without a PMU.
type absentCase struct {
	access func(r *rig)
	want   uint64 // R8 afterwards
	// readZero: the access is KVM's P6 quirk (MSR_P6_PERFCTR0/1,
	// MSR_P6_EVNTSEL0/1 read 0 and drop writes without a PMU), checked
	// by a write of 0x1234 and a read.
	readZero uint32
}

func absentSpecs(b *framework.Backend, mode guest.Mode) {
	hide := func(t *hv.CPUID) { t.Remove(hv.CPUIDLeafPMU) }
	Describe("without a guest PMU", func() {
		It("CPUID leaf 0xA reports none", func(ctx SpecContext) {
			r := newRig(b, mode, rigOpts{noPMU: true, editID: hide})
			p := r.p
			p.Mov(asm.EAX, asm.Imm(hv.CPUIDLeafPMU))
			p.Xor(asm.ECX, asm.ECX)
			p.Cpuid()
			p.Sync(1, asm.RAX, asm.RDX)
			got := r.run(ctx)[1]
			Expect(hv.DecodePMULeaf(hv.CPUIDEntry{EAX: uint32(got[0]), EDX: uint32(got[1])}).Version).To(BeZero(), "PMU version")
		}, SpecTimeout(specTimeout))

		DescribeTable("counter MSRs and RDPMC",
			func(ctx SpecContext, ac absentCase) {
				r := newRig(b, mode, rigOpts{noPMU: true, editID: hide})
				if ac.readZero != 0 {
					r.tryWrmsr(ac.readZero, 0x1234)
					r.p.AssertEq(asm.R8, asm.Imm(guest.MSRGateOK), "the write is dropped, not refused")
					r.tryRdmsr(ac.readZero)
					r.p.Sync(2, asm.RAX)
				} else {
					ac.access(r)
				}
				r.p.Sync(1, asm.R8)
				got := r.run(ctx)
				Expect(got[1][0]).To(Equal(ac.want), "R8: MSRGateOK (-1) or the vector")
				if ac.readZero != 0 {
					Expect(got[2][0]).To(BeZero(), "reads 0 after a write")
				}
			},
			entry("RDPMC 0 is #GP", absentCase{access: pmc(func(*rig) uint32 { return 0 }), want: gpFault}),
			entry("RDPMC fixed 0 is #GP", absentCase{access: pmc(func(*rig) uint32 { return hv.RDPMCFixed }), want: gpFault}),
			entry("PERF_GLOBAL_CTRL is #GP", absentCase{access: rd(msr(hv.MSRPerfGlobalCtrl)), want: gpFault}),
			entry("PERF_GLOBAL_STATUS is #GP", absentCase{access: rd(msr(hv.MSRPerfGlobalStatus)), want: gpFault}),
			entry("FIXED_CTR_CTRL is #GP", absentCase{access: wr(msr(hv.MSRFixedCtrCtrl), val(0)), want: gpFault}),
			entry("FIXED_CTR0 is #GP", absentCase{access: rd(msr(hv.MSRFixedCtr0)), want: gpFault}),
			entry("PMC2 is #GP", absentCase{access: rd(msr(hv.MSRPMC0 + 2)), want: gpFault}),
			entry("EVTSEL2 is #GP", absentCase{access: wr(msr(hv.MSRPerfEvtSel0+2), val(0)), want: gpFault}),
			entry("A_PMC0 is #GP", absentCase{access: rd(msr(hv.MSRAPMC0)), want: gpFault}),
			entry("P6 PERFCTR0 reads 0 and drops writes (KVM)", absentCase{want: gateOK, readZero: hv.MSRPMC0}),
			entry("P6 EVNTSEL1 reads 0 and drops writes (KVM)", absentCase{want: gateOK, readZero: hv.MSRPerfEvtSel0 + 1}),
		)
	})
}
