package memslot

// The x86 side of the perf specs (perf.go): the guest loops of
// memslot_perf_test in x86-64, run at the backend's fast privilege level.

import (
	"fmt"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// writeRange emits: store val into the first quadword of n pages from gpa.
func writeRange(p *guest.Program, gpa, n, val uint64) {
	p.MovAbs(asm.RDX, gpa)
	p.MovAbs(asm.RCX, n)
	p.MovAbs(asm.RAX, val)
	l := p.Here()
	p.Mov(asm.Q(asm.RDX, 0), asm.RAX)
	p.Add(asm.RDX, asm.Imm(hv.PageSize))
	p.Dec(asm.RCX)
	p.Jcc(asm.CondNE, l)
}

// guestSync emits guest_perform_sync: wait for the host's sync flag and
// clear it (lock cmpxchg 1 -> 0), or jump to exit once the exit flag is set.
func guestSync(p *guest.Program, exit *asm.Label) {
	l := p.Here()
	p.Cmp(asm.Q(asm.R12, syncExit), asm.Imm(0))
	p.Jcc(asm.CondNE, exit)
	p.Mov(asm.RAX, asm.Imm(1))
	p.Xor(asm.RCX, asm.RCX)
	p.Lock().Cmpxchg(asm.Q(asm.R12, syncFlag), asm.RCX)
	p.Jcc(asm.CondNE, l)
}

func mapProgram(r *perfRun, p *guest.Program, exit *asm.Label) {
	half := r.pages() / 2
	loop := p.Here()
	writeRange(p, r.a.gpa, half, perfVal1)
	guestSync(p, exit)
	writeRange(p, r.a.gpa+half*hv.PageSize, r.pages()-half, perfVal2)
	guestSync(p, exit)
	p.Jmp(loop)
}

// unmapProgram touches one page per half and sync: the host's unmapping
// is what is measured, not the guest's faults.
func unmapProgram(r *perfRun, p *guest.Program, exit *asm.Label) {
	loop := p.Here()
	writeRange(p, r.a.gpa, 1, perfVal1)
	guestSync(p, exit)
	writeRange(p, r.a.gpa+r.pages()/2*hv.PageSize, 1, perfVal2)
	guestSync(p, exit)
	p.Jmp(loop)
}

// moveProgram writes the move area over and over, with no sync: MMIO
// exits are so dear that a sync per pass would measure them instead.
func moveProgram(r *perfRun, p *guest.Program, exit *asm.Label) {
	p.Mov(asm.R13, asm.Q(asm.R12, syncMove))
	p.MovAbs(asm.RAX, perfVal1)
	loop := p.Here()
	p.Cmp(asm.Q(asm.R12, syncExit), asm.Imm(0))
	p.Jcc(asm.CondNE, exit)
	p.Mov(asm.RDX, asm.R13)
	p.MovAbs(asm.RCX, moveSize/hv.PageSize)
	w := p.Here()
	p.Mov(asm.Q(asm.RDX, 0), asm.RAX)
	p.Add(asm.RDX, asm.Imm(hv.PageSize))
	p.Dec(asm.RCX)
	p.Jcc(asm.CondNE, w)
	p.Jmp(loop)
}

func rwProgram(r *perfRun, p *guest.Program, exit *asm.Label) {
	loop := p.Here()
	writeRange(p, r.a.gpa, r.pages(), perfVal1)
	guestSync(p, exit)
	p.MovAbs(asm.RDX, r.a.gpa+hv.PageSize/2)
	p.MovAbs(asm.RCX, r.pages())
	p.MovAbs(asm.R13, perfVal2)
	rd := p.Here()
	p.Mov(asm.RBX, asm.Q(asm.RDX, 0))
	p.AssertEq(asm.RBX, asm.R13, "the host's value at page+2048")
	p.Mov(asm.Q(asm.RDX, 0), asm.Imm(0))
	p.Add(asm.RDX, asm.Imm(hv.PageSize))
	p.Dec(asm.RCX)
	p.Jcc(asm.CondNE, rd)
	guestSync(p, exit)
	p.Jmp(loop)
}

// newX86PerfRun builds an x86 guest whose loop runs at cpl, the test
// area in n slots (timed) and the test's program.
func newX86PerfRun(b *framework.Backend, c perfConfig, cpl guest.Mode, t *perfTest, n int) (*perfRun, time.Duration, error) {
	mem := t.mem(c)
	g, err := guest.New(b.HV, guest.Config{Mode: cpl, Output: GinkgoWriter})
	if err != nil {
		return nil, 0, err
	}
	r, err := newPerfRun(g, g.VM, hv.PageSize, t, mem, n)
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
	sb, err := g.Bytes(r.syncGPA, syncSize)
	if err != nil {
		return fail(err)
	}
	r.sh = shared{sb}
	if err := g.PT.MapSized(perfGPA, perfGPA, mem, guest.Page2M, guest.PTEWrite|guest.PTEUser); err != nil {
		return fail(err)
	}
	setup, err := r.a.createWithin(g.VM, c.budget)
	if err != nil {
		return fail(err)
	}
	p := g.Program()
	exit := p.NewLabel()
	p.MovAbs(asm.R12, r.syncGPA)
	p.Sync(0)
	spin := p.Here()
	p.Pause()
	p.Cmp(asm.Q(asm.R12, syncStart), asm.Imm(0))
	p.Jcc(asm.CondE, spin)
	x86PerfPrograms[t.program](r, p, exit)
	p.Bind(exit)
	p.Done()
	if err := g.Load(p); err != nil {
		return fail(err)
	}
	return r, setup, nil
}

// x86PerfPrograms are the guest loops of the tests, emitted after the
// common prologue (R12: the sync area).
var x86PerfPrograms = [numPerfPrograms]func(r *perfRun, p *guest.Program, exit *asm.Label){
	progMap: mapProgram, progUnmap: unmapProgram, progMove: moveProgram, progRW: rwProgram,
}

func perfSpecs(b *framework.Backend) {
	overBudget := map[int]bool{}
	cpl := b.Modes()[0]
	for _, t := range perfTests {
		t := t
		It(fmt.Sprintf("%s [%s]", t.name, cpl), Label(cpl.String()), func(ctx SpecContext) {
			c, err := readPerfConfig(b, overBudget, x86PerfDefaults)
			Expect(err).NotTo(HaveOccurred())
			c.tag, c.cpl, c.ps = cpl.String(), cpl.String(), hv.PageSize
			c.newRun = func(t *perfTest, n int) (*perfRun, time.Duration, error) { return newX86PerfRun(b, c, cpl, t, n) }
			runPerfTest(ctx, b, c, t)
		}, SpecTimeout(30*time.Minute))
	}
}
