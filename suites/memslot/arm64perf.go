package memslot

// The arm64 side of the perf specs (perf.go): memslot_perf_test's guest
// loops in AArch64, once per stage-1 granule the CPU offers, as the
// kernel test runs with each guest page size since 6.2. The guest's page
// is the tests' unit: the guest writes one word per guest page, the host
// discards and checks whole guest pages, and the slots are whole guest
// pages, so a 64K guest makes a sixteenth of the slots of a 4K one out of
// the same area. Test code runs at EL1 (there is no emulated fast path
// to choose on arm64).

import (
	"fmt"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// a64PerfDefaults size the tests for KVM/arm64 under QEMU's TCG (make
// test runs them there, where a slot update costs milliseconds): 2 MiB
// areas (one unmap chunk; 512, 128 and 32 guest pages) and three slot
// counts, so the eighteen specs take about half a minute. Every --param
// of the x86 port applies; nightly can give the kernel's sizes.
var a64PerfDefaults = perfDefaults{slots: "1,8,max", mem: 2 << 20, rwMem: 2 << 20, mapMem: 2 << 20, unmapMem: 2 << 20}

// Registers of the arm64 guest loops: X12 the sync area, X9 the page
// size, X5 the value stored, X3 and X4 the walk's pointer and count.
var (
	a64Sync  = a64.X12
	a64PS    = a64.X9
	a64Val   = a64.X5
	a64Ptr   = a64.X3
	a64Count = a64.X4
)

// a64Word is a 64-bit value as the immediate of a MOV (the assembler's
// Imm is signed; MOV builds the same bits either way).
func a64Word(v uint64) a64.Imm { return a64.Imm(int64(v)) }

// a64WriteRange emits: store val into the first quadword of n guest
// pages from gpa.
func a64WriteRange(p *a64guest.Program, gpa, n, val uint64) {
	p.Mov(a64Ptr, a64.Imm(int64(gpa)))
	p.Mov(a64Count, a64.Imm(int64(n)))
	p.Mov(a64Val, a64Word(val))
	l := p.Here()
	p.Str(a64Val, a64.Ptr(a64Ptr, 0))
	p.Add(a64Ptr, a64Ptr, a64PS)
	p.Subs(a64Count, a64Count, a64.Imm(1))
	p.Bcond(a64.NE, l)
}

// a64GuestSync emits guest_perform_sync: wait for the host's sync flag
// and clear it (an exclusive 1 -> 0, the kernel's atomic cmpxchg), or
// branch to exit once the exit flag is set.
func a64GuestSync(p *a64guest.Program, exit *a64.Label) {
	l := p.Here()
	p.Ldr(a64.X1, a64.Ptr(a64Sync, syncExit))
	p.Cbnz(a64.X1, exit)
	p.Add(a64.X2, a64Sync, a64.Imm(syncFlag))
	p.Ldaxr(a64.X1, a64.X2)
	p.Cmp(a64.X1, a64.Imm(1))
	p.Bcond(a64.NE, l)
	p.Stlxr(a64.W(6), a64.XZR, a64.X2)
	p.Cbnz(a64.W(6), l)
}

func a64MapProgram(r *perfRun, p *a64guest.Program, exit *a64.Label) {
	half := r.pages() / 2
	loop := p.Here()
	a64WriteRange(p, r.a.gpa, half, perfVal1)
	a64GuestSync(p, exit)
	a64WriteRange(p, r.a.gpa+half*r.ps, r.pages()-half, perfVal2)
	a64GuestSync(p, exit)
	p.B(loop)
}

// a64UnmapProgram touches one page per half and sync, as unmapProgram.
func a64UnmapProgram(r *perfRun, p *a64guest.Program, exit *a64.Label) {
	loop := p.Here()
	a64WriteRange(p, r.a.gpa, 1, perfVal1)
	a64GuestSync(p, exit)
	a64WriteRange(p, r.a.gpa+r.pages()/2*r.ps, 1, perfVal2)
	a64GuestSync(p, exit)
	p.B(loop)
}

// a64MoveProgram writes the move area over and over with no sync, as
// moveProgram; X13 is the area the host placed.
func a64MoveProgram(r *perfRun, p *a64guest.Program, exit *a64.Label) {
	p.Ldr(a64.X13, a64.Ptr(a64Sync, syncMove))
	p.Mov(a64Val, a64Word(perfVal1))
	loop := p.Here()
	p.Ldr(a64.X1, a64.Ptr(a64Sync, syncExit))
	p.Cbnz(a64.X1, exit)
	p.Mov(a64Ptr, a64.X13)
	p.Mov(a64Count, a64.Imm(int64(moveSize/r.ps)))
	w := p.Here()
	p.Str(a64Val, a64.Ptr(a64Ptr, 0))
	p.Add(a64Ptr, a64Ptr, a64PS)
	p.Subs(a64Count, a64Count, a64.Imm(1))
	p.Bcond(a64.NE, w)
	p.B(loop)
}

func a64RWProgram(r *perfRun, p *a64guest.Program, exit *a64.Label) {
	loop := p.Here()
	a64WriteRange(p, r.a.gpa, r.pages(), perfVal1)
	a64GuestSync(p, exit)
	p.Mov(a64Ptr, a64.Imm(int64(r.a.gpa+r.ps/2)))
	p.Mov(a64Count, a64.Imm(int64(r.pages())))
	p.Mov(a64.X13, a64Word(perfVal2))
	rd := p.Here()
	p.Ldr(a64.X7, a64.Ptr(a64Ptr, 0))
	p.AssertEq(a64.X7, a64.X13, "the host's value at page+page_size/2")
	p.Str(a64.XZR, a64.Ptr(a64Ptr, 0))
	p.Add(a64Ptr, a64Ptr, a64PS)
	p.Subs(a64Count, a64Count, a64.Imm(1))
	p.Bcond(a64.NE, rd)
	a64GuestSync(p, exit)
	p.B(loop)
}

// a64PerfPrograms are the guest loops of the tests, emitted after the
// common prologue.
var a64PerfPrograms = [numPerfPrograms]func(r *perfRun, p *a64guest.Program, exit *a64.Label){
	progMap: a64MapProgram, progUnmap: a64UnmapProgram, progMove: a64MoveProgram, progRW: a64RWProgram,
}

// newA64PerfRun builds an arm64 guest with granule gr, the test area in
// n slots (timed) and the test's program.
func newA64PerfRun(b *framework.Backend, c perfConfig, gr a64guest.Granule, t *perfTest, n int) (*perfRun, time.Duration, error) {
	mem := t.mem(c)
	g, err := a64guest.New(b.HV, a64guest.Config{Mode: a64guest.Mode{PABits: 40, VABits: 48, Granule: gr}, Output: GinkgoWriter})
	if err != nil {
		return nil, 0, err
	}
	r, err := newPerfRun(g, g.VM, g.PageSize(), t, mem, n)
	if err != nil {
		g.Close()
		return nil, 0, err
	}
	fail := func(err error) (*perfRun, time.Duration, error) {
		r.close()
		return nil, 0, err
	}
	if r.syncGPA, err = g.Alloc(syncSize, syncSize); err != nil {
		return fail(err)
	}
	// Slot 0 starts at guest-physical 0: the host view of a GPA in it is
	// that offset of its memory.
	r.sh = shared{g.Mem.Bytes()[r.syncGPA : r.syncGPA+syncSize]}
	if err := g.MapIdentity(perfGPA, mem, a64guest.KernelData); err != nil {
		return fail(err)
	}
	setup, err := r.a.createWithin(g.VM, c.budget)
	if err != nil {
		return fail(err)
	}
	p := g.Program()
	exit := p.NewLabel()
	p.Mov(a64Sync, a64.Imm(int64(r.syncGPA)))
	p.Mov(a64PS, a64.Imm(int64(r.ps)))
	p.Sync(0)
	spin := p.Here()
	p.Ldr(a64.X1, a64.Ptr(a64Sync, syncStart))
	p.Cbz(a64.X1, spin)
	a64PerfPrograms[t.program](r, p, exit)
	p.Bind(exit)
	p.Done()
	if err := g.Load(p); err != nil {
		return fail(err)
	}
	return r, setup, nil
}

// a64Granules finds which granules the backend's arm64 CPU offers
// (ID_AA64MMFR0_EL1 of a probe guest), once per backend.
type a64Granules struct {
	mmfr0 uint64
	err   error
	done  bool
}

var idMMFR0, _ = a64.Sys("ID_AA64MMFR0_EL1")

// require skips the spec when the CPU has no gr granule.
func (s *a64Granules) require(b *framework.Backend, gr a64guest.Granule) {
	GinkgoHelper()
	if !s.done {
		s.done = true
		var g *a64guest.Guest
		if g, s.err = a64guest.New(b.HV, a64guest.Config{}); s.err == nil {
			s.mmfr0, s.err = g.Reg(0).GetOneReg(a64guest.RegSys(idMMFR0))
			g.Close()
		}
	}
	Expect(s.err).NotTo(HaveOccurred(), "ID_AA64MMFR0_EL1 of a probe guest")
	if !a64guest.SupportsGranule(s.mmfr0, gr) {
		Skip(fmt.Sprintf("%s: the CPU has no %v stage-1 granule (ID_AA64MMFR0_EL1 %#x)", b.Name, gr, s.mmfr0))
	}
}

// a64PerfSpecs: the six tests per granule, "perf / <granule> / <test>".
func a64PerfSpecs(b *framework.Backend) {
	overBudget := map[a64guest.Granule]map[int]bool{}
	granules := &a64Granules{}
	for _, gr := range a64guest.Granules {
		gr := gr
		overBudget[gr] = map[int]bool{}
		Describe(gr.String(), func() {
			for _, t := range perfTests {
				t := t
				It(t.name, func(ctx SpecContext) {
					granules.require(b, gr)
					c, err := readPerfConfig(b, overBudget[gr], a64PerfDefaults)
					Expect(err).NotTo(HaveOccurred())
					c.tag, c.cpl, c.granule, c.ps = gr.String(), "EL1", gr.String(), gr.Size()
					c.newRun = func(t *perfTest, n int) (*perfRun, time.Duration, error) { return newA64PerfRun(b, c, gr, t, n) }
					runPerfTest(ctx, b, c, t)
				}, SpecTimeout(10*time.Minute))
			}
		})
	}
}
