package a64

import "math/bits"

// Register roles, for checking that register 31 means what the encoding
// reads: the zero register or the stack pointer.
type role uint8

const (
	gpr   role = iota // X0-X30, XZR
	gprSP             // X0-X30, SP
)

// check reports whether r is a valid register of the width of want (when
// want is valid) and role, recording an error for op if not.
func (a *Assembler) check(op string, role role, want Reg, rs ...Reg) bool {
	for _, r := range rs {
		switch {
		case !r.valid():
			a.fail(op, "invalid register %v", r)
		case want.valid() && r.is64() != want.is64():
			a.fail(op, "register %v does not match the width of %v", r, want)
		case role == gpr && r.isSP():
			a.fail(op, "%v is not allowed here (register 31 is the zero register in this position)", r)
		case role == gprSP && r.isZR():
			a.fail(op, "%v is not allowed here (register 31 is the stack pointer in this position)", r)
		default:
			continue
		}
		return false
	}
	return true
}

// Add emits ADD rd, rn, op (immediate or shifted register).
func (a *Assembler) Add(rd, rn Reg, op Operand) { a.addSub("Add", 0, 0, rd, rn, op) }

// Adds emits ADDS rd, rn, op.
func (a *Assembler) Adds(rd, rn Reg, op Operand) { a.addSub("Adds", 0, 1, rd, rn, op) }

// Sub emits SUB rd, rn, op.
func (a *Assembler) Sub(rd, rn Reg, op Operand) { a.addSub("Sub", 1, 0, rd, rn, op) }

// Subs emits SUBS rd, rn, op.
func (a *Assembler) Subs(rd, rn Reg, op Operand) { a.addSub("Subs", 1, 1, rd, rn, op) }

// Cmp emits CMP rn, op (SUBS to the zero register).
func (a *Assembler) Cmp(rn Reg, op Operand) { a.addSub("Cmp", 1, 1, zr(rn), rn, op) }

// Cmn emits CMN rn, op (ADDS to the zero register).
func (a *Assembler) Cmn(rn Reg, op Operand) { a.addSub("Cmn", 0, 1, zr(rn), rn, op) }

// zr returns the zero register of r's width.
func zr(r Reg) Reg {
	if r.is64() {
		return XZR
	}
	return WZR
}

// addSub encodes ADD/SUB(S). The immediate form takes 0..4095, optionally
// shifted left by 12 (chosen automatically for multiples of 4096); rd may be
// SP unless flags are set, rn may be SP. The shifted-register form takes
// LSL/LSR/ASR and no SP.
func (a *Assembler) addSub(name string, sub, s uint32, rd, rn Reg, op Operand) {
	switch o := op.(type) {
	case Imm:
		if !a.checkImmForm(name, s == 1, gprSP, rd, rn) {
			return
		}
		var sh uint32
		v := int64(o)
		if v >= 4096 && v&0xfff == 0 {
			v >>= 12
			sh = 1
		}
		if v < 0 || v > 4095 {
			a.fail(name, "immediate %d is not 0..4095, optionally shifted left by 12", int64(o))
			return
		}
		a.emit(name, rd.sf()<<31|sub<<30|s<<29|0x11000000|sh<<22|uint32(v)<<10|rn.num()<<5|rd.num(), nil, 0)
	case Reg, ShiftedReg:
		sr := asShifted(op)
		if !a.check(name, gpr, rd, rd, rn, sr.R) {
			return
		}
		if sr.Shift > ASR {
			a.fail(name, "shift %v is not allowed (LSL, LSR or ASR)", sr.Shift)
			return
		}
		if !a.shiftAmount(name, rd, sr) {
			return
		}
		a.emit(name, rd.sf()<<31|sub<<30|s<<29|0x0B000000|uint32(sr.Shift)<<22|sr.R.num()<<16|uint32(sr.Amount)<<10|rn.num()<<5|rd.num(), nil, 0)
	default:
		a.fail(name, "operand %v is not an Imm, Reg or ShiftedReg", op)
	}
}

// checkImmForm checks the registers of an immediate-operand form: rd may
// be SP unless the instruction sets flags (then register 31 is the zero
// register), and rn has role rnRole.
func (a *Assembler) checkImmForm(name string, setsFlags bool, rnRole role, rd, rn Reg) bool {
	rdRole := gprSP
	if setsFlags {
		rdRole = gpr
	}
	return a.check(name, rdRole, rd, rd) && a.check(name, rnRole, rd, rn)
}

func asShifted(op Operand) ShiftedReg {
	if r, ok := op.(Reg); ok {
		return ShiftedReg{R: r}
	}
	return op.(ShiftedReg)
}

// shiftAmount checks a shifted register's amount against the width.
func (a *Assembler) shiftAmount(name string, rd Reg, sr ShiftedReg) bool {
	width := uint(32)
	if rd.is64() {
		width = 64
	}
	if sr.Amount >= width {
		a.fail(name, "shift amount %d is out of range for a %d-bit operation", sr.Amount, width)
		return false
	}
	return true
}

// And emits AND rd, rn, op (bitmask immediate or shifted register).
func (a *Assembler) And(rd, rn Reg, op Operand) { a.logical("And", 0, rd, rn, op) }

// Orr emits ORR rd, rn, op.
func (a *Assembler) Orr(rd, rn Reg, op Operand) { a.logical("Orr", 1, rd, rn, op) }

// Eor emits EOR rd, rn, op.
func (a *Assembler) Eor(rd, rn Reg, op Operand) { a.logical("Eor", 2, rd, rn, op) }

// Ands emits ANDS rd, rn, op.
func (a *Assembler) Ands(rd, rn Reg, op Operand) { a.logical("Ands", 3, rd, rn, op) }

// Tst emits TST rn, op (ANDS to the zero register).
func (a *Assembler) Tst(rn Reg, op Operand) { a.logical("Tst", 3, zr(rn), rn, op) }

// logical encodes AND/ORR/EOR/ANDS. An immediate must be a bitmask
// immediate (see BitmaskImm); rd may be SP in the immediate form except for
// ANDS.
func (a *Assembler) logical(name string, opc uint32, rd, rn Reg, op Operand) {
	switch o := op.(type) {
	case Imm:
		if !a.checkImmForm(name, opc == 3, gpr, rd, rn) {
			return
		}
		n, immr, imms, ok := BitmaskImm(uint64(o), rd.is64())
		if !ok {
			a.fail(name, "immediate %#x is not a bitmask immediate for a %s register", uint64(o), map[bool]string{true: "64-bit", false: "32-bit"}[rd.is64()])
			return
		}
		a.emit(name, rd.sf()<<31|opc<<29|0x12000000|n<<22|immr<<16|imms<<10|rn.num()<<5|rd.num(), nil, 0)
	case Reg, ShiftedReg:
		sr := asShifted(op)
		if !a.check(name, gpr, rd, rd, rn, sr.R) || !a.shiftAmount(name, rd, sr) {
			return
		}
		if sr.Shift > ROR {
			a.fail(name, "invalid shift %v", sr.Shift)
			return
		}
		a.emit(name, rd.sf()<<31|opc<<29|0x0A000000|uint32(sr.Shift)<<22|sr.R.num()<<16|uint32(sr.Amount)<<10|rn.num()<<5|rd.num(), nil, 0)
	default:
		a.fail(name, "operand %v is not an Imm, Reg or ShiftedReg", op)
	}
}

// BitmaskImm encodes v as a logical-instruction immediate (N, immr, imms):
// a 2, 4, 8, 16, 32 or 64-bit element, replicated across the register,
// holding a rotated run of ones. For a 32-bit register only the low 32
// bits of v may be set. It reports false for values with no encoding
// (0, all ones, and anything that is not such a pattern).
func BitmaskImm(v uint64, is64 bool) (n, immr, imms uint32, ok bool) {
	if !is64 {
		if v>>32 != 0 {
			return 0, 0, 0, false
		}
		v |= v << 32
	}
	if v == 0 || v == ^uint64(0) {
		return 0, 0, 0, false
	}
	// The smallest element size whose replication gives v.
	size := uint(64)
	for size > 2 {
		half := size / 2
		mask := uint64(1)<<half - 1
		if v&mask != (v>>half)&mask {
			break
		}
		size = half
	}
	mask := ^uint64(0) >> (64 - size)
	elem := v & mask
	ones := bits.OnesCount64(elem)
	run := uint64(1)<<ones - 1
	// elem must be run rotated right by immr within the element.
	for r := uint(0); r < size; r++ {
		rot := (run>>r | run<<(size-r)) & mask
		if rot == elem {
			if size == 64 {
				n = 1
			}
			imms = uint32(^(size*2-1))&0x3f | uint32(ones-1)
			return n, uint32(r), imms, true
		}
	}
	return 0, 0, 0, false
}

// Movz emits MOVZ rd, #imm16, LSL #shift (shift 0, 16, 32 or 48).
func (a *Assembler) Movz(rd Reg, imm16 uint16, shift uint) { a.wide("Movz", 2, rd, imm16, shift) }

// Movn emits MOVN rd, #imm16, LSL #shift.
func (a *Assembler) Movn(rd Reg, imm16 uint16, shift uint) { a.wide("Movn", 0, rd, imm16, shift) }

// Movk emits MOVK rd, #imm16, LSL #shift.
func (a *Assembler) Movk(rd Reg, imm16 uint16, shift uint) { a.wide("Movk", 3, rd, imm16, shift) }

func (a *Assembler) wide(name string, opc uint32, rd Reg, imm16 uint16, shift uint) {
	if !a.check(name, gpr, rd, rd) {
		return
	}
	if shift%16 != 0 || shift > 48 || (!rd.is64() && shift > 16) {
		a.fail(name, "shift %d is not a multiple of 16 within %v", shift, rd)
		return
	}
	a.emit(name, rd.sf()<<31|opc<<29|0x12800000|uint32(shift/16)<<21|uint32(imm16)<<5|rd.num(), nil, 0)
}

// Mov copies a register or loads a constant into rd.
//
// Mov(rd, Reg) emits ORR rd, zr, rm, or ADD rd, rn, #0 when either is SP.
// Mov(rd, Imm) emits the shortest of: one MOVZ, one MOVN, one ORR with a
// bitmask immediate, or a MOVZ (or MOVN, when more halfwords are 0xffff
// than zero) followed by MOVKs for the remaining halfwords, so any 64-bit
// constant takes at most four instructions. For a W register the constant
// must fit in 32 bits (signed or unsigned).
func (a *Assembler) Mov(rd Reg, op Operand) {
	switch o := op.(type) {
	case Reg:
		if !rd.valid() || !o.valid() {
			a.fail("Mov", "invalid register in Mov %v, %v", rd, o)
			return
		}
		if rd.isSP() || o.isSP() {
			a.addSub("Mov", 0, 0, rd, o, Imm(0))
			return
		}
		a.logical("Mov", 1, rd, zr(rd), o)
	case Imm:
		a.movConst(rd, int64(o))
	default:
		a.fail("Mov", "operand %v is not an Imm or Reg", op)
	}
}

func (a *Assembler) movConst(rd Reg, c int64) {
	if !a.check("Mov", gpr, rd, rd) {
		return
	}
	v := uint64(c)
	halves := 4
	if !rd.is64() {
		if c < -1<<31 || c >= 1<<32 {
			a.fail("Mov", "constant %d does not fit in 32-bit %v", c, rd)
			return
		}
		v &= 0xffffffff
		halves = 2
	}
	half := func(x uint64, i int) uint16 { return uint16(x >> (16 * i)) }
	var zeros, ones int
	for i := 0; i < halves; i++ {
		switch half(v, i) {
		case 0:
			zeros++
		case 0xffff:
			ones++
		}
	}
	_, _, _, isMask := BitmaskImm(v, rd.is64())
	switch {
	case zeros >= halves-1:
		i := 0
		for i < halves-1 && half(v, i) == 0 {
			i++
		}
		if v == 0 {
			i = 0
		}
		a.Movz(rd, half(v, i), uint(16*i))
		return
	case ones >= halves-1:
		// MOVN of the one halfword that is not 0xffff (MOVN #0 for all ones).
		i := 0
		for i < halves-1 && half(v, i) == 0xffff {
			i++
		}
		if ones == halves {
			i = 0
		}
		a.Movn(rd, ^half(v, i), uint(16*i))
		return
	case isMask:
		a.logical("Mov", 1, rd, zr(rd), Imm(v))
		return
	}
	// Several instructions: MOVZ or MOVN for the first halfword that
	// differs from the background, MOVK for every other such halfword.
	bg, first := uint16(0), true
	if ones > zeros {
		bg = 0xffff
	}
	for i := 0; i < halves; i++ {
		h := half(v, i)
		if h == bg {
			continue
		}
		switch {
		case !first:
			a.Movk(rd, h, uint(16*i))
		case bg == 0:
			a.Movz(rd, h, uint(16*i))
		default:
			a.Movn(rd, ^h, uint(16*i))
		}
		first = false
	}
}

// Lsl emits LSL rd, rn, op: by an immediate (UBFM) or a register (LSLV).
func (a *Assembler) Lsl(rd, rn Reg, op Operand) { a.shift("Lsl", LSL, rd, rn, op) }

// Lsr emits LSR rd, rn, op: by an immediate (UBFM) or a register (LSRV).
func (a *Assembler) Lsr(rd, rn Reg, op Operand) { a.shift("Lsr", LSR, rd, rn, op) }

// Asr emits ASR rd, rn, op: by an immediate (SBFM) or a register (ASRV).
func (a *Assembler) Asr(rd, rn Reg, op Operand) { a.shift("Asr", ASR, rd, rn, op) }

func (a *Assembler) shift(name string, s Shift, rd, rn Reg, op Operand) {
	switch o := op.(type) {
	case Imm:
		if !a.check(name, gpr, rd, rd, rn) {
			return
		}
		width := int64(32)
		if rd.is64() {
			width = 64
		}
		if o < 0 || int64(o) >= width {
			a.fail(name, "shift amount %d is out of range for %v", int64(o), rd)
			return
		}
		sh := uint32(o)
		immr, imms, base := sh, uint32(width-1), uint32(0x53000000) // UBFM
		switch s {
		case LSL:
			immr, imms = uint32((width-int64(sh))%width), uint32(width-1)-sh
		case ASR:
			base = 0x13000000 // SBFM
		}
		a.emit(name, rd.sf()<<31|base|rd.sf()<<22|immr<<16|imms<<10|rn.num()<<5|rd.num(), nil, 0)
	case Reg:
		if !a.check(name, gpr, rd, rd, rn, o) {
			return
		}
		a.emit(name, rd.sf()<<31|0x1AC02000|o.num()<<16|uint32(s)<<10|rn.num()<<5|rd.num(), nil, 0)
	default:
		a.fail(name, "operand %v is not an Imm or Reg", op)
	}
}

// Madd emits MADD rd, rn, rm, ra (rd = ra + rn*rm).
func (a *Assembler) Madd(rd, rn, rm, ra Reg) {
	if a.check("Madd", gpr, rd, rd, rn, rm, ra) {
		a.emit("Madd", rd.sf()<<31|0x1B000000|rm.num()<<16|ra.num()<<10|rn.num()<<5|rd.num(), nil, 0)
	}
}

// Mul emits MUL rd, rn, rm (MADD with the zero register).
func (a *Assembler) Mul(rd, rn, rm Reg) {
	if a.check("Mul", gpr, rd, rd, rn, rm) {
		a.emit("Mul", rd.sf()<<31|0x1B007C00|rm.num()<<16|rn.num()<<5|rd.num(), nil, 0)
	}
}

// Udiv emits UDIV rd, rn, rm.
func (a *Assembler) Udiv(rd, rn, rm Reg) {
	if a.check("Udiv", gpr, rd, rd, rn, rm) {
		a.emit("Udiv", rd.sf()<<31|0x1AC00800|rm.num()<<16|rn.num()<<5|rd.num(), nil, 0)
	}
}

// Csel emits CSEL rd, rn, rm, cond.
func (a *Assembler) Csel(rd, rn, rm Reg, cond Cond) {
	if !a.check("Csel", gpr, rd, rd, rn, rm) {
		return
	}
	if cond > NV {
		a.fail("Csel", "invalid condition %v", cond)
		return
	}
	a.emit("Csel", rd.sf()<<31|0x1A800000|rm.num()<<16|uint32(cond)<<12|rn.num()<<5|rd.num(), nil, 0)
}

// Cset emits CSET rd, cond (CSINC rd, zr, zr, !cond). AL and NV have no
// inverse and are rejected.
func (a *Assembler) Cset(rd Reg, cond Cond) {
	if !a.check("Cset", gpr, rd, rd) {
		return
	}
	if cond >= AL {
		a.fail("Cset", "condition %v cannot be used (only EQ..LE)", cond)
		return
	}
	a.emit("Cset", rd.sf()<<31|0x1A9F07E0|uint32(cond^1)<<12|rd.num(), nil, 0)
}

// Adr emits ADR rd, l: the address of l, within ±1 MiB.
func (a *Assembler) Adr(rd Reg, l *Label) {
	if a.check("Adr", gpr, X0, rd) && a.ownLabel("Adr", l) {
		a.emit("Adr", 0x10000000|rd.num(), l, fixAdr)
	}
}
