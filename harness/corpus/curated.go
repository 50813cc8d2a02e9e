package corpus

import (
	"fmt"
	"math/rand"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/arch/x86/x86asm"
)

// Register and memory operands per size (bytes) for the curated forms.
var (
	regA  = map[int]asm.Reg{1: asm.AL, 2: asm.AX, 4: asm.EAX, 8: asm.RAX}
	regB  = map[int]asm.Reg{1: asm.BL, 2: asm.BX, 4: asm.EBX, 8: asm.RBX}
	regD  = map[int]asm.Reg{1: asm.DL, 2: asm.DX, 4: asm.EDX, 8: asm.RDX}
	sizes = []int{1, 2, 4, 8}
)

// memAt is the memory operand of the generated forms: inside the data window.
func memAt(size int) asm.Mem { return asm.Q(asm.RBP, 8).WithSize(size) }

func shiftMask(size int) uint64 {
	if size == 8 {
		return 0x3f
	}
	return 0x1f
}

// Curated is the differential table: every instruction class of the
// subset, in every size and operand form the harness assembler emits.
func Curated() []Program {
	var ps []Program
	add := func(name string, op x86asm.Op, size int, build func(a *asm.Assembler)) *Program {
		ps = append(ps, Program{Name: name, Op: op, Size: size, Build: build})
		return &ps[len(ps)-1]
	}
	type binop struct {
		name string
		op   x86asm.Op
		emit func(a *asm.Assembler, d, s asm.Operand)
	}
	alus := []binop{
		{"add", x86asm.ADD, (*asm.Assembler).Add}, {"or", x86asm.OR, (*asm.Assembler).Or},
		{"adc", x86asm.ADC, (*asm.Assembler).Adc}, {"sbb", x86asm.SBB, (*asm.Assembler).Sbb},
		{"and", x86asm.AND, (*asm.Assembler).And}, {"sub", x86asm.SUB, (*asm.Assembler).Sub},
		{"xor", x86asm.XOR, (*asm.Assembler).Xor}, {"cmp", x86asm.CMP, (*asm.Assembler).Cmp},
		{"test", x86asm.TEST, (*asm.Assembler).Test},
	}
	for _, o := range alus {
		for _, sz := range sizes {
			o, sz := o, sz
			add(fmt.Sprintf("%s/r%d,r", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, regA[sz], regB[sz]) })
			add(fmt.Sprintf("%s/r%d,imm", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, regA[sz], asm.Imm(-0x7f)) })
			add(fmt.Sprintf("%s/m%d,r", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, memAt(sz), regB[sz]) })
			add(fmt.Sprintf("%s/r%d,m", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, regA[sz], memAt(sz)) })
			add(fmt.Sprintf("%s/m%d,imm", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, memAt(sz), asm.Imm(0x55)) })
		}
	}
	type unop struct {
		name string
		op   x86asm.Op
		emit func(a *asm.Assembler, x asm.Operand)
	}
	for _, o := range []unop{{"inc", x86asm.INC, (*asm.Assembler).Inc}, {"dec", x86asm.DEC, (*asm.Assembler).Dec},
		{"neg", x86asm.NEG, (*asm.Assembler).Neg}, {"not", x86asm.NOT, (*asm.Assembler).Not}} {
		for _, sz := range sizes {
			o, sz := o, sz
			add(fmt.Sprintf("%s/r%d", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, regA[sz]) })
			add(fmt.Sprintf("%s/m%d", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, memAt(sz)) })
		}
	}
	smallRDX := func(r *hv.Regs, rnd *rand.Rand) {
		if rnd.Intn(2) == 0 {
			r.RDX = 0
		} else {
			r.RDX = uint64(rnd.Intn(3))
		}
		if rnd.Intn(3) == 0 {
			r.RAX &= 0xff
		}
	}
	for _, o := range []unop{{"mul", x86asm.MUL, (*asm.Assembler).Mul}, {"imul1", x86asm.IMUL, (*asm.Assembler).Imul1},
		{"div", x86asm.DIV, (*asm.Assembler).Div}, {"idiv", x86asm.IDIV, (*asm.Assembler).Idiv}} {
		for _, sz := range sizes {
			o, sz := o, sz
			p := add(fmt.Sprintf("%s/r%d", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, regB[sz]) })
			p.Fix = smallRDX
			p = add(fmt.Sprintf("%s/m%d", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, memAt(sz)) })
			p.Fix = smallRDX
		}
	}
	for _, sz := range []int{2, 4, 8} {
		sz := sz
		add(fmt.Sprintf("imul2/r%d", sz*8), x86asm.IMUL, sz, func(a *asm.Assembler) { a.Imul(regA[sz], regB[sz]) })
		add(fmt.Sprintf("imul3/r%d", sz*8), x86asm.IMUL, sz, func(a *asm.Assembler) { a.Imul3(regA[sz], regB[sz], -300) })
		add(fmt.Sprintf("imul2/m%d", sz*8), x86asm.IMUL, sz, func(a *asm.Assembler) { a.Imul(regA[sz], memAt(sz)) })
	}
	type shop struct {
		name string
		op   x86asm.Op
		emit func(a *asm.Assembler, d, c asm.Operand)
	}
	for _, o := range []shop{{"shl", x86asm.SHL, (*asm.Assembler).Shl}, {"shr", x86asm.SHR, (*asm.Assembler).Shr},
		{"sar", x86asm.SAR, (*asm.Assembler).Sar}, {"rol", x86asm.ROL, (*asm.Assembler).Rol},
		{"ror", x86asm.ROR, (*asm.Assembler).Ror}, {"rcl", x86asm.RCL, (*asm.Assembler).Rcl},
		{"rcr", x86asm.RCR, (*asm.Assembler).Rcr}} {
		for _, sz := range sizes {
			o, sz := o, sz
			p := add(fmt.Sprintf("%s/r%d,cl", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, regA[sz], asm.CL) })
			p.Count = func(r *hv.Regs) int { return int(r.RCX & shiftMask(sz)) }
			p.Fix = func(r *hv.Regs, rnd *rand.Rand) { r.RCX = uint64(rnd.Intn(80)) }
			p = add(fmt.Sprintf("%s/m%d,cl", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, memAt(sz), asm.CL) })
			p.Count = func(r *hv.Regs) int { return int(r.RCX & shiftMask(sz)) }
			p.Fix = func(r *hv.Regs, rnd *rand.Rand) { r.RCX = uint64(rnd.Intn(80)) }
			for _, k := range []int{1, 3} {
				k := k
				p = add(fmt.Sprintf("%s/r%d,%d", o.name, sz*8, k), o.op, sz, func(a *asm.Assembler) { o.emit(a, regA[sz], asm.Imm(k)) })
				p.Count = func(*hv.Regs) int { return k }
			}
		}
	}
	for _, sz := range []int{2, 4, 8} {
		sz := sz
		for _, op := range []x86asm.Op{x86asm.SHLD, x86asm.SHRD} {
			op := op
			emit := (*asm.Assembler).Shld
			if op == x86asm.SHRD {
				emit = (*asm.Assembler).Shrd
			}
			p := add(fmt.Sprintf("%v/r%d,cl", op, sz*8), op, sz, func(a *asm.Assembler) { emit(a, regA[sz], regB[sz], asm.CL) })
			p.Count = func(r *hv.Regs) int { return int(r.RCX & shiftMask(sz)) }
			p.Fix = func(r *hv.Regs, rnd *rand.Rand) {
				r.RCX = uint64(rnd.Intn(70))
				if sz == 2 {
					r.RCX %= 17
				}
			}
			p = add(fmt.Sprintf("%v/r%d,5", op, sz*8), op, sz, func(a *asm.Assembler) { emit(a, regA[sz], regB[sz], asm.Imm(5)) })
			p.Count = func(*hv.Regs) int { return 5 }
		}
	}
	bitOffset := func(r *hv.Regs, rnd *rand.Rand) { r.RBX = uint64(int64(rnd.Intn(512) - 256)) }
	for _, o := range []binop{{"bt", x86asm.BT, (*asm.Assembler).Bt}, {"bts", x86asm.BTS, (*asm.Assembler).Bts},
		{"btr", x86asm.BTR, (*asm.Assembler).Btr}, {"btc", x86asm.BTC, (*asm.Assembler).Btc}} {
		for _, sz := range []int{2, 4, 8} {
			o, sz := o, sz
			add(fmt.Sprintf("%s/r%d,r", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, regA[sz], regB[sz]) })
			add(fmt.Sprintf("%s/r%d,imm", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, regA[sz], asm.Imm(13)) })
			p := add(fmt.Sprintf("%s/m%d,r", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, memAt(sz), regB[sz]) })
			p.Fix = bitOffset
			add(fmt.Sprintf("%s/m%d,imm", o.name, sz*8), o.op, sz, func(a *asm.Assembler) { o.emit(a, memAt(sz), asm.Imm(5)) })
		}
	}
	zeroSome := func(r *hv.Regs, rnd *rand.Rand) {
		if rnd.Intn(3) == 0 {
			r.RBX = 0
		}
	}
	for _, sz := range []int{2, 4, 8} {
		sz := sz
		p := add(fmt.Sprintf("bsf/r%d", sz*8), x86asm.BSF, sz, func(a *asm.Assembler) { a.Bsf(regA[sz], regB[sz]) })
		p.Fix = zeroSome
		p = add(fmt.Sprintf("bsr/r%d", sz*8), x86asm.BSR, sz, func(a *asm.Assembler) { a.Bsr(regA[sz], regB[sz]) })
		p.Fix = zeroSome
	}
	add("bswap/r32", 0, 4, func(a *asm.Assembler) { a.Bswap(asm.EAX) })
	add("bswap/r64", 0, 8, func(a *asm.Assembler) { a.Bswap(asm.RAX) })
	add("movzx/r32,r8", 0, 4, func(a *asm.Assembler) { a.Movzx(asm.EAX, asm.BL) })
	add("movzx/r64,m16", 0, 8, func(a *asm.Assembler) { a.Movzx(asm.RAX, asm.W(asm.RBP, 6)) })
	add("movsx/r16,r8", 0, 2, func(a *asm.Assembler) { a.Movsx(asm.AX, asm.BL) })
	add("movsx/r64,m8", 0, 8, func(a *asm.Assembler) { a.Movsx(asm.RAX, asm.B(asm.RBP, 3)) })
	add("movsxd/r64,r32", 0, 8, func(a *asm.Assembler) { a.Movsxd(asm.RAX, asm.EBX) })
	add("mov/r8,m", 0, 1, func(a *asm.Assembler) { a.Mov(asm.AL, asm.B(asm.RBP, 1)) })
	add("mov/r16,imm", 0, 2, func(a *asm.Assembler) { a.Mov(asm.AX, asm.Imm(0x1234)) })
	add("mov/r32,imm", 0, 4, func(a *asm.Assembler) { a.Mov(asm.EAX, asm.Imm(-2)) })
	add("mov/m64,imm", 0, 8, func(a *asm.Assembler) { a.Mov(asm.Q(asm.RBP, -8), asm.Imm(-2)) })
	add("movabs", 0, 8, func(a *asm.Assembler) { a.MovAbs(asm.RAX, 0x1122334455667788) })
	add("lea/r64", 0, 8, func(a *asm.Assembler) { a.Lea(asm.RAX, asm.Q(asm.RBX, 0x10).Idx(asm.RCX, 8)) })
	add("lea/r32", 0, 4, func(a *asm.Assembler) { a.Lea(asm.EAX, asm.Q(asm.RBX, -0x10).Idx(asm.RCX, 2)) })
	for _, sz := range sizes {
		sz := sz
		p := add(fmt.Sprintf("cmpxchg/r%d", sz*8), x86asm.CMPXCHG, sz, func(a *asm.Assembler) { a.Cmpxchg(regD[sz], regB[sz]) })
		p.Fix = func(r *hv.Regs, rnd *rand.Rand) {
			if rnd.Intn(2) == 0 {
				r.RAX = r.RDX
			}
		}
		p = add(fmt.Sprintf("lock-cmpxchg/m%d", sz*8), x86asm.CMPXCHG, sz, func(a *asm.Assembler) { a.Lock().Cmpxchg(memAt(sz), regB[sz]) })
		p.Fix = func(r *hv.Regs, rnd *rand.Rand) {
			if rnd.Intn(2) == 0 {
				r.RAX = 0
			}
		}
		add(fmt.Sprintf("xadd/r%d", sz*8), x86asm.XADD, sz, func(a *asm.Assembler) { a.Xadd(regD[sz], regB[sz]) })
		add(fmt.Sprintf("lock-xadd/m%d", sz*8), x86asm.XADD, sz, func(a *asm.Assembler) { a.Lock().Xadd(memAt(sz), regB[sz]) })
		add(fmt.Sprintf("xchg/r%d", sz*8), 0, sz, func(a *asm.Assembler) { a.Xchg(regD[sz], regB[sz]) })
		add(fmt.Sprintf("xchg/m%d", sz*8), 0, sz, func(a *asm.Assembler) { a.Xchg(memAt(sz), regB[sz]) })
		add(fmt.Sprintf("lock-add/m%d", sz*8), x86asm.ADD, sz, func(a *asm.Assembler) { a.Lock().Add(memAt(sz), regB[sz]) })
	}
	for cc := asm.Cond(0); cc < 16; cc++ {
		cc := cc
		add("setcc/"+cc.String(), 0, 1, func(a *asm.Assembler) { a.Setcc(cc, asm.AL) })
		add("cmovcc32/"+cc.String(), 0, 4, func(a *asm.Assembler) { a.Cmovcc(cc, asm.EAX, asm.EBX) })
		add("cmovcc64/"+cc.String(), 0, 8, func(a *asm.Assembler) { a.Cmovcc(cc, asm.RAX, asm.Q(asm.RBP, 0)) })
		add("jcc/"+cc.String(), 0, 8, func(a *asm.Assembler) {
			l := a.NewLabel()
			a.Jcc(cc, l)
			a.Mov(asm.RAX, asm.Imm(1))
			a.Bind(l)
		})
	}
	add("cbw", 0, 2, func(a *asm.Assembler) { a.Cbw() })
	add("cwde", 0, 4, func(a *asm.Assembler) { a.Cwde() })
	add("cdqe", 0, 8, func(a *asm.Assembler) { a.Cdqe() })
	add("cwd", 0, 2, func(a *asm.Assembler) { a.Cwd() })
	add("cdq", 0, 4, func(a *asm.Assembler) { a.Cdq() })
	add("cqo", 0, 8, func(a *asm.Assembler) { a.Cqo() })
	add("stc-cmc-clc", 0, 8, func(a *asm.Assembler) { a.Stc(); a.Cmc(); a.Setcc(asm.CondC, asm.BL); a.Clc() })
	add("pushf-popf", 0, 8, func(a *asm.Assembler) { a.Pushfq(); a.Pop(asm.RAX); a.Push(asm.RBX); a.Popfq() })
	add("push-pop", 0, 8, func(a *asm.Assembler) {
		a.Push(asm.RAX)
		a.Push(asm.Imm(-5))
		a.Push(asm.Q(asm.RBP, 0))
		a.Pop(asm.Q(asm.RBP, 16))
		a.Pop(asm.RCX)
		a.Pop(asm.RDX)
	})
	add("call-ret", 0, 8, func(a *asm.Assembler) {
		f, end := a.NewLabel(), a.NewLabel()
		a.Call(f)
		a.Jmp(end)
		a.Bind(f)
		a.Mov(asm.RAX, asm.Q(asm.RSP, 0))
		a.RetImm(0)
		a.Bind(end)
	})
	add("loop", 0, 8, func(a *asm.Assembler) {
		a.And(asm.RCX, asm.Imm(15))
		a.Inc(asm.RCX)
		l := a.Here()
		a.Add(asm.RAX, asm.RCX)
		a.Loop(l)
	})
	add("jrcxz", 0, 8, func(a *asm.Assembler) {
		l := a.NewLabel()
		a.Jrcxz(l)
		a.Mov(asm.RAX, asm.Imm(1))
		a.Bind(l)
	})
	add("lahf-sahf", 0, 8, func(a *asm.Assembler) { a.Byte(0x9f); a.Mov(asm.BL, asm.DL); a.Byte(0x9e) })
	strFix := func(r *hv.Regs, rnd *rand.Rand) {
		r.RCX = uint64(rnd.Intn(24))
		r.RFLAGS &^= hv.FlagDF
		if rnd.Intn(3) == 0 {
			r.RFLAGS |= hv.FlagDF
		}
	}
	type strop struct {
		name string
		emit func(a *asm.Assembler)
	}
	for _, o := range []strop{
		{"rep-stosb", func(a *asm.Assembler) { a.Rep().Stosb() }}, {"rep-stosq", func(a *asm.Assembler) { a.Rep().Stosq() }},
		{"rep-movsb", func(a *asm.Assembler) { a.Rep().Movsb() }}, {"rep-movsd", func(a *asm.Assembler) { a.Rep().Movsd() }},
		{"lodsw", func(a *asm.Assembler) { a.Lodsw() }}, {"rep-lodsq", func(a *asm.Assembler) { a.Rep().Lodsq() }},
		{"repe-cmpsb", func(a *asm.Assembler) { a.Rep().Cmpsb() }}, {"repne-scasb", func(a *asm.Assembler) { a.Repne().Scasb() }},
		{"repe-scasw", func(a *asm.Assembler) { a.Rep().Scasw() }}, {"cmpsq", func(a *asm.Assembler) { a.Cmpsq() }},
	} {
		p := add(o.name, 0, 8, o.emit)
		p.Fix = strFix
	}
	add("outsb", 0, 8, func(a *asm.Assembler) { a.Mov(asm.DX, asm.Imm(0x3f8)); a.Outsb() })
	add("rep-outsw", 0, 8, func(a *asm.Assembler) { a.Mov(asm.DX, asm.Imm(0x3f8)); a.Mov(asm.ECX, asm.Imm(3)); a.Rep().Outsw() })
	add("int3", 0, 8, func(a *asm.Assembler) { a.Int3() })
	// kvm_pvm turns INT n (n != 3) from ring 3 into #UD: a host deviation.
	add("int-0x40", 0, 8, func(a *asm.Assembler) { a.Int(0x40) }).KVMDeviation = "kvm_pvm raises #UD for INT n at CPL3"
	add("int-0x80", 0, 8, func(a *asm.Assembler) { a.Int(0x80) }).KVMDeviation = "kvm_pvm raises #UD for INT n at CPL3"
	add("ud2", 0, 8, func(a *asm.Assembler) { a.Ud2() })
	add("hlt-cpl3", 0, 8, func(a *asm.Assembler) { a.Hlt() })
	add("cli-cpl3", 0, 8, func(a *asm.Assembler) { a.Cli() })
	add("rdmsr-cpl3", 0, 8, func(a *asm.Assembler) { a.Rdmsr() })
	add("mov-cr3-cpl3", 0, 8, func(a *asm.Assembler) { a.MovFromCR(asm.RAX, asm.CR3) })
	add("div0", x86asm.DIV, 8, func(a *asm.Assembler) { a.Xor(asm.EBX, asm.EBX); a.Div(asm.RBX) })
	add("noncanonical-read", 0, 8, func(a *asm.Assembler) {
		a.MovAbs(asm.RBX, 0x0000800000000000)
		a.Mov(asm.RAX, asm.Q(asm.RBX, 0))
	})
	add("straddle-rw", 0, 8, func(a *asm.Assembler) {
		// An 8-byte read across the data window's page boundary.
		a.Lea(asm.RBX, asm.Q(asm.RBP, DataPageBoundary-DataPtrOffset-3))
		a.Mov(asm.RAX, asm.Q(asm.RBX, 0))
		a.Mov(asm.Q(asm.RBX, -0xd00), asm.RAX)
	})
	return ps
}
