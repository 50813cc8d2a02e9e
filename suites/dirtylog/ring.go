package dirtylog

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// sequentialWriter builds a guest that stores n+1 into page n of the
// vCPU's region, for n = 0 … pages-1, counting retired stores in the
// vCPU's control word, then ends. vCPU i's region starts pages·i pages
// into the slot at base; its control word is ctl + 8·i.
func sequentialWriter(g *guest.Guest, base, pages, ctl uint64) *guest.Program {
	p := g.Program()
	p.MovAbs(asm.RBX, pages*hv.PageSize)
	p.Imul(asm.RBX, asm.RDI)
	p.MovAbs(asm.RAX, base)
	p.Add(asm.RBX, asm.RAX) // region base
	p.MovAbs(asm.R8, ctl)
	p.Lea(asm.R8, asm.Mem{Base: asm.R8, Index: asm.RDI, Scale: 8})
	p.Xor(asm.ECX, asm.ECX)
	loop := p.Here()
	p.Mov(asm.RDX, asm.RCX)
	p.Shl(asm.RDX, asm.Imm(12))
	p.Add(asm.RDX, asm.RBX)
	p.Lea(asm.RAX, asm.Mem{Base: asm.RCX, Disp: 1})
	p.Mov(asm.Q(asm.RDX, 0), asm.RAX)
	p.Mov(asm.Q(asm.R8, 0), asm.RAX)
	p.Inc(asm.RCX)
	p.MovAbs(asm.RAX, pages)
	p.Cmp(asm.RCX, asm.RAX)
	p.Jcc(asm.CondB, loop)
	p.Done()
	return p
}

// harvestOrdered walks one vCPU's ring and returns the offsets in ring order.
func harvestOrdered(v hv.VCPU, slot uint32) ([]uint64, error) {
	var offs []uint64
	var stray error
	_, err := v.HarvestDirtyRing(func(s uint32, off uint64) {
		if s != slot && stray == nil {
			stray = fmt.Errorf("ring entry for slot %d page %d; only slot %d is logged", s, off, slot)
		}
		offs = append(offs, off)
	})
	if err != nil {
		return nil, err
	}
	return offs, stray
}

// rangeSet is pages [from, to) of a slot of n pages.
func rangeSet(n, from, to uint64) *pageSet {
	s := newPageSet(n)
	for p := from; p < to; p++ {
		s.add(p)
	}
	return s
}

func setOf(n uint64, offs []uint64) *pageSet { return pagesOf(n, offs...) }

// firstUnwritten is the first page of s a sequentialWriter has not stored
// into yet (it stores n+1, never 0, into page n).
func firstUnwritten(s *testSlot) uint64 {
	for p := uint64(0); p < s.pages; p++ {
		if s.value(p) == 0 {
			return p
		}
	}
	return s.pages
}

func inOrder(offs []uint64) bool {
	for i := 1; i < len(offs); i++ {
		if offs[i] != offs[i-1]+1 {
			return false
		}
	}
	return true
}

// runSoftLimit checks when a ring-full exit comes and what it means: at
// size/16 − reserve entries; again and again without guest progress
// until the ring is reset; then after as many new entries.
func runSoftLimit(ctx context.Context, b *framework.Backend, cpl guest.Mode) {
	modeDirtyRing.require(b)
	reserve, err := params{env: b.Env}.count(ParamRingReserve, 64)
	Expect(err).NotTo(HaveOccurred())
	ring := smallestRing(b)
	entries := uint64(ring / 16)
	Expect(entries).To(BeNumerically(">", reserve), "ring of %d entries, reserve %d", entries, reserve)
	soft := entries - uint64(reserve)
	By(fmt.Sprintf("ring of %d bytes: %d entries, full exit expected at %d (%s=%d)", ring, entries, soft, ParamRingReserve, reserve))

	g := b.NewGuest(guest.Config{Mode: cpl, VM: hv.VMConfig{DirtyRingBytes: ring}})
	pages := 2*entries + entries/2
	s := addSlot(g, 1, slotGPA(1), pages, hv.MemLogDirty)
	ctl, err := g.Alloc(8, 64)
	Expect(err).NotTo(HaveOccurred())
	Expect(g.Load(sequentialWriter(g, s.gpa, pages, ctl))).To(Succeed())
	v := g.VCPUs[0]
	retired := func() uint64 {
		v, err := g.Load64(ctl)
		Expect(err).NotTo(HaveOccurred(), "read the retired count")
		return v
	}
	runToFull := func() {
		GinkgoHelper()
		ev, err := g.Run(ctx, 0)
		Expect(err).NotTo(HaveOccurred())
		Expect(ev.Exit).NotTo(BeNil(), "want a ring-full exit, got ucall %v", ev.Ucall)
		Expect(ev.Exit.Kind()).To(Equal(hv.ExitDirtyRingFull), "exit %v", ev.Exit)
	}

	By("the first ring-full exit")
	runToFull()
	offs, err := harvestOrdered(v, s.id)
	Expect(err).NotTo(HaveOccurred())
	r := retired()
	AddReportEntry("first ring-full exit", fmt.Sprintf("%d entries (pages %v), %d stores retired, entries in write order: %v",
		len(offs), setOf(pages, offs), r, inOrder(offs)))
	Expect(uint64(len(offs))).To(Equal(soft), "entries at the first ring-full exit (ring of %d entries)", entries)
	Expect(setOf(pages, offs).equal(rangeSet(pages, 0, soft))).To(BeTrue(),
		"entries at the first ring-full exit: %s", diff(setOf(pages, offs), rangeSet(pages, 0, soft)))
	// The store that pushed the last entry may still be pending (it
	// faulted, and KVM exits before re-entering: shadow paging, EPT) or
	// have retired (an exit at an instruction boundary, as with PML);
	// nothing after it has run. A pending store is retried after the reset
	// and logged again; a retired one is not.
	next := firstUnwritten(s)
	AddReportEntry("the store that filled the ring", map[bool]string{true: "was pending at the exit", false: "had retired at the exit"}[next == soft-1])
	Expect(r).To(BeNumerically(">=", soft-1), "stores retired")
	Expect(r).To(BeNumerically("<=", soft), "stores retired")
	Expect(next).To(Or(Equal(soft-1), Equal(soft)), "first page not yet written at the exit")

	By("without a reset the vCPU cannot run: it exits full again and pushes nothing")
	for i := 0; i < 3; i++ {
		runToFull()
		again, err := harvestOrdered(v, s.id)
		Expect(err).NotTo(HaveOccurred())
		Expect(again).To(BeEmpty(), "entries pushed by a vCPU whose ring was full")
		Expect(retired()).To(Equal(r), "stores retired by a vCPU whose ring was full")
	}

	By("the reset count is the count harvested")
	n, _, err := resetAll(g.VM, int(soft))
	Expect(err).NotTo(HaveOccurred())
	Expect(n).To(Equal(int(soft)))
	harvested, reset := len(offs), n

	By("after the reset, the next full exit comes after as many new entries")
	runToFull()
	offs2, err := harvestOrdered(v, s.id)
	Expect(err).NotTo(HaveOccurred())
	want2 := rangeSet(pages, next, next+soft)
	Expect(setOf(pages, offs2).equal(want2)).To(BeTrue(),
		"entries at the second ring-full exit (from the first page not written at the first exit): %s", diff(setOf(pages, offs2), want2))
	Expect(uint64(len(offs2))).To(Equal(soft))
	n, _, err = resetAll(g.VM, len(offs2))
	Expect(err).NotTo(HaveOccurred())
	Expect(n).To(Equal(int(soft)))
	harvested, reset = harvested+len(offs2), reset+n

	By("run to the end, harvesting at each full exit")
	all := setOf(pages, offs).union(setOf(pages, offs2))
	fulls := 2
	for done := false; !done; {
		ev, err := g.Run(ctx, 0)
		Expect(err).NotTo(HaveOccurred())
		switch {
		case ev.Ucall != nil && ev.Ucall.Cmd == guest.UcallDone:
			done = true
		case ev.Exit != nil && ev.Exit.Kind() == hv.ExitDirtyRingFull:
			fulls++
		default:
			Fail(fmt.Sprintf("unexpected stop: %v %v", ev.Ucall, ev.Exit))
		}
		o, err := harvestOrdered(v, s.id)
		Expect(err).NotTo(HaveOccurred())
		if !done {
			Expect(uint64(len(o))).To(Equal(soft), "entries at ring-full exit %d", fulls)
		}
		all = all.union(setOf(pages, o))
		n, _, err := resetAll(g.VM, len(o))
		Expect(err).NotTo(HaveOccurred())
		harvested, reset = harvested+len(o), reset+n
	}
	Expect(reset).To(Equal(harvested), "entries reset vs harvested over the run")
	Expect(all.equal(rangeSet(pages, 0, pages))).To(BeTrue(), "every page written was harvested: %s", diff(all, rangeSet(pages, 0, pages)))
	for p := uint64(0); p < pages; p++ {
		Expect(s.value(p)).To(Equal(p+1), "page %d", p)
	}
	AddReportEntry("ring-full exits", fmt.Sprintf("%d for %d pages, soft limit %d", fulls, pages, soft))
}

// runTwice checks that a page written twice before a reset is one entry.
func runTwice(ctx context.Context, b *framework.Backend, cpl guest.Mode) {
	e := newExactEnv(b, modeDirtyRing, cpl, 0)
	a := e.slot(1, 64+3, hv.MemLogDirty)
	pages := []uint64{0, 1, 2, 40, 66}
	e.write(a, pages...)
	e.write(a, pages...)
	e.host("one entry per page", func() {
		offs, err := harvestOrdered(e.g.VCPUs[0], a.id)
		Expect(err).NotTo(HaveOccurred())
		Expect(offs).To(HaveLen(len(pages)), "ring entries after writing each of %d pages twice: %v", len(pages), offs)
		Expect(setOf(a.pages, offs).equal(pagesOf(a.pages, pages...))).To(BeTrue(), "pages of the entries: %v", offs)
		n, _, err := resetAll(e.g.VM, len(offs))
		Expect(err).NotTo(HaveOccurred())
		Expect(n).To(Equal(len(pages)))
	})
	e.write(a, pages...)
	e.expect(map[*testSlot][]uint64{a: pages})
	e.run(ctx)
}

// runRingsPerVCPU has several vCPUs fill their own rings with disjoint
// regions of one slot, each harvesting its own ring on its own goroutine.
func runRingsPerVCPU(ctx context.Context, b *framework.Backend, cpl guest.Mode) {
	modeDirtyRing.require(b)
	b.Require(hv.CapMultiVCPU)
	n, err := params{env: b.Env}.count(ParamVCPUs, 2)
	Expect(err).NotTo(HaveOccurred())
	if b.Caps.MaxVCPUs < n {
		Skip(fmt.Sprintf("%s: %d vCPUs, the backend allows %d", ParamVCPUs, n, b.Caps.MaxVCPUs))
	}
	ring := smallestRing(b)
	entries := uint64(ring / 16)
	region := 2*entries + 7 // every vCPU fills its ring at least twice
	pages := uint64(n)*region + 3
	By(fmt.Sprintf("%d vCPUs, each writing %d pages through a ring of %d entries", n, region, entries))

	g := b.NewGuest(guest.Config{Mode: cpl, VCPUs: n, VM: hv.VMConfig{DirtyRingBytes: ring}})
	s := addSlot(g, 1, slotGPA(1), pages, hv.MemLogDirty)
	ctl, err := g.Alloc(uint64(8*n), 64)
	Expect(err).NotTo(HaveOccurred())
	Expect(g.Load(sequentialWriter(g, s.gpa, region, ctl))).To(Succeed())

	type result struct {
		set       *pageSet
		fulls     int
		foreign   []uint64
		err       error
		harvested int
	}
	var reset atomic.Int64
	results := make([]result, n)
	var wg sync.WaitGroup
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res := &results[i]
			res.set = newPageSet(pages)
			harvest := func() error {
				k, err := g.VCPUs[i].HarvestDirtyRing(func(slot uint32, off uint64) {
					if slot != s.id || off >= pages {
						res.foreign = append(res.foreign, off)
						return
					}
					res.set.add(off)
				})
				res.harvested += k
				if err != nil {
					return err
				}
				// A VM-wide reset: it may also reset entries another vCPU
				// has harvested; only the totals must agree.
				r, _, err := resetAll(g.VM, k)
				reset.Add(int64(r))
				return err
			}
			for {
				ev, err := g.Run(rctx, i)
				if err == nil && ev.Exit != nil && ev.Exit.Kind() == hv.ExitDirtyRingFull {
					res.fulls++
					if err = harvest(); err == nil {
						continue
					}
				}
				if err == nil && (ev.Ucall == nil || ev.Ucall.Cmd != guest.UcallDone) {
					err = fmt.Errorf("vcpu %d: unexpected stop %v %v", i, ev.Ucall, ev.Exit)
				}
				if err == nil {
					err = harvest()
				}
				if err != nil {
					res.err = err
					cancel()
				}
				return
			}
		}(i)
	}
	wg.Wait()
	// Entries harvested last by one vCPU may be reset only by another's
	// later reset, or by none: a final reset settles the total.
	total := 0
	for _, res := range results {
		total += res.harvested
	}
	r, _, err := resetAll(g.VM, total-int(reset.Load()))
	Expect(err).NotTo(HaveOccurred())
	reset.Add(int64(r))

	for i, res := range results {
		Expect(res.err).NotTo(HaveOccurred(), "vcpu %d", i)
		want := rangeSet(pages, uint64(i)*region, uint64(i+1)*region)
		Expect(res.foreign).To(BeEmpty(), "vcpu %d: entries outside the slot", i)
		Expect(res.set.equal(want)).To(BeTrue(), "vcpu %d's ring: %s", i, diff(res.set, want))
		Expect(res.fulls).To(BeNumerically(">=", 2), "vcpu %d: ring-full exits", i)
		AddReportEntry(fmt.Sprintf("vcpu %d", i), fmt.Sprintf("%d entries, %d ring-full exits", res.harvested, res.fulls))
	}
	Expect(int(reset.Load())).To(Equal(total), "entries reset vs harvested over all vCPUs")
}

// runInterruptedReset resets the ring again and again while the resetting
// thread is being signalled, and checks after each reset that the guest's
// next pass over its pages is logged in full: an entry ResetDirtyRings
// counts as reset must be write-protected again, however the call ended.
func runInterruptedReset(ctx context.Context, b *framework.Backend, cpl guest.Mode) {
	modeDirtyRing.require(b)
	// Rounds until a loss shows, or until enough resets were cut short
	// for "no loss" to mean something: on this host class a loss shows
	// within 2 to 16 interrupted resets, so fewer than minShort is no
	// verdict (a pass there would be reported as an unexpected pass).
	const pages, maxRounds, minShort = 2048, 160, 16
	// Room for a whole pass: no ring-full exit, one harvest per pass.
	ring := 64 << 10
	if max := b.Caps.DirtyRingMaxBytes; max > 0 && max < ring {
		ring = max
	}
	g := b.NewGuest(guest.Config{Mode: cpl, VM: hv.VMConfig{DirtyRingBytes: ring}})
	s := addSlot(g, 1, slotGPA(1), pages, hv.MemLogDirty)
	ctl, err := g.Alloc(8, 64)
	Expect(err).NotTo(HaveOccurred())
	Expect(g.Load(passWriter(g, s.gpa, pages, ctl))).To(Succeed())
	all := rangeSet(pages, 0, pages)
	var history []string
	short := 0
	rounds := 0
	for round := 1; round <= maxRounds && short < minShort; round++ {
		rounds = round
		Expect(g.Store64(ctl, uint64(round))).To(Succeed())
		ev, err := g.Run(ctx, 0)
		Expect(err).NotTo(HaveOccurred())
		Expect(ev.Ucall).NotTo(BeNil(), "round %d: want the end of a pass, got %v", round, ev.Exit)
		offs, err := harvestOrdered(g.VCPUs[0], s.id)
		Expect(err).NotTo(HaveOccurred())
		got := setOf(pages, offs)
		Expect(got.equal(all)).To(BeTrue(),
			"round %d: a pass over every page logged %v; not logged: %v. Resets before it (calls each, while signalled): %v",
			round, got, all.minus(got), history)
		var total, calls int
		withSIGURGStorm(func() { total, calls, err = resetLoop(g.VM, len(offs)) })
		Expect(err).NotTo(HaveOccurred())
		Expect(total).To(Equal(len(offs)), "round %d: entries reset vs harvested", round)
		if calls > 1 {
			short++
		}
		history = append(history, fmt.Sprint(calls))
	}
	AddReportEntry("interrupted resets", fmt.Sprintf("%d of %d resets under SIGURG took more than one call", short, rounds))
	if short < minShort {
		// Too little was tested: the backend's reset was rarely or never
		// cut short (it makes no system call, or the signals did not land).
		Skip(fmt.Sprintf("inconclusive: %d of %d ResetDirtyRings under SIGURG were cut short, %d needed", short, rounds, minShort))
	}
}
