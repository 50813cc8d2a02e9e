package pagereport

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/pagereport"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// rssTolerance is how far host residency may stray from the reported
// bytes: 1 % plus 16 pages, for pages the host brings in on its own
// (readahead of a memfd, a huge page the kernel did not split).
func rssTolerance(bytes uint64) uint64 { return bytes/100 + 16*hv.PageSize }

// Stages of the discard scripts' SYNCs (the step argument).
const (
	stTouched = iota + 1
	stReported
	stReadBack
	stRetouched
	stReadAgain
)

// discardSpecs: discard semantics, ignored ranges, inhibit and poison
// (devices.md (c) checks 3, 4 and 5).
func discardSpecs(b *framework.Backend) {
	DescribeTable("host residency falls by the reported bytes, which read zero, and returns on re-touch",
		func(ctx SpecContext, backing hv.Backing) {
			const blocks, reported = 40, 32
			r := newRig(b, rigConfig{blocks: blocks, backing: backing, script: script(
				op(pagereport.OpInit, 0, 0),
				ops(pagereport.OpAlloc, 0, blocks, touched),
				op(pagereport.OpSync, 0, stTouched),
				ops(pagereport.OpFree, 0, reported, 0), // the 32nd free reports 32 blocks
				op(pagereport.OpSync, 0, stReported),
				op(pagereport.OpCheck, 7, stReadBack),
				ops(pagereport.OpAlloc, 0, reported, touched),
				op(pagereport.OpSync, 0, stRetouched),
				op(pagereport.OpCheck, 7, stReadAgain),
			)})
			res := map[uint64]uint64{}
			read := r.runSyncs(ctx, func(u *guest.Ucall) { res[syncArg(u)] = r.resident() })
			const want = reported * block
			tol := rssTolerance(want)
			By(fmt.Sprintf("resident: touched %d MiB, reported %d MiB, re-touched %d MiB", res[stTouched]>>20, res[stReported]>>20, res[stRetouched]>>20))
			AddReportEntry("resident bytes (touched, reported, re-touched)", []uint64{res[stTouched], res[stReported], res[stRetouched]})
			Expect(res[stTouched]).To(BeNumerically(">=", blocks*block-tol), "every touched page resident")
			Expect(res[stTouched]-res[stReported]).To(BeNumerically("~", want, tol), "residency fell by the reported bytes")
			Expect(res[stRetouched]).To(BeNumerically("~", res[stTouched], tol), "residency returned on re-touch")
			Expect(read[stReadBack]).To(BeZero(), "a reported block reads zero")
			Expect(read[stReadAgain]).To(BeEquivalentTo(touched), "the re-touched block holds what the guest wrote")
			s := r.dev.Stats()
			Expect(s.BytesDiscarded).To(BeEquivalentTo(want))
			Expect(r.counters()).To(Equal(pagereport.Counters{Reports: 1, Entries: reported}))
		},
		Entry("anonymous memory (MADV_DONTNEED)", hv.Anonymous, SpecTimeout(specTimeout)),
		Entry("memfd memory (fallocate PUNCH_HOLE)", hv.Memfd, SpecTimeout(specTimeout)),
		Entry("transparent huge pages", hv.AnonymousTHP, SpecTimeout(specTimeout)),
	)

	DescribeTable("ranges the contract ignores are acknowledged and discard nothing",
		func(ctx SpecContext, chain []pagereport.Desc, ignored map[pagereport.Reason]uint64, discarded uint64) {
			const blocks = 4
			r := newRig(b, rigConfig{blocks: blocks, script: script(
				op(pagereport.OpInit, 0, 0),
				ops(pagereport.OpAlloc, 0, blocks, touched),
				op(pagereport.OpSync, 0, stTouched),
				op(pagereport.OpPost, 0, 0),
				op(pagereport.OpSync, 0, stReported),
				checks(0, blocks, stReadBack),
			)})
			for i, d := range chain {
				if i < len(chain)-1 {
					d.Flags |= pagereport.DescFNext
					d.Next = uint16(i + 1)
				}
				Expect(r.rep.WriteDesc(i, d)).To(Succeed())
			}
			res := map[uint64]uint64{}
			read := r.runSyncs(ctx, func(u *guest.Ucall) { res[syncArg(u)] = r.resident() })
			Expect(r.counters()).To(Equal(pagereport.Counters{Reports: 1}), "the element completed")
			s := r.dev.Stats()
			AddReportEntry("device stats", fmt.Sprintf("%+v", s))
			Expect(s.NeedsReset).To(BeZero(), "ignored, not refused: %s", s.LastNeedsReset)
			Expect(s.Ignored).To(Equal(ignored))
			Expect(s.BytesDiscarded).To(Equal(discarded))
			Expect(res[stTouched] - res[stReported]).To(BeNumerically("~", discarded, rssTolerance(discarded)))
			for i := 0; i < blocks; i++ {
				if discarded != 0 && i == 1 {
					continue // the valid range of the mixed chain
				}
				Expect(read[stReadBack+uint64(i)]).To(BeEquivalentTo(touched), "block %d kept its contents", i)
			}
		},
		Entry("unaligned start", desc(ramGPA+512, hv.PageSize), reason(pagereport.ReasonUnaligned), uint64(0), SpecTimeout(specTimeout)),
		Entry("unaligned length", desc(ramGPA, hv.PageSize+1), reason(pagereport.ReasonUnaligned), uint64(0), SpecTimeout(specTimeout)),
		Entry("zero length", desc(ramGPA, 0), reason(pagereport.ReasonEmpty), uint64(0), SpecTimeout(specTimeout)),
		Entry("wrapping the address space", desc(^uint64(0)&^(hv.PageSize-1), 2*hv.PageSize), reason(pagereport.ReasonWraps), uint64(0), SpecTimeout(specTimeout)),
		Entry("outside guest RAM", desc(0x4000_0000, block), reason(pagereport.ReasonOutsideRAM), uint64(0), SpecTimeout(specTimeout)),
		Entry("past the end of RAM", desc(ramGPA+4*block-hv.PageSize, 2*hv.PageSize), reason(pagereport.ReasonCrossesSlot), uint64(0), SpecTimeout(specTimeout)),
		Entry("device-readable", []pagereport.Desc{{Addr: ramGPA, Len: hv.PageSize}}, reason(pagereport.ReasonDeviceReadable), uint64(0), SpecTimeout(specTimeout)),
		Entry("a chain mixing an ignored and a valid range discards only the valid one",
			append(desc(ramGPA+8, block), desc(ramGPA+block, block)...), reason(pagereport.ReasonUnaligned), uint64(block), SpecTimeout(specTimeout)),
	)

	It("inhibited: reports complete, nothing is discarded", func(ctx SpecContext) {
		r := runModeRig(ctx, b, rigConfig{dev: pagereport.Config{Inhibit: true}}, touched)
		Expect(r.dev.Stats().BytesInhibited).To(BeEquivalentTo(32 * block))
	}, SpecTimeout(specTimeout))

	It("poison negotiated: reported pages hold the poison value, nothing is discarded", func(ctx SpecContext) {
		const poison = 0xaaaaaaaa
		r := runModeRig(ctx, b, rigConfig{
			features: pagereport.FeatureVersion1 | pagereport.FeaturePageReporting | pagereport.FeaturePagePoison, poison: poison,
		}, poison<<32|poison)
		Expect(r.dev.Stats().BytesPoisoned).To(BeEquivalentTo(32 * block))
	}, SpecTimeout(specTimeout))
}

// runModeRig reports 32 touched blocks with a device mode that keeps the
// memory, and checks residency did not fall, the reports completed and a
// reported block reads want.
func runModeRig(ctx SpecContext, b *framework.Backend, cfg rigConfig, want uint64) *rig {
	GinkgoHelper()
	const blocks = 32
	cfg.blocks = blocks
	cfg.script = script(
		op(pagereport.OpInit, 0, 0),
		ops(pagereport.OpAlloc, 0, blocks, touched),
		op(pagereport.OpSync, 0, stTouched),
		ops(pagereport.OpFree, 0, blocks, 0),
		op(pagereport.OpSync, 0, stReported),
		op(pagereport.OpCheck, 3, stReadBack),
	)
	r := newRig(b, cfg)
	res := map[uint64]uint64{}
	read := r.runSyncs(ctx, func(u *guest.Ucall) { res[syncArg(u)] = r.resident() })[stReadBack]
	Expect(r.counters()).To(Equal(pagereport.Counters{Reports: 1, Entries: blocks}), "reports completed")
	Expect(res[stReported]).To(BeNumerically(">=", res[stTouched]), "nothing was discarded")
	Expect(read).To(BeEquivalentTo(want), "a reported block's contents")
	Expect(r.dev.Stats().BytesDiscarded).To(BeZero())
	return r
}

func desc(addr, n uint64) []pagereport.Desc {
	return []pagereport.Desc{{Addr: addr, Len: uint32(n), Flags: pagereport.DescFWrite}}
}

func reason(r pagereport.Reason) map[pagereport.Reason]uint64 {
	return map[pagereport.Reason]uint64{r: 1}
}
