package dirtylog

// The dirtylog area's arm64 specs, in the spirit of the kernel's
// dirty_log_test on KVM/arm64: an arm64 guest writes a known set of pages
// per iteration (the iteration number, at both ends of each page), stops
// at a SYNC, and the host harvests in each log mode (the dirty bitmap,
// manual protect with ClearDirtyLog, the per-vCPU dirty ring, the ring
// with its backup bitmap) and checks the exact set and every page's data.
// The page list of each iteration is a table in slot 0 the host fills
// while the guest is stopped, so the guest code is one loop. Several
// vCPUs and their own rings: arm64rings.go.

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func init() { framework.RegisterArch(taxonomy.DirtyLog, hv.ArchARM64, arm64Specs) }

const (
	a64SpecTimeout = 90 * time.Second
	// The logged slot sits outside slot 0, mapped VA == PA at stage 1.
	a64DataGPA = 0x4000_0000
	a64Slot    = 1
	// a64Stop in the first table word ends the guest's loop (a page GPA
	// is never 1).
	a64Stop = 1
	// a64RingBytes is the ring of the iteration specs: far more entries
	// than any iteration writes, so no ring-full exit comes.
	a64RingBytes = 64 << 10
	// a64RingReserve is KVM_DIRTY_RING_RSVD_ENTRIES; arm64 adds no
	// per-CPU log size (kvm_cpu_dirty_log_size() is 0 there).
	a64RingReserve = 64
)

// a64Pattern is the set of pages one iteration writes.
type a64Pattern struct {
	name       string
	pages      uint64
	iterations int
	writes     func(iter int, page uint64) bool
}

var a64Patterns = []a64Pattern{
	{name: "every page, 32 pages x 4 iterations", pages: 32, iterations: 4,
		writes: func(int, uint64) bool { return true }},
	{name: "alternate pages shifting by one, 64 pages x 6 iterations", pages: 64, iterations: 6,
		writes: func(iter int, p uint64) bool { return (p+uint64(iter))%2 == 0 }},
	{name: "a scattered fifth with an idle iteration, 256 pages x 8 iterations", pages: 256, iterations: 8,
		writes: func(iter int, p uint64) bool {
			if iter == 5 {
				return false // nothing written: the harvest must be empty
			}
			return a64Mix(uint64(iter)<<32|p)%5 == 0
		}},
}

// a64Mix is a fixed bit mixer (splitmix64's finaliser), so a pattern is
// scattered yet the same on every run.
func a64Mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// a64Env is one arm64 guest with a logged slot and the table-driven writer.
type a64Env struct {
	g     *a64guest.Guest
	data  *hv.Memory
	pages uint64
	table uint64 // GPA of the page table in slot 0
	tr    *tracker
	// last is the iteration that last wrote each page (0: never).
	last []uint64
	iter uint64
	// fullReruns is how often step runs the vCPU again at a ring-full
	// exit before it harvests: each run must exit full again at once.
	fullReruns int
}

// newA64Env builds the guest: slot 1 of pages host pages, logged, and a
// program that, per iteration, increments X20 and stores it at the first
// and last word of each page whose GPA is in the table, then SYNCs with
// X20; a table starting with a64Stop ends it with DONE.
// a64LoggedData gives the guest pages of dirty-logged memory in slot
// a64Slot at a64DataGPA, mapped VA == PA at stage 1.
func a64LoggedData(g *a64guest.Guest, pages uint64) *hv.Memory {
	GinkgoHelper()
	size := pages * hv.PageSize
	data, err := hv.NewMemory(size, hv.Anonymous)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(data.Close) // after the guest's cleanup, registered earlier
	Expect(g.MapIdentity(a64DataGPA, size, a64guest.KernelData)).To(Succeed())
	Expect(g.VM.SetMemslot(hv.Memslot{Slot: a64Slot, GPA: a64DataGPA, Size: size, Memory: data, Flags: hv.MemLogDirty})).To(Succeed())
	return data
}

// a64StorePages emits the guest's write pass: val stored at the first and
// last word of each page whose GPA is in the zero-ended table at the
// address in table (X1 and X10 are scratch).
func a64StorePages(p *a64guest.Program, table, val a64.Reg) {
	pageLoop, pagesDone := p.NewLabel(), p.NewLabel()
	p.Mov(a64.X10, table)
	p.Bind(pageLoop)
	p.Ldr(a64.X1, a64.PostIndex(a64.X10, 8))
	p.Cbz(a64.X1, pagesDone)
	p.Str(val, a64.Ptr(a64.X1, 0))
	p.Str(val, a64.Ptr(a64.X1, hv.PageSize-8))
	p.B(pageLoop)
	p.Bind(pagesDone)
}

func newA64Env(b *framework.Backend, mode *logMode, pages uint64, ringBytes int) *a64Env {
	GinkgoHelper()
	mode.require(b)
	g := b.NewARM64Guest(a64guest.Config{VM: mode.vmConfig(ringBytes)})
	data := a64LoggedData(g, pages)
	table, err := g.Alloc(8*(pages+1), 64)
	Expect(err).NotTo(HaveOccurred())

	p := g.Program()
	iterLoop, done := p.NewLabel(), p.NewLabel()
	p.Mov(a64.X19, a64.Imm(int64(table)))
	p.Mov(a64.X20, a64.Imm(0))
	p.Bind(iterLoop)
	p.Ldr(a64.X1, a64.Ptr(a64.X19, 0))
	p.Cmp(a64.X1, a64.Imm(a64Stop))
	p.Bcond(a64.EQ, done)
	p.Add(a64.X20, a64.X20, a64.Imm(1))
	a64StorePages(p, a64.X19, a64.X20)
	p.Sync(1, a64.X20)
	p.B(iterLoop)
	p.Bind(done)
	p.Done()
	Expect(g.Load(p)).To(Succeed())

	e := &a64Env{g: g, data: data, pages: pages, table: table, last: make([]uint64, pages)}
	e.tr = newTracker(mode, g.VM, g.VCPUs)
	e.tr.track(a64Slot, pages)
	Expect(e.tr.prime(a64Slot)).To(Succeed(), "the newly logged slot")
	return e
}

// setTable writes the next iteration's page list (or the stop mark) into
// slot 0, which is not logged.
func (e *a64Env) setTable(set *pageSet) {
	GinkgoHelper()
	b := e.g.Mem.Bytes()[e.table : e.table+8*(e.pages+1)]
	clear(b)
	if set == nil {
		binary.LittleEndian.PutUint64(b, a64Stop)
		return
	}
	for i, p := range set.list() {
		binary.LittleEndian.PutUint64(b[8*i:], a64DataGPA+p*hv.PageSize)
	}
}

// step runs one iteration writing set and returns what was harvested at
// ring-full exits on the way (one set per exit, in order).
func (e *a64Env) step(ctx context.Context, set *pageSet) []*pageSet {
	GinkgoHelper()
	e.iter++
	e.setTable(set)
	var fulls []*pageSet
	for {
		ev, err := e.g.Run(ctx, 0)
		Expect(err).NotTo(HaveOccurred())
		if ev.Exit != nil {
			if ev.Exit.Kind() != hv.ExitDirtyRingFull || !e.tr.mode.ring {
				Fail(e.g.Unexpected(0, ev.Exit).Error())
			}
			for k := 1; k <= e.fullReruns; k++ {
				again, err := e.g.Run(ctx, 0)
				Expect(err).NotTo(HaveOccurred())
				Expect(again.Exit).NotTo(BeNil(), "run %d without a reset: want a ring-full exit, got ucall %v", k, again.Ucall)
				Expect(again.Exit.Kind()).To(Equal(hv.ExitDirtyRingFull), "run %d without a reset", k)
			}
			got, err := e.tr.collectRing(-1)
			Expect(err).NotTo(HaveOccurred(), "harvest at ring-full exit %d", len(fulls)+1)
			fulls = append(fulls, got[a64Slot])
			continue
		}
		Expect(ev.Ucall.Cmd).To(Equal(guest.UcallSync), "ucall %v", ev.Ucall)
		Expect(ev.Ucall.Args[1]).To(Equal(e.iter), "the guest's iteration counter")
		break
	}
	for _, p := range set.list() {
		e.last[p] = e.iter
	}
	return fulls
}

// checkData compares every page's first and last word with the iteration
// that last wrote it.
func (e *a64Env) checkData() {
	GinkgoHelper()
	mem := e.data.Bytes()
	for p := uint64(0); p < e.pages; p++ {
		lo := binary.LittleEndian.Uint64(mem[p*hv.PageSize:])
		hi := binary.LittleEndian.Uint64(mem[(p+1)*hv.PageSize-8:])
		Expect([]uint64{lo, hi}).To(Equal([]uint64{e.last[p], e.last[p]}), "page %d's first and last word after iteration %d", p, e.iter)
	}
}

// finish stops the guest's loop and expects its DONE.
func (e *a64Env) finish(ctx context.Context) {
	GinkgoHelper()
	e.setTable(nil)
	ev, err := e.g.Run(ctx, 0)
	Expect(err).NotTo(HaveOccurred())
	Expect(ev.Exit).To(BeNil(), "exit %v", ev.Exit)
	Expect(ev.Ucall.Cmd).To(Equal(guest.UcallDone), "ucall %v", ev.Ucall)
}

// patternSet is the pages pattern pat writes at iteration iter.
func patternSet(pat a64Pattern, iter int) *pageSet {
	s := newPageSet(pat.pages)
	for p := uint64(0); p < pat.pages; p++ {
		if pat.writes(iter, p) {
			s.add(p)
		}
	}
	return s
}

// runA64Iterations is the dirty_log_test loop: each iteration's harvest
// is exactly the pages written in it, and the data is the last write.
func runA64Iterations(ctx context.Context, b *framework.Backend, mode *logMode, pat a64Pattern) {
	e := newA64Env(b, mode, pat.pages, a64RingBytes)
	total := 0
	for i := 1; i <= pat.iterations; i++ {
		want := patternSet(pat, i)
		fulls := e.step(ctx, want)
		Expect(fulls).To(BeEmpty(), "ring-full exits in iteration %d", i)
		got, err := e.tr.collect()
		Expect(err).NotTo(HaveOccurred(), "harvest after iteration %d", i)
		Expect(expectSets(got, map[uint32]*pageSet{a64Slot: want})).To(Succeed(), "iteration %d", i)
		e.checkData()
		total += want.count()
	}
	e.finish(ctx)
	if mode.ring {
		Expect(e.tr.dups).To(BeZero(), "ring entries for a page already harvested in the same harvest")
		Expect(e.tr.harvested).To(Equal(total), "ring entries harvested over the run")
	}
	AddReportEntry("pages harvested", fmt.Sprintf("%d over %d iterations (%d ring entries, %d reset)", total, pat.iterations, e.tr.harvested, e.tr.reset))
}

// runA64ClearExactly: with manual protect, GetDirtyLog leaves the log as
// it is, and ClearDirtyLog re-protects exactly the pages set in the
// bitmap it is given, within the 64-page-aligned range given.
func runA64ClearExactly(ctx context.Context, b *framework.Backend) {
	const pages = 192
	e := newA64Env(b, modeClearLog, pages, 0)
	all := rangeSet(pages, 0, pages)
	get := func() *pageSet {
		GinkgoHelper()
		bm := make([]uint64, bitmapWords(pages))
		Expect(e.g.VM.GetDirtyLog(a64Slot, bm)).To(Succeed())
		s := newPageSet(pages)
		s.addWords(bm)
		return s
	}
	By("the guest writes every page; the log shows them twice, GetDirtyLog clears nothing")
	e.step(ctx, all)
	for _, what := range []string{"first GetDirtyLog", "second GetDirtyLog without a clear"} {
		got := get()
		Expect(got.equal(all)).To(BeTrue(), "%s: %s", what, diff(got, all))
	}

	By("clear the even pages of [0,64) and all of [64,128); [128,192) stays dirty")
	even := newPageSet(64)
	for p := uint64(0); p < 64; p += 2 {
		even.add(p)
	}
	Expect(e.g.VM.ClearDirtyLog(a64Slot, 0, 64, even.words)).To(Succeed())
	ones := []uint64{^uint64(0)}
	Expect(e.g.VM.ClearDirtyLog(a64Slot, 64, 64, ones)).To(Succeed())
	left := newPageSet(pages)
	for p := uint64(1); p < 64; p += 2 {
		left.add(p)
	}
	left = left.union(rangeSet(pages, 128, pages))
	got := get()
	Expect(got.equal(left)).To(BeTrue(), "after the clears: %s", diff(got, left))

	By("the guest writes [60,70): cleared pages are dirty again, the others were all along")
	e.step(ctx, rangeSet(pages, 60, 70))
	want := left.union(rangeSet(pages, 60, 70))
	got = get()
	Expect(got.equal(want)).To(BeTrue(), "%s", diff(got, want))
	e.checkData()

	By("clear everything; a write to one page is all the log shows")
	Expect(e.g.VM.ClearDirtyLog(a64Slot, 0, pages, got.words)).To(Succeed())
	Expect(get().count()).To(BeZero())
	e.step(ctx, pagesOf(pages, 130))
	Expect(get().equal(pagesOf(pages, 130))).To(BeTrue(), "%v", get())
	e.checkData()
	e.finish(ctx)
}

// runA64SoftLimit fills the smallest ring: the vCPU exits with
// KVM_EXIT_DIRTY_RING_FULL when its ring holds the soft limit (size
// minus the reserved entries), exits so again without pushing anything
// until the ring is reset, and after harvest and reset runs on.
func runA64SoftLimit(ctx context.Context, b *framework.Backend) {
	modeDirtyRing.require(b)
	ring := smallestRing(b)
	entries := uint64(ring / 16) // sizeof(struct kvm_dirty_gfn)
	Expect(entries).To(BeNumerically(">", a64RingReserve))
	soft := entries - a64RingReserve
	pages := 2*entries + entries/2
	By(fmt.Sprintf("ring of %d bytes: %d entries, full exit expected at %d; the guest writes %d pages", ring, entries, soft, pages))
	e := newA64Env(b, modeDirtyRing, pages, ring)

	all := rangeSet(pages, 0, pages)
	e.fullReruns = 3 // the vCPU cannot run on until the ring is reset
	fulls := e.step(ctx, all)
	e.fullReruns = 0
	Expect(len(fulls)).To(BeNumerically(">=", 2), "ring-full exits writing %d pages", pages)
	seen := newPageSet(pages)
	for i, s := range fulls {
		Expect(uint64(s.count())).To(Equal(soft), "entries at ring-full exit %d", i+1)
		seen = seen.union(s)
	}
	Expect(rangeSet(pages, 0, soft).minus(fulls[0]).count()).To(BeZero(), "the first full exit holds the first %d pages written: %v", soft, fulls[0])
	rest, err := e.tr.collect()
	Expect(err).NotTo(HaveOccurred())
	seen = seen.union(rest[a64Slot])
	Expect(seen.equal(all)).To(BeTrue(), "every page written was harvested: %s", diff(seen, all))
	Expect(e.tr.reset).To(Equal(e.tr.harvested), "entries reset vs harvested")
	e.checkData()
	AddReportEntry("ring-full exits", fmt.Sprintf("%d for %d pages, soft limit %d, %d entries harvested in all (a store pending at a full exit is logged again after the reset)",
		len(fulls), pages, soft, e.tr.harvested))

	By("fewer pages than the soft limit: no full exit, the exact set")
	some := newPageSet(pages)
	for p := uint64(0); p < pages; p += 4 {
		some.add(p)
	}
	Expect(uint64(some.count())).To(BeNumerically("<", soft))
	Expect(e.step(ctx, some)).To(BeEmpty(), "ring-full exits")
	got, err := e.tr.collect()
	Expect(err).NotTo(HaveOccurred())
	Expect(expectSets(got, map[uint32]*pageSet{a64Slot: some})).To(Succeed())
	e.checkData()
	e.finish(ctx)
}

// runA64BackupSplit: with the backup bitmap, the guest's writes come
// through the ring only, the host's writes through GuestMemory through
// GetDirtyLog only, and both are re-armed for the next round.
func runA64BackupSplit(ctx context.Context, b *framework.Backend) {
	b.Require(hv.CapGuestMemoryTrack)
	const pages = 32
	e := newA64Env(b, modeRingBackup, pages, a64RingBytes)
	ringOnly := &logMode{name: "ring", ring: true}
	rings := newTracker(ringOnly, e.g.VM, e.g.VCPUs)
	rings.track(a64Slot, pages)
	bitmap := func() *pageSet {
		GinkgoHelper()
		bm := make([]uint64, bitmapWords(pages))
		Expect(e.g.VM.GetDirtyLog(a64Slot, bm)).To(Succeed())
		s := newPageSet(pages)
		s.addWords(bm)
		return s
	}
	hostWrite := func(set *pageSet, v uint64) {
		GinkgoHelper()
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], v)
		for _, p := range set.list() {
			Expect(e.g.VM.WriteGPA(a64DataGPA+p*hv.PageSize+8, w[:])).To(Succeed(), "host write to page %d", p)
		}
	}
	for round := 1; round <= 3; round++ {
		guestSet, hostSet := newPageSet(pages), newPageSet(pages)
		for p := uint64(0); p < pages; p++ {
			if (p+uint64(round))%3 == 0 {
				guestSet.add(p)
			}
			if (p+uint64(round))%4 == 1 {
				hostSet.add(p)
			}
		}
		By(fmt.Sprintf("round %d: the guest writes %v, the host %v", round, guestSet, hostSet))
		Expect(e.step(ctx, guestSet)).To(BeEmpty(), "ring-full exits")
		hostWrite(hostSet, 0xd0_0000+uint64(round))
		got, err := rings.collectRing(-1)
		Expect(err).NotTo(HaveOccurred())
		Expect(got[a64Slot].equal(guestSet)).To(BeTrue(), "ring entries: %s", diff(got[a64Slot], guestSet))
		bm := bitmap()
		Expect(bm.equal(hostSet)).To(BeTrue(), "backup bitmap: %s", diff(bm, hostSet))
		Expect(bitmap().count()).To(BeZero(), "a second GetDirtyLog")
		e.checkData()
		for _, p := range hostSet.list() {
			v, err := e.g.VM.Load64(a64DataGPA + p*hv.PageSize + 8)
			Expect(err).NotTo(HaveOccurred())
			Expect(v).To(Equal(0xd0_0000+uint64(round)), "page %d's host-written word", p)
		}
	}
	e.finish(ctx)
}

func arm64Specs(b *framework.Backend) {
	for _, mode := range logModes {
		mode := mode
		Describe(mode.name, mode.labels(), func() {
			var entries []TableEntry
			for _, pat := range a64Patterns {
				entries = append(entries, Entry(pat.name, pat, SpecTimeout(a64SpecTimeout)))
			}
			DescribeTable("guest writes over iterations are harvested exactly",
				func(ctx SpecContext, pat a64Pattern) { runA64Iterations(ctx, b, mode, pat) },
				entries)
			switch mode {
			case modeClearLog:
				It(textClearExactly, func(ctx SpecContext) { runA64ClearExactly(ctx, b) }, SpecTimeout(a64SpecTimeout))
			case modeDirtyRing:
				It("ring-full exits come at the soft limit, repeat until reset and the ring runs on after it", func(ctx SpecContext) { runA64SoftLimit(ctx, b) }, SpecTimeout(a64SpecTimeout))
				a64RingSpecs(b, mode)
				a64ITSSpecs(b, mode)
			case modeRingBackup:
				It(textBackupSplit, taxonomy.Needs(hv.CapGuestMemoryTrack), func(ctx SpecContext) { runA64BackupSplit(ctx, b) }, SpecTimeout(a64SpecTimeout))
				a64RingSpecs(b, mode)
				a64ITSSpecs(b, mode)
			}
		})
	}
}
