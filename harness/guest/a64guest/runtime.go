package a64guest

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
)

// Vector indexes: VBAR_EL1 + 0x80*index (Arm ARM D1.3.5). Test code runs
// in EL1t or EL0t and handlers in EL1h, so an exception in test code comes
// from "current EL with SP_EL0" or "lower EL", and one inside a handler
// from "current EL with SP_ELx".
const (
	VecSyncEL1t = iota
	VecIRQEL1t
	VecFIQEL1t
	VecSErrorEL1t
	VecSyncEL1h
	VecIRQEL1h
	VecFIQEL1h
	VecSErrorEL1h
	VecSyncLower64
	VecIRQLower64
	VecFIQLower64
	VecSErrorLower64
	VecSyncLower32
	VecIRQLower32
	VecFIQLower32
	VecSErrorLower32

	NumVectors = 16
	// VectorSize is the space of one vector table entry.
	VectorSize = 0x80
)

var vectorNames = [NumVectors]string{
	"sync (EL1t)", "irq (EL1t)", "fiq (EL1t)", "serror (EL1t)",
	"sync (EL1h)", "irq (EL1h)", "fiq (EL1h)", "serror (EL1h)",
	"sync (lower EL, AArch64)", "irq (lower EL, AArch64)", "fiq (lower EL, AArch64)", "serror (lower EL, AArch64)",
	"sync (lower EL, AArch32)", "irq (lower EL, AArch32)", "fiq (lower EL, AArch32)", "serror (lower EL, AArch32)",
}

// VectorName names a vector index.
func VectorName(v uint64) string {
	if v < NumVectors {
		return vectorNames[v]
	}
	return fmt.Sprintf("vector %d", v)
}

// The handler frame on SP_EL1: every general-purpose register, then the
// exception registers the runtime read at entry.
const (
	frameX      = 0x000 // X0..X30, 8 bytes each
	frameELR    = 0x0f8
	frameSPSR   = 0x100
	frameESR    = 0x108
	frameFAR    = 0x110
	frameSPEL0  = 0x118
	frameSize   = 0x120 // a multiple of 16: SP stays aligned
	spsrModeEL1 = 0b0100
)

// PSTATE/SPSR values (Arm ARM C5.2.18, SPSR_EL1).
const (
	SPSRDAIF = 0xf << 6 // D, A, I and F masked
	SPSREL0t = 0b0000
	SPSREL1t = 0b0100
	SPSREL1h = 0b0101
	// ResetPSTATE is the state the host starts a vCPU in: EL1h with
	// every exception masked, as KVM_ARM_VCPU_INIT leaves it.
	ResetPSTATE = SPSRDAIF | SPSREL1h
)

// SvcToEL1 is the SVC immediate the runtime answers by continuing the EL0
// caller at EL1 (Program.ToEL1).
const SvcToEL1 = 0xe1

// ESR_EL1 fields.
const (
	ESRECShift = 26
	ECSVC64    = 0x15
)

// tlbiVMALLE1 is TLBI VMALLE1 (SYS #0, C8, C7, #0): invalidate the
// EL1&0 stage-1 TLB entries of this PE. The assembler has no TLBI; the
// test decodes the word.
const tlbiVMALLE1 = 0xd508871f

// tlbiVMALLE1IS is TLBI VMALLE1IS (SYS #0, C8, C3, #0): the same for every
// PE of the inner-shareable domain (other vCPUs of the guest).
const tlbiVMALLE1IS = 0xd508831f

// runtimeSpec is everything the runtime's code depends on.
type runtimeSpec struct {
	mode     Mode
	layout   Layout
	ha, hd   bool
	el0      bool
	ttbr0    uint64
	handlers [NumVectors]*Handler
}

// runtime is the assembled runtime area.
type runtime struct {
	asm     *a64.Assembler
	code    []byte
	vectors uint64 // VBAR_EL1
	boot    uint64 // the vCPU's first instruction
	entries [NumVectors]uint64
}

// Handler is guest code installed for one vector. The vector's entry saves
// every general-purpose register into a frame on the vCPU's EL1 stack,
// reads ELR, SPSR, ESR and FAR into it, and runs the handler at EL1h with
// X28 pointing at the vCPU's user block (so the body may Sync, using its
// own ucall record); after the body the runtime counts the run, restores
// ELR/SPSR from the frame (a body may rewrite them, e.g. to skip an
// instruction) and every register, and returns with ERET. An exception in
// the body is reported as unexpected (vectors 4-7). The body must leave
// SP as it found it. A handler of a synchronous vector gets every
// exception class (check f.ESR's EC); ToEL1's SVC stays the runtime's.
type Handler struct {
	Vector int
	Body   func(p *Program, f Frame)
}

// Frame names the saved state a handler body may read and rewrite.
type Frame struct {
	ELR, SPSR, ESR, FAR, SPEL0 a64.Mem
}

// X is the frame slot of the interrupted code's register Xn.
func (Frame) X(n int) a64.Mem { return a64.Ptr(a64.SP, int64(frameX+8*n)) }

var handlerFrame = Frame{
	ELR: a64.Ptr(a64.SP, frameELR), SPSR: a64.Ptr(a64.SP, frameSPSR), ESR: a64.Ptr(a64.SP, frameESR),
	FAR: a64.Ptr(a64.SP, frameFAR), SPEL0: a64.Ptr(a64.SP, frameSPEL0),
}

const runtimePkg = "github.com/kvmspec/kvmspec/harness/guest/a64guest"

// buildRuntime emits the vector table, the common exception path, the
// boot code and the installed handlers at RuntimeBase. g issues the
// handler bodies' ucall sites.
func buildRuntime(s runtimeSpec, g *Guest) (*runtime, error) {
	a := a64.New(RuntimeBase)
	a.SkipCallerPackage(runtimePkg)
	rt := &runtime{asm: a, vectors: RuntimeBase}

	common := a.NewLabel()
	restore := a.NewLabel()
	wrappers := [NumVectors]*a64.Label{}
	for v := range wrappers {
		if s.handlers[v] != nil {
			wrappers[v] = a.NewLabel()
		}
	}
	// The vector table: 16 entries of 0x80 bytes. Each saves X0-X30 and
	// branches with the vector index in X0.
	for v := 0; v < NumVectors; v++ {
		a.Align(VectorSize)
		rt.entries[v] = a.PC()
		a.Sub(a64.SP, a64.SP, a64.Imm(frameSize))
		for r := 0; r < 30; r += 2 {
			a.Stp(a64.X(r), a64.X(r+1), a64.Ptr(a64.SP, int64(frameX+8*r)))
		}
		a.Str(a64.X30, a64.Ptr(a64.SP, frameX+8*30))
		a.Movz(a64.X0, uint16(v), 0)
		if wrappers[v] != nil {
			a.B(wrappers[v])
		} else {
			a.B(common)
		}
	}
	a.Align(VectorSize)

	// The common path: runtime services, expected exceptions, reports.
	a.Bind(common)
	prologue(a)
	emitCommon(a, restore)

	a.Bind(restore)
	a.Ldp(a64.X1, a64.X2, a64.Ptr(a64.SP, frameELR))
	a.Msr(a64.ELR_EL1, a64.X1)
	a.Msr(a64.SPSR_EL1, a64.X2)
	for r := 0; r < 30; r += 2 {
		a.Ldp(a64.X(r), a64.X(r+1), a64.Ptr(a64.SP, int64(frameX+8*r)))
	}
	a.Ldr(a64.X30, a64.Ptr(a64.SP, frameX+8*30))
	a.Add(a64.SP, a64.SP, a64.Imm(frameSize))
	a.Eret()

	rt.boot = a.PC()
	emitBoot(a, s)

	for v, h := range s.handlers {
		if h == nil {
			continue
		}
		a.Bind(wrappers[v])
		prologue(a)
		if v == VecSyncLower64 {
			emitSvcToEL1(a, restore) // ToEL1 keeps working under a handler
		}
		a.Mrs(a64.X28, tpidrEL1)
		a.Add(a64.X28, a64.X28, a64.Imm(el1HalfSize))
		if h.Body != nil {
			p := &Program{Assembler: a, g: g, record: HandlerRecord}
			h.Body(p, handlerFrame)
		}
		// The body may have used X28: find the block again.
		a.Mrs(a64.X28, tpidrEL1)
		a.Add(a64.X28, a64.X28, a64.Imm(el1HalfSize))
		count := a64.Ptr(a64.X28, int64(HandlerCounts+4*v))
		a.Ldr(a64.W16, count)
		a.Add(a64.W16, a64.W16, a64.Imm(1))
		a.Str(a64.W16, count)
		a.B(restore)
	}
	code, err := a.Assemble()
	if err != nil {
		return nil, fmt.Errorf("a64guest runtime: %w", err)
	}
	if len(code) > RuntimeSize {
		return nil, fmt.Errorf("a64guest runtime: %d bytes overrun the %#x-byte runtime area", len(code), RuntimeSize)
	}
	rt.code = code
	return rt, nil
}

// TPIDR_EL1 holds the vCPU's EL1 block address: the handlers' anchor.
var tpidrEL1, _ = a64.Sys("TPIDR_EL1")

// prologue stores the exception registers into the frame and leaves
// X1 = ELR, X2 = SPSR, X3 = ESR, X4 = FAR (X0 is the vector index).
func prologue(a *a64.Assembler) {
	a.Mrs(a64.X1, a64.ELR_EL1)
	a.Mrs(a64.X2, a64.SPSR_EL1)
	a.Stp(a64.X1, a64.X2, a64.Ptr(a64.SP, frameELR))
	a.Mrs(a64.X3, a64.ESR_EL1)
	a.Mrs(a64.X4, a64.FAR_EL1)
	a.Stp(a64.X3, a64.X4, a64.Ptr(a64.SP, frameESR))
	a.Mrs(a64.X5, a64.SP_EL0)
	a.Str(a64.X5, a64.Ptr(a64.SP, frameSPEL0))
}

// emitCommon handles an exception no installed handler took: the EL0
// SVC that returns to EL1, an exception ExpectException armed, or else a
// report to the host (UNHANDLED with vector, ESR, FAR, ELR, SPSR).
func emitCommon(a *a64.Assembler, restore *a64.Label) {
	report := a.NewLabel()
	emitSvcToEL1(a, restore)
	emitExpected(a, restore, report)
	emitReport(a, report)
}

// emitSvcToEL1 answers the EL0 SVC of ToEL1 (X0 = vector, X2 = SPSR,
// X3 = ESR, as prologue leaves them) and falls through for anything else.
func emitSvcToEL1(a *a64.Assembler, restore *a64.Label) {
	notSvc := a.NewLabel()
	a.Cmp(a64.X0, a64.Imm(VecSyncLower64))
	a.Bcond(a64.NE, notSvc)
	a.Lsr(a64.X6, a64.X3, a64.Imm(ESRECShift))
	a.Cmp(a64.X6, a64.Imm(ECSVC64))
	a.Bcond(a64.NE, notSvc)
	a.And(a64.X6, a64.X3, a64.Imm(0xffff))
	a.Cmp(a64.X6, a64.Imm(SvcToEL1))
	a.Bcond(a64.NE, notSvc)
	// Continue after the SVC (ELR already points there) in EL1t.
	a.Orr(a64.X2, a64.X2, a64.Imm(spsrModeEL1))
	a.Str(a64.X2, a64.Ptr(a64.SP, frameSPSR))
	a.B(restore)
	a.Bind(notSvc)
}

// emitExpected resumes at an armed ExpectException fixup, recording the
// exception, or goes to report.
func emitExpected(a *a64.Assembler, restore, report *a64.Label) {
	a.Mrs(a64.X5, tpidrEL1)                           // EL1 block
	a.Add(a64.X6, a64.X5, a64.Imm(el1HalfSize))       // user block
	a.Ldr(a64.X7, a64.Ptr(a64.X6, ExcFixup))          // armed?
	a.Cbz(a64.X7, report)                             //
	a.Str(a64.XZR, a64.Ptr(a64.X6, ExcFixup))         // one exception per arming
	a.Stp(a64.X0, a64.X3, a64.Ptr(a64.X6, ExcVector)) // vector, ESR
	a.Stp(a64.X4, a64.X1, a64.Ptr(a64.X6, ExcFAR))    // FAR, ELR
	a.Str(a64.X2, a64.Ptr(a64.X6, ExcSPSR))
	a.Ldr(a64.X8, a64.Ptr(a64.X6, ExcCount))
	a.Add(a64.X8, a64.X8, a64.Imm(1))
	a.Str(a64.X8, a64.Ptr(a64.X6, ExcCount))
	a.Str(a64.X7, a64.Ptr(a64.SP, frameELR)) // resume at the fixup
	a.B(restore)
}

// emitReport sends UNHANDLED (X5 = the EL1 block, from emitExpected).
func emitReport(a *a64.Assembler, report *a64.Label) {
	// The report goes through the EL1 half's own record: test code may
	// have been half-way through filling its record.
	a.Bind(report)
	rec := func(off int64) a64.Mem { return a64.Ptr(a64.X5, el1Record+off) }
	a.Movz(a64.X7, uint16(guest.UcallUnhandled), 0)
	a.Str(a64.X7, rec(guest.UcallCmdOffset))
	a.Str(a64.XZR, rec(guest.UcallSiteOffset))
	a.Movz(a64.X7, unhandledArgs, 0)
	a.Str(a64.X7, rec(guest.UcallNArgsOffset))
	a.Stp(a64.X0, a64.X3, rec(guest.UcallArgsOffset))    // vector, ESR
	a.Stp(a64.X4, a64.X1, rec(guest.UcallArgsOffset+16)) // FAR, ELR
	a.Str(a64.X2, rec(guest.UcallArgsOffset+32))         // SPSR
	again := a.Here()
	a.Mov(a64.X16, a64.Imm(UcallMMIOGPA))
	a.Str(a64.X5, a64.Ptr(a64.X16, 0))
	// A host that resumes the vCPU gets the same report again.
	a.B(again)
}

// unhandledArgs is how many values the UNHANDLED report carries.
const unhandledArgs = 5

// emitBoot emits the code a vCPU starts at (EL1h, MMU off or on with the
// same identity map, X0 = vCPU index, X1 = test entry): the translation
// registers, the MMU and caches on with the barriers the architecture
// asks for, VBAR_EL1, the vCPU's stacks and anchors, then ERET into test
// code at EL1t or EL0t.
func emitBoot(a *a64.Assembler, s runtimeSpec) {
	// A vCPU reloaded after a run has the MMU on: turn it off first so
	// the translation registers change while they are not in use (the
	// code runs identity-mapped, so the switch is seamless).
	a.Mrs(a64.X2, a64.SCTLR_EL1)
	a.And(a64.X2, a64.X2, a64.Imm(^int64(SCTLRM)))
	a.Msr(a64.SCTLR_EL1, a64.X2)
	a.Isb()

	a.Mov(a64.X2, a64.Imm(int64(MAIR())))
	a.Msr(a64.MAIR_EL1, a64.X2)
	tcr := s.mode.TCR(s.ha)
	if s.hd {
		tcr |= TCRHD
	}
	a.Mov(a64.X2, a64.Imm(int64(tcr)))
	a.Msr(a64.TCR_EL1, a64.X2)
	a.Mov(a64.X2, a64.Imm(int64(s.ttbr0)))
	a.Msr(a64.TTBR0_EL1, a64.X2)
	a.Mov(a64.X2, a64.Imm(cpacrFPENNoTrap))
	a.Msr(a64.CPACR_EL1, a64.X2)
	a.Mov(a64.X2, a64.Imm(RuntimeBase))
	a.Msr(a64.VBAR_EL1, a64.X2)
	a.Isb() // the new translation registers are in effect...
	a.Long(tlbiVMALLE1)
	a.Dsb(a64.NSH) // ...no stale entry of an earlier run survives...
	a.Isb()
	a.Mov(a64.X2, a64.Imm(int64(SCTLR())))
	a.Msr(a64.SCTLR_EL1, a64.X2)
	a.Isb() // ...and the MMU is on before the next fetch.

	// X3 = this vCPU's EL1 block.
	a.Mov(a64.X3, a64.Imm(int64(s.layout.VCPUBlocks)))
	a.Add(a64.X3, a64.X3, a64.Shifted(a64.X0, a64.LSL, vcpuBlockShift))
	a.Msr(tpidrEL1, a64.X3)
	a.Add(a64.SP, a64.X3, a64.Imm(el1StackTop))
	a.Add(a64.X28, a64.X3, a64.Imm(el1HalfSize))
	a.Add(a64.X4, a64.X28, a64.Imm(VCPUBlockSize-el1HalfSize))
	a.Msr(a64.SP_EL0, a64.X4)
	a.Msr(a64.ELR_EL1, a64.X1)
	spsr := int64(SPSRDAIF | SPSREL1t)
	if s.el0 {
		spsr = SPSRDAIF | SPSREL0t
	}
	a.Mov(a64.X4, a64.Imm(spsr))
	a.Msr(a64.SPSR_EL1, a64.X4)
	a.Eret()
}
