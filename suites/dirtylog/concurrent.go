package dirtylog

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// This file ports the kernel's dirty_log_test: one vCPU writes the current
// iteration into random pages while the host harvests, and after each
// iteration every page's value is checked against the harvested log.

// minWrites is the forward-progress floor of an iteration (the kernel
// test's TEST_MIN_WRITES_PER_ITERATION): an iteration with almost no
// writes checks almost nothing.
const minWrites = 0x100

// maxReported bounds the pages a failing iteration lists.
const maxReported = 10

// concurrentParams are the settings of one concurrent check.
type concurrentParams struct {
	iterations int
	interval   time.Duration
	pages      uint64
	ringBytes  int // 0: the smallest ring the backend accepts
	reserve    int
	seed       int64
}

// readConcurrentParams reads the parameters; small is for test code that
// runs in an instruction emulator, where the defaults shrink.
func readConcurrentParams(b *framework.Backend, small bool) (concurrentParams, error) {
	p := params{env: b.Env}
	iters, mem := 32, uint64(16<<20)
	if small {
		iters, mem = 8, 4<<20
	}
	var c concurrentParams
	var err error
	if c.iterations, err = p.count(ParamIterations, iters); err != nil {
		return c, err
	}
	if c.interval, err = p.duration(ParamInterval, 10*time.Millisecond); err != nil {
		return c, err
	}
	if mem, err = p.size(ParamMem, mem); err != nil {
		return c, err
	}
	if mem%hv.PageSize != 0 {
		return c, fmt.Errorf("--param %s: %d is not a multiple of %d", ParamMem, mem, hv.PageSize)
	}
	// "A little more than" a power of two, as the kernel test does, so
	// the slot does not end on a 64-page word of the bitmap.
	c.pages = mem/hv.PageSize + 3
	if c.pages*hv.PageSize > slotWindowSize {
		return c, fmt.Errorf("--param %s: at most %d MiB", ParamMem, slotWindowSize>>20-1)
	}
	ring, err := p.size(ParamRing, 0)
	if err != nil {
		return c, err
	}
	c.ringBytes = int(ring)
	if c.reserve, err = p.count(ParamRingReserve, 64); err != nil {
		return c, err
	}
	c.seed, err = p.seed()
	return c, err
}

// ack is what the vCPU goroutine says when it stops for the host.
type ack struct {
	atFull bool   // stopped at a ring-full exit (else at the guest's SYNC)
	rsi    uint64 // the guest's PRNG state (SYNC), or RSI at the full exit
	// At a ring-full exit: the writes retired, and whether the next one
	// (the store that pushed the last entry) is pending: faulted, logged
	// and not retired, to be retried when the vCPU runs again.
	retired uint64
	pending bool
	err     error
}

// iterStats is one line of the per-iteration report.
type iterStats struct {
	iter          uint64
	writes        uint64
	dirty, clean  int
	fulls         int
	stoppedAtFull bool
	took          time.Duration
}

// concurrent is one run of the check. Fields below "vCPU side" belong to
// whichever goroutine holds the vCPU: the worker while the guest runs,
// the host while it is stopped; the ack and cont channels hand it over.
type concurrent struct {
	mode  *logMode
	g     *guest.Guest
	slot  *testSlot
	ctlAt uint64 // guest-physical address of the control block
	prm   concurrentParams
	// storeAt and countAt are the writer's store and the count after it.
	storeAt, countAt uint64

	ringEntries, soft int

	tr    *tracker
	model *writeModel

	// vCPU side.
	iter       uint64
	parkOnFull bool
	winStart   uint64   // first write of the current ring window
	ringDirty  *pageSet // pages harvested from the ring this iteration
	fulls      int
	problems   []string
	// firstWrite[i] is the first write counted in iteration i+1 (host side).
	firstWrite []uint64

	stopReq atomic.Bool // host → worker: stop at the next exit
	idle    atomic.Bool // worker → host: acked, waiting to continue
	acks    chan ack
	cont    chan struct{}
}

func (c *concurrent) writes() uint64 {
	w, err := c.g.Load64(c.ctlAt + ctlWrites)
	Expect(err).NotTo(HaveOccurred(), "read the guest's write counter")
	return w
}

func (c *concurrent) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf("iteration %d: ", c.iter)+fmt.Sprintf(format, args...))
}

// worker runs the vCPU: it enters the guest until it stops (SYNC after the
// stop flag, or a ring-full exit the host asked it to stop at), acks, and
// waits to be continued. Ring-full exits it handles itself: the ring is
// harvested and reset on this goroutine, as the hv contract lets only one
// goroutine at a time use a vCPU.
func (c *concurrent) worker(ctx context.Context) {
	if !c.wait(ctx) {
		return
	}
	for {
		ev, err := c.g.Run(ctx, 0)
		switch {
		case err != nil:
			c.send(ctx, ack{err: err})
			return
		case ev.Exit != nil && ev.Exit.Kind() == hv.ExitDirtyRingFull && c.mode.ring:
			c.fulls++
			a, err := c.fullExit()
			if err != nil {
				c.send(ctx, ack{err: err})
				return
			}
			if !c.parkOnFull && !c.stopReq.Load() {
				continue
			}
			c.send(ctx, a)
		case ev.Ucall != nil && ev.Ucall.Cmd == guest.UcallSync && ev.Ucall.Stage() == stageStopped && len(ev.Ucall.Args) == 2:
			c.send(ctx, ack{rsi: ev.Ucall.Args[1]})
		case ev.Exit != nil:
			c.send(ctx, ack{err: c.g.Unexpected(0, ev.Exit)})
			return
		default:
			c.send(ctx, ack{err: fmt.Errorf("unexpected ucall %v", ev.Ucall)})
			return
		}
		if !c.wait(ctx) {
			return
		}
	}
}

func (c *concurrent) send(ctx context.Context, a ack) {
	c.idle.Store(true)
	select {
	case c.acks <- a:
	case <-ctx.Done():
	}
}

func (c *concurrent) wait(ctx context.Context) bool {
	select {
	case <-c.cont:
		return true
	case <-ctx.Done():
		return false
	}
}

// fullExit handles a ring-full exit: where the vCPU stopped tells how
// many writes retired (the counter lags the store by one instruction) and
// whether a store is pending; then the ring is harvested.
func (c *concurrent) fullExit() (ack, error) {
	r, err := c.g.VCPUs[0].Regs()
	if err != nil {
		return ack{}, err
	}
	a := ack{atFull: true, rsi: r.RSI, retired: c.writes()}
	switch r.RIP {
	case c.storeAt:
		// The store faulted, KVM logged its page and exited before it
		// retired (shadow paging, EPT without PML).
		a.pending = true
	case c.countAt:
		// The store retired and the vCPU stopped before counting it (an
		// exit at an instruction boundary, as with PML).
		a.retired++
	}
	if a.pending || r.RIP == c.countAt {
		if want := c.model.state(a.retired + b2u(a.pending)); r.RSI != want {
			c.problem("guest PRNG state %#x at the ring-full exit after %d writes, model says %#x", r.RSI, a.retired, want)
		}
	}
	return a, c.ringHarvest(a.retired, a.pending, true)
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// ringHarvest walks and resets the ring with the vCPU stopped after w
// retired writes, and checks the harvest against the model: the entries
// since the previous harvest are exactly the distinct pages of the writes
// since then, plus the page of a pending store (which pushed its entry
// and is logged again when it retries, as the reset re-protects it).
func (c *concurrent) ringHarvest(w uint64, pending, atFull bool) error {
	before := c.tr.harvested
	sets, err := c.tr.collectRing(-1)
	if err != nil {
		return err
	}
	got := sets[c.slot.id]
	entries := c.tr.harvested - before
	c.ringDirty.addWords(got.words)
	lower := newPageSet(c.slot.pages)
	if w >= c.winStart {
		lower = c.model.window(c.winStart, w)
	}
	upper := lower
	if pending {
		upper = pagesOf(c.slot.pages, c.model.page(w+1)).union(lower)
	}
	if miss := lower.minus(got); miss.count() > 0 {
		c.problem("the ring lacks pages the guest wrote since the previous harvest (writes %d-%d): %v", c.winStart, w, miss)
	}
	if extra := got.minus(upper); extra.count() > 0 {
		c.problem("the ring holds pages the guest did not write since the previous harvest (writes %d-%d, pending store: %v): %v", c.winStart, w, pending, extra)
	}
	if atFull && (entries < c.soft || entries > c.ringEntries) {
		c.problem("ring-full exit with %d entries in a ring of %d; want at least the soft limit %d (%s = %d)",
			entries, c.ringEntries, c.soft, ParamRingReserve, c.prm.reserve)
	}
	c.winStart = w + 1
	return nil
}

// runConcurrent is the spec body.
func runConcurrent(ctx context.Context, b *framework.Backend, mode *logMode, cpl guest.Mode) {
	mode.require(b)
	prm, err := readConcurrentParams(b, slow(b, cpl))
	Expect(err).NotTo(HaveOccurred())
	ring := 0
	if mode.ring {
		ring = prm.ringBytes
		if ring == 0 {
			ring = smallestRing(b)
		}
	}
	settings := fmt.Sprintf("mode %s, %s, seed %d, %d iterations of %v, slot of %d pages (%d MiB + 3 pages)",
		mode, cpl, prm.seed, prm.iterations, prm.interval, prm.pages, (prm.pages-3)*hv.PageSize>>20)
	if mode.ring {
		settings += fmt.Sprintf(", ring of %d bytes (%d entries, full exit expected at %d)", ring, ring/16, ring/16-prm.reserve)
	}
	By(settings)
	AddReportEntry("settings", settings)

	g := b.NewGuest(guest.Config{Mode: cpl, VM: mode.vmConfig(ring)})
	s := addSlot(g, 1, slotGPA(1), prm.pages, hv.MemLogDirty)
	ctlAt, err := g.Alloc(ctlSize, 64)
	Expect(err).NotTo(HaveOccurred())
	state := seedState(prm.seed)
	wp := randomWriter(g, ctlAt, s.gpa, s.pages, state)
	Expect(g.Load(wp.Program)).To(Succeed())
	storeAt, _ := wp.Addr(wp.store)
	countAt, _ := wp.Addr(wp.count)

	c := &concurrent{mode: mode, g: g, slot: s, ctlAt: ctlAt, prm: prm, storeAt: storeAt, countAt: countAt,
		ringEntries: ring / 16, soft: ring/16 - prm.reserve,
		tr: newTracker(mode, g.VM, g.VCPUs), model: newWriteModel(state, prm.pages),
		winStart: 1, acks: make(chan ack, 1), cont: make(chan struct{})}
	c.tr.track(s.id, s.pages)
	if mode.manual {
		// INITIALLY_SET: every page reads dirty until cleared, and pages
		// are not write-protected before; the kernel test lets the first
		// iteration see never-written pages as dirty rather than
		// clearing first, so do the same.
		By("clear-log: the first harvest sees every page (INITIALLY_SET)")
	}

	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		c.worker(wctx)
	}()
	DeferCleanup(func() {
		cancel()
		<-done
	})

	var (
		stats                []iterStats
		totalDirty, totClean int
		totalFulls           int
		prevPending          = int64(-1) // page whose store was pending at the previous stop
		lastW                uint64
		// How often each documented tolerance applied, for the report:
		// a store retried with the previous iteration's value, a pending
		// store, a never-written page dirty by INITIALLY_SET.
		tolRetried, tolPending, tolInitial int
	)
	for it := uint64(1); it <= uint64(prm.iterations); it++ {
		started := time.Now()
		Expect(g.Store64(ctlAt+ctlIter, it)).To(Succeed())
		c.iter = it
		c.fulls = 0
		c.ringDirty = newPageSet(s.pages)
		// Odd iterations stop at the first full ring, as the kernel test
		// did before 2025: the store that pushed the last entry retires
		// only in the next iteration, with the value it loaded. Even
		// iterations harvest and go on, so the ring fills many times.
		c.parkOnFull = mode.ring && it%2 == 1
		c.idle.Store(false)
		select {
		case c.cont <- struct{}{}:
		case <-done:
			Fail(fmt.Sprintf("iteration %d: the vCPU goroutine has ended", it))
		}

		// Let the guest write for the interval, and until it has written
		// enough. Bitmap modes harvest once while it runs (a second
		// harvest would lose the first's bits: GetDirtyLog replaces).
		w0 := lastW
		c.firstWrite = append(c.firstWrite, w0+1)
		var bmap0 map[uint32]*pageSet
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				Fail(fmt.Sprintf("iteration %d: spec ended while the guest was writing", it))
			case <-time.After(time.Millisecond):
			}
			if i == 0 && !mode.ring {
				bmap0, err = c.tr.collect()
				Expect(err).NotTo(HaveOccurred(), "harvest while the guest writes (iteration %d)", it)
			}
			if c.idle.Load() || time.Since(started) >= prm.interval && c.writes()-w0 >= minWrites {
				break
			}
		}

		By(fmt.Sprintf("iteration %d: stop the vCPU", it))
		Expect(g.Store64(ctlAt+ctlStop, 1)).To(Succeed())
		c.stopReq.Store(true)
		var a ack
		select {
		case a = <-c.acks:
		case <-ctx.Done():
			Fail(fmt.Sprintf("iteration %d: the vCPU did not stop (stop flag set in guest memory)", it))
		}
		c.stopReq.Store(false)
		Expect(g.Store64(ctlAt+ctlStop, 0)).To(Succeed())
		Expect(a.err).NotTo(HaveOccurred(), "iteration %d: vCPU", it)
		w := c.writes()
		if a.atFull {
			w = a.retired
		} else {
			// The guest's PRNG must be where the model says, or the
			// model's account of which page each write hit is wrong.
			Expect(a.rsi).To(Equal(c.model.state(w)), "iteration %d: guest PRNG state after %d writes", it, w)
		}
		lastW = w

		// Final harvest with the vCPU stopped (after a stop at a full
		// ring, nothing new: the worker harvested there).
		var dirty *pageSet
		bmap1 := newPageSet(s.pages)
		if mode.ring {
			Expect(c.ringHarvest(w, false, false)).To(Succeed())
			dirty = c.ringDirty
		} else {
			sets, err := c.tr.collect()
			Expect(err).NotTo(HaveOccurred(), "harvest after the stop (iteration %d)", it)
			bmap1 = sets[s.id]
			dirty = bmap1.union(bmap0[s.id])
		}
		Expect(c.problems).To(BeEmpty(), "dirty ring harvests disagree with the guest's writes")

		pending := int64(-1)
		if a.pending {
			pending = int64(c.model.page(w + 1))
		}
		st := iterStats{iter: it, writes: w - w0, fulls: c.fulls, stoppedAtFull: a.atFull}
		var bad []string
		for p := uint64(0); p < s.pages; p++ {
			val := s.value(p)
			if !dirty.has(p) {
				st.clean++
				if val >= it {
					bad = append(bad, c.explain(p, val, it, w, "clean", "a value >= the iteration: the write was not logged"))
				}
				continue
			}
			st.dirty++
			switch {
			case val == it:
			case int64(p) == prevPending && val == it-1:
				// The store pending at the previous stop retired in this
				// iteration with the value it had loaded, and was logged again.
				tolRetried++
			case int64(p) == pending && val < it:
				// The store that pushed the last ring entry has not retired.
				tolPending++
			case mode.manual && it == 1 && bmap0[s.id].has(p) && val == 0:
				// INITIALLY_SET: never written, dirty until the first clear.
				tolInitial++
			default:
				where := "in the log"
				if !mode.ring {
					where = fmt.Sprintf("in the log (harvest while writing: %v, after stop: %v)", bmap0[s.id].has(p), bmap1.has(p))
				}
				bad = append(bad, c.explain(p, val, it, w, where, "a value other than the iteration"))
			}
		}
		if len(bad) > 0 {
			n := len(bad)
			if n > maxReported {
				bad = bad[:maxReported]
			}
			Fail(fmt.Sprintf("iteration %d: %d pages disagree with the log:\n  %s", it, n, strings.Join(bad, "\n  ")))
		}
		st.took = time.Since(started)
		stats = append(stats, st)
		totalDirty += st.dirty
		totClean += st.clean
		totalFulls += st.fulls
		prevPending = pending
		if st.writes < minWrites && !a.atFull {
			AddReportEntry(fmt.Sprintf("iteration %d", it), fmt.Sprintf("only %d writes", st.writes))
		}
		GinkgoWriter.Printf("iteration %2d: dirty %6d clean %6d writes %6d ring-full exits %3d%s\n",
			it, st.dirty, st.clean, st.writes, st.fulls, map[bool]string{true: " (stopped at a full ring)"}[a.atFull])
	}

	AddReportEntry("iterations", formatIterations(stats))
	totals := fmt.Sprintf("pages checked: dirty %d, clean %d; guest writes %d; tolerated: %d pending stores, %d stores retried with the previous value, %d never-written pages set by INITIALLY_SET",
		totalDirty, totClean, lastW, tolPending, tolRetried, tolInitial)
	if mode.ring {
		totals += fmt.Sprintf("; ring entries harvested %d, reset %d, duplicates %d, ring-full exits %d",
			c.tr.harvested, c.tr.reset, c.tr.dups, totalFulls)
	}
	AddReportEntry("totals", totals)
	if mode.ring {
		Expect(c.tr.reset).To(Equal(c.tr.harvested), "ResetDirtyRings total vs entries harvested")
		Expect(totalFulls).To(BeNumerically(">", 0),
			"a ring of %d entries never filled in %d iterations with %d writes: lower %s or raise %s",
			c.ringEntries, prm.iterations, lastW, ParamRing, ParamInterval)
	}
}

// explain describes a page that failed the check, with what the model
// knows about the guest's last write to it.
func (c *concurrent) explain(p, val, it, w uint64, where, problem string) string {
	s := fmt.Sprintf("page %d (gpa %#x) %s holds %d, %s", p, pageAddr(c.slot.gpa, p), where, val, problem)
	if k, ok := c.model.lastWrite(p, w); ok {
		s += fmt.Sprintf("; the guest's last write to it was write #%d of %d, in iteration %d", k, w, c.iterationOf(k))
	} else {
		s += "; the guest never wrote it"
	}
	if c.model.page(w+1) == p {
		s += fmt.Sprintf("; write #%d (the next) goes to it", w+1)
	}
	return s
}

// iterationOf is the iteration in which write k was counted.
func (c *concurrent) iterationOf(k uint64) int {
	it := 0
	for i, first := range c.firstWrite {
		if k >= first {
			it = i + 1
		}
	}
	return it
}

func formatIterations(stats []iterStats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%4s %7s %7s %7s %6s %s\n", "iter", "writes", "dirty", "clean", "fulls", "took")
	for _, s := range stats {
		note := ""
		if s.stoppedAtFull {
			note = " (stopped at a full ring)"
		}
		fmt.Fprintf(&b, "%4d %7d %7d %7d %6d %v%s\n", s.iter, s.writes, s.dirty, s.clean, s.fulls, s.took.Round(time.Microsecond), note)
	}
	return b.String()
}
