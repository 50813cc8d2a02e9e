package asm

// This file holds the data-movement and integer arithmetic instructions.

// aluDigit is the ModRM /digit of the classic ALU group; the same number
// times 8 is the base of its r/m,reg opcode block.
const (
	aluAdd = iota
	aluOr
	aluAdc
	aluSbb
	aluAnd
	aluSub
	aluXor
	aluCmp
)

// Add emits ADD dst, src: r,r / r,m / m,r / r,imm / m,imm at any size.
func (a *Assembler) Add(dst, src Operand) { a.alu("Add", aluAdd, dst, src) }

// Or emits OR dst, src.
func (a *Assembler) Or(dst, src Operand) { a.alu("Or", aluOr, dst, src) }

// Adc emits ADC dst, src (add with carry).
func (a *Assembler) Adc(dst, src Operand) { a.alu("Adc", aluAdc, dst, src) }

// Sbb emits SBB dst, src (subtract with borrow).
func (a *Assembler) Sbb(dst, src Operand) { a.alu("Sbb", aluSbb, dst, src) }

// And emits AND dst, src.
func (a *Assembler) And(dst, src Operand) { a.alu("And", aluAnd, dst, src) }

// Sub emits SUB dst, src.
func (a *Assembler) Sub(dst, src Operand) { a.alu("Sub", aluSub, dst, src) }

// Xor emits XOR dst, src.
func (a *Assembler) Xor(dst, src Operand) { a.alu("Xor", aluXor, dst, src) }

// Cmp emits CMP dst, src.
func (a *Assembler) Cmp(dst, src Operand) { a.alu("Cmp", aluCmp, dst, src) }

// alu encodes the eight classic ALU instructions, which share one opcode
// layout: base+0/1 r/m,reg; base+2/3 reg,r/m; base+4/5 AL/eAX,imm;
// 80/81/83 /digit r/m,imm. Of the immediate forms the shortest is chosen:
// the accumulator form for byte operands, the sign-extended imm8 form (83)
// whenever the value allows, else the accumulator form (one byte shorter
// than 81), else 81.
func (a *Assembler) alu(op string, digit int, dst, src Operand) {
	p, ok := a.binary(op, dst, src, true)
	if !ok {
		return
	}
	base := byte(digit << 3)
	in := &ins{op: op, lockOK: digit != aluCmp}
	in.setSize(p.size)
	switch p.f {
	case fRMReg:
		in.code = []byte{byteOr(base, p.size)}
		in.modRM(p.reg, 0, p.rm)
	case fRegRM:
		in.code = []byte{byteOr(base+2, p.size)}
		in.modRM(p.reg, 0, p.rm)
		in.srcRM = true
	case fRMImm:
		if !immFits(p.imm, p.size) {
			a.fail(op, "immediate %s does not fit a %d-byte operand", operandString(Imm(p.imm)), p.size)
			return
		}
		acc := p.rm == Operand(RAX.As(p.size))
		switch {
		case p.size == 1 && acc:
			in.code = []byte{base + 4}
			in.imm, in.immLen = p.imm, 1
		case p.size == 1:
			in.code = []byte{0x80}
			in.modRM(NoReg, digit, p.rm)
			in.imm, in.immLen = p.imm, 1
		case fitsInt8(p.imm, p.size):
			in.code = []byte{0x83}
			in.modRM(NoReg, digit, p.rm)
			in.imm, in.immLen = p.imm, 1
		case acc:
			in.code = []byte{base + 5}
			in.immFor(p.imm, p.size)
		default:
			in.code = []byte{0x81}
			in.modRM(NoReg, digit, p.rm)
			in.immFor(p.imm, p.size)
		}
	}
	a.emit(in)
}

// Test emits TEST dst, src: r,r / m,r / r,imm / m,imm. TEST is commutative,
// so Test(reg, mem) is accepted too and encoded as TEST mem, reg, the only
// encoding there is (disassemblers show it in that order).
func (a *Assembler) Test(dst, src Operand) {
	const op = "Test"
	p, ok := a.binary(op, dst, src, true)
	if !ok {
		return
	}
	in := &ins{op: op}
	in.setSize(p.size)
	switch p.f {
	case fRMReg, fRegRM:
		in.code = []byte{byteOr(0x84, p.size)}
		in.modRM(p.reg, 0, p.rm)
	case fRMImm:
		if !immFits(p.imm, p.size) {
			a.fail(op, "immediate %s does not fit a %d-byte operand", operandString(Imm(p.imm)), p.size)
			return
		}
		// TEST has no sign-extended imm8 form; the accumulator form saves
		// the ModRM byte.
		if p.rm == Operand(RAX.As(p.size)) {
			in.code = []byte{byteOr(0xA8, p.size)}
		} else {
			in.code = []byte{byteOr(0xF6, p.size)}
			in.modRM(NoReg, 0, p.rm)
		}
		in.immFor(p.imm, p.size)
	}
	a.emit(in)
}

// Mov emits MOV dst, src: r,r / r,m / m,r / r,imm / m,imm. A 64-bit register
// destination takes the sign-extended imm32 form (C7) when the value fits
// int32 and MOVABS (imm64) otherwise; it never silently becomes a 32-bit MOV,
// so the instruction executed is the one written. A 64-bit memory
// destination only has the sign-extended imm32 form.
func (a *Assembler) Mov(dst, src Operand) {
	const op = "Mov"
	p, ok := a.binary(op, dst, src, true)
	if !ok {
		return
	}
	in := &ins{op: op}
	in.setSize(p.size)
	switch p.f {
	case fRMReg:
		in.code = []byte{byteOr(0x88, p.size)}
		in.modRM(p.reg, 0, p.rm)
	case fRegRM:
		in.code = []byte{byteOr(0x8A, p.size)}
		in.modRM(p.reg, 0, p.rm)
	case fRMImm:
		r, isReg := p.rm.(Reg)
		switch {
		case isReg && p.size == 8 && !immFits(p.imm, 8):
			in.code = []byte{0xB8}
			in.plusReg = r
			in.imm, in.immLen = p.imm, 8
		case !immFits(p.imm, p.size):
			a.fail(op, "immediate %s does not fit a %d-byte operand", operandString(Imm(p.imm)), p.size)
			return
		case isReg && p.size != 8:
			// B0+r / B8+r carry a full-width immediate without a ModRM
			// byte. For 64-bit registers the same opcode takes imm64, so
			// the C7 form below is shorter there.
			in.code = []byte{0xB0}
			if p.size > 1 {
				in.code[0] = 0xB8
			}
			in.plusReg = r
			in.imm, in.immLen = p.imm, p.size
		default:
			in.code = []byte{byteOr(0xC6, p.size)}
			in.modRM(NoReg, 0, p.rm)
			in.immFor(p.imm, p.size)
		}
	}
	a.emit(in)
}

// MovAbs emits MOVABS dst, imm64 (REX.W B8+r io), always in the 10-byte
// form, for code that patches the constant later or must know its length.
func (a *Assembler) MovAbs(dst Reg, v uint64) {
	const op = "MovAbs"
	if !a.checkReg(op, dst, 8) {
		return
	}
	a.emit(&ins{op: op, w: true, code: []byte{0xB8}, plusReg: dst, imm: int64(v), immLen: 8})
}

// MovLabel loads the 64-bit absolute address of l into dst (MOVABS with the
// address patched in by Assemble). Use Lea with Rel for a position-
// independent load.
func (a *Assembler) MovLabel(dst Reg, l *Label) {
	const op = "MovLabel"
	if !a.checkReg(op, dst, 8) {
		return
	}
	a.emit(&ins{op: op, w: true, code: []byte{0xB8}, plusReg: dst, immLen: 8, immLabel: l})
}

// Movzx emits MOVZX dst, src: zero-extends an 8- or 16-bit register or
// memory operand (memory must carry Size 1 or 2) into a wider register.
func (a *Assembler) Movzx(dst Reg, src Operand) { a.movx("Movzx", 0xB6, dst, src) }

// Movsx emits MOVSX dst, src: sign-extends an 8- or 16-bit register or
// memory operand (memory must carry Size 1 or 2) into a wider register.
func (a *Assembler) Movsx(dst Reg, src Operand) { a.movx("Movsx", 0xBE, dst, src) }

// movx encodes MOVZX (0F B6/B7) and MOVSX (0F BE/BF).
func (a *Assembler) movx(op string, op8 byte, dst Reg, src Operand) {
	if !a.checkReg(op, dst, 2, 4, 8) {
		return
	}
	var ssize int
	switch s := src.(type) {
	case Reg:
		if !s.valid() {
			a.fail(op, "invalid register %v", s)
			return
		}
		ssize = s.Size()
	case Mem:
		if s.Size == 0 {
			a.fail(op, "source size of %v is ambiguous: set Mem.Size to 1 or 2", s)
			return
		}
		ssize = s.Size
	default:
		a.fail(op, "source %s must be a register or memory", operandString(src))
		return
	}
	if ssize != 1 && ssize != 2 || ssize >= dst.Size() {
		a.fail(op, "cannot extend a %d-byte source into %v", ssize, dst)
		return
	}
	in := &ins{op: op, code: []byte{0x0F, byteOr(op8, ssize)}}
	in.setSize(dst.Size())
	in.modRM(dst, 0, src)
	a.emit(in)
}

// Movsxd emits MOVSXD dst, src: sign-extends a 32-bit register or memory
// operand into a 64-bit register.
func (a *Assembler) Movsxd(dst Reg, src Operand) {
	const op = "Movsxd"
	if !a.checkReg(op, dst, 8) {
		return
	}
	rm, ok := a.checkRM(op, src, 4)
	if !ok {
		return
	}
	in := &ins{op: op, w: true, code: []byte{0x63}}
	in.modRM(dst, 0, rm)
	a.emit(in)
}

// Lea emits LEA dst, m. m.Size is ignored: LEA computes an address and
// never accesses memory. With m.Label set it computes the label's address
// RIP-relatively.
func (a *Assembler) Lea(dst Reg, m Mem) {
	const op = "Lea"
	if !a.checkReg(op, dst, 2, 4, 8) {
		return
	}
	in := &ins{op: op, code: []byte{0x8D}}
	in.setSize(dst.Size())
	m.Size = 0
	in.modRM(dst, 0, m)
	a.emit(in)
}

// unaryOps are the F6/F7 and FE/FF groups' one-operand instructions.
var unaryOps = map[string]struct {
	op8    byte // byte form; +1 for the other sizes
	digit  int
	lockOK bool
}{
	"Inc":   {0xFE, 0, true},
	"Dec":   {0xFE, 1, true},
	"Not":   {0xF6, 2, true},
	"Neg":   {0xF6, 3, true},
	"Mul":   {0xF6, 4, false},
	"Imul1": {0xF6, 5, false},
	"Div":   {0xF6, 6, false},
	"Idiv":  {0xF6, 7, false},
}

// Inc emits INC x (register or sized memory).
func (a *Assembler) Inc(x Operand) { a.unaryOp("Inc", x) }

// Dec emits DEC x.
func (a *Assembler) Dec(x Operand) { a.unaryOp("Dec", x) }

// Not emits NOT x.
func (a *Assembler) Not(x Operand) { a.unaryOp("Not", x) }

// Neg emits NEG x.
func (a *Assembler) Neg(x Operand) { a.unaryOp("Neg", x) }

// Mul emits MUL x: unsigned rDX:rAX = rAX * x.
func (a *Assembler) Mul(x Operand) { a.unaryOp("Mul", x) }

// Imul1 emits the one-operand IMUL x: signed rDX:rAX = rAX * x.
func (a *Assembler) Imul1(x Operand) { a.unaryOp("Imul1", x) }

// Div emits DIV x: unsigned divide of rDX:rAX by x.
func (a *Assembler) Div(x Operand) { a.unaryOp("Div", x) }

// Idiv emits IDIV x: signed divide of rDX:rAX by x.
func (a *Assembler) Idiv(x Operand) { a.unaryOp("Idiv", x) }

func (a *Assembler) unaryOp(op string, x Operand) {
	u := unaryOps[op]
	rm, size, ok := a.unary(op, x, 1, 2, 4, 8)
	if !ok {
		return
	}
	in := &ins{op: op, code: []byte{byteOr(u.op8, size)}, lockOK: u.lockOK}
	in.setSize(size)
	in.modRM(NoReg, u.digit, rm)
	a.emit(in)
}

// Imul emits the two-operand IMUL dst, src (0F AF): dst = dst * src,
// truncated, for 16-, 32- and 64-bit operands.
func (a *Assembler) Imul(dst Reg, src Operand) {
	const op = "Imul"
	rm, ok := a.regRM(op, dst, src, 2, 4, 8)
	if !ok {
		return
	}
	in := &ins{op: op, code: []byte{0x0F, 0xAF}}
	in.setSize(dst.Size())
	in.modRM(dst, 0, rm)
	a.emit(in)
}

// Imul3 emits the three-operand IMUL dst, src, imm: dst = src * imm, using
// the imm8 form (6B) when imm fits a signed byte and 69 otherwise. For
// 16-bit operands imm must fit 16 bits.
func (a *Assembler) Imul3(dst Reg, src Operand, imm int32) {
	const op = "Imul3"
	rm, ok := a.regRM(op, dst, src, 2, 4, 8)
	if !ok {
		return
	}
	size := dst.Size()
	if !immFits(int64(imm), size) {
		a.fail(op, "immediate %s does not fit a %d-byte operand", operandString(Imm(imm)), size)
		return
	}
	in := &ins{op: op}
	in.setSize(size)
	in.modRM(dst, 0, rm)
	if fitsInt8(int64(imm), size) {
		in.code = []byte{0x6B}
		in.imm, in.immLen = int64(imm), 1
	} else {
		in.code = []byte{0x69}
		in.immFor(int64(imm), size)
	}
	a.emit(in)
}

// Shift and rotate /digits of the C0/C1/D0-D3 group.
var shiftDigits = map[string]int{"Rol": 0, "Ror": 1, "Rcl": 2, "Rcr": 3, "Shl": 4, "Shr": 5, "Sar": 7}

// Shl emits SHL dst, count; count is an Imm 0..255 or CL.
func (a *Assembler) Shl(dst, count Operand) { a.shift("Shl", dst, count) }

// Shr emits SHR dst, count (logical right shift).
func (a *Assembler) Shr(dst, count Operand) { a.shift("Shr", dst, count) }

// Sar emits SAR dst, count (arithmetic right shift).
func (a *Assembler) Sar(dst, count Operand) { a.shift("Sar", dst, count) }

// Rol emits ROL dst, count.
func (a *Assembler) Rol(dst, count Operand) { a.shift("Rol", dst, count) }

// Ror emits ROR dst, count.
func (a *Assembler) Ror(dst, count Operand) { a.shift("Ror", dst, count) }

// Rcl emits RCL dst, count (rotate through carry).
func (a *Assembler) Rcl(dst, count Operand) { a.shift("Rcl", dst, count) }

// Rcr emits RCR dst, count (rotate through carry).
func (a *Assembler) Rcr(dst, count Operand) { a.shift("Rcr", dst, count) }

// shift encodes the shift/rotate group: D0/D1 for a count of 1 (the short
// form assemblers use, one byte shorter), C0/C1 ib for other immediates,
// D2/D3 for CL.
func (a *Assembler) shift(op string, dst, count Operand) {
	rm, size, ok := a.unary(op, dst, 1, 2, 4, 8)
	if !ok {
		return
	}
	in := &ins{op: op}
	in.setSize(size)
	in.modRM(NoReg, shiftDigits[op], rm)
	switch c := count.(type) {
	case Imm:
		if c < 0 || c > 255 {
			a.fail(op, "shift count %s is not in 0..255", operandString(c))
			return
		}
		if c == 1 {
			in.code = []byte{byteOr(0xD0, size)}
		} else {
			in.code = []byte{byteOr(0xC0, size)}
			in.imm, in.immLen = int64(c), 1
		}
	case Reg:
		if c != CL {
			a.fail(op, "shift count register must be cl, have %v", c)
			return
		}
		in.code = []byte{byteOr(0xD2, size)}
	default:
		a.fail(op, "shift count %s must be an immediate or cl", operandString(count))
		return
	}
	a.emit(in)
}

// Shld emits SHLD dst, src, count: shift dst left, filling from src.
// count is an Imm 0..255 or CL.
func (a *Assembler) Shld(dst Operand, src Reg, count Operand) {
	a.doubleShift("Shld", 0xA4, dst, src, count)
}

// Shrd emits SHRD dst, src, count: shift dst right, filling from src.
func (a *Assembler) Shrd(dst Operand, src Reg, count Operand) {
	a.doubleShift("Shrd", 0xAC, dst, src, count)
}

// doubleShift encodes SHLD (0F A4/A5) and SHRD (0F AC/AD).
func (a *Assembler) doubleShift(op string, opImm byte, dst Operand, src Reg, count Operand) {
	if !a.checkReg(op, src, 2, 4, 8) {
		return
	}
	rm, ok := a.checkRM(op, dst, src.Size())
	if !ok {
		return
	}
	in := &ins{op: op}
	in.setSize(src.Size())
	in.modRM(src, 0, rm)
	switch c := count.(type) {
	case Imm:
		if c < 0 || c > 255 {
			a.fail(op, "shift count %s is not in 0..255", operandString(c))
			return
		}
		in.code = []byte{0x0F, opImm}
		in.imm, in.immLen = int64(c), 1
	case Reg:
		if c != CL {
			a.fail(op, "shift count register must be cl, have %v", c)
			return
		}
		in.code = []byte{0x0F, opImm + 1}
	default:
		a.fail(op, "shift count %s must be an immediate or cl", operandString(count))
		return
	}
	a.emit(in)
}

// bitOps are the bit-test instructions: opcode of the reg form (0F xx /r)
// and /digit of the imm8 form (0F BA /digit ib).
var bitOps = map[string]struct {
	regOp  byte
	digit  int
	lockOK bool
}{
	"Bt":  {0xA3, 4, false},
	"Bts": {0xAB, 5, true},
	"Btr": {0xB3, 6, true},
	"Btc": {0xBB, 7, true},
}

// Bt emits BT dst, bit; bit is a register of dst's size or an Imm 0..255.
func (a *Assembler) Bt(dst, bit Operand) { a.bitOp("Bt", dst, bit) }

// Bts emits BTS dst, bit (test and set).
func (a *Assembler) Bts(dst, bit Operand) { a.bitOp("Bts", dst, bit) }

// Btr emits BTR dst, bit (test and reset).
func (a *Assembler) Btr(dst, bit Operand) { a.bitOp("Btr", dst, bit) }

// Btc emits BTC dst, bit (test and complement).
func (a *Assembler) Btc(dst, bit Operand) { a.bitOp("Btc", dst, bit) }

func (a *Assembler) bitOp(op string, dst, bit Operand) {
	b := bitOps[op]
	switch x := bit.(type) {
	case Reg:
		if !a.checkReg(op, x, 2, 4, 8) {
			return
		}
		rm, ok := a.checkRM(op, dst, x.Size())
		if !ok {
			return
		}
		in := &ins{op: op, code: []byte{0x0F, b.regOp}, lockOK: b.lockOK}
		in.setSize(x.Size())
		in.modRM(x, 0, rm)
		a.emit(in)
	case Imm:
		rm, size, ok := a.unary(op, dst, 2, 4, 8)
		if !ok {
			return
		}
		if x < 0 || x > 255 {
			a.fail(op, "bit offset %s is not in 0..255", operandString(x))
			return
		}
		in := &ins{op: op, code: []byte{0x0F, 0xBA}, lockOK: b.lockOK, imm: int64(x), immLen: 1}
		in.setSize(size)
		in.modRM(NoReg, b.digit, rm)
		a.emit(in)
	default:
		a.fail(op, "bit offset %s must be a register or an immediate", operandString(bit))
	}
}

// Bsf emits BSF dst, src (bit scan forward).
func (a *Assembler) Bsf(dst Reg, src Operand) { a.regRMOp("Bsf", []byte{0x0F, 0xBC}, dst, src) }

// Bsr emits BSR dst, src (bit scan reverse).
func (a *Assembler) Bsr(dst Reg, src Operand) { a.regRMOp("Bsr", []byte{0x0F, 0xBD}, dst, src) }

// regRMOp encodes a 16/32/64-bit "reg, r/m" instruction with a fixed opcode.
func (a *Assembler) regRMOp(op string, code []byte, dst Reg, src Operand) {
	rm, ok := a.regRM(op, dst, src, 2, 4, 8)
	if !ok {
		return
	}
	in := &ins{op: op, code: code}
	in.setSize(dst.Size())
	in.modRM(dst, 0, rm)
	a.emit(in)
}

// Bswap emits BSWAP r for a 32- or 64-bit register (the 16-bit form is
// undefined).
func (a *Assembler) Bswap(r Reg) {
	const op = "Bswap"
	if !a.checkReg(op, r, 4, 8) {
		return
	}
	in := &ins{op: op, code: []byte{0x0F, 0xC8}, plusReg: r}
	in.setSize(r.Size())
	a.emit(in)
}

// Xchg emits XCHG x, y for two registers or a register and memory (either
// order; the encoding has one form, shown by disassemblers as mem, reg).
// With the accumulator and another register the one-byte 90+r form is used,
// except for eax/eax: 90 is NOP in 64-bit mode and would not zero-extend
// RAX. XCHG with memory is implicitly locked; Lock is accepted anyway.
func (a *Assembler) Xchg(x, y Operand) {
	const op = "Xchg"
	if kindOf(y) == kMem {
		x, y = y, x // the memory operand is always the ModRM r/m
	}
	p, ok := a.binary(op, x, y, false)
	if !ok {
		return
	}
	in := &ins{op: op, lockOK: true}
	in.setSize(p.size)
	if r, isReg := p.rm.(Reg); isReg && p.size > 1 && (r.Num() == 0) != (p.reg.Num() == 0) {
		in.code = []byte{0x90}
		in.plusReg = r
		if r.Num() == 0 {
			in.plusReg = p.reg
		}
		a.emit(in)
		return
	}
	in.code = []byte{byteOr(0x86, p.size)}
	in.modRM(p.reg, 0, p.rm)
	a.emit(in)
}

// Cmpxchg emits CMPXCHG dst, src: compare rAX with dst; if equal store src.
func (a *Assembler) Cmpxchg(dst Operand, src Reg) { a.rmRegOp("Cmpxchg", 0xB0, dst, src) }

// Xadd emits XADD dst, src: exchange and add.
func (a *Assembler) Xadd(dst Operand, src Reg) { a.rmRegOp("Xadd", 0xC0, dst, src) }

// rmRegOp encodes a lockable "r/m, reg" 0F-map instruction at any size.
func (a *Assembler) rmRegOp(op string, op8 byte, dst Operand, src Reg) {
	if !a.checkReg(op, src, 1, 2, 4, 8) {
		return
	}
	rm, ok := a.checkRM(op, dst, src.Size())
	if !ok {
		return
	}
	in := &ins{op: op, code: []byte{0x0F, byteOr(op8, src.Size())}, lockOK: true}
	in.setSize(src.Size())
	in.modRM(src, 0, rm)
	a.emit(in)
}

// Setcc emits SETcc dst: dst (an 8-bit register or byte memory) = 1 if c
// holds, else 0.
func (a *Assembler) Setcc(c Cond, dst Operand) {
	const op = "Setcc"
	if !c.valid() {
		a.fail(op, "invalid condition %v", c)
		return
	}
	rm, ok := a.checkRM(op, dst, 1)
	if !ok {
		return
	}
	in := &ins{op: op, code: []byte{0x0F, 0x90 + byte(c)}}
	in.modRM(NoReg, 0, rm)
	a.emit(in)
}

// Cmovcc emits CMOVcc dst, src: dst = src if c holds.
func (a *Assembler) Cmovcc(c Cond, dst Reg, src Operand) {
	if !c.valid() {
		a.fail("Cmovcc", "invalid condition %v", c)
		return
	}
	a.regRMOp("Cmovcc", []byte{0x0F, 0x40 + byte(c)}, dst, src)
}

// Cbw emits CBW: sign-extend AL into AX.
func (a *Assembler) Cbw() { a.fixed("Cbw", pfxOpsize, 0x98) }

// Cwde emits CWDE: sign-extend AX into EAX.
func (a *Assembler) Cwde() { a.fixed("Cwde", 0x98) }

// Cdqe emits CDQE: sign-extend EAX into RAX.
func (a *Assembler) Cdqe() { a.fixed("Cdqe", rexBase|rexW, 0x98) }

// Cwd emits CWD: sign-extend AX into DX:AX.
func (a *Assembler) Cwd() { a.fixed("Cwd", pfxOpsize, 0x99) }

// Cdq emits CDQ: sign-extend EAX into EDX:EAX.
func (a *Assembler) Cdq() { a.fixed("Cdq", 0x99) }

// Cqo emits CQO: sign-extend RAX into RDX:RAX.
func (a *Assembler) Cqo() { a.fixed("Cqo", rexBase|rexW, 0x99) }

// fixed emits an instruction without operands, given as its complete byte
// sequence (prefixes included).
func (a *Assembler) fixed(op string, code ...byte) {
	a.emit(&ins{op: op, code: code})
}
