package memslot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gmeasure"
)

// The perf specs port memslot_perf_test: its test memory split evenly
// into N slots of one host mapping (slot 0 is the standard guest's: code,
// tables and the sync area), a guest loop and a host loop per test that
// meet through flags in shared memory, never through exits, and for each
// run the slot setup time and the time per host iteration. The kernel
// test takes N as an input; here N sweeps over 1, 8, 64, 512, 4096 and the
// backend's maximum - 1, and each test reports the largest N its memory
// allows (the kernel's "max is %lu") and the N that ran fastest. No number
// has a threshold: they are report entries for nightly comparisons, with
// every sample kept.

// Values the guest and host write (MEM_TEST_VAL_1/2).
const (
	perfVal1 = 0x1122_3344_5566_7788
	perfVal2 = 0x99aa_bbcc_ddee_ff00
)

// The sync area (struct sync_area): flags the host sets and the guest
// clears with a locked compare-and-exchange.
const (
	syncStart = 0
	syncExit  = 8
	syncFlag  = 16
	syncMove  = 24 // move_area_ptr
	syncSize  = 64
)

// Sizes of memslot_perf_test.
const (
	moveSize     = 3 * 64 << 10 // MEM_TEST_MOVE_SIZE: the area the move tests write
	unmapChunk   = 2 << 20      // MEM_TEST_UNMAP_CHUNK_SIZE, "like a typical huge page"
	syncDeadline = 10 * time.Second
)

type perfConfig struct {
	slots    []int
	loopTime time.Duration
	runs     int
	mem      uint64 // the move tests' area
	rwMem    uint64
	mapMem   uint64
	unmapMem uint64
	budget   time.Duration
	maxSlots int // the backend's, minus slot 0
	// tag names the run's guest shape in report names: the x86 privilege
	// level ("CPL3"), the arm64 granule ("4K"). cpl is the level the
	// guest loop runs at, granule the arm64 one (""), ps the guest's
	// page size, the unit of the tests' areas.
	tag, cpl, granule string
	ps                uint64
	overBudget        map[int]bool // slot counts whose setup went over budget (per backend)
	// newRun is the architecture's setup of one run of test t with n
	// slots: the guest, the test area (slot setup timed) and its program.
	newRun func(t *perfTest, n int) (*perfRun, time.Duration, error)
}

// perfDefaults are an architecture's defaults of the perf parameters.
type perfDefaults struct {
	slots                        string
	mem, rwMem, mapMem, unmapMem uint64
}

// x86PerfDefaults are the kernel test's sizes where they fit a small
// machine (see params.go).
var x86PerfDefaults = perfDefaults{slots: "", mem: 512 << 20, rwMem: 128 << 20, mapMem: 32 << 20, unmapMem: 128 << 20}

func readPerfConfig(b *framework.Backend, overBudget map[int]bool, def perfDefaults) (perfConfig, error) {
	p := params{b.Env}
	c := perfConfig{maxSlots: b.Caps.MaxMemslots - 1, overBudget: overBudget}
	var err error
	list, ok := p.get(ParamPerfSlots)
	if !ok {
		list = def.slots
	}
	if c.slots, err = sweepCounts(list, b.Caps.MaxMemslots); err != nil {
		return c, fmt.Errorf("--param %s: %w", ParamPerfSlots, err)
	}
	if c.loopTime, err = p.duration(ParamPerfTime, 100*time.Millisecond); err != nil {
		return c, err
	}
	if c.runs, err = p.count(ParamPerfRuns, 1); err != nil {
		return c, err
	}
	if c.budget, err = p.duration(ParamPerfSetupBudget, 5*time.Second); err != nil {
		return c, err
	}
	for _, s := range []struct {
		name string
		dst  *uint64
		def  uint64
	}{{ParamPerfMem, &c.mem, def.mem}, {ParamPerfRWMem, &c.rwMem, def.rwMem}, {ParamPerfMapMem, &c.mapMem, def.mapMem}, {ParamPerfUnmapMem, &c.unmapMem, def.unmapMem}} {
		if *s.dst, err = p.size(s.name, s.def); err != nil {
			return c, err
		}
		if *s.dst%guest.Page2M != 0 || *s.dst > 1<<30 {
			return c, fmt.Errorf("--param %s: %d bytes: want a multiple of 2 MiB up to 1 GiB", s.name, *s.dst)
		}
	}
	return c, nil
}

// perfProgram says which guest loop a test runs; each architecture has
// its emitter for each (perfx86.go, arm64perf.go).
type perfProgram int

const (
	progMap perfProgram = iota
	progUnmap
	progMove
	progRW
	numPerfPrograms
)

// perfTest is one test of memslot_perf_test: its host side, which is the
// same on every architecture, and the guest loop it needs.
type perfTest struct {
	name    string
	mem     func(c perfConfig) uint64
	program perfProgram
	// fits says why n slots cannot hold the test in pages of ps bytes, or "".
	fits    func(pages, ps uint64, n int) string
	prepare func(r *perfRun)
	loop    func(r *perfRun) error
	// mmio vets an MMIO exit of the guest (nil: none is allowed).
	mmio func(r *perfRun, e *hv.MMIOExit) error
}

var perfTests = []*perfTest{
	{name: "map", mem: func(c perfConfig) uint64 { return c.mapMem }, fits: fitsPages, program: progMap, loop: mapLoop},
	{name: "unmap", mem: func(c perfConfig) uint64 { return c.unmapMem }, fits: fitsPages, program: progUnmap,
		loop: func(r *perfRun) error { return unmapLoop(r, 1) }},
	{name: "unmap chunked", mem: func(c perfConfig) uint64 { return c.unmapMem }, fits: fitsPages, program: progUnmap,
		loop: func(r *perfRun) error { return unmapLoop(r, unmapChunk/r.ps) }},
	{name: "move active area", mem: func(c perfConfig) uint64 { return c.mem }, fits: fitsMove(true), program: progMove,
		prepare: func(r *perfRun) { movePrepare(r, true) }, loop: moveLoop, mmio: moveMMIO},
	{name: "move inactive area", mem: func(c perfConfig) uint64 { return c.mem }, fits: fitsMove(false), program: progMove,
		prepare: func(r *perfRun) { movePrepare(r, false) }, loop: moveLoop},
	{name: "RW", mem: func(c perfConfig) uint64 { return c.rwMem }, fits: fitsPages, program: progRW, loop: rwLoop},
}

func fitsPages(pages, _ uint64, n int) string { return validSplit(pages, n) }

// fitsMove: the moved (last) slot must hold half the move area in the
// active test, and the slots before it the whole (inactive) or the other
// half (active) of it.
func fitsMove(active bool) func(pages, ps uint64, n int) string {
	return func(pages, ps uint64, n int) string {
		if why := validSplit(pages, n); why != "" {
			return why
		}
		a := area{pages: pages, nslots: n, ps: ps}
		before := a.per() * uint64(n-1) * ps
		last := a.slot(n - 1).Size
		need := uint64(moveSize)
		if active {
			need = moveSize / 2
			if last < need {
				return fmt.Sprintf("the last of %d slots has %d KiB, the active move needs %d KiB", n, last>>10, need>>10)
			}
		}
		if before < need {
			return fmt.Sprintf("the slots before the last of %d hold %d KiB, the move area needs %d KiB there", n, before>>10, need>>10)
		}
		return ""
	}
}

// maxFit is the largest slot count up to top that the test's memory
// allows: the kernel test's "Memslot count too high for this test,
// decrease the cap (max is %lu)". 0: none.
func maxFit(t *perfTest, pages, ps uint64, top int) int {
	if uint64(top) > pages {
		top = int(pages)
	}
	for n := top; n >= 1; n-- {
		if t.fits(pages, ps, n) == "" {
			return n
		}
	}
	return 0
}

// perfPoint is one slot count of one test: every run's setup time, every
// iteration's time and the best time per iteration.
type perfPoint struct {
	Slots      int     `json:"slots"`
	Requested  int     `json:"requested,omitempty"` // the sweep's count, when the test could not hold it
	Skipped    string  `json:"skipped,omitempty"`
	SetupNs    []int64 `json:"setup_ns,omitempty"`
	Iterations []int64 `json:"iteration_ns,omitempty"`
	// RunNs and Loops are each run's loop time and full iterations.
	RunNs []int64 `json:"run_ns,omitempty"`
	Loops []int   `json:"loops,omitempty"`
	// BestNs is the best run's time per iteration (the kernel's "Best
	// runtime result was ... per iteration").
	BestNs      int64 `json:"best_ns_per_iteration,omitempty"`
	BestSetupNs int64 `json:"best_setup_ns,omitempty"`
	MMIOExits   int   `json:"mmio_exits,omitempty"`
}

// perfSummary is one test's structured result: a report entry whose text
// is JSON, so every sample reaches report.json.
type perfSummary struct {
	Test    string `json:"test"`
	Backend string `json:"backend"`
	// CPL is the x86 privilege level or the arm64 exception level of the
	// guest loop; Granule the arm64 guest page size.
	CPL      string      `json:"cpl"`
	Granule  string      `json:"granule,omitempty"`
	PageSize uint64      `json:"page_size"`
	AreaMiB  uint64      `json:"area_mib"`
	LoopNs   int64       `json:"loop_ns"`
	Points   []perfPoint `json:"points"`
	// OptimalSlots is the most slots the test's memory can be split into
	// (the kernel's "max is %lu"); FastestSlots the swept count with the
	// best time per iteration.
	OptimalSlots int `json:"optimal_slots"`
	FastestSlots int `json:"fastest_slots,omitempty"`
}

func (s perfSummary) String() string {
	b, err := json.Marshal(s)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// runner is what the host loops of this package (the perf runs, the
// reader) need of an architecture's guest runtime (guest.Guest,
// a64guest.Guest): its vCPU loop and its end.
type runner interface {
	Run(ctx context.Context, i int) (guest.Event, error)
	Unexpected(i int, exit hv.Exit) error
	Close() error
}

// perfRun is one run of one test at one slot count.
type perfRun struct {
	g        runner
	vm       hv.VM
	ps       uint64 // the guest's page size: the test's page
	a        area
	sh       shared // the sync area
	syncGPA  uint64
	moveSrc  uint64 // GPA of the last slot
	moveArea uint64
	mmio     int
	test     *perfTest
	ready    chan struct{}
	done     chan error
}

// hostSync is host_perform_sync: set the flag and wait until the guest
// has taken it, within syncDeadline (the kernel's alarm(10)).
func (r *perfRun) hostSync() error {
	r.sh.store(syncFlag, 1)
	deadline := time.Now().Add(syncDeadline)
	for i := 0; r.sh.load(syncFlag) != 0; i++ {
		if i%1024 == 1023 {
			select {
			case err := <-r.done:
				r.done <- err
				return fmt.Errorf("host sync: the guest stopped: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("host sync: the guest did not take the sync flag within %v", syncDeadline)
			}
			runtime.Gosched() // two CPUs: let the vCPU run where it is a goroutine
		}
	}
	return nil
}

func (r *perfRun) pages() uint64 { return r.a.pages }

// pageOff is the host view's offset of test page i.
func (r *perfRun) pageOff(i uint64) uint64 { return i * r.ps }

// check is test_memslot_map_unmap_check: page i holds want.
func (r *perfRun) check(i, want uint64) error {
	if v := (shared{r.a.mem.Bytes()}).load(r.pageOff(i)); v != want {
		return fmt.Errorf("test page %d holds %#x, want %#x", i, v, want)
	}
	return nil
}

// unmap is test_memslot_do_unmap: discard n pages from page first, one
// madvise per slot they cross.
func (r *perfRun) unmap(first, n uint64) error {
	per := r.a.per()
	for n > 0 {
		slotEnd := (first/per + 1) * per
		if int(first/per) >= r.a.nslots-1 {
			slotEnd = r.a.pages
		}
		k := min(n, slotEnd-first)
		if err := r.a.mem.PunchHole(r.pageOff(first), k*r.ps); err != nil {
			return err
		}
		first, n = first+k, n-k
	}
	return nil
}

// mapLoop: discard the half the guest is not writing, so each of its
// passes maps every page again.
func mapLoop(r *perfRun) error {
	n, half := r.pages(), r.pages()/2
	steps := []func() error{
		func() error { return r.unmap(half, n-half) },
		r.hostSync,
		func() error { return r.check(0, perfVal1) },
		func() error { return r.check(half-1, perfVal1) },
		func() error { return r.unmap(0, half) },
		r.hostSync,
		func() error { return r.check(half, perfVal2) },
		func() error { return r.check(n-1, perfVal2) },
	}
	return runSteps(steps)
}

func runSteps(steps []func() error) error {
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

func unmapLoop(r *perfRun, chunk uint64) error {
	n, half := r.pages(), r.pages()/2
	unmapHalf := func(from, to uint64) error {
		for c := from; c < to; c += chunk {
			if err := r.unmap(c, min(chunk, to-c)); err != nil {
				return err
			}
		}
		return nil
	}
	return runSteps([]func() error{
		r.hostSync,
		func() error { return r.check(0, perfVal1) },
		func() error { return unmapHalf(0, half) },
		r.hostSync,
		func() error { return r.check(half, perfVal2) },
		func() error { return unmapHalf(half, n) },
	})
}

// movePrepare places the move area: half in the last slot (active) or
// just below it (inactive).
func movePrepare(r *perfRun, active bool) {
	r.moveSrc = r.a.slot(r.a.nslots - 1).GPA
	r.moveArea = r.moveSrc - moveSize
	if active {
		r.moveArea = r.moveSrc - moveSize/2
	}
	r.sh.store(syncMove, r.moveArea)
}

// moveLoop moves the last slot just past the area and back.
func moveLoop(r *perfRun) error {
	last := r.a.slot(r.a.nslots - 1)
	away := last
	away.GPA = r.a.gpa + r.a.pages*r.ps
	if err := r.vm.SetMemslot(away); err != nil {
		return err
	}
	return r.vm.SetMemslot(last)
}

// moveMMIO is check_mmio_access: only 8-byte writes into the moved half.
func moveMMIO(r *perfRun, e *hv.MMIOExit) error {
	if !e.Write || e.Len != 8 || e.GPA < r.moveSrc || e.GPA >= r.moveSrc+moveSize/2 {
		return fmt.Errorf("unexpected MMIO exit %v: want 8-byte writes in [%#x, %#x)", e, r.moveSrc, r.moveSrc+moveSize/2)
	}
	return nil
}

func rwLoop(r *perfRun) error {
	m := shared{r.a.mem.Bytes()}
	for i := uint64(0); i < r.pages(); i++ {
		m.store(r.pageOff(i)+r.ps/2, perfVal2)
	}
	if err := r.hostSync(); err != nil {
		return err
	}
	for i := uint64(0); i < r.pages(); i++ {
		if v := m.load(r.pageOff(i)); v != perfVal1 {
			return fmt.Errorf("guest-written page %d holds %#x, want %#x", i, v, uint64(perfVal1))
		}
		m.store(r.pageOff(i), 0)
	}
	return r.hostSync()
}

// errOverBudget: the slot setup took longer than the setup budget.
var errOverBudget = errors.New("slot setup over budget")

// newPerfRun starts a run of t on guest g (vm its VM, ps its page size)
// with mem bytes of test area for n slots; the architecture's setup then
// lays out the sync area and the program and creates the slots.
func newPerfRun(g runner, vm hv.VM, ps uint64, t *perfTest, mem uint64, n int) (*perfRun, error) {
	r := &perfRun{g: g, vm: vm, ps: ps, test: t, ready: make(chan struct{}), done: make(chan error, 1)}
	r.a = area{gpa: perfGPA, pages: mem / ps, nslots: n, firstSlot: 1, ps: ps}
	var err error
	if r.a.mem, err = hv.NewMemory(mem, hv.Anonymous); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *perfRun) close() {
	if r.g != nil {
		r.g.Close()
	}
	if r.a.mem != nil {
		r.a.mem.Close()
	}
}

// run is the vCPU side: SYNC(0) says the guest is ready, DONE ends it,
// MMIO exits go to the test's check.
func (r *perfRun) run(ctx context.Context) error {
	for {
		ev, err := r.g.Run(ctx, 0)
		if err != nil {
			return err
		}
		if u := ev.Ucall; u != nil {
			switch {
			case u.Cmd == guest.UcallDone:
				return nil
			case u.Cmd == guest.UcallSync && u.Stage() == 0:
				close(r.ready)
				continue
			}
			return fmt.Errorf("unexpected ucall %v", u)
		}
		if e, ok := ev.Exit.(*hv.MMIOExit); ok && r.test.mmio != nil {
			if err := r.test.mmio(r, e); err != nil {
				return err
			}
			r.mmio++
			continue
		}
		return r.g.Unexpected(0, ev.Exit)
	}
}

// execute is test_execute: launch, prepare, loop for loopTime, stop.
func (r *perfRun) execute(ctx context.Context, loopTime time.Duration) (iters []time.Duration, total time.Duration, err error) {
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { r.done <- r.run(gctx) }()
	select {
	case <-r.ready:
	case err := <-r.done:
		return nil, 0, fmt.Errorf("guest ended before it was ready: %v", err)
	case <-time.After(syncDeadline):
		return nil, 0, fmt.Errorf("guest not ready within %v", syncDeadline)
	}
	if r.test.prepare != nil {
		r.test.prepare(r)
	}
	start := time.Now()
	r.sh.store(syncStart, 1)
	for {
		// As the kernel's test_execute, the first loop always runs: a
		// stall of the host before it must not leave nothing measured.
		if total = time.Since(start); total >= loopTime && len(iters) > 0 {
			break
		}
		t := time.Now()
		if err = r.test.loop(r); err != nil {
			break
		}
		iters = append(iters, time.Since(t))
	}
	r.sh.store(syncExit, 1)
	select {
	case gerr := <-r.done:
		err = errors.Join(err, gerr)
	case <-time.After(syncDeadline):
		cancel()
		err = errors.Join(err, fmt.Errorf("guest did not stop within %v of the exit flag: %v", syncDeadline, <-r.done))
	}
	return iters, total, err
}

// sweepPoints maps the requested slot counts onto the test: a count the
// memory cannot hold becomes the largest it can, once.
func sweepPoints(t *perfTest, pages uint64, c perfConfig) (points []perfPoint, optimal int) {
	optimal = maxFit(t, pages, c.ps, c.maxSlots)
	seen := map[int]bool{}
	for _, n := range c.slots {
		pt := perfPoint{Slots: n}
		if why := t.fits(pages, c.ps, n); why != "" {
			if n < optimal || optimal == 0 {
				pt.Skipped = why
				points = append(points, pt)
				continue
			}
			pt = perfPoint{Slots: optimal, Requested: n}
		}
		if seen[pt.Slots] {
			continue
		}
		seen[pt.Slots] = true
		points = append(points, pt)
	}
	return points, optimal
}

func runPerfTest(ctx context.Context, b *framework.Backend, c perfConfig, t *perfTest) {
	mem := t.mem(c)
	points, optimal := sweepPoints(t, mem/c.ps, c)
	sum := perfSummary{Test: t.name, Backend: b.Name, CPL: c.cpl, Granule: c.granule, PageSize: c.ps, AreaMiB: mem >> 20, LoopNs: c.loopTime.Nanoseconds(), OptimalSlots: optimal}
	exp := gmeasure.NewExperiment(fmt.Sprintf("memslot %s [%s]", t.name, c.tag))
	prec := gmeasure.Precision(time.Microsecond)
	var best time.Duration
	for i := range points {
		pt := &points[i]
		if pt.Skipped != "" {
			By(fmt.Sprintf("%d slots: skipped: %s", pt.Slots, pt.Skipped))
			continue
		}
		if c.overBudget[pt.Slots] {
			pt.Skipped = fmt.Sprintf("an earlier test's setup of %d slots took longer than %v (%s)", pt.Slots, c.budget, ParamPerfSetupBudget)
			By(fmt.Sprintf("%d slots: skipped: %s", pt.Slots, pt.Skipped))
			continue
		}
		By(fmt.Sprintf("Testing %s performance with %d slots, %d runs, %v each", t.name, pt.Slots, c.runs, c.loopTime))
		for run := 0; run < c.runs && pt.Skipped == ""; run++ {
			r, setup, err := c.newRun(t, pt.Slots)
			if errors.Is(err, errOverBudget) {
				c.overBudget[pt.Slots] = true
				pt.Skipped = err.Error()
				By(fmt.Sprintf("%d slots: skipped: %v", pt.Slots, err))
				break
			}
			Expect(err).NotTo(HaveOccurred(), "%s, %d slots: setup", t.name, pt.Slots)
			iters, total, err := r.execute(ctx, c.loopTime)
			pt.MMIOExits += r.mmio
			r.close()
			Expect(err).NotTo(HaveOccurred(), "%s, %d slots, run %d", t.name, pt.Slots, run)
			Expect(iters).NotTo(BeEmpty(), "%s, %d slots: no full loop done", t.name, pt.Slots)
			pt.SetupNs = append(pt.SetupNs, setup.Nanoseconds())
			pt.RunNs = append(pt.RunNs, total.Nanoseconds())
			pt.Loops = append(pt.Loops, len(iters))
			exp.RecordDuration(fmt.Sprintf("slot setup, %d slots", pt.Slots), setup, prec)
			for _, d := range iters {
				pt.Iterations = append(pt.Iterations, d.Nanoseconds())
				exp.RecordDuration(fmt.Sprintf("iteration, %d slots", pt.Slots), d, prec)
			}
			avg := total / time.Duration(len(iters))
			if pt.BestNs == 0 || avg.Nanoseconds() < pt.BestNs {
				pt.BestNs = avg.Nanoseconds()
			}
			if pt.BestSetupNs == 0 || setup.Nanoseconds() < pt.BestSetupNs {
				pt.BestSetupNs = setup.Nanoseconds()
			}
			fmt.Fprintf(GinkgoWriter, "%d slots: test took %v for slot setup + %v all iterations; done %d iterations, avg %v each\n",
				pt.Slots, setup, total, len(iters), avg)
		}
		if pt.BestNs > 0 {
			d := time.Duration(pt.BestNs)
			exp.RecordDuration(fmt.Sprintf("best runtime per iteration, %d slots", pt.Slots), d, prec)
			exp.RecordDuration(fmt.Sprintf("best slot setup, %d slots", pt.Slots), time.Duration(pt.BestSetupNs), prec)
			if best == 0 || d < best {
				best, sum.FastestSlots = d, pt.Slots
			}
		}
	}
	sum.Points = points
	exp.RecordValue("optimal slot count", float64(optimal), gmeasure.Units("slots"))
	if sum.FastestSlots > 0 {
		exp.RecordValue("fastest slot count", float64(sum.FastestSlots), gmeasure.Units("slots"))
	}
	AddReportEntry(exp.Name, exp)
	AddReportEntry(exp.Name+" samples", sum)
}
