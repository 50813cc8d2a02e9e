package guest

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/asm"
)

// The MSR gate lets test code at any CPL read and write MSRs: RDMSR and
// WRMSR are CPL0-only, and PMU specs keep their measured code at CPL3
// (where kvm-pvm runs it natively). Test code loads ECX (the MSR) and
// EDX:EAX (the value to write), selects the operation in ESI and raises
// the gate's vector with int n; the gate runs the instruction at CPL0 and
// returns with RDX:RAX the value read (RDMSR) and R8 the vector of the
// exception the instruction raised, or MSRGateOK. Other registers and
// the flags are kept. A fault does not fail the test: a spec asserting
// #GP compares R8 with 13.
//
// The gate is an interrupt gate, so it runs with interrupts off, and its
// instructions execute at CPL0: a counter counting OS events counts them.

// Operations of the MSR gate (ESI).
const (
	MSRGateRead  = 0
	MSRGateWrite = 1
)

// MSRGateOK is R8 after an access that did not fault.
const MSRGateOK = -1

// savedSlot is the handler-stack operand of the saved copy of r, which
// the wrapper restores on return.
func savedSlot(r asm.Reg) asm.Mem {
	for i, s := range savedGPRs {
		if s == r {
			return asm.Q(asm.RSP, int32(8*(len(savedGPRs)-1-i)))
		}
	}
	panic(fmt.Sprintf("guest: %v is not a saved register", r))
}

// InstallMSRGate installs the MSR gate at vector (one of the vectors CPL3
// may raise with int n: 32 and up).
func (g *Guest) InstallMSRGate(vector int) error {
	return g.Handle(Handler{Vector: vector, Body: func(p *Program, f Frame) {
		fault, read, ok, end := p.NewLabel(), p.NewLabel(), p.NewLabel(), p.NewLabel()
		p.ExpectException(fault)
		p.Test(asm.ESI, asm.ESI)
		p.Jcc(asm.CondE, read)
		p.Wrmsr()
		p.Jmp(ok)
		p.Bind(read)
		p.Rdmsr()
		p.Mov(savedSlot(asm.RAX), asm.RAX)
		p.Mov(savedSlot(asm.RDX), asm.RDX)
		p.Bind(ok)
		// No exception came: disarm the fixup for later code.
		p.Mov(asm.Q(asm.R15, ucExcFix), asm.Imm(0))
		p.Mov(savedSlot(asm.R8), asm.Imm(MSRGateOK))
		p.Jmp(end)
		p.Bind(fault)
		p.Mov(asm.RAX, asm.Q(asm.R15, ExcVector))
		p.Mov(savedSlot(asm.R8), asm.RAX)
		p.Bind(end)
	}})
}

// MSRGate raises the MSR gate at vector for op (MSRGateRead or
// MSRGateWrite) with the registers the caller loaded: ECX the MSR,
// EDX:EAX the value to write. Afterwards RDX:RAX hold the value read and
// R8 MSRGateOK or the exception's vector. ESI is set to op.
func (p *Program) MSRGate(vector, op int) {
	p.Mov(asm.ESI, asm.Imm(int64(op)))
	p.Int(uint8(vector))
}
