package asm

// This file holds control transfer and stack instructions.

// branchMode selects which displacement sizes a branch may use.
type branchMode uint8

const (
	branchAuto  branchMode = iota // rel8 backward when it fits, else rel32
	branchShort                   // rel8 only; range checked at Assemble
	branchNear                    // rel32 only
)

// branch encodes a relative branch to l. short and near are the opcodes of
// the rel8 and rel32 forms (nil when the form does not exist). Sizing is
// decided now, not at Assemble, so that PC() stays exact while building:
// a bound (backward) target gets rel8 when it is in range, an unbound
// (forward) one rel32.
func (a *Assembler) branch(op string, mode branchMode, short, near []byte, l *Label) {
	if !a.checkLabel(op, l) {
		return
	}
	useShort := mode == branchShort
	if mode == branchAuto && l.off >= 0 {
		d := l.off - (len(a.buf) + len(short) + 1)
		useShort = d >= -128
	}
	if mode == branchShort && l.off >= 0 {
		if d := l.off - (len(a.buf) + len(short) + 1); d < -128 {
			a.fail(op, "target %v is %d bytes away, out of rel8 range [-128, 127]", l, d)
			return
		}
	}
	in := &ins{op: op, rel: l, code: near, relLen: 4}
	if useShort {
		in.code, in.relLen = short, 1
	}
	a.emit(in)
}

// Jcc emits a conditional jump to l if c holds.
func (a *Assembler) Jcc(c Cond, l *Label) {
	if !c.valid() {
		a.fail("Jcc", "invalid condition %v", c)
		return
	}
	a.branch("Jcc", branchAuto, []byte{0x70 + byte(c)}, []byte{0x0F, 0x80 + byte(c)}, l)
}

// JccShort emits a conditional jump with a rel8 displacement; Assemble
// reports an error if l is out of range.
func (a *Assembler) JccShort(c Cond, l *Label) {
	if !c.valid() {
		a.fail("JccShort", "invalid condition %v", c)
		return
	}
	a.branch("JccShort", branchShort, []byte{0x70 + byte(c)}, nil, l)
}

// Jmp emits an unconditional jump to l.
func (a *Assembler) Jmp(l *Label) { a.branch("Jmp", branchAuto, []byte{0xEB}, []byte{0xE9}, l) }

// JmpShort emits an unconditional jump with a rel8 displacement; Assemble
// reports an error if l is out of range.
func (a *Assembler) JmpShort(l *Label) { a.branch("JmpShort", branchShort, []byte{0xEB}, nil, l) }

// Call emits a near call to l (rel32; CALL has no rel8 form).
func (a *Assembler) Call(l *Label) { a.branch("Call", branchNear, nil, []byte{0xE8}, l) }

// Loop emits LOOP l: decrement RCX and jump if it is not zero. rel8 only.
func (a *Assembler) Loop(l *Label) { a.branch("Loop", branchShort, []byte{0xE2}, nil, l) }

// Loope emits LOOPE l: decrement RCX and jump if it is not zero and ZF=1.
func (a *Assembler) Loope(l *Label) { a.branch("Loope", branchShort, []byte{0xE1}, nil, l) }

// Loopne emits LOOPNE l: decrement RCX and jump if it is not zero and ZF=0.
func (a *Assembler) Loopne(l *Label) { a.branch("Loopne", branchShort, []byte{0xE0}, nil, l) }

// Jrcxz emits JRCXZ l: jump if RCX is zero. rel8 only.
func (a *Assembler) Jrcxz(l *Label) { a.branch("Jrcxz", branchShort, []byte{0xE3}, nil, l) }

// JmpInd emits an indirect near jump through a 64-bit register or memory.
func (a *Assembler) JmpInd(target Operand) { a.indirect("JmpInd", 4, target) }

// CallInd emits an indirect near call through a 64-bit register or memory.
func (a *Assembler) CallInd(target Operand) { a.indirect("CallInd", 2, target) }

// indirect encodes FF /digit with a 64-bit operand; near branches default
// to 64-bit operand size in long mode, so no REX.W is needed.
func (a *Assembler) indirect(op string, digit int, target Operand) {
	if m, ok := target.(Mem); ok && m.Size == 0 {
		target = m.WithSize(8)
	}
	rm, _, ok := a.unary(op, target, 8)
	if !ok {
		return
	}
	in := &ins{op: op, code: []byte{0xFF}}
	in.modRM(NoReg, digit, rm)
	a.emit(in)
}

// Ret emits a near RET.
func (a *Assembler) Ret() { a.fixed("Ret", 0xC3) }

// RetImm emits RET n: return and pop n further bytes of arguments.
func (a *Assembler) RetImm(n uint16) {
	a.emit(&ins{op: "RetImm", code: []byte{0xC2}, imm: int64(n), immLen: 2})
}

// Leave emits LEAVE (mov rsp, rbp; pop rbp).
func (a *Assembler) Leave() { a.fixed("Leave", 0xC9) }

// Push emits PUSH x: a 64- or 16-bit register, 64- or 16-bit memory (Size 0
// means 64), or an immediate that fits int32 (pushed as 8 bytes,
// sign-extended; imm8 form when it fits). 32-bit pushes do not exist in
// 64-bit mode.
func (a *Assembler) Push(x Operand) { a.pushPop("Push", x) }

// Pop emits POP x: a 64- or 16-bit register or memory (Size 0 means 64).
func (a *Assembler) Pop(x Operand) { a.pushPop("Pop", x) }

func (a *Assembler) pushPop(op string, x Operand) {
	push := op == "Push"
	in := &ins{op: op}
	switch o := x.(type) {
	case Imm:
		if !push {
			a.fail(op, "cannot pop into an immediate")
			return
		}
		if !immFits(int64(o), 8) {
			a.fail(op, "immediate %s does not fit int32 (it is sign-extended to 64 bits)", operandString(o))
			return
		}
		if fitsInt8(int64(o), 8) {
			in.code, in.imm, in.immLen = []byte{0x6A}, int64(o), 1
		} else {
			in.code, in.imm, in.immLen = []byte{0x68}, int64(o), 4
		}
	case Reg:
		if !a.checkReg(op, o, 8, 2) {
			return
		}
		in.opsize = o.Size() == 2
		in.code = []byte{0x50}
		if !push {
			in.code = []byte{0x58}
		}
		in.plusReg = o
	case Mem:
		if o.Size == 0 {
			o.Size = 8
		}
		rm, size, ok := a.unary(op, o, 8, 2)
		if !ok {
			return
		}
		in.opsize = size == 2
		if push {
			in.code = []byte{0xFF}
			in.modRM(NoReg, 6, rm)
		} else {
			in.code = []byte{0x8F}
			in.modRM(NoReg, 0, rm)
		}
	default:
		a.fail(op, "operand %s must be a register, memory or immediate", operandString(x))
		return
	}
	a.emit(in)
}

// Pushfq emits PUSHFQ.
func (a *Assembler) Pushfq() { a.fixed("Pushfq", 0x9C) }

// Popfq emits POPFQ.
func (a *Assembler) Popfq() { a.fixed("Popfq", 0x9D) }
