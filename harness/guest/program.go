package guest

import (
	"fmt"
	"runtime"

	"github.com/kvmspec/kvmspec/harness/asm"
)

// Program is test code for the standard guest: an assembler at the code area (CodeBase by default)
// plus the ucall emitters. R15 holds the vCPU's ucall page and is reserved;
// RDI holds the vCPU index at entry; RSP points at the vCPU's stack.
type Program struct {
	*asm.Assembler
	g *Guest
}

// Program starts a new test program at the code area.
func (g *Guest) Program() *Program {
	a := asm.New(g.cfg.Layout.Code)
	// Listing and error locations should name the test's line, not ours.
	a.SkipCallerPackage("github.com/kvmspec/kvmspec/harness/guest")
	return &Program{Assembler: a, g: g}
}

func (p *Program) site(cmd UcallCmd, skip int, msg, format string) uint64 {
	_, file, line, _ := runtime.Caller(skip + 1)
	return p.g.addSite(cmd, file, line, msg, format)
}

// ucall emits a call of cmd with args: each argument is stored into the
// ucall page and the port write (or MMIO write) hands it to the host. It
// changes no register and no flag.
func (p *Program) ucall(cmd UcallCmd, site uint64, args []asm.Operand) {
	if len(args) > MaxUcallArgs {
		args = args[:MaxUcallArgs]
		p.g.recordErr(fmt.Errorf("ucall %s: more than %d arguments", cmd, MaxUcallArgs))
	}
	for i, a := range args {
		dst := asm.Q(asm.R15, int32(ucArgs+8*i))
		switch v := a.(type) {
		case asm.Reg:
			if v.Size() != 8 {
				v = v.As(8)
			}
			p.Mov(dst, v)
		case asm.Imm:
			if int64(v) != int64(int32(v)) {
				p.g.recordErr(fmt.Errorf("ucall %s argument %d: immediate %#x does not fit in 32 bits; pass it in a register", cmd, i, int64(v)))
				continue
			}
			p.Mov(dst, v)
		default:
			p.g.recordErr(fmt.Errorf("ucall %s argument %d: only registers and immediates can be passed", cmd, i))
		}
	}
	p.Mov(asm.Q(asm.R15, ucNArgs), asm.Imm(len(args)))
	p.Mov(asm.Q(asm.R15, ucSite), asm.Imm(int64(site)))
	p.Mov(asm.Q(asm.R15, ucCmd), asm.Imm(int64(cmd)))
	if p.g.cfg.UcallMMIO {
		// R15 + disp lands on this vCPU's page of the unbacked window.
		p.Mov(asm.B(asm.R15, p.g.ucallMMIODisp()), asm.AL)
	} else {
		p.Out(asm.Imm(UcallPort), asm.AL)
	}
}

// Sync reports a stage and up to 7 values to the host and continues.
func (p *Program) Sync(stage int64, args ...asm.Operand) {
	p.ucall(UcallSync, p.site(UcallSync, 1, "", ""), append([]asm.Operand{asm.Imm(stage)}, args...))
}

// Done ends the test on this vCPU.
func (p *Program) Done() { p.ucall(UcallDone, p.site(UcallDone, 1, "", ""), nil) }

// Printf asks the host to print format with the values of args (Go %
// verbs; each arg is a uint64).
func (p *Program) Printf(format string, args ...asm.Operand) {
	p.ucall(UcallPrintf, p.site(UcallPrintf, 1, "", format), args)
}

// Fail reports an unconditional guest failure with msg and values.
func (p *Program) Fail(msg string, args ...asm.Operand) {
	p.ucall(UcallAssert, p.site(UcallAssert, 1, msg, ""), args)
}

// Assert checks that cond holds for the flags the previous instruction set;
// otherwise the guest reports msg with args, and the host fails the test
// naming the Go line that called Assert.
func (p *Program) Assert(cond asm.Cond, msg string, args ...asm.Operand) {
	p.assert(2, cond, msg, args)
}

func (p *Program) assert(skip int, cond asm.Cond, msg string, args []asm.Operand) {
	site := p.site(UcallAssert, skip, msg, "")
	ok := p.NewLabel()
	p.Jcc(cond, ok)
	p.ucall(UcallAssert, site, args)
	p.Bind(ok)
}

// AssertEq checks a == b (a register or memory, b a register or
// immediate) and reports both values on failure.
func (p *Program) AssertEq(a, b asm.Operand, msg string) {
	p.Cmp(a, b)
	args := []asm.Operand{}
	if r, ok := a.(asm.Reg); ok {
		args = append(args, r)
	}
	if r, ok := b.(asm.Reg); ok {
		args = append(args, r)
	} else if im, ok := b.(asm.Imm); ok {
		args = append(args, im)
	}
	p.assert(2, asm.CondE, msg, args)
}

// ExpectException arms the runtime so that the next exception resumes at
// fixup instead of failing the test; the runtime records the vector, error
// code, RIP and CR2 for LastException (and the guest can read them at
// [R15+ExcVector...]). One exception per arming.
func (p *Program) ExpectException(fixup *asm.Label) {
	p.Push(asm.RAX)
	p.MovLabel(asm.RAX, fixup)
	p.Mov(asm.Q(asm.R15, ucExcFix), asm.RAX)
	p.Pop(asm.RAX)
}

// Offsets from R15 of the last caught exception, for guest code.
const (
	ExcVector = ucExcVec
	ExcError  = ucExcErr
	ExcRIP    = ucExcRIP
	ExcCR2    = ucExcCR2
	ExcCount  = ucExcCnt
)
