// Package pagefault is the x86-64 counterpart of the kernel's arm64
// page_fault_test and demand_paging_test: a table of descriptors, each one
// guest access (read, write, execute, locked cmpxchg, rep stos, a read that
// also reads its own PTE) on a data page whose page-table page lives in a
// slot of its own, with host preparation (A/D bits cleared, holes punched
// in either page), slot flags (dirty logging, read-only), demand-paging
// handlers on either slot, and the exact counts of handler faults, MMIO
// exits, failed runs and guest exceptions it must produce. Every
// descriptor is its own testcase. Bad-input specs check that wrong uses
// fail clearly and leak nothing, and a perf spec measures demand paging.
//
// Every descriptor runs with test code at CPL3 and at CPL0, the backend's
// default mode first. On kvm-pvm the two are different fault paths —
// user code runs natively on shadow paging, supervisor code in KVM's
// instruction emulator — and they do differ (see the dirty-log cases), so
// both are worth their cost, which is small: the programs are a few
// instructions. Descriptors about user/supervisor checks run at CPL3 only.
package pagefault

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func init() {
	framework.Register(taxonomy.PageFault, specs)
	framework.DeclareParams(taxonomy.PageFault,
		framework.Param{Key: paramPages, Kind: framework.KindNonNegative, Default: "512", Meaning: "pages per vCPU of the demand_paging perf spec"},
		framework.Param{Key: paramSamples, Kind: framework.KindNonNegative, Default: "5", Meaning: "runs per vCPU count of the demand_paging perf spec"},
		framework.Param{Key: paramDelay, Kind: framework.KindNonNegative, Default: "0", Meaning: "handler delay in µs of the demand_paging perf spec"},
	)
}

// specTimeout bounds one descriptor; they take milliseconds.
const specTimeout = 30 * time.Second

func specs(b *framework.Backend) {
	modes := b.Modes()
	descriptorTable(b, modes)
	badInput(b, modes[0])
	demandPaging(b, modes[0])
}

// descriptorTable declares one testcase per descriptor and mode, the
// host's default mode first (see the package comment).
func descriptorTable(b *framework.Backend, modes []guest.Mode) {
	var entries []TableEntry
	for _, mode := range modes {
		for _, x := range descriptors() {
			if x.cpl3Only && mode != guest.CPL3 {
				continue
			}
			entries = append(entries, Entry(fmt.Sprintf("%s [%s]", x.name, mode), mode, x, x.labels(mode), SpecTimeout(specTimeout)))
		}
	}
	DescribeTable("descriptors", func(ctx SpecContext, mode guest.Mode, x desc) {
		x.requireCaps(b)
		checkNoFdLeak()
		bd := newBed(b, mode, x)
		o := bd.run(framework.GuestContext(ctx, 20*time.Second))
		AddReportEntry("outcome", o.String(), ReportEntryVisibilityFailureOrVerbose)
		bd.check(o)
	}, entries)
}

// labels are the Ginkgo labels of x: the mode and what it needs.
func (x desc) labels(mode guest.Mode) Labels {
	l := framework.ModeLabel(mode)
	if x.paging != 0 {
		l = append(l, taxonomy.Needs(hv.CapUserfault)...)
	}
	if (x.dataFlags|x.ptFlags)&hv.MemReadOnly != 0 {
		l = append(l, taxonomy.Needs(hv.CapReadOnlyMem)...)
	}
	if (x.dataFlags|x.ptFlags)&hv.MemLogDirty != 0 {
		l = append(l, taxonomy.Needs(hv.CapDirtyLog)...)
	}
	return l
}

// requireCaps skips with the backend's reason when x needs what it lacks.
func (x desc) requireCaps(b *framework.Backend) {
	GinkgoHelper()
	b.Require(hv.CapLongMode)
	if x.paging != 0 {
		b.Require(hv.CapUserfault)
	}
	if (x.dataFlags|x.ptFlags)&hv.MemReadOnly != 0 {
		b.Require(hv.CapReadOnlyMem)
	}
	if (x.dataFlags|x.ptFlags)&hv.MemLogDirty != 0 {
		b.Require(hv.CapDirtyLog)
	}
}

// checkNoFdLeak fails the spec if it ends with more descriptors open than
// it began with. Registered before the guest, it runs after the guest is
// closed; a backend may free a closed VM's handler threads a moment later.
func checkNoFdLeak() {
	before := openFds()
	DeferCleanup(func() {
		Eventually(openFds).WithTimeout(2*time.Second).WithPolling(5*time.Millisecond).Should(BeNumerically("<=", before),
			"open descriptors after the guest is closed (before: %d)", before)
	})
}

func (o outcome) String() string {
	return fmt.Sprintf("counts %+v; per pass %+v; results %#x; mmio %v; data faults %+v; pt faults %+v; run error %v",
		o.counts, o.perPass[1:], o.results[1:], o.mmio, o.dataFaults, o.ptFaults, o.runErr)
}

// check compares o with what the descriptor says, then looks at the
// host side: memory, A/D bits, dirty logs, the exception.
func (bd *bed) check(o outcome) {
	GinkgoHelper()
	x, g := bd.x, bd.g
	want := x.want
	Expect(o.FailedRuns).To(Equal(want.FailedRuns), "failed runs; run error: %v", o.runErr)
	if want.FailedRuns > 0 {
		Expect(o.counts).To(Equal(want), "counts when the run failed")
		return
	}
	Expect(o.synced).To(Equal(passes), "passes completed")

	By("exact counts after the first pass, and no new fault on the second")
	Expect(o.perPass[1]).To(Equal(want), "counts after pass 1: %s", o)
	second := counts{Faults: want.Faults, MMIO: 2 * want.MMIO, Exceptions: 2 * want.Exceptions}
	Expect(o.perPass[2]).To(Equal(second), "counts after pass 2 (pages are in: faults must not repeat): %s", o)
	if st, err := g.VM.Stats(); err == nil {
		if n, ok := st.Get("missing_page_faults"); ok {
			Expect(n).To(Equal(uint64(o.Faults)), "the backend's missing_page_faults stat against the handler calls")
		}
	}

	if want.MMIO > 0 || x.target != onData {
		By("MMIO exits at the right address, length and data")
		var exits []mmioAccess
		for pass := 1; pass <= passes; pass++ {
			e := x.mmioExits(pass)
			Expect(e).To(HaveLen(want.MMIO), "descriptor table: %d MMIO exits expected, the access makes %d", want.MMIO, len(e))
			exits = append(exits, e...)
		}
		Expect(o.mmio).To(Equal(exits))
	}

	if want.Exceptions > 0 {
		By("the guest's #PF handler saw the right error code and CR2")
		exc, n, err := g.LastException(0)
		Expect(err).NotTo(HaveOccurred())
		Expect(n).To(Equal(uint64(passes * want.Exceptions)))
		Expect(guest.VectorName(exc.Vector)).To(Equal("#PF"), "%v", exc)
		Expect(exc.ErrorCode).To(Equal(x.pfError(bd.mode)), "error code (%v)", exc)
		Expect(exc.CR2).To(Equal(x.faultAddr()), "cr2 (%v)", exc)
		if x.access == exec {
			Expect(exc.RIP).To(Equal(x.faultAddr()), "a fetch fault reports the target as RIP (%v)", exc)
		} else {
			Expect(g.Source(exc.RIP)).To(ContainSubstring("testbed.go"), "rip %#x is the test's access", exc.RIP)
		}
	} else {
		bd.checkResults(o)
	}

	if x.target == onData && want.Exceptions == 0 {
		bd.checkMemory()
		By("the PTE's accessed and dirty bits")
		leaf, ok, err := g.PT.Leaf(testGVA)
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeTrue())
		Expect(leaf.Entry&guest.PTEAccessed != 0).To(BeTrue(), "A after the access (pte %#x)", leaf.Entry)
		wantD := x.access.writes() || x.prep&clearAD == 0
		Expect(leaf.Entry&guest.PTEDirty != 0).To(Equal(wantD), "D after a %s (pte %#x)", x.access, leaf.Entry)
		// A locked read-modify-write may reach the page as a read first
		// (KVM's emulator reads the operand, then stores): only plain
		// accesses say what the first touch was.
		if x.writable() && x.access != cmpxchg {
			for _, f := range o.dataFaults {
				Expect(f.Write).To(Equal(x.access.writes()), "data fault %+v of a %s", f, x.access)
			}
		}
	}

	if x.dataLog != unchecked {
		Expect(bd.dirty(dataSlot)).To(Equal(x.dataLog == inLog), "data page %s", x.dataLog)
	}
	if x.ptLog != unchecked {
		Expect(bd.dirty(ptSlot)).To(Equal(x.ptLog == inLog), "page-table page %s", x.ptLog)
	}
}

// checkResults checks what the guest reported at each SYNC.
func (bd *bed) checkResults(o outcome) {
	GinkgoHelper()
	x := bd.x
	for pass := 1; pass <= passes; pass++ {
		r := o.results[pass]
		switch x.access {
		case read:
			Expect(r[0]).To(Equal(x.contents()), "pass %d: value read", pass)
		case readPTE:
			Expect(r[0]).To(Equal(x.contents()), "pass %d: value read", pass)
			pte := r[1]
			Expect(pte&0x000f_ffff_ffff_f000).To(Equal(x.gpa()), "pass %d: the guest reads its PTE %#x", pass, pte)
			Expect(pte&guest.PTEAccessed != 0).To(BeTrue(), "pass %d: A in the PTE the guest reads (%#x)", pass, pte)
			Expect(pte&guest.PTEDirty != 0).To(Equal(x.prep&clearAD == 0), "pass %d: D in the PTE the guest reads (%#x)", pass, pte)
		case exec:
			Expect(r[0]).To(Equal(uint64(execValue)), "pass %d: the page's code ran", pass)
		case cmpxchg:
			Expect(r[1]).To(Equal(uint64(1)), "pass %d: cmpxchg found the expected value (rax %#x)", pass, r[0])
		}
	}
}

// checkMemory checks the data page from the host.
func (bd *bed) checkMemory() {
	GinkgoHelper()
	x := bd.x
	if x.readOnlyData() && x.prep&holeData != 0 {
		// Never populated (stores to a read-only slot do not touch the
		// page): reading it would be a host fault of its own.
		return
	}
	By("the data page as the host sees it")
	page := bd.data.Bytes()[:hv.PageSize]
	q := func(i int) uint64 { return binary.LittleEndian.Uint64(page[8*i:]) }
	switch {
	case x.readOnlyData():
		Expect(q(0)).To(Equal(uint64(dataInit)), "read-only memory unchanged")
	case x.access == write:
		Expect(q(0)).To(Equal(writeValue(passes)))
	case x.access == cmpxchg:
		Expect(q(0)).To(Equal(cmpxchgValue(passes)))
	case x.access == repStos:
		for i := 0; i < stosCount; i++ {
			Expect(q(i)).To(Equal(stosValue(passes)), "quadword %d", i)
		}
	default:
		Expect(q(0)).To(Equal(x.contents()), "a %s leaves the page as it was served", x.access)
	}
	if x.prep&holeData != 0 && x.writable() && x.access.writes() {
		res, err := bd.data.Resident(0, hv.PageSize)
		Expect(err).NotTo(HaveOccurred())
		Expect(res[0]).To(BeTrue(), "the write repopulated the punched page")
	}
}

// badInput: wrong uses of demand paging and holes fail with a clear error
// and leave the harness running, with nothing leaked.
func badInput(b *framework.Backend, mode guest.Mode) {
	uffd := taxonomy.Needs(hv.CapUserfault)
	Describe("bad input", framework.ModeLabel(mode), func() {
		It("a handler on an unknown slot or twice on one slot is refused", uffd, func(ctx SpecContext) {
			b.Require(hv.CapUserfault)
			checkNoFdLeak()
			x := d("bad", read)
			bd := newBed(b, mode, x)
			ok := func(hv.Fault, []byte) error { return nil }
			err := bd.g.VM.SetMissingPageHandler(42, ok)
			Expect(err).To(HaveOccurred(), "handler on slot 42, which does not exist")
			Expect(err.Error()).To(ContainSubstring("slot 42"))
			Expect(bd.g.VM.SetMissingPageHandler(dataSlot, ok)).To(Succeed())
			err = bd.g.VM.SetMissingPageHandler(dataSlot, ok)
			Expect(err).To(HaveOccurred(), "a second handler on one slot")
			Expect(err.Error()).To(ContainSubstring(fmt.Sprintf("slot %d", dataSlot)))
		}, SpecTimeout(specTimeout))

		It("a handler on memory another slot already demand-pages is refused or works", uffd, func(ctx SpecContext) {
			b.Require(hv.CapUserfault)
			checkNoFdLeak()
			bd := newBed(b, mode, d("alias", read))
			// Slot 3 maps the data slot's host pages at another GPA.
			Expect(bd.g.VM.SetMemslot(hv.Memslot{Slot: 3, GPA: 0x4800_0000, Size: bd.data.Size(), Memory: bd.data})).To(Succeed())
			ok := func(hv.Fault, []byte) error { return nil }
			Expect(bd.g.VM.SetMissingPageHandler(dataSlot, ok)).To(Succeed())
			err := bd.g.VM.SetMissingPageHandler(3, ok)
			if err == nil {
				Skip(b.Name + " demand-pages aliased memory through two slots: nothing to refuse")
			}
			AddReportEntry("error", err.Error())
			Expect(err.Error()).To(ContainSubstring("slot 3"))
			Expect(err.Error()).To(MatchRegexp("(?i)registered|alias|support"), "the error says why the memory cannot be used")
		}, SpecTimeout(specTimeout))

		It("a failing handler does not hang the guest and its error is reported", uffd, func(ctx SpecContext) {
			b.Require(hv.CapUserfault)
			checkNoFdLeak()
			x := d("failing", read, with(holeData))
			bd := newBed(b, mode, x)
			boom := errors.New("page server unreachable")
			Expect(bd.g.VM.SetMissingPageHandler(dataSlot, func(hv.Fault, []byte) error { return boom })).To(Succeed())
			p := bd.g.Program()
			p.MovAbs(asm.RBX, testGVA)
			p.Mov(asm.RAX, asm.Q(asm.RBX, 0))
			p.Sync(1, asm.RAX)
			p.Done()
			Expect(bd.g.Load(p)).To(Succeed())
			err := bd.g.RunUntilDone(framework.GuestContext(ctx, 10*time.Second), 0, nil)
			var te *guest.TimeoutError
			Expect(errors.As(err, &te)).To(BeFalse(), "the guest hung on a failed fault: %v", err)
			if err == nil {
				// The access was answered: the error must come back when
				// the handler is removed.
				err = bd.g.VM.SetMissingPageHandler(dataSlot, nil)
			}
			Expect(err).To(MatchError(boom), "the handler's error reaches the caller")
			AddReportEntry("reported as", err.Error())
		}, SpecTimeout(specTimeout))

		It("a hole beyond the slot or beyond its memory is refused", func(ctx SpecContext) {
			checkNoFdLeak()
			bd := newBed(b, mode, d("hole", read))
			slot := hv.Memslot{Slot: dataSlot, GPA: dataGPA, Size: hv.PageSize, Memory: bd.data}
			err := punchSlot(slot, hv.PageSize, hv.PageSize)
			Expect(err).To(MatchError(ContainSubstring("beyond slot")))
			err = bd.data.PunchHole(dataPages*hv.PageSize, hv.PageSize)
			Expect(err).To(MatchError(ContainSubstring("beyond the")))
			err = bd.data.PunchHole(100, hv.PageSize)
			Expect(err).To(MatchError(ContainSubstring("not page aligned")))
			By("the guest still runs after the refused holes")
			o := bd.run(framework.GuestContext(ctx, 10*time.Second))
			bd.check(o)
		}, SpecTimeout(specTimeout))

		It("guests with handlers free every descriptor and thread when closed", uffd, taxonomy.Needs(hv.CapMemfd), func(ctx SpecContext) {
			b.Require(hv.CapUserfault)
			b.Require(hv.CapMemfd)
			// One guest first, so anything the process opens once (the
			// runtime's poller, /dev/kvm caches) is open before counting.
			cycle := func(fail bool) {
				g, err := guest.New(b.HV, guest.Config{Mode: mode})
				Expect(err).NotTo(HaveOccurred())
				defer g.Close()
				mem, err := hv.NewMemory(8*hv.PageSize, hv.Memfd)
				Expect(err).NotTo(HaveOccurred())
				defer mem.Close()
				Expect(g.VM.SetMemslot(hv.Memslot{Slot: dataSlot, GPA: dataGPA, Size: mem.Size(), Memory: mem})).To(Succeed())
				Expect(g.PT.Map(testGVA, dataGPA, mem.Size(), guest.PTEWrite|guest.PTEUser)).To(Succeed())
				Expect(g.VM.SetMissingPageHandler(dataSlot, func(f hv.Fault, page []byte) error {
					if fail {
						return errors.New("fail on purpose")
					}
					return nil
				})).To(Succeed())
				p := g.Program()
				p.MovAbs(asm.RBX, testGVA)
				p.Mov(asm.ECX, asm.Imm(8))
				loop := p.Here()
				p.Mov(asm.Q(asm.RBX, 0), asm.RCX)
				p.Add(asm.RBX, asm.Imm(hv.PageSize))
				p.Dec(asm.ECX)
				p.Jcc(asm.CondNE, loop)
				p.Done()
				Expect(g.Load(p)).To(Succeed())
				err = g.RunUntilDone(framework.GuestContext(ctx, 10*time.Second), 0, nil)
				if !fail {
					Expect(err).NotTo(HaveOccurred())
				}
			}
			cycle(false)
			fds, gs := openFds(), runtime.NumGoroutine()
			for i := 0; i < 4; i++ {
				cycle(i%2 == 1)
			}
			Eventually(openFds).WithTimeout(3*time.Second).WithPolling(10*time.Millisecond).Should(BeNumerically("<=", fds), "descriptors after closing guests with handlers")
			Eventually(runtime.NumGoroutine).WithTimeout(3*time.Second).WithPolling(10*time.Millisecond).Should(BeNumerically("<=", gs), "goroutines after closing guests with handlers")
		}, SpecTimeout(specTimeout))
	})
}

// punchSlot punches [off, off+n) of a slot, refusing ranges that leave it:
// a hole meant for one slot must not discard another's memory.
func punchSlot(m hv.Memslot, off, n uint64) error {
	if off > m.Size || n > m.Size-off {
		return fmt.Errorf("punch hole [%#x, +%#x) of slot %d: beyond slot of %#x bytes", off, n, m.Slot, m.Size)
	}
	return m.Memory.PunchHole(m.Offset+off, n)
}
