package guest

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest/desc"
)

// The local APIC as the guest sees it (xAPIC mode): the page is mapped
// uncached at its architectural default address.
const (
	APICBase = 0xfee00000
	// Register offsets in the APIC page (SDM Vol. 3A, table 11-1).
	APICID       = 0x20
	APICVersion  = 0x30
	APICTPR      = 0x80
	APICEOI      = 0xb0
	APICSVR      = 0xf0
	APICLVTTimer = 0x320
	APICLVTPerf  = 0x340
	APICLVTLINT0 = 0x350
	APICLVTLINT1 = 0x360
	APICLVTError = 0x370
	// APICSVREnable is the software-enable bit of the spurious-vector register.
	APICSVREnable = 1 << 8
	// APICLVTMasked masks an LVT entry.
	APICLVTMasked = 1 << 16
)

// Handler is guest code installed for one vector, beside the reporting
// stubs: the runtime points the vector's gate at a wrapper that saves
// every general-purpose register, sets R15 to the vCPU's ucall page (so
// the body may Sync or Printf), runs the body, counts the interrupt,
// optionally signals EOI, restores the registers, drops the error code the
// CPU pushed for vectors that have one, and returns with iretq.
//
// The handler runs at CPL0 on the vCPU's IST2 stack, with interrupts off
// (an interrupt gate). An exception inside the body is caught by the
// reporting stubs on IST1 and fails the test, naming the body's Go line.
type Handler struct {
	Vector int
	// Body emits the handler's code (nil: only count and return). It may
	// clobber any register and the flags; f names the interrupted frame.
	Body func(p *Program, f Frame)
	// EOI stores to the local APIC's EOI register before returning, as an
	// APIC-delivered interrupt (a device, a timer, a PMI) needs.
	EOI bool
}

// Frame names the interrupt frame inside a handler body: the CPU's
// frame, and the error code for vectors that push one. A body may rewrite
// them (RIP to skip an instruction, RFLAGS to clear TF).
type Frame struct {
	ErrorCode, RIP, CS, RFLAGS, RSP, SS asm.Mem
	// HasErrorCode says whether the vector pushes an error code
	// (ErrorCode is meaningless otherwise).
	HasErrorCode bool
}

// savedGPRs are the registers the wrapper saves, in push order.
var savedGPRs = []asm.Reg{asm.RAX, asm.RBX, asm.RCX, asm.RDX, asm.RSI, asm.RDI, asm.RBP,
	asm.R8, asm.R9, asm.R10, asm.R11, asm.R12, asm.R13, asm.R14, asm.R15}

func handlerFrame(vector int) Frame {
	off := int32(8 * len(savedGPRs))
	f := Frame{HasErrorCode: desc.HasErrorCode(vector)}
	if f.HasErrorCode {
		f.ErrorCode = asm.Q(asm.RSP, off)
		off += 8
	}
	f.RIP, f.CS, f.RFLAGS = asm.Q(asm.RSP, off), asm.Q(asm.RSP, off+8), asm.Q(asm.RSP, off+16)
	f.RSP, f.SS = asm.Q(asm.RSP, off+24), asm.Q(asm.RSP, off+32)
	return f
}

// Handle installs h: its code goes into the runtime area and its gate into
// the IDT, replacing the reporting stub for the vector, for every vCPU and
// every program loaded afterwards. Installing a vector again replaces the
// handler. The gate lets CPL3 code raise the vector with int n where the
// standard IDT does (#BP, #OF and vectors 32 and up). Install handlers
// while no vCPU runs: the IDT is rewritten in guest memory.
func (g *Guest) Handle(h Handler) error {
	if h.Vector < 0 || h.Vector >= desc.IDTVectors {
		return fmt.Errorf("guest handler: vector %d is not in [0, %d)", h.Vector, desc.IDTVectors)
	}
	p := &Program{Assembler: asm.New(g.runtimeEnd), g: g}
	p.SkipCallerPackage("github.com/kvmspec/kvmspec/harness/guest")
	for _, r := range savedGPRs {
		p.Push(r)
	}
	// The IST2 stack lies inside this vCPU's block, like IST1.
	p.Mov(asm.R15, asm.RSP)
	p.And(asm.R15, asm.Imm(-VCPUBlockSize))
	p.Add(asm.R15, asm.Imm(blockUcall))
	if h.Body != nil {
		h.Body(p, handlerFrame(h.Vector))
	}
	p.Inc(p.InterruptCount(h.Vector))
	if h.EOI {
		p.EOI()
	}
	for i := len(savedGPRs) - 1; i >= 0; i-- {
		p.Pop(savedGPRs[i])
	}
	if desc.HasErrorCode(h.Vector) {
		p.Add(asm.RSP, asm.Imm(8))
	}
	p.Iretq()

	code, err := p.Assemble()
	if err != nil {
		return fmt.Errorf("guest handler for %s: %w", VectorName(uint64(h.Vector)), err)
	}
	if g.runtimeEnd+uint64(len(code)) > RuntimeBase+RuntimeSize {
		return fmt.Errorf("guest handler for %s: %d bytes overrun the runtime area", VectorName(uint64(h.Vector)), len(code))
	}
	if err := g.pendingErrs(); err != nil {
		return fmt.Errorf("guest handler for %s: %w", VectorName(uint64(h.Vector)), err)
	}
	dst, err := g.Bytes(g.runtimeEnd, len(code))
	if err != nil {
		return err
	}
	copy(dst, code)
	g.handlers = append(g.handlers, p.Assembler)
	g.idt[h.Vector] = desc.InterruptGate(g.runtimeEnd, SelKernelCode, istHandlers, gateDPL(h.Vector))
	g.runtimeEnd += uint64(len(code))
	return g.writeIDT()
}

// InterruptCount is how many times vCPU i's installed handler for vector
// ran to its end.
func (g *Guest) InterruptCount(i, vector int) (uint32, error) {
	gpa, err := g.InterruptCountAddr(i, vector)
	if err != nil {
		return 0, err
	}
	return g.Load32(gpa)
}

// InterruptCountAddr is the guest-physical address of vCPU i's 32-bit
// count of vector, for host code that waits on it or stands in for an
// interrupt source with the atomics.
func (g *Guest) InterruptCountAddr(i, vector int) (uint64, error) {
	if vector < 0 || vector >= desc.IDTVectors {
		return 0, fmt.Errorf("interrupt count: vector %d is not in [0, %d)", vector, desc.IDTVectors)
	}
	if i < 0 || i >= g.cfg.VCPUs {
		return 0, fmt.Errorf("interrupt count: no vcpu %d", i)
	}
	return g.UcallPage(i) + ucIntCount + 4*uint64(vector), nil
}

// InterruptCount is the memory operand of this vCPU's count of vector
// (32 bits, R15-relative), which its installed handler increments; test
// code at any CPL may read it.
func (p *Program) InterruptCount(vector int) asm.Mem {
	if vector < 0 || vector >= desc.IDTVectors {
		p.g.recordErr(fmt.Errorf("interrupt count: vector %d is not in [0, %d)", vector, desc.IDTVectors))
		vector = 0
	}
	return asm.D(asm.R15, int32(ucIntCount+4*vector))
}

// EOI signals end of interrupt to the local APIC (a store to its EOI
// register). It changes no register and no flag; it works at CPL3 since
// the APIC page is user-accessible for CPL3 guests.
func (p *Program) EOI() { p.APICWrite(APICEOI, asm.Imm(0)) }

// APICWrite stores v (a 32-bit immediate or a register, whose low half is
// used) into the local APIC register at off, for programming LVT entries,
// TPR and SVR from test code. It changes no other register and no flag.
func (p *Program) APICWrite(off int32, v asm.Operand) {
	if r, ok := v.(asm.Reg); ok && r.Size() != 4 {
		v = r.As(4)
	}
	scratch := asm.RAX
	if r, ok := v.(asm.Reg); ok && r.As(8) == asm.RAX {
		scratch = asm.RDX
	}
	p.Push(scratch)
	p.MovAbs(scratch, APICBase)
	p.Mov(asm.D(scratch, off), v)
	p.Pop(scratch)
}

// APICRead loads the local APIC register at off into dst (zero-extended).
func (p *Program) APICRead(dst asm.Reg, off int32) {
	dst = dst.As(8)
	p.MovAbs(dst, APICBase)
	p.Mov(dst.As(4), asm.D(dst, off))
}

// EnableInterrupts sets RFLAGS.IF (sti). CPL3 code may: the runtime gives
// CPL3 guests IOPL 3.
func (p *Program) EnableInterrupts() { p.Sti() }

// DisableInterrupts clears RFLAGS.IF (cli).
func (p *Program) DisableInterrupts() { p.Cli() }

// WaitInterrupts enables interrupts and spins until this vCPU's count of
// vector reaches n (a register or an immediate). hlt would fault at CPL3,
// so the loop polls with pause; it clobbers the flags. A wait that never
// ends ends with the spec's context, as a TimeoutError at this loop.
func (p *Program) WaitInterrupts(vector int, n asm.Operand) {
	if r, ok := n.(asm.Reg); ok && r.Size() != 4 {
		n = r.As(4) // the count is 32 bits
	}
	p.EnableInterrupts()
	loop := p.Here()
	done := p.NewLabel()
	p.Cmp(p.InterruptCount(vector), n)
	p.Jcc(asm.CondAE, done)
	p.Pause()
	p.Jmp(loop)
	p.Bind(done)
}
