package pmu

// The PMU version userspace gives an arm64 guest (since Linux 6.2, commit
// "KVM: arm64: PMU: Allow ID_AA64DFR0_EL1.PMUver to be set from
// userspace"): before the VM first runs, KVM_SET_ONE_REG of
// ID_AA64DFR0_EL1 may lower PMUVer (bits 11:8) below the host's, e.g. to
// PMUv3p1 so that a guest migrates to an older host; the vCPU then has no
// 64-bit event counters and PMCR_EL0.LP is RES0. What KVM 6.12 does with
// each value follows from arch/arm64/kvm/sys_regs.c:
//
//   - set_id_aa64dfr0_el1 replaces an IMPLEMENTATION DEFINED PMUVer (0xf)
//     by 0 (NI) before anything else, for userspace that saved the 0xf
//     older KVMs showed on non-architectural PMUs;
//   - set_id_reg then refuses any change once the VM has run (EBUSY; a
//     write of the value the register holds succeeds), and otherwise
//     checks the value with arm64_check_features, where
//     kvm_arm64_ftr_safe_value makes PMUVer FTR_LOWER_SAFE: any value not
//     above the limit (the host's PMUVer capped at PMUv3p5 by
//     kvm_arm_pmu_get_pmuver_limit) is taken as written, reserved ones
//     included, and a larger one is E2BIG inside, EINVAL to userspace;
//   - until d1dcc20bcc40 ("arm64: cpufeature: Make PMUVer and PerfMon
//     unsigned", in 6.12 stable since May 2026) the field compared as
//     signed, so 8..0xe (top bit set) passed as "lower" than any host's:
//     the refusal spec tries every value above the host's.
//
// The guest reads the register through the ID-register trap (HCR_EL2.TID3),
// from the same per-VM copy ONE_REG shows, so it must see exactly what
// the host read back.

import (
	"context"
	"errors"
	"strconv"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"
)

// ID_AA64DFR0_EL1.PMUVer and the values the specs write to it.
const (
	pmuVerShift  = 8
	pmuVerMask   = 0xf << pmuVerShift
	pmuVerNI     = 0x0 // no PMU
	pmuVerIMP    = 0x1 // PMUv3
	pmuVerRsvd   = 0x2 // reserved, between PMUv3 and PMUv3p1
	pmuVerP1     = 0x4 // PMUv3 for Armv8.1
	pmuVerP4     = 0x5 // PMUv3 for Armv8.4
	pmuVerImpDef = 0xf // IMPLEMENTATION DEFINED PMU
)

// withPMUVer is the ID_AA64DFR0_EL1 value dfr0 with PMUVer v.
func withPMUVer(dfr0, v uint64) uint64 { return dfr0&^pmuVerMask | v<<pmuVerShift }

// pmuVerCase is a PMUVer the host writes before the first run and the
// one KVM keeps.
type pmuVerCase struct {
	write, want uint64
}

func a64PMUVerSpecs(r a64Rig) {
	getDFR0 := func(g *pmuGuest) uint64 {
		GinkgoHelper()
		v, err := g.vcpu.GetOneReg(a64DFR0)
		Expect(err).NotTo(HaveOccurred())
		return v
	}
	// setPMUVer writes PMUVer v (the other fields unchanged) and keeps
	// what KVM read back in g.pmuVer.
	setPMUVer := func(g *pmuGuest, v uint64) error {
		GinkgoHelper()
		err := g.vcpu.SetOneReg(a64DFR0, withPMUVer(getDFR0(g), v))
		g.pmuVer = getDFR0(g) >> pmuVerShift & 0xf
		return err
	}
	// guestDFR0 runs a guest that reads ID_AA64DFR0_EL1.
	guestDFR0 := func(ctx context.Context, g *pmuGuest) uint64 {
		GinkgoHelper()
		p := g.Program()
		p.Mrs(a64.X1, dfr0)
		p.Sync(1, a64.X1)
		p.Done()
		return r.syncs(ctx, g, p)[1][0]
	}
	hex := func(v uint64) string { return "0x" + strconv.FormatUint(v, 16) }
	hexes := func(vs []uint64) []string {
		out := make([]string, len(vs))
		for i, v := range vs {
			out[i] = hex(v)
		}
		return out
	}

	// lpProgram sets PMCR_EL0.LP and E, writes a 33-bit value to counter
	// 0, then counts 3 SW_INCR from 2^32-2; SYNC 1 carries
	// ID_AA64DFR0_EL1, the counter, PMOVSSET_EL0, PMCR_EL0 and the
	// 33-bit value read back.
	lpProgram := func(g *pmuGuest) *a64guest.Program {
		p := g.Program()
		p.Mrs(a64.X1, dfr0)
		r.quiesce(p)
		r.setReg(p, a64.PMEVTYPER(0), evSWIncr)
		r.setReg(p, a64.PMCR_EL0, pmcrLP|pmcrE)
		p.Mrs(a64.X4, a64.PMCR_EL0)
		r.setReg(p, a64.PMEVCNTR(0), 0x1_2345_6789)
		p.Mrs(a64.X5, a64.PMEVCNTR(0))
		r.setReg(p, a64.PMEVCNTR(0), 0xffff_fffe)
		r.setReg(p, a64.PMCNTENSET_EL0, 1<<0)
		r.swinc(p, 1, 3)
		p.Mrs(a64.X2, a64.PMEVCNTR(0))
		p.Mrs(a64.X3, pmovsset)
		p.Sync(1, a64.X1, a64.X2, a64.X3, a64.X4, a64.X5)
		p.Done()
		return p
	}

	It("a PMUVer the host lowers to PMUv3p1 is the guest's, and PMCR_EL0.LP and 64-bit event counters go away", func(ctx SpecContext) {
		// The same program on a vCPU left at the host's PMUv3p5 is the
		// reference: there LP sticks and the counters are 64 bits.
		ref := r.newPMU(pmuSetup{n: -1})
		r.needCounters(ref, 1)
		if ref.pmuVer < pmuVerP5 {
			Skip("the host's ID_AA64DFR0_EL1.PMUVer is " + itoa(int(ref.pmuVer)) + ", already below PMUv3p5 (6): nothing to lower")
		}
		g := r.newPMU(pmuSetup{n: -1})
		Expect(setPMUVer(g, pmuVerP1)).To(Succeed(), "KVM_SET_ONE_REG ID_AA64DFR0_EL1.PMUVer=4 before the first run")
		Expect(g.pmuVer).To(Equal(uint64(pmuVerP1)), "PMUVer read back by ONE_REG")
		dfr := getDFR0(g)
		low := r.syncs(ctx, g, lpProgram(g))[1]
		full := r.syncs(ctx, ref, lpProgram(ref))[1]
		AddReportEntry("PMUv3p1: DFR0, counter, PMOVSSET, PMCR, 33-bit write", hexes(low))
		AddReportEntry("PMUv3p5: DFR0, counter, PMOVSSET, PMCR, 33-bit write", hexes(full))

		Expect(low[0]).To(Equal(dfr), "the guest's ID_AA64DFR0_EL1 is the host's ONE_REG one (PMUVer %d)", low[0]>>pmuVerShift&0xf)
		Expect(low[3]&pmcrLP).To(BeZero(), "PMCR_EL0.LP written 1 with PMUv3p1 (RES0), PMCR_EL0 %s", hex(low[3]))
		Expect(low[4]).To(Equal(uint64(0x2345_6789)), "counter 0 after writing 0x1_2345_6789: 32 bits wide")
		Expect(low[1:3]).To(Equal([]uint64{1, 1}), "counter 0 and PMOVSSET_EL0 after 3 increments from 2^32-2 with LP written: overflow at 2^32")

		Expect(full[0]>>pmuVerShift&0xf).To(Equal(ref.pmuVer), "the reference guest's PMUVer")
		Expect(full[3]&pmcrLP).NotTo(BeZero(), "PMCR_EL0.LP written 1 with PMUv3p5, PMCR_EL0 %s", hex(full[3]))
		Expect(full[4]).To(Equal(uint64(0x1_2345_6789)), "counter 0 after writing 0x1_2345_6789 with PMUv3p5: 64 bits wide")
		Expect(full[1:3]).To(Equal([]uint64{0x1_0000_0001, 0}), "counter 0 and PMOVSSET_EL0 with PMUv3p5 and LP: no overflow at 2^32")
	}, SpecTimeout(a64SpecTimeout))

	It("a PMUVer above the host's is refused with EINVAL and the register keeps its value", func(ctx SpecContext) {
		g := r.newPMU(pmuSetup{n: -1})
		host := g.pmuVer
		if host >= pmuVerImpDef-1 {
			Skip("the host's PMUVer is " + itoa(int(host)) + ": no architected value above it")
		}
		before := getDFR0(g)
		var refused []uint64
		// Every value up to 0xe: 8..0xe are the ones a signed compare
		// (before d1dcc20bcc40) took for lower than the host's.
		for v := host + 1; v < pmuVerImpDef; v++ {
			err := g.vcpu.SetOneReg(a64DFR0, withPMUVer(before, v))
			Expect(errors.Is(err, unix.EINVAL)).To(BeTrue(), "PMUVer %d above the host's %d: %v, want EINVAL", v, host, err)
			Expect(getDFR0(g)).To(Equal(before), "ID_AA64DFR0_EL1 after the refused PMUVer %d", v)
			refused = append(refused, v)
		}
		AddReportEntry("PMUVer values refused with EINVAL (host PMUVer "+itoa(int(host))+")", refused)
		Expect(guestDFR0(ctx, g)).To(Equal(before), "the guest's ID_AA64DFR0_EL1 after the refused writes")
	}, SpecTimeout(a64SpecTimeout))

	DescribeTable("a PMUVer at or below the host's written before the first run",
		func(ctx SpecContext, c pmuVerCase) {
			g := r.newPMU(pmuSetup{n: -1})
			if c.write != pmuVerImpDef && c.write > g.pmuVer {
				Skip("the host's PMUVer is " + itoa(int(g.pmuVer)) + ", below " + itoa(int(c.write)))
			}
			before := getDFR0(g)
			Expect(setPMUVer(g, c.write)).To(Succeed(), "KVM_SET_ONE_REG ID_AA64DFR0_EL1.PMUVer=%#x", c.write)
			after := getDFR0(g)
			Expect(g.pmuVer).To(Equal(c.want), "PMUVer read back by ONE_REG after writing %#x", c.write)
			Expect(after&^pmuVerMask).To(Equal(before&^pmuVerMask), "the other ID_AA64DFR0_EL1 fields")
			Expect(guestDFR0(ctx, g)).To(Equal(after), "the guest's ID_AA64DFR0_EL1")
		},
		Entry("0 (no PMU) is taken, on a vCPU that has one", SpecTimeout(a64SpecTimeout), pmuVerCase{pmuVerNI, pmuVerNI}),
		Entry("0xf (IMPLEMENTATION DEFINED) is taken as 0", SpecTimeout(a64SpecTimeout), pmuVerCase{pmuVerImpDef, pmuVerNI}),
		Entry("1 (PMUv3) is taken", SpecTimeout(a64SpecTimeout), pmuVerCase{pmuVerIMP, pmuVerIMP}),
		Entry("2 (reserved) is taken as written", SpecTimeout(a64SpecTimeout), pmuVerCase{pmuVerRsvd, pmuVerRsvd}),
		Entry("5 (PMUv3p4) is taken", SpecTimeout(a64SpecTimeout), pmuVerCase{pmuVerP4, pmuVerP4}),
	)

	It("after the vCPU has run a PMUVer write is refused with EBUSY, and rewriting the value it holds succeeds", func(ctx SpecContext) {
		g := r.newPMU(pmuSetup{n: -1})
		if g.pmuVer <= pmuVerIMP {
			Skip("the host's PMUVer is " + itoa(int(g.pmuVer)) + ": no PMUv3 below it to write")
		}
		before := getDFR0(g)
		var busy, same error
		var mid uint64
		p := g.Program()
		p.Mrs(a64.X1, dfr0)
		p.Sync(1, a64.X1)
		p.Mrs(a64.X1, dfr0)
		p.Sync(2, a64.X1)
		p.Done()
		got := map[uint64]uint64{}
		r.run(ctx, g, p, func(u *guest.Ucall) error {
			got[u.Args[0]] = u.Args[1]
			if u.Args[0] == 1 { // the vCPU has run: the VM's ID registers are fixed
				busy = g.vcpu.SetOneReg(a64DFR0, withPMUVer(before, pmuVerIMP))
				v, err := g.vcpu.GetOneReg(a64DFR0)
				if err != nil {
					return err
				}
				mid = v
				same = g.vcpu.SetOneReg(a64DFR0, before)
			}
			return nil
		})
		AddReportEntry("PMUVer write after the first run", busy)
		Expect(errors.Is(busy, unix.EBUSY)).To(BeTrue(), "PMUVer %d after the first run: %v, want EBUSY", pmuVerIMP, busy)
		Expect(mid).To(Equal(before), "ID_AA64DFR0_EL1 after the refused write")
		Expect(same).NotTo(HaveOccurred(), "rewriting the value ID_AA64DFR0_EL1 holds after the first run")
		Expect(got[1]).To(Equal(before), "the guest's ID_AA64DFR0_EL1 before the write")
		Expect(got[2]).To(Equal(before), "the guest's ID_AA64DFR0_EL1 after the refused write")
	}, SpecTimeout(a64SpecTimeout))
}
