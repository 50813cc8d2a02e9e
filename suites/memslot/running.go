package memslot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The specs of set_memory_region_test's MOVE and DELETE tests: a guest
// reads one quadword of a slot in a loop and logs every change of value
// it sees; the host moves, deletes and re-creates the slot under it and
// answers MMIO reads of the address with mmioValue.
const (
	readGPA   = 0x4000_0000 // the quadword the guest reads (slot readSlot, page 0)
	readSlot  = 10
	readPages = 2

	valueOld   = 0x1111_1111 // page 0 of the slot
	valueShift = 0x2222_2222 // page 1: what readGPA shows with the slot one page lower
	valueFinal = 0x3333_3333 // the guest stops when it sees this
	mmioValue  = 0xbeef      // the host's answer to MMIO reads, as in the kernel test

	// The shared page: the last value seen, the number of changes, the log.
	shSeen   = 0
	shCount  = 8
	shLog    = 64
	maxLog   = 32
	waitTime = 10 * time.Second
)

// step is one value of an expected sequence; optional values may be
// missing (MMIO during a move: the window is short and may not be hit).
type step struct {
	v        uint64
	optional bool
}

// matchSequence checks that seen follows want, in order, each value once
// (the guest logs changes only, so no value repeats in a row).
func matchSequence(seen []uint64, want []step) error {
	i := 0
	for _, s := range want {
		if i < len(seen) && seen[i] == s.v {
			i++
			continue
		}
		if !s.optional {
			return fmt.Errorf("values seen %#x: want %#x at position %d", seen, s.v, i)
		}
	}
	if i != len(seen) {
		return fmt.Errorf("values seen %#x: unexpected %#x at position %d", seen, seen[i], i)
	}
	return nil
}

// reader is a guest reading readGPA in a loop, and its host side, which
// is the same for every architecture's guest.
type reader struct {
	g  runner
	vm hv.VM
	// pc reads vCPU 0's program counter (RIP, PC).
	pc         func() (uint64, error)
	sh         shared
	mem        *hv.Memory // the slot's backing
	slot       hv.Memslot
	loopStart  uint64 // [loopStart, loopEnd): the reading loop's code
	loopEnd    uint64
	mmioReads  int
	done       chan error
	finalExit  hv.Exit // the first exit that was neither MMIO of readGPA nor a ucall
	finalPC    uint64
	stopOnExit bool // the code-slot spec: any other exit ends the run
}

// newReaderHost is the host side of a reader on guest g: the shared
// page's host view sh, and the read slot with its values, created.
func newReaderHost(g runner, vm hv.VM, pc func() (uint64, error), sh []byte) *reader {
	GinkgoHelper()
	r := &reader{g: g, vm: vm, pc: pc, sh: shared{sh}, done: make(chan error, 1)}
	var err error
	r.mem, err = hv.NewMemory(readPages*hv.PageSize, hv.Anonymous)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(r.mem.Close) // after the guest is closed: registered first
	shared{r.mem.Bytes()}.store(0, valueOld)
	shared{r.mem.Bytes()}.store(hv.PageSize, valueShift)
	r.slot = hv.Memslot{Slot: readSlot, GPA: readGPA, Size: readPages * hv.PageSize, Memory: r.mem}
	Expect(vm.SetMemslot(r.slot)).To(Succeed())
	return r
}

func newReader(b *framework.Backend) *reader {
	GinkgoHelper()
	g := b.NewGuest(guest.Config{Mode: b.Modes()[0]})
	shGPA, err := g.Alloc(hv.PageSize, hv.PageSize)
	Expect(err).NotTo(HaveOccurred())
	sb, err := g.Bytes(shGPA, hv.PageSize)
	Expect(err).NotTo(HaveOccurred())
	r := newReaderHost(g, g.VM, func() (uint64, error) {
		regs, err := g.VCPUs[0].Regs()
		return regs.RIP, err
	}, sb)
	// The page below too, so the slot moved one page down stays mapped.
	Expect(g.PT.Map(readGPA-hv.PageSize, readGPA-hv.PageSize, 3*hv.PageSize, guest.PTEWrite|guest.PTEUser)).To(Succeed())

	p := g.Program()
	start, end := p.NewLabel(), p.NewLabel()
	p.MovAbs(asm.R8, readGPA)
	p.MovAbs(asm.R9, shGPA+shLog)
	p.MovAbs(asm.R11, shGPA)
	p.MovAbs(asm.R12, valueFinal)
	p.Mov(asm.RAX, asm.Imm(-1))
	p.Xor(asm.R10, asm.R10)
	p.Bind(start)
	p.Mov(asm.RBX, asm.Q(asm.R8, 0))
	p.Cmp(asm.RBX, asm.RAX)
	p.Jcc(asm.CondE, start)
	p.Mov(asm.RAX, asm.RBX)
	p.Mov(asm.Q(asm.R9, 0), asm.RBX)
	p.Add(asm.R9, asm.Imm(8))
	p.Inc(asm.R10)
	p.Mov(asm.Q(asm.R11, shCount), asm.R10)
	p.Mov(asm.Q(asm.R11, shSeen), asm.RBX)
	p.Cmp(asm.R10, asm.Imm(maxLog))
	p.Assert(asm.CondB, "more value changes than the log holds", asm.R10)
	p.Cmp(asm.RBX, asm.R12)
	p.Jcc(asm.CondNE, start)
	p.Bind(end)
	p.Done()
	Expect(g.Load(p)).To(Succeed())
	var ok1, ok2 bool
	r.loopStart, ok1 = p.Addr(start)
	r.loopEnd, ok2 = p.Addr(end)
	Expect(ok1 && ok2).To(BeTrue())
	return r
}

// start runs the guest in the background until DONE, an error, or (with
// stopOnExit) an exit that is not an MMIO read of readGPA.
func (r *reader) start(ctx context.Context) {
	go func() { r.done <- r.run(ctx) }()
}

func (r *reader) run(ctx context.Context) error {
	for {
		ev, err := r.g.Run(ctx, 0)
		if err != nil {
			return err
		}
		if ev.Ucall != nil {
			if ev.Ucall.Cmd == guest.UcallDone {
				return nil
			}
			return fmt.Errorf("unexpected ucall %v", ev.Ucall)
		}
		if e, ok := ev.Exit.(*hv.MMIOExit); ok && !e.Write && e.GPA == readGPA && e.Len == 8 {
			r.mmioReads++
			e.SetValue(mmioValue)
			continue
		}
		if r.stopOnExit {
			r.finalExit = ev.Exit
			r.finalPC, err = r.pc()
			return err
		}
		return r.g.Unexpected(0, ev.Exit)
	}
}

// waitSeen waits until the guest has seen v.
func (r *reader) waitSeen(v uint64) {
	GinkgoHelper()
	deadline := time.Now().Add(waitTime)
	for r.sh.load(shSeen) != v {
		select {
		case err := <-r.done:
			r.done <- err
			Expect(err).NotTo(HaveOccurred(), "the guest stopped before it saw %#x", v)
			Fail(fmt.Sprintf("the guest ended before it saw %#x; it saw %#x", v, r.log()))
		default:
		}
		if time.Now().After(deadline) {
			Fail(fmt.Sprintf("the guest did not see %#x within %v; it saw %#x", v, waitTime, r.log()))
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// wait waits for the guest to end.
func (r *reader) wait() error {
	select {
	case err := <-r.done:
		return err
	case <-time.After(2 * waitTime):
		return fmt.Errorf("the guest did not end within %v; it saw %#x", 2*waitTime, r.log())
	}
}

// log is the sequence of values the guest saw.
func (r *reader) log() []uint64 {
	n := r.sh.load(shCount)
	if n > maxLog {
		n = maxLog
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = r.sh.load(shLog + 8*uint64(i))
	}
	return out
}

// moveScenario is one sequence of slot changes under the reading guest
// and the values the guest must see.
type moveScenario struct {
	do   func(r *reader)
	want []step
}

func (r *reader) set(m hv.Memslot) {
	GinkgoHelper()
	Expect(r.vm.SetMemslot(m)).To(Succeed(), "%v", m)
}

func (r *reader) slotAt(gpa uint64) hv.Memslot {
	m := r.slot
	m.GPA = gpa
	return m
}

var moveScenarios = []TableEntry{
	Entry("moved one page down and back", moveScenario{
		do: func(r *reader) {
			r.waitSeen(valueOld)
			r.set(r.slotAt(readGPA - hv.PageSize))
			r.waitSeen(valueShift)
			r.set(r.slotAt(readGPA))
			r.waitSeen(valueOld)
			shared{r.mem.Bytes()}.store(0, valueFinal)
		},
		want: []step{{valueOld, false}, {mmioValue, true}, {valueShift, false}, {mmioValue, true}, {valueOld, false}, {valueFinal, false}},
	}, SpecTimeout(time.Minute)),
	Entry("deleted and re-created", moveScenario{
		do: func(r *reader) {
			r.waitSeen(valueOld)
			Expect(r.vm.DeleteMemslot(readSlot)).To(Succeed())
			r.waitSeen(mmioValue)
			shared{r.mem.Bytes()}.store(0, valueFinal)
			r.set(r.slot)
		},
		want: []step{{valueOld, false}, {mmioValue, false}, {valueFinal, false}},
	}, SpecTimeout(time.Minute)),
	Entry("deleted and re-created with the same id one page lower", moveScenario{
		do: func(r *reader) {
			r.waitSeen(valueOld)
			Expect(r.vm.DeleteMemslot(readSlot)).To(Succeed())
			r.waitSeen(mmioValue)
			r.set(r.slotAt(readGPA - hv.PageSize))
			r.waitSeen(valueShift)
			shared{r.mem.Bytes()}.store(hv.PageSize, valueFinal)
		},
		want: []step{{valueOld, false}, {mmioValue, false}, {valueShift, false}, {valueFinal, false}},
	}, SpecTimeout(time.Minute)),
}

// runScenario runs the reader while sc changes its slot, and checks the
// values it saw.
func runScenario(ctx context.Context, r *reader, sc moveScenario) {
	GinkgoHelper()
	r.start(framework.GuestContext(ctx, 4*waitTime))
	sc.do(r)
	Expect(r.wait()).To(Succeed())
	AddReportEntry("values the guest saw", fmt.Sprintf("%#x (%d MMIO reads answered)", r.log(), r.mmioReads))
	Expect(matchSequence(r.log(), sc.want)).To(Succeed())
}

func runningSpecs(b *framework.Backend) {
	cpl := Label(b.Modes()[0].String())
	DescribeTable(fmt.Sprintf("a slot under a guest reading it [%s]", b.Modes()[0]), cpl,
		func(ctx SpecContext, sc moveScenario) { runScenario(ctx, newReader(b), sc) },
		moveScenarios,
	)

	It(fmt.Sprintf("deleting the slot of the guest's code stops it [%s]", b.Modes()[0]), cpl, func(ctx SpecContext) {
		r := newReader(b)
		r.stopOnExit = true
		r.start(framework.GuestContext(ctx, 4*waitTime))
		r.waitSeen(valueOld)
		By("deleting slot 0: code, page tables, descriptor tables, stacks")
		Expect(r.vm.DeleteMemslot(0)).To(Succeed())
		Expect(r.wait()).To(Succeed())
		Expect(r.finalExit).NotTo(BeNil(), "the guest ran to DONE without its code")
		AddReportEntry("exit after the code slot went", fmt.Sprintf("%v at rip %#x (loop [%#x, %#x))", r.finalExit, r.finalPC, r.loopStart, r.loopEnd))
		// set_memory_region_test: KVM_EXIT_SHUTDOWN or
		// KVM_EXIT_INTERNAL_ERROR, the latter with RIP still in the loop
		// (after a shutdown, AMD has already reset RIP).
		switch r.finalExit.(type) {
		case *hv.ShutdownExit:
		case *hv.InternalErrorExit:
			Expect(r.finalPC).To(SatisfyAll(BeNumerically(">=", r.loopStart), BeNumerically("<", r.loopEnd)), "RIP at the internal error")
		default:
			Fail(fmt.Sprintf("exit %v: want shutdown or internal-error", r.finalExit))
		}
	}, SpecTimeout(time.Minute))

	It("a vcpu with no memory at all gets an internal error", func(ctx SpecContext) {
		vm, err := b.HV.NewVM(hv.VMConfig{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(vm.Close)
		v, err := vm.NewVCPU(0)
		Expect(err).NotTo(HaveOccurred())
		exit, err := v.Run(framework.GuestContext(ctx, waitTime))
		if errors.Is(err, context.DeadlineExceeded) {
			Fail("the vCPU ran for " + waitTime.String() + " without memory")
		}
		Expect(err).NotTo(HaveOccurred())
		regs, _ := v.Regs()
		AddReportEntry("exit without memory", fmt.Sprintf("%v at rip %#x", exit, regs.RIP))
		// set_memory_region_test's test_zero_memory_regions (x86).
		Expect(exit).To(BeAssignableToTypeOf(&hv.InternalErrorExit{}), "exit %v", exit)
	}, SpecTimeout(time.Minute))
}
