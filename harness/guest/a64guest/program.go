package a64guest

import (
	"fmt"
	goruntime "runtime"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
)

// Program is arm64 test code: an assembler at the code area plus the
// runtime's calls. At entry X0 is the vCPU index, X28 the vCPU's user
// block (reserved: the ucalls and exception state are X28-relative) and
// SP the test stack (SP_EL0: test code runs in EL1t or EL0t). The
// runtime's sequences clobber X16 and X17 (the intra-procedure-call
// scratch registers) and nothing else, flags included.
type Program struct {
	*a64.Assembler
	g      *Guest
	record int64 // offset of the ucall record from X28
}

// Program starts a new test program at the code area.
func (g *Guest) Program() *Program {
	a := a64.New(g.cfg.Layout.Code)
	a.SkipCallerPackage(runtimePkg)
	return &Program{Assembler: a, g: g, record: UcallRecord}
}

func (p *Program) site(cmd guest.UcallCmd, skip int, msg, format string) uint64 {
	_, file, line, _ := goruntime.Caller(skip + 1)
	return p.g.sites.add(cmd, file, line, msg, format)
}

// ucall emits a call of cmd: the arguments, count, site and command go
// into the ucall record at X28 and the record's address is stored to the
// ucall MMIO page, which exits to the host (the kernel selftests' arm64
// ABI). Register arguments are stored before X16 is used, so any
// register may be passed.
func (p *Program) ucall(cmd guest.UcallCmd, site uint64, args []a64.Operand) {
	if len(args) > guest.MaxUcallArgs {
		p.g.recordErr(fmt.Errorf("a64guest: ucall %s: more than %d arguments", cmd, guest.MaxUcallArgs))
		args = args[:guest.MaxUcallArgs]
	}
	rec := func(off int64) a64.Mem { return a64.Ptr(a64.X28, p.record+off) }
	for i, arg := range args {
		if r, ok := arg.(a64.Reg); ok {
			if r.Num() == 31 {
				p.g.recordErr(fmt.Errorf("a64guest: ucall %s argument %d: %v cannot be passed", cmd, i, r))
				continue
			}
			p.Str(a64.X(int(r.Num())), rec(guest.UcallArgsOffset+8*int64(i)))
		}
	}
	for i, arg := range args {
		switch v := arg.(type) {
		case a64.Reg:
		case a64.Imm:
			p.Mov(a64.X16, v)
			p.Str(a64.X16, rec(guest.UcallArgsOffset+8*int64(i)))
		default:
			p.g.recordErr(fmt.Errorf("a64guest: ucall %s argument %d: only registers and immediates can be passed", cmd, i))
		}
	}
	p.Mov(a64.X16, a64.Imm(len(args)))
	p.Str(a64.X16, rec(guest.UcallNArgsOffset))
	p.Mov(a64.X16, a64.Imm(int64(site)))
	p.Str(a64.X16, rec(guest.UcallSiteOffset))
	p.Mov(a64.X16, a64.Imm(int64(cmd)))
	p.Str(a64.X16, rec(guest.UcallCmdOffset))
	p.Add(a64.X16, a64.X28, a64.Imm(p.record))
	p.Mov(a64.X17, a64.Imm(UcallMMIOGPA))
	p.Str(a64.X16, a64.Ptr(a64.X17, 0))
}

// Sync reports a stage and up to 7 values to the host and continues.
func (p *Program) Sync(stage int64, args ...a64.Operand) {
	p.ucall(guest.UcallSync, p.site(guest.UcallSync, 1, "", ""), append([]a64.Operand{a64.Imm(stage)}, args...))
}

// Done ends the test on this vCPU.
func (p *Program) Done() { p.ucall(guest.UcallDone, p.site(guest.UcallDone, 1, "", ""), nil) }

// Printf asks the host to print format with the values of args (Go %
// verbs; each arg is a uint64).
func (p *Program) Printf(format string, args ...a64.Operand) {
	p.ucall(guest.UcallPrintf, p.site(guest.UcallPrintf, 1, "", format), args)
}

// Fail reports an unconditional guest failure with msg and values.
func (p *Program) Fail(msg string, args ...a64.Operand) {
	p.ucall(guest.UcallAssert, p.site(guest.UcallAssert, 1, msg, ""), args)
}

// Assert checks that cond holds for the flags set before it; otherwise the
// guest reports msg with args and the host fails naming the Go line.
func (p *Program) Assert(cond a64.Cond, msg string, args ...a64.Operand) {
	p.assert(2, cond, msg, args)
}

func (p *Program) assert(skip int, cond a64.Cond, msg string, args []a64.Operand) {
	site := p.site(guest.UcallAssert, skip, msg, "")
	ok := p.NewLabel()
	p.Bcond(cond, ok)
	p.ucall(guest.UcallAssert, site, args)
	p.Bind(ok)
}

// AssertEq checks a == b (b a register or an immediate CMP takes) and
// reports both values on failure. It sets the flags.
func (p *Program) AssertEq(a a64.Reg, b a64.Operand, msg string) {
	p.Cmp(a, b)
	args := []a64.Operand{a, b}
	p.assert(2, a64.EQ, msg, args)
}

// ExpectException arms the runtime so that the next exception (other
// than the runtime's own SVC) resumes at fixup instead of failing the
// test; the runtime records the vector, ESR, FAR, ELR and SPSR at
// X28+Exc* and counts it at X28+ExcCount. One exception per arming.
func (p *Program) ExpectException(fixup *a64.Label) {
	p.Adr(a64.X16, fixup)
	p.Str(a64.X16, a64.Ptr(a64.X28, ExcFixup))
}

// ToEL0 continues at the next instruction in EL0t, keeping the registers,
// the flags, DAIF and the stack (SP_EL0). It must run at EL1 in test code
// (EL1t), not in a handler.
func (p *Program) ToEL0() {
	next := p.NewLabel()
	p.Mrs(a64.X16, a64.DAIF)
	p.Mrs(a64.X17, nzcv)
	p.Orr(a64.X16, a64.X16, a64.X17) // SPSR.M = 0: EL0t
	p.Msr(a64.SPSR_EL1, a64.X16)
	p.Adr(a64.X17, next)
	p.Msr(a64.ELR_EL1, a64.X17)
	p.Eret()
	p.Bind(next)
}

// ToEL1 continues at the next instruction in EL1t: an SVC the runtime
// answers by returning to the caller at EL1. It keeps every register and
// the flags. At EL1 it is an error the runtime reports (an SVC from EL1t
// is not the runtime's).
func (p *Program) ToEL1() { p.Svc(SvcToEL1) }

// HandlerCount is the memory operand of this vCPU's 32-bit count of runs
// of the handler installed for vector.
func (p *Program) HandlerCount(vector int) a64.Mem {
	if vector < 0 || vector >= NumVectors {
		p.g.recordErr(fmt.Errorf("a64guest: handler count: vector %d is not in [0, %d)", vector, NumVectors))
		vector = 0
	}
	return a64.Ptr(a64.X28, int64(HandlerCounts+4*vector))
}

var nzcv, _ = a64.Sys("NZCV")

// ProbeKind is the access Program.Probe makes.
type ProbeKind int

// Probe accesses.
const (
	ProbeRead  ProbeKind = iota // LDR X17, [addr]
	ProbeWrite                  // STR XZR, [addr]
	ProbeFetch                  // BLR addr: the target must return (RET)
)

// Probe makes one access of kind to the address in addr at the current
// EL and leaves in result 0 if it completed, or the ESR of the exception
// it took (ExpectException's record at X28+Exc* has the rest: FAR, ELR).
// page_fault_test-style specs compare result with the walker's
// prediction. It clobbers X16, X17, X30 (a fetch) and the flags are kept.
func (p *Program) Probe(kind ProbeKind, addr, result a64.Reg) {
	fault := p.NewLabel()
	done := p.NewLabel()
	p.ExpectException(fault)
	switch kind {
	case ProbeRead:
		p.Ldr(a64.X17, a64.Ptr(addr, 0))
	case ProbeWrite:
		p.Str(a64.XZR, a64.Ptr(addr, 0))
	case ProbeFetch:
		p.Blr(addr)
	default:
		p.g.recordErr(fmt.Errorf("a64guest: probe kind %d", kind))
	}
	p.Str(a64.XZR, a64.Ptr(a64.X28, ExcFixup)) // disarm: no exception came
	p.Movz(result, 0, 0)
	p.B(done)
	p.Bind(fault)
	p.Ldr(result, a64.Ptr(a64.X28, ExcESR))
	p.Bind(done)
}

// FlushTLB makes page-table changes the host (or the guest) made visible
// to this vCPU: DSB ISHST (the table writes are done), TLBI VMALLE1IS,
// DSB ISH, ISB. EL1 only (TLBI is undefined at EL0).
func (p *Program) FlushTLB() {
	p.Dsb(a64.ISHST)
	p.Long(tlbiVMALLE1IS)
	p.Dsb(a64.ISH)
	p.Isb()
}
