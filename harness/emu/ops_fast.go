package emu

import (
	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/arch/x86/x86asm"
)

// Handlers for the commonest operand forms, chosen once at decode time
// (specialize) so the hot path does not ask per execution what kind of
// operand it has. Each computes through the same definitions as the
// general handlers (aluRes, the lazy-flags producers, setGPR, rd/wr), so
// a form and its general handler cannot disagree.

// opAlu is ADD OR ADC SBB AND SUB XOR CMP TEST (in.cc) in any operand form.
func opAlu(c *cpu, in *inst) { aluOp(c, in, int(in.cc)) }

// opAluRR is an ALU operation between two GPRs (no AH..BH).
func opAluRR(c *cpu, in *inst) {
	sz := in.size & 15
	k := int(in.cc)
	var cin uint64
	if k == aluAdc || k == aluSbb {
		cin = c.cf()
	}
	d := &c.regs[in.dst.reg&15]
	r := c.aluRes(k, *d&sizeMask[sz], c.regs[in.src.reg&15]&sizeMask[sz], cin, sz)
	if k != aluCmp && k != aluTest {
		setGPR(d, sz, r)
	}
}

// opAluRI is an ALU operation on a GPR (no AH..BH) with an immediate.
func opAluRI(c *cpu, in *inst) {
	sz := in.size & 15
	k := int(in.cc)
	var cin uint64
	if k == aluAdc || k == aluSbb {
		cin = c.cf()
	}
	d := &c.regs[in.dst.reg&15]
	r := c.aluRes(k, *d&sizeMask[sz], in.src.imm, cin, sz)
	if k != aluCmp && k != aluTest {
		setGPR(d, sz, r)
	}
}

// opAluMX is an ALU operation on memory with a GPR (no AH..BH) or an
// immediate source, without LOCK.
func opAluMX(c *cpu, in *inst) {
	sz := in.size & 15
	k := int(in.cc)
	b := in.src.imm
	if in.src.kind == kReg {
		b = c.regs[in.src.reg&15] & sizeMask[sz]
	}
	va := c.ea(&in.dst, in)
	if k == aluCmp || k == aluTest {
		c.alu(k, c.rd(va, sz), b, sz)
		return
	}
	l := c.rmwLoc(va, sz)
	c.stLoc(l, sz, c.alu(k, c.ldLoc(l, sz), b, sz))
}

// opImulRR is the two-operand IMUL of GPRs (no AH..BH).
func opImulRR(c *cpu, in *inst) {
	sz := in.size & 15
	a := sext(c.regs[in.src.reg&15], sz)
	b := sext(c.regs[in.src2.reg&15], sz)
	r, ovf := imulRes(a, b, sz)
	setGPR(&c.regs[in.dst.reg&15], sz, r)
	c.mulFlags(ovf, r, sz)
}

// opIncR and opDecR are INC and DEC of a GPR (no AH..BH).
func opIncR(c *cpu, in *inst) {
	sz := in.size & 15
	cin := c.cf()
	d := &c.regs[in.dst.reg&15]
	a := *d & sizeMask[sz]
	r := (a + 1) & sizeMask[sz]
	setGPR(d, sz, r)
	c.lz.setIncDec(lzInc, sz, r, a, cin)
}

func opDecR(c *cpu, in *inst) {
	sz := in.size & 15
	cin := c.cf()
	d := &c.regs[in.dst.reg&15]
	a := *d & sizeMask[sz]
	r := (a - 1) & sizeMask[sz]
	setGPR(d, sz, r)
	c.lz.setIncDec(lzDec, sz, r, a, cin)
}

// opMovRR, opMovRI, opMovRM and opMovMR are MOV between GPRs (no
// AH..BH), of an immediate to a GPR, of memory to a GPR and of a GPR to
// memory.
func opMovRR(c *cpu, in *inst) {
	setGPR(&c.regs[in.dst.reg&15], in.size&15, c.regs[in.src.reg&15])
}

func opMovRI(c *cpu, in *inst) {
	setGPR(&c.regs[in.dst.reg&15], in.size&15, in.src.imm)
}

func opMovRM(c *cpu, in *inst) {
	sz := in.size & 15
	setGPR(&c.regs[in.dst.reg&15], sz, c.rd(c.ea(&in.src, in), sz))
}

func opMovMR(c *cpu, in *inst) {
	sz := in.size & 15
	c.wr(c.ea(&in.dst, in), sz, c.regs[in.src.reg&15]&sizeMask[sz])
}

// opPopR is the 64-bit POP of a GPR (opPopR64's miss path).
func opPopR(c *cpu, in *inst) {
	v := c.pop8()
	c.regs[in.dst.reg&15] = v
}

// Per-operation forms of the ALU between GPRs (no AH..BH) and of a GPR
// with an immediate, picked by specialize through aluForms.

func opAddRR(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	setGPR(d, sz, c.add(*d&m, c.regs[in.src.reg&15]&m, sz))
}

func opAddRI(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	setGPR(d, sz, c.add(*d&m, in.src.imm, sz))
}

func opOrRR(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	setGPR(d, sz, c.or(*d&m, c.regs[in.src.reg&15]&m, sz))
}

func opOrRI(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	setGPR(d, sz, c.or(*d&m, in.src.imm, sz))
}

func opAndRR(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	setGPR(d, sz, c.and(*d&m, c.regs[in.src.reg&15]&m, sz))
}

func opAndRI(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	setGPR(d, sz, c.and(*d&m, in.src.imm, sz))
}

func opSubRR(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	setGPR(d, sz, c.sub(*d&m, c.regs[in.src.reg&15]&m, sz))
}

func opSubRI(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	setGPR(d, sz, c.sub(*d&m, in.src.imm, sz))
}

func opXorRR(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	setGPR(d, sz, c.xor(*d&m, c.regs[in.src.reg&15]&m, sz))
}

func opXorRI(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	setGPR(d, sz, c.xor(*d&m, in.src.imm, sz))
}

func opCmpRR(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	c.sub(*d&m, c.regs[in.src.reg&15]&m, sz)
}

func opCmpRI(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	c.sub(*d&m, in.src.imm, sz)
}

func opTestRR(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	c.and(*d&m, c.regs[in.src.reg&15]&m, sz)
}

func opTestRI(c *cpu, in *inst) {
	sz := in.size & 15
	m := sizeMask[sz]
	d := &c.regs[in.dst.reg&15]
	c.and(*d&m, in.src.imm, sz)
}

// Per-operation forms of the ALU on memory with a GPR (no AH..BH) or an
// immediate source, without LOCK.

func opAddMX(c *cpu, in *inst) {
	sz := in.size & 15
	b := in.src.imm
	if in.src.kind == kReg {
		b = c.regs[in.src.reg&15] & sizeMask[sz]
	}
	l := c.rmwLoc(c.ea(&in.dst, in), sz)
	c.stLoc(l, sz, c.add(c.ldLoc(l, sz), b, sz))
}

func opOrMX(c *cpu, in *inst) {
	sz := in.size & 15
	b := in.src.imm
	if in.src.kind == kReg {
		b = c.regs[in.src.reg&15] & sizeMask[sz]
	}
	l := c.rmwLoc(c.ea(&in.dst, in), sz)
	c.stLoc(l, sz, c.or(c.ldLoc(l, sz), b, sz))
}

func opAndMX(c *cpu, in *inst) {
	sz := in.size & 15
	b := in.src.imm
	if in.src.kind == kReg {
		b = c.regs[in.src.reg&15] & sizeMask[sz]
	}
	l := c.rmwLoc(c.ea(&in.dst, in), sz)
	c.stLoc(l, sz, c.and(c.ldLoc(l, sz), b, sz))
}

func opSubMX(c *cpu, in *inst) {
	sz := in.size & 15
	b := in.src.imm
	if in.src.kind == kReg {
		b = c.regs[in.src.reg&15] & sizeMask[sz]
	}
	l := c.rmwLoc(c.ea(&in.dst, in), sz)
	c.stLoc(l, sz, c.sub(c.ldLoc(l, sz), b, sz))
}

func opXorMX(c *cpu, in *inst) {
	sz := in.size & 15
	b := in.src.imm
	if in.src.kind == kReg {
		b = c.regs[in.src.reg&15] & sizeMask[sz]
	}
	l := c.rmwLoc(c.ea(&in.dst, in), sz)
	c.stLoc(l, sz, c.xor(c.ldLoc(l, sz), b, sz))
}

func opCmpMX(c *cpu, in *inst) {
	sz := in.size & 15
	b := in.src.imm
	if in.src.kind == kReg {
		b = c.regs[in.src.reg&15] & sizeMask[sz]
	}
	c.sub(c.rd(c.ea(&in.dst, in), sz), b, sz)
}

func opTestMX(c *cpu, in *inst) {
	sz := in.size & 15
	b := in.src.imm
	if in.src.kind == kReg {
		b = c.regs[in.src.reg&15] & sizeMask[sz]
	}
	c.and(c.rd(c.ea(&in.dst, in), sz), b, sz)
}

// aluForms[k] are the register-register, register-immediate and memory
// handlers of ALU operation k (nil: the general opAluRR/opAluRI/opAluMX).
var aluForms = [aluTest + 1][3]func(*cpu, *inst){
	aluAdd:  {opAddRR, opAddRI, opAddMX},
	aluOr:   {opOrRR, opOrRI, opOrMX},
	aluAnd:  {opAndRR, opAndRI, opAndMX},
	aluSub:  {opSubRR, opSubRI, opSubMX},
	aluXor:  {opXorRR, opXorRI, opXorMX},
	aluCmp:  {opCmpRR, opCmpRI, opCmpMX},
	aluTest: {opTestRR, opTestRI, opTestMX},
}

// aluKinds maps the ALU mnemonics to their operation (aluAdd...).
var aluKinds = map[x86asm.Op]uint8{
	x86asm.ADD: aluAdd, x86asm.OR: aluOr, x86asm.ADC: aluAdc, x86asm.SBB: aluSbb, x86asm.AND: aluAnd,
	x86asm.SUB: aluSub, x86asm.XOR: aluXor, x86asm.CMP: aluCmp, x86asm.TEST: aluTest,
}

// specialize picks a form handler for an instruction build accepted
// (in.fn is its general handler), when one applies.
func specialize(in *inst, op x86asm.Op) {
	gprDst := in.dst.kind == kReg && !in.dst.hi
	gprSrc := in.src.kind == kReg && !in.src.hi
	switch op {
	case x86asm.ADD, x86asm.OR, x86asm.ADC, x86asm.SBB, x86asm.AND, x86asm.SUB, x86asm.XOR, x86asm.CMP, x86asm.TEST:
		switch {
		case in.lock:
		case gprDst && gprSrc:
			in.fn = opAluRR
			if f := aluForms[in.cc][0]; f != nil {
				in.fn = f
			}
			if k := sized(in); k < 2 && sizedALU[in.cc][k] != nil {
				in.fn = sizedALU[in.cc][k]
			}
		case gprDst && in.src.kind == kImm:
			in.fn = opAluRI
			if f := aluForms[in.cc][1]; f != nil {
				in.fn = f
			}
			if k := sized(in); k < 2 && sizedALU[in.cc][2+k] != nil {
				in.fn = sizedALU[in.cc][2+k]
			}
		case in.dst.kind == kMem && (gprSrc || in.src.kind == kImm):
			in.fn = opAluMX
			if f := aluForms[in.cc][2]; f != nil {
				in.fn = f
			}
			if k := sized(in); k < 2 && plainMem(&in.dst, in) && sizedMem[in.cc][k] != nil {
				in.fn = sizedMem[in.cc][k]
			}
		}
	case x86asm.INC:
		if gprDst {
			in.fn = [3]func(*cpu, *inst){opIncR64, opIncR32, opIncR}[sized(in)]
		}
	case x86asm.DEC:
		if gprDst {
			in.fn = [3]func(*cpu, *inst){opDecR64, opDecR32, opDecR}[sized(in)]
		}
	case x86asm.MOV:
		switch {
		case gprDst && gprSrc:
			in.fn = [3]func(*cpu, *inst){opMovRR64, opMovRR32, opMovRR}[sized(in)]
		case gprDst && in.src.kind == kImm:
			in.fn = [3]func(*cpu, *inst){opMovRIX, opMovRIX, opMovRI}[sized(in)]
		case gprDst && in.src.kind == kMem:
			in.fn = opMovRM
			if k := sized(in); k < 2 && plainMem(&in.src, in) {
				in.fn = [2]func(*cpu, *inst){opMovRM64, opMovRM32}[k]
			}
		case in.dst.kind == kMem && gprSrc:
			in.fn = opMovMR
			if k := sized(in); k < 2 && plainMem(&in.dst, in) {
				in.fn = [2]func(*cpu, *inst){opMovMR64, opMovMR32}[k]
			}
		}
	case x86asm.IMUL:
		if gprDst && gprSrc && in.src2.kind == kReg && !in.src2.hi {
			in.fn = [3]func(*cpu, *inst){opImulRR64, opImulRR32, opImulRR}[sized(in)]
		}
	case x86asm.SHL, x86asm.SHR, x86asm.SAR:
		if gprDst && in.src.kind == kImm {
			in.fn = opShiftRI
			if k := sized(in); k < 2 {
				in.fn = sizedShifts[in.cc-shShl][k]
			}
		}
	case x86asm.JE, x86asm.JNE:
		in.fn = opJccZ
	case x86asm.JB, x86asm.JAE:
		in.fn = opJccC
	case x86asm.MOVZX:
		if gprDst && in.src.kind == kMem {
			in.fn = opMovzxRM
			if sized(in) < 2 && in.ssize == 1 && plainMem(&in.src, in) {
				in.fn = opMovzxRM8
			}
		}
	case x86asm.PUSH:
		if gprDst && in.size == 8 {
			in.fn = opPushR64
		}
	case x86asm.POP:
		if gprDst && in.size == 8 {
			in.fn = opPopR64
		}
	case x86asm.CALL:
		if in.dst.kind == kImm {
			in.fn = opCallRel64
		}
	case x86asm.RET:
		in.fn = opRet64
	}
}

// sized is the index of in's operand size among the fixed-size forms of
// ops_sized.go: 0 for 64 bits, 1 for 32, 2 for the others.
func sized(in *inst) int {
	switch in.size {
	case 8:
		return 0
	case 4:
		return 1
	}
	return 2
}

// sizedShifts are SHL, SHR and SAR (shShl...) of a GPR by an immediate
// at 64 and 32 bits.
var sizedShifts = [3][2]func(*cpu, *inst){
	{opShlRI64, opShlRI32},
	{opShrRI64, opShrRI32},
	{opSarRI64, opSarRI32},
}

// opShiftRI is SHL, SHR or SAR (in.cc) of a GPR (no AH..BH) by an
// immediate count.
func opShiftRI(c *cpu, in *inst) {
	sz := in.size & 15
	mask := uint64(0x1f)
	if sz == 8 {
		mask = 0x3f
	}
	cnt := in.src.imm & mask
	d := &c.regs[in.dst.reg&15]
	a := *d & sizeMask[sz]
	if cnt == 0 {
		if sz == 4 {
			*d = a // a 32-bit destination is written (zero-extended) even so
		}
		return
	}
	r, fx := shiftRes(in.cc, a, cnt, sz)
	setGPR(d, sz, r)
	c.lz.setFixed(sz, r, fx)
}

// opJccC is JB/JAE (cc 2, 3): CF alone.
func opJccC(c *cpu, in *inst) {
	if (c.cf() != 0) != (in.cc&1 != 0) {
		c.jumpTo(c.rip + in.dst.imm)
	}
}

// opMovzxRM is MOVZX of memory to a GPR.
func opMovzxRM(c *cpu, in *inst) {
	setGPR(&c.regs[in.dst.reg&15], in.size&15, c.rd(c.ea(&in.src, in), in.ssize))
}

// opJccZ is JE/JNE (cc 4, 5): ZF comes from the last result whatever
// produced it.
func opJccZ(c *cpu, in *inst) {
	var zf bool
	if l := &c.lz; l.op == lzNone {
		zf = c.rflags&hv.FlagZF != 0
	} else {
		zf = l.res&sizeMask[l.size&15] == 0
	}
	if zf != (in.cc&1 != 0) {
		c.jumpTo(c.rip + in.dst.imm)
	}
}
