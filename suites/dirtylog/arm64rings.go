package dirtylog

// Several arm64 vCPUs and their own dirty rings (KVM/arm64's per-vCPU
// ring since 6.2, alone and with the backup bitmap). The vCPUs write one
// logged slot at once, each from its own page list, in rounds whose
// lists are disjoint, overlapping or empty; between rounds every vCPU is
// stopped at a SYNC and each ring is harvested on its own. A page only
// one vCPU wrote must be in that vCPU's ring and no other; a page
// several wrote in at least one of their rings (the first write-fault
// logs it, a racing one may log it again) and in no ring of a vCPU that
// did not write it; no ring holds a page twice in one harvest. The
// reset re-protects every entry harvested, so the next round dirties
// the same pages again; the backup bitmap stays empty (no page is
// dirtied outside a vCPU). A second case fills each vCPU's smallest
// ring over and over, each vCPU harvesting only its own ring at its
// ring-full exits.

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// a64MultiVCPUs is how many vCPUs write at once: make test-arm64's QEMU
// has two CPUs, so two run truly in parallel.
const a64MultiVCPUs = 2

// a64Round is one round of the multi-vCPU spec: which of n vCPUs writes
// page p of pages.
type a64Round struct {
	name   string
	writes func(v, n int, p, pages uint64) bool
}

var a64Rounds = []a64Round{
	{"disjoint: vcpu i writes the pages i mod n", func(v, n int, p, _ uint64) bool { return int(p%uint64(n)) == v }},
	{"overlapping: every vcpu writes the first half, each its own share of the rest", func(v, n int, p, pages uint64) bool {
		return p < pages/2 || int(p%uint64(n)) == v
	}},
	{"disjoint again, shifted: the pages move to another vcpu's ring", func(v, n int, p, _ uint64) bool { return int((p+1)%uint64(n)) == v }},
	{"overlapping: every vcpu writes every page", func(int, int, uint64, uint64) bool { return true }},
	{"only the last vcpu writes, a scattered third", func(v, n int, p, _ uint64) bool { return v == n-1 && a64Mix(p)%3 == 0 }},
	{"nobody writes", func(int, int, uint64, uint64) bool { return false }},
}

// a64Multi is one arm64 guest of n vCPUs writing a logged slot from
// per-vCPU page lists (X19: this vCPU's list), each round's value being
// round<<8 | vcpu+1 at both ends of each page; the vCPUs meet at a
// barrier in slot 0 before they write.
type a64Multi struct {
	g      *a64guest.Guest
	data   *hv.Memory
	n      int
	pages  uint64
	tables uint64 // vCPU i's list is at tables + i*stride
	stride uint64
	round  uint64
}

func a64Value(round uint64, v int) uint64 { return round<<8 | uint64(v+1) }

func newA64Multi(b *framework.Backend, mode *logMode, n int, pages uint64, ringBytes int) *a64Multi {
	GinkgoHelper()
	mode.require(b)
	b.Require(hv.CapMultiVCPU)
	if b.Caps.MaxVCPUs < n {
		Skip(fmt.Sprintf("%s: %d vCPUs, the backend allows %d", b.Name, n, b.Caps.MaxVCPUs))
	}
	g := b.NewARM64Guest(a64guest.Config{VCPUs: n, VM: mode.vmConfig(ringBytes)})
	data := a64LoggedData(g, pages)
	stride := (8*(pages+1) + 63) &^ 63
	tables, err := g.Alloc(stride*uint64(n), 64)
	Expect(err).NotTo(HaveOccurred())
	barrier, err := g.Alloc(8, 64)
	Expect(err).NotTo(HaveOccurred())

	p := g.Program()
	iterLoop, inc, wait, done := p.NewLabel(), p.NewLabel(), p.NewLabel(), p.NewLabel()
	p.Mov(a64.X19, a64.Imm(int64(tables)))
	p.Mov(a64.X2, a64.Imm(int64(stride)))
	p.Madd(a64.X19, a64.X0, a64.X2, a64.X19)
	p.Add(a64.X21, a64.X0, a64.Imm(1)) // vcpu+1
	p.Mov(a64.X15, a64.Imm(int64(barrier)))
	p.Mov(a64.X14, a64.Imm(int64(n)))
	p.Mov(a64.X20, a64.Imm(0))
	p.Bind(iterLoop)
	p.Ldr(a64.X1, a64.Ptr(a64.X19, 0))
	p.Cmp(a64.X1, a64.Imm(a64Stop))
	p.Bcond(a64.EQ, done)
	p.Add(a64.X20, a64.X20, a64.Imm(1))
	p.Lsl(a64.X22, a64.X20, a64.Imm(8))
	p.Orr(a64.X22, a64.X22, a64.X21)
	// Barrier: count this vCPU in, wait until all n of this round are.
	p.Bind(inc)
	p.Ldaxr(a64.X1, a64.X15)
	p.Add(a64.X1, a64.X1, a64.Imm(1))
	p.Stlxr(a64.W(2), a64.X1, a64.X15)
	p.Cbnz(a64.W(2), inc)
	p.Mul(a64.X3, a64.X20, a64.X14)
	p.Bind(wait)
	p.Ldar(a64.X1, a64.X15)
	p.Cmp(a64.X1, a64.X3)
	p.Bcond(a64.LO, wait)
	a64StorePages(p, a64.X19, a64.X22)
	p.Sync(1, a64.X20)
	p.B(iterLoop)
	p.Bind(done)
	p.Done()
	Expect(g.Load(p)).To(Succeed())
	return &a64Multi{g: g, data: data, n: n, pages: pages, tables: tables, stride: stride}
}

// setTable writes vCPU v's page list (nil: the stop mark) into slot 0.
func (m *a64Multi) setTable(v int, set *pageSet) {
	b := m.g.Mem.Bytes()[m.tables+uint64(v)*m.stride : m.tables+uint64(v)*m.stride+8*(m.pages+1)]
	clear(b)
	if set == nil {
		binary.LittleEndian.PutUint64(b, a64Stop)
		return
	}
	for i, p := range set.list() {
		binary.LittleEndian.PutUint64(b[8*i:], a64DataGPA+p*hv.PageSize)
	}
}

// runAll runs every vCPU at once until its SYNC of the round (each on
// its own goroutine); onFull handles vCPU i's ring-full exits (nil: a
// ring-full exit fails the round).
func (m *a64Multi) runAll(ctx context.Context, stop uint64, onFull func(i int) error) error {
	return guest.RunConcurrently(ctx, m.n, func(ctx context.Context, i int) error {
		for {
			ev, err := m.g.Run(ctx, i)
			if err != nil {
				return fmt.Errorf("vcpu %d: %w", i, err)
			}
			if ev.Exit != nil {
				if ev.Exit.Kind() == hv.ExitDirtyRingFull && onFull != nil {
					if err := onFull(i); err != nil {
						return fmt.Errorf("vcpu %d at a ring-full exit: %w", i, err)
					}
					continue
				}
				return m.g.Unexpected(i, ev.Exit)
			}
			want := guest.UcallSync
			if stop == 0 {
				want = guest.UcallDone
			}
			if ev.Ucall.Cmd != want || (stop != 0 && ev.Ucall.Args[1] != stop) {
				return fmt.Errorf("vcpu %d: ucall %v, want %v of round %d", i, ev.Ucall, want, stop)
			}
			return nil
		}
	})
}

// harvestEach walks each vCPU's ring on its own and returns the sets and
// how many entries were for a page already in the same ring.
func (m *a64Multi) harvestEach() (sets []*pageSet, total, dups int) {
	GinkgoHelper()
	var strays []string
	for i, v := range m.g.VCPUs {
		s := newPageSet(m.pages)
		k, err := v.HarvestDirtyRing(func(slot uint32, off uint64) {
			if slot != a64Slot || off >= m.pages {
				strays = append(strays, fmt.Sprintf("vcpu %d: slot %d page %d", i, slot, off))
				return
			}
			if s.has(off) {
				dups++
			}
			s.add(off)
		})
		Expect(err).NotTo(HaveOccurred(), "harvest vcpu %d's ring", i)
		total += k
		sets = append(sets, s)
	}
	Expect(strays).To(BeEmpty(), "ring entries outside the logged slot")
	return sets, total, dups
}

// checkRings compares each ring with the writers of each page: exact
// for a page one vCPU wrote, within the writers (at least one) for a
// page several wrote, empty for a page nobody wrote. It returns the
// pages several vCPUs wrote and how many of them were in more than one ring.
func checkRings(sets []*pageSet, writers [][]int, pages uint64) (shared, inSeveral int) {
	GinkgoHelper()
	var bad []string
	for p := uint64(0); p < pages; p++ {
		var in []int
		for i, s := range sets {
			if s.has(p) {
				in = append(in, i)
			}
		}
		w := writers[p]
		if len(w) > 1 {
			shared++
			if len(in) > 1 {
				inSeveral++
			}
		}
		ok := len(in) > 0 == (len(w) > 0)
		for _, i := range in {
			ok = ok && containsInt(w, i)
		}
		if len(w) == 1 {
			ok = ok && len(in) == 1
		}
		if !ok {
			bad = append(bad, fmt.Sprintf("page %d written by vcpus %v is in the rings of %v", p, w, in))
		}
	}
	if len(bad) > maxReported {
		bad = append(bad[:maxReported], fmt.Sprintf("… %d more", len(bad)-maxReported))
	}
	Expect(bad).To(BeEmpty(), "ring entries vs the vCPUs that wrote each page:\n  %s", strings.Join(bad, "\n  "))
	return shared, inSeveral
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// runA64MultiRounds is the rounds spec.
func runA64MultiRounds(ctx context.Context, b *framework.Backend, mode *logMode) {
	const pages = 96 + 3 // not a whole bitmap word
	n := a64MultiVCPUs
	m := newA64Multi(b, mode, n, pages, a64RingBytes)
	tr := newTracker(mode, m.g.VM, m.g.VCPUs)
	tr.track(a64Slot, pages)
	Expect(tr.prime(a64Slot)).To(Succeed(), "the newly logged slot")
	last := make([][]uint64, pages) // the values the last round that wrote each page stored
	var report []string
	harvested, reset := 0, 0
	for r, round := range a64Rounds {
		m.round = uint64(r + 1)
		writers := make([][]int, pages)
		for v := 0; v < n; v++ {
			set := newPageSet(pages)
			for p := uint64(0); p < pages; p++ {
				if round.writes(v, n, p, pages) {
					set.add(p)
					writers[p] = append(writers[p], v)
				}
			}
			m.setTable(v, set)
		}
		By(fmt.Sprintf("round %d: %s", m.round, round.name))
		Expect(m.runAll(ctx, m.round, nil)).To(Succeed(), "round %d", m.round)
		sets, total, dups := m.harvestEach()
		Expect(dups).To(BeZero(), "round %d: entries for a page already in the same ring", m.round)
		shared, inSeveral := checkRings(sets, writers, pages)
		k, _, err := resetAll(m.g.VM, total)
		Expect(err).NotTo(HaveOccurred())
		Expect(k).To(Equal(total), "round %d: entries reset vs harvested", m.round)
		harvested, reset = harvested+total, reset+k
		if mode.backup {
			bm := make([]uint64, bitmapWords(pages))
			Expect(m.g.VM.GetDirtyLog(a64Slot, bm)).To(Succeed())
			got := newPageSet(pages)
			got.addWords(bm)
			Expect(got.count()).To(BeZero(), "round %d: the backup bitmap holds %v; only vCPUs wrote", m.round, got)
		}
		for p := uint64(0); p < pages; p++ {
			if len(writers[p]) > 0 {
				last[p] = nil
				for _, v := range writers[p] {
					last[p] = append(last[p], a64Value(m.round, v))
				}
			}
			mem := m.data.Bytes()
			lo := binary.LittleEndian.Uint64(mem[p*hv.PageSize:])
			hi := binary.LittleEndian.Uint64(mem[(p+1)*hv.PageSize-8:])
			want := last[p]
			if want == nil {
				want = []uint64{0}
			}
			Expect(want).To(ContainElement(lo), "round %d: page %d's first word %#x", m.round, p, lo)
			Expect(want).To(ContainElement(hi), "round %d: page %d's last word %#x", m.round, p, hi)
		}
		var counts []string
		for i, s := range sets {
			counts = append(counts, fmt.Sprintf("vcpu %d: %d", i, s.count()))
		}
		report = append(report, fmt.Sprintf("round %d (%s): %s entries; %d pages written by several vCPUs, %d of them in more than one ring",
			m.round, round.name, strings.Join(counts, ", "), shared, inSeveral))
	}
	for v := 0; v < n; v++ {
		m.setTable(v, nil)
	}
	Expect(m.runAll(ctx, 0, nil)).To(Succeed(), "the end")
	AddReportEntry("rings per round", strings.Join(report, "\n"))
	Expect(reset).To(Equal(harvested))
}

// runA64OwnRingsFull: each vCPU writes its own region of the slot
// through the smallest ring, several times over, and at each of its
// ring-full exits harvests its own ring (on its own goroutine, while the
// other vCPU runs): every entry is one of its own pages, and in the end
// each ring has given exactly its vCPU's region.
func runA64OwnRingsFull(ctx context.Context, b *framework.Backend, mode *logMode) {
	ring := smallestRing(b)
	entries := uint64(ring / 16)
	region := 2*entries + 7 // every ring fills at least twice
	n := a64MultiVCPUs
	pages := uint64(n)*region + 3
	By(fmt.Sprintf("%d vCPUs, each writing %d pages through a ring of %d entries", n, region, entries))
	m := newA64Multi(b, mode, n, pages, ring)
	tr := newTracker(mode, m.g.VM, m.g.VCPUs)
	tr.track(a64Slot, pages)
	Expect(tr.prime(a64Slot)).To(Succeed(), "the newly logged slot")
	for v := 0; v < n; v++ {
		m.setTable(v, rangeSet(pages, uint64(v)*region, uint64(v+1)*region))
	}
	type result struct {
		set              *pageSet
		foreign          []string
		fulls, harvested int
	}
	results := make([]result, n)
	var resetTotal atomic.Int64
	var mu sync.Mutex // resets are VM-wide: one at a time
	harvest := func(i int) error {
		res := &results[i]
		k, err := m.g.VCPUs[i].HarvestDirtyRing(func(slot uint32, off uint64) {
			if slot != a64Slot || off < uint64(i)*region || off >= uint64(i+1)*region {
				res.foreign = append(res.foreign, fmt.Sprintf("slot %d page %d", slot, off))
				return
			}
			res.set.add(off)
		})
		res.harvested += k
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		// A VM-wide reset: it may reset entries another vCPU harvested
		// too; only the totals must agree.
		r, _, err := resetAll(m.g.VM, k)
		resetTotal.Add(int64(r))
		return err
	}
	for i := range results {
		results[i].set = newPageSet(pages)
	}
	Expect(m.runAll(ctx, 1, func(i int) error {
		results[i].fulls++
		return harvest(i)
	})).To(Succeed())
	total := 0
	for i := range results {
		Expect(harvest(i)).To(Succeed(), "the last harvest of vcpu %d", i)
		total += results[i].harvested
	}
	r, _, err := resetAll(m.g.VM, total-int(resetTotal.Load()))
	Expect(err).NotTo(HaveOccurred())
	resetTotal.Add(int64(r))
	for i, res := range results {
		want := rangeSet(pages, uint64(i)*region, uint64(i+1)*region)
		Expect(res.foreign).To(BeEmpty(), "vcpu %d's ring: entries that are not its pages", i)
		Expect(res.set.equal(want)).To(BeTrue(), "vcpu %d's ring: %s", i, diff(res.set, want))
		Expect(res.fulls).To(BeNumerically(">=", 2), "vcpu %d: ring-full exits", i)
		AddReportEntry(fmt.Sprintf("vcpu %d", i), fmt.Sprintf("%d entries, %d ring-full exits", res.harvested, res.fulls))
	}
	Expect(int(resetTotal.Load())).To(Equal(total), "entries reset vs harvested over all vCPUs")
	for v := 0; v < n; v++ {
		m.setTable(v, nil)
	}
	Expect(m.runAll(ctx, 0, nil)).To(Succeed(), "the end")
}

// a64RingSpecs are the multi-vCPU specs of a ring mode.
func a64RingSpecs(b *framework.Backend, mode *logMode) {
	It("vcpus writing disjoint and overlapping pages at once: each page in the rings of the vcpus that wrote it", taxonomy.Needs(hv.CapMultiVCPU),
		func(ctx SpecContext) { runA64MultiRounds(ctx, b, mode) }, SpecTimeout(a64SpecTimeout))
	It("each vcpu fills its own ring and harvests only its own pages at its ring-full exits", taxonomy.Needs(hv.CapMultiVCPU),
		func(ctx SpecContext) { runA64OwnRingsFull(ctx, b, mode) }, SpecTimeout(a64SpecTimeout))
}
