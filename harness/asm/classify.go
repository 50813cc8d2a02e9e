package asm

// form is the shape of a two-operand instruction once classified.
type form uint8

const (
	fRMReg form = iota // dst r/m, src reg (also reg,reg)
	fRegRM             // dst reg, src mem
	fRMImm             // dst r/m, src imm
)

// binop is a classified and size-checked two-operand instruction.
type binop struct {
	f    form
	size int     // operand size in bytes
	rm   Operand // the ModRM r/m operand, Mem.Size filled in
	reg  Reg     // the ModRM reg operand (fRMReg, fRegRM)
	imm  int64   // fRMImm
}

// binary classifies dst, src for the common r/m,reg / reg,mem / r/m,imm
// shape and checks that the operand sizes agree. When immOK is false an
// immediate source is an error. The immediate's range is left to the caller
// because it depends on the instruction (MOV takes imm64, ALU ops imm32).
func (a *Assembler) binary(op string, dst, src Operand, immOK bool) (binop, bool) {
	dk, sk := kindOf(dst), kindOf(src)
	switch {
	case dk == kNone || sk == kNone:
		a.fail(op, "missing operand (%s, %s)", operandString(dst), operandString(src))
	case dk == kImm:
		a.fail(op, "destination %s is an immediate", operandString(dst))
	case dk == kMem && sk == kMem:
		a.fail(op, "memory-to-memory operands (%v, %v) are not encodable", dst, src)
	case sk == kImm:
		if !immOK {
			a.fail(op, "immediate source %s not allowed", operandString(src))
			return binop{}, false
		}
		size := opSize(dst)
		if d, ok := dst.(Reg); ok && !d.valid() {
			a.fail(op, "invalid register %v", d)
			return binop{}, false
		}
		if size == 0 {
			a.fail(op, "operand size of %v is ambiguous with an immediate source: set Mem.Size", dst)
			return binop{}, false
		}
		if !validSize(size) {
			a.fail(op, "invalid operand size %d", size)
			return binop{}, false
		}
		return binop{f: fRMImm, size: size, rm: withSize(dst, size), imm: int64(src.(Imm))}, true
	case sk == kReg:
		s := src.(Reg)
		if !s.valid() {
			a.fail(op, "invalid register %v", s)
			return binop{}, false
		}
		rm, ok := a.checkRM(op, dst, s.Size())
		if !ok {
			return binop{}, false
		}
		return binop{f: fRMReg, size: s.Size(), rm: rm, reg: s}, true
	default: // reg, mem
		d := dst.(Reg)
		if !d.valid() {
			a.fail(op, "invalid register %v", d)
			return binop{}, false
		}
		rm, ok := a.checkRM(op, src, d.Size())
		if !ok {
			return binop{}, false
		}
		return binop{f: fRegRM, size: d.Size(), rm: rm, reg: d}, true
	}
	return binop{}, false
}

// withSize returns op with Mem.Size set to size; registers are unchanged.
func withSize(op Operand, size int) Operand {
	if m, ok := op.(Mem); ok {
		m.Size = size
		return m
	}
	return op
}

// unary checks the single r/m operand of a one-operand instruction and
// returns it with its size. Memory operands must carry their size, since
// nothing else says it.
func (a *Assembler) unary(op string, x Operand, sizes ...int) (Operand, int, bool) {
	switch o := x.(type) {
	case Reg:
		if !a.checkReg(op, o, sizes...) {
			return nil, 0, false
		}
		return o, o.Size(), true
	case Mem:
		if o.Size == 0 {
			a.fail(op, "operand size of %v is ambiguous: set Mem.Size", o)
			return nil, 0, false
		}
		for _, s := range sizes {
			if o.Size == s {
				return o, o.Size, true
			}
		}
		a.fail(op, "memory operand %v has size %d, want %s", o, o.Size, sizeList(sizes))
		return nil, 0, false
	}
	a.fail(op, "operand %s must be a register or memory", operandString(x))
	return nil, 0, false
}

// regRM checks a reg, r/m pair where both have the size of dst, which must
// be one of sizes.
func (a *Assembler) regRM(op string, dst Reg, src Operand, sizes ...int) (Operand, bool) {
	if !a.checkReg(op, dst, sizes...) {
		return nil, false
	}
	return a.checkRM(op, src, dst.Size())
}

// byteOr returns op8 for byte operands and op8+1 otherwise: most legacy
// instructions come in such pairs, told apart by the low opcode bit.
func byteOr(op8 byte, size int) byte {
	if size == 1 {
		return op8
	}
	return op8 + 1
}
