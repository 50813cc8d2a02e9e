package corpus

import (
	"fmt"
	"math/rand"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/arch/x86/x86asm"
)

// Registers random programs may write: never RSP (the stack), RBP (the data
// pointer) or R15 (reserved by the standard guest).
var randRegs = []asm.Reg{asm.RAX, asm.RBX, asm.RCX, asm.RDX, asm.RSI, asm.RDI,
	asm.R8, asm.R9, asm.R10, asm.R11, asm.R12, asm.R13, asm.R14}

// condReads is the flags each condition code reads.
var condReads = [16]uint64{
	hv.FlagOF, hv.FlagOF, hv.FlagCF, hv.FlagCF, hv.FlagZF, hv.FlagZF,
	hv.FlagCF | hv.FlagZF, hv.FlagCF | hv.FlagZF, hv.FlagSF, hv.FlagSF, hv.FlagPF, hv.FlagPF,
	hv.FlagSF | hv.FlagOF, hv.FlagSF | hv.FlagOF, hv.FlagZF | hv.FlagSF | hv.FlagOF, hv.FlagZF | hv.FlagSF | hv.FlagOF,
}

// generator emits one random program while tracking which arithmetic
// flags hold architecturally undefined values, so that no instruction it
// emits reads an undefined flag (a real CPU and the reference would
// legitimately disagree) and the final comparison masks what is left.
type generator struct {
	rnd       *rand.Rand
	a         *asm.Assembler
	undefined uint64
	undefFn   UndefinedFlagsFunc
	// avoid is a register the current loop body must not write.
	avoid asm.Reg
}

// Random returns a seeded random program of about n instructions over the
// subset: ALU, unary, shift/rotate, multiply, guarded divide, bit, exchange,
// locked memory, conditional, bounded-loop and stack forms. Memory accesses
// stay inside the data window; loops are bounded; flags are read only when
// defined. undefined supplies the architecture's undefined-flag rules.
func Random(rnd *rand.Rand, n int, name string, undefined UndefinedFlagsFunc) Program {
	// Generate once to learn the final undefined flags; Build replays the
	// same choices from a copy of the seed.
	seed := rnd.Int63()
	probe := &generator{rnd: rand.New(rand.NewSource(seed)), a: asm.New(0), undefFn: undefined}
	probe.body(n)
	defined := uint64(hv.FlagsArith|hv.FlagDF) &^ probe.undefined
	return Program{
		Name:         name,
		DefinedFlags: defined | definedMarker,
		Build: func(a *asm.Assembler) {
			g := &generator{rnd: rand.New(rand.NewSource(seed)), a: a, undefFn: undefined}
			g.body(n)
		},
	}
}

// definedMarker makes DefinedFlags non-zero even when no flag is defined.
const definedMarker = 1 << 1

func (g *generator) reg(size int) asm.Reg {
	for {
		r := randRegs[g.rnd.Intn(len(randRegs))]
		if r != g.avoid {
			return r.As(size)
		}
	}
}

func (g *generator) size() int { return []int{1, 2, 4, 8}[g.rnd.Intn(4)] }

// mem is an operand inside the data window: RBP-relative, aligned or not.
func (g *generator) mem(size int) asm.Mem {
	lo := -DataPtrOffset
	hi := DataLen - DataPtrOffset - size
	return asm.Q(asm.RBP, int32(lo+g.rnd.Intn(hi-lo+1))).WithSize(size)
}

func (g *generator) imm(size int) asm.Imm {
	v := int64(RandValue(g.rnd))
	switch size {
	case 1:
		return asm.Imm(int8(v))
	case 2:
		return asm.Imm(int16(v))
	}
	return asm.Imm(int32(v))
}

// flags records what an instruction did to the flags: it writes the
// arithmetic flags in writes, of which undef end up undefined.
func (g *generator) flags(writes, undef uint64) {
	g.undefined = g.undefined&^writes | undef
}

func (g *generator) readable(m uint64) bool { return g.undefined&m == 0 }

func (g *generator) body(n int) {
	for i := 0; i < n; i++ {
		g.one(n - i)
	}
}

type aluForm struct {
	op   x86asm.Op
	emit func(a *asm.Assembler, d, s asm.Operand)
	cf   bool // reads CF
}

var aluForms = []aluForm{
	{x86asm.ADD, (*asm.Assembler).Add, false}, {x86asm.OR, (*asm.Assembler).Or, false},
	{x86asm.ADC, (*asm.Assembler).Adc, true}, {x86asm.SBB, (*asm.Assembler).Sbb, true},
	{x86asm.AND, (*asm.Assembler).And, false}, {x86asm.SUB, (*asm.Assembler).Sub, false},
	{x86asm.XOR, (*asm.Assembler).Xor, false}, {x86asm.CMP, (*asm.Assembler).Cmp, false},
}

type shiftForm struct {
	op     x86asm.Op
	emit   func(a *asm.Assembler, d, c asm.Operand)
	rotate bool // writes only CF and OF
	cf     bool // reads CF
}

var shiftForms = []shiftForm{
	{x86asm.SHL, (*asm.Assembler).Shl, false, false}, {x86asm.SHR, (*asm.Assembler).Shr, false, false},
	{x86asm.SAR, (*asm.Assembler).Sar, false, false}, {x86asm.ROL, (*asm.Assembler).Rol, true, false},
	{x86asm.ROR, (*asm.Assembler).Ror, true, false}, {x86asm.RCL, (*asm.Assembler).Rcl, true, true},
	{x86asm.RCR, (*asm.Assembler).Rcr, true, true},
}

const allArith = uint64(hv.FlagsArith)

func (g *generator) undef(op x86asm.Op, count, size int) uint64 {
	if g.undefFn == nil {
		return allArith
	}
	return g.undefFn(op, count, size)
}

// one emits one instruction (or a small group); left bounds nesting.
func (g *generator) one(left int) {
	a := g.a
	sz := g.size()
	switch k := g.rnd.Intn(20); {
	case k < 5: // ALU
		f := aluForms[g.rnd.Intn(len(aluForms))]
		if f.cf && !g.readable(hv.FlagCF) {
			f = aluForms[0]
		}
		d, s := g.aluOperands(sz)
		f.emit(a, d, s)
		g.flags(allArith, g.undef(f.op, 0, sz))
	case k < 7: // unary
		r := g.rmOperand(sz)
		switch g.rnd.Intn(4) {
		case 0:
			a.Inc(r)
			g.flags(allArith&^hv.FlagCF, 0)
		case 1:
			a.Dec(r)
			g.flags(allArith&^hv.FlagCF, 0)
		case 2:
			a.Neg(r)
			g.flags(allArith, 0)
		default:
			a.Not(r)
		}
	case k < 9: // shifts and rotates by an immediate count
		f := shiftForms[g.rnd.Intn(len(shiftForms))]
		if f.cf && !g.readable(hv.FlagCF) {
			f = shiftForms[0]
		}
		mask := 31
		if sz == 8 {
			mask = 63
		}
		c := 1 + g.rnd.Intn(mask)
		f.emit(a, g.rmOperand(sz), asm.Imm(c))
		if f.rotate {
			// OF is defined only for a count of one; for 8- and 16-bit
			// rotates the count is reduced modulo the width (plus one
			// through CF), whose corner cases are compared only at 32/64.
			undef := uint64(hv.FlagOF)
			if c == 1 {
				undef = 0
			}
			if sz < 4 {
				undef |= hv.FlagCF
			}
			g.flags(hv.FlagCF|hv.FlagOF, undef)
			return
		}
		g.flags(allArith, g.undef(f.op, c, sz))
	case k < 10: // shift by CL: the count is dynamic, so assume the worst
		f := shiftForms[g.rnd.Intn(3)]
		f.emit(a, g.rmOperand(sz), asm.CL)
		g.flags(0, allArith)
	case k < 11: // multiply
		if sz == 1 {
			sz = 4
		}
		switch g.rnd.Intn(3) {
		case 0:
			a.Imul(g.reg(sz), g.rmOperand(sz))
		case 1:
			a.Imul3(g.reg(sz), g.rmOperand(sz), int32(g.imm(sz)))
		default:
			if g.avoid == asm.RDX || g.avoid == asm.RAX {
				a.Imul(g.reg(sz), g.rmOperand(sz))
				break
			}
			a.Mul(g.rmOperand(sz))
		}
		g.flags(allArith, g.undef(x86asm.IMUL, 0, sz))
	case k < 12: // guarded divide: RDX:RAX / (src | 1) with RDX zeroed
		if g.avoid == asm.RDX || g.avoid == asm.RAX || g.avoid == asm.RBX {
			return
		}
		if sz == 1 {
			sz = 8
		}
		a.Xor(asm.EDX, asm.EDX)
		a.Or(asm.RBX, asm.Imm(1))
		a.Div(asm.RBX.As(sz))
		g.flags(allArith, allArith)
	case k < 13: // bit tests
		if sz == 1 {
			sz = 4
		}
		bit := asm.Imm(g.rnd.Intn(8 * sz))
		switch g.rnd.Intn(4) {
		case 0:
			a.Bt(g.rmOperand(sz), bit)
		case 1:
			a.Bts(g.rmOperand(sz), bit)
		case 2:
			a.Btr(g.rmOperand(sz), bit)
		default:
			a.Btc(g.rmOperand(sz), bit)
		}
		g.flags(hv.FlagCF|hv.FlagOF|hv.FlagSF|hv.FlagAF|hv.FlagPF, g.undef(x86asm.BT, 0, sz))
	case k < 14: // exchanges, locked memory updates
		switch g.rnd.Intn(4) {
		case 0:
			a.Xchg(g.reg(sz), g.reg(sz))
		case 1:
			a.Xchg(g.mem(sz), g.reg(sz))
		case 2:
			a.Lock().Xadd(g.mem(sz), g.reg(sz))
			g.flags(allArith, 0)
		default:
			if g.avoid == asm.RAX {
				return
			}
			a.Lock().Cmpxchg(g.mem(sz), g.reg(sz))
			g.flags(allArith, 0)
		}
	case k < 16: // moves that leave the flags alone
		switch g.rnd.Intn(5) {
		case 0:
			a.Mov(g.reg(sz), g.mem(sz))
		case 1:
			a.Mov(g.mem(sz), g.reg(sz))
		case 2:
			a.Movzx(g.reg(4), g.mem([]int{1, 2}[g.rnd.Intn(2)]))
		case 3:
			a.Movsx(g.reg(8), g.reg([]int{1, 2}[g.rnd.Intn(2)]))
		default:
			a.Lea(g.reg(8), asm.Q(asm.RBP, int32(g.rnd.Intn(256))).Idx(g.reg(8), []uint8{1, 2, 4, 8}[g.rnd.Intn(4)]))
		}
	case k < 18: // consumers of defined flags
		c := asm.Cond(g.rnd.Intn(16))
		if !g.readable(condReads[c]) {
			return
		}
		switch g.rnd.Intn(3) {
		case 0:
			a.Setcc(c, g.reg(1))
		case 1:
			if sz == 1 {
				sz = 8
			}
			a.Cmovcc(c, g.reg(sz), g.rmOperand(sz))
		default:
			skip := a.NewLabel()
			a.Jcc(c, skip)
			d, s := g.aluOperands(sz)
			a.Mov(d, s)
			a.Bind(skip)
		}
	case k < 19: // a bounded loop with a body that leaves its counter alone
		if g.avoid != asm.NoReg || left < 4 {
			return
		}
		g.avoid = asm.RCX
		a.Mov(asm.ECX, asm.Imm(1+g.rnd.Intn(6)))
		top := a.Here()
		for j := 0; j < 1+g.rnd.Intn(3); j++ {
			g.one(0)
		}
		a.Dec(asm.ECX)
		g.flags(allArith&^hv.FlagCF, 0)
		a.Jcc(asm.CondNE, top)
		g.avoid = asm.NoReg
	default: // balanced stack traffic
		r := g.reg(8)
		a.Push(r)
		a.Push(g.imm(4))
		a.Pop(g.reg(8))
		a.Pop(g.reg(8))
	}
}

// rmOperand is a register or a data-window location.
func (g *generator) rmOperand(size int) asm.Operand {
	if g.rnd.Intn(3) == 0 {
		return g.mem(size)
	}
	return g.reg(size)
}

// aluOperands picks destination and source: r,r / r,imm / r,m / m,r / m,imm.
func (g *generator) aluOperands(size int) (asm.Operand, asm.Operand) {
	switch g.rnd.Intn(5) {
	case 0:
		return g.reg(size), g.reg(size)
	case 1:
		return g.reg(size), g.imm(size)
	case 2:
		return g.reg(size), g.mem(size)
	case 3:
		return g.mem(size), g.reg(size)
	}
	return g.mem(size), g.imm(size)
}

// String names a program for reports.
func (p Program) String() string { return fmt.Sprintf("program %s", p.Name) }
