package asm

import "fmt"

// Prefix and REX bytes.
const (
	pfxLock   = 0xF0
	pfxRepne  = 0xF2
	pfxRep    = 0xF3
	pfxOpsize = 0x66
	rexBase   = 0x40
	rexW      = 0x08
	rexR      = 0x04
	rexX      = 0x02
	rexB      = 0x01
)

// maxInsnLen is the architectural limit on instruction length.
const maxInsnLen = 15

// repMode says which repeat prefixes an instruction admits.
type repMode uint8

const (
	repNone  repMode = iota
	repPlain         // MOVS, STOS, LODS, INS, OUTS: F3 only
	repCond          // CMPS, SCAS: F3 (repe) and F2 (repne)
)

// ins describes one instruction to encode. Instruction methods fill it in
// after validating operands and hand it to emit, which adds prefixes, REX,
// ModRM/SIB, displacement, immediate and label fixups.
type ins struct {
	op     string // Assembler method name, for errors
	pfx    byte   // mandatory F2/F3 prefix (e.g. PAUSE), or 0
	opsize bool   // 0x66 operand-size prefix (16-bit operands)
	w      bool   // REX.W (64-bit operands)
	code   []byte // opcode bytes, without prefixes

	// ModRM operand. hasModRM with reg holding the register number or the
	// /digit opcode extension, and rm a Reg or Mem.
	hasModRM bool
	reg      int
	regIsReg Reg // the register in reg, if any, to check for REX needs
	rm       Operand

	plusReg Reg // register encoded in the low 3 bits of the last opcode byte

	imm      int64
	immLen   int
	immLabel *Label // the immediate is this label's absolute address

	rel    *Label // branch target; the displacement follows the opcode
	relLen int    // 1 or 4

	lockOK bool // LOCK is legal when rm is a memory destination
	srcRM  bool // rm is a source operand (reg, mem forms): LOCK is illegal
	rep    repMode
}

// emit encodes in and appends it, consuming any pending Lock/Rep prefix.
// Operand validation that is common to all instructions (memory operand
// shape, labels) happens here, so nothing is emitted when it fails.
func (a *Assembler) emit(in *ins) {
	p := a.prefix
	a.prefix = nil
	// Room beyond the 15-byte limit, so that an over-long combination is
	// reported by the length check below rather than by an index panic.
	var b [2 * maxInsnLen]byte
	n := 0
	// Legacy prefixes in the order GNU as uses (operand size, repeat,
	// lock), so that our bytes match its output where the encodings agree.
	// The CPU accepts any order.
	if in.opsize {
		b[n] = pfxOpsize
		n++
	}
	if p != nil && p.rep != 0 {
		if in.rep == repNone || (p.rep == pfxRepne && in.rep != repCond) {
			a.fail(in.op, "%s prefix not allowed on this instruction", p.op)
			return
		}
		b[n] = p.rep
		n++
	}
	if in.pfx != 0 {
		b[n] = in.pfx
		n++
	}
	if p != nil && p.lock {
		if !in.lockOK {
			a.fail(in.op, "LOCK prefix not allowed on this instruction")
			return
		}
		if _, ok := in.rm.(Mem); !ok || in.srcRM {
			what := "register operands only"
			if in.srcRM {
				what = "memory is the source"
			} else if in.rm != nil {
				what = "destination " + operandString(in.rm)
			}
			a.fail(in.op, "LOCK prefix needs a memory destination, have %s", what)
			return
		}
		b[n] = pfxLock
		n++
	}

	var rex byte
	if in.w {
		rex |= rexW
	}
	var (
		modrm    byte
		sib      byte
		hasSIB   bool
		disp     int32
		dispLen  int
		ripLabel *Label
	)
	if in.hasModRM {
		if in.reg&8 != 0 {
			rex |= rexR
		}
		if in.regIsReg.needsREX() {
			rex |= rexBase
		}
		modrm = byte(in.reg&7) << 3
		switch rm := in.rm.(type) {
		case Reg:
			if rm.Num()&8 != 0 {
				rex |= rexB
			}
			if rm.needsREX() {
				rex |= rexBase
			}
			modrm |= 0xC0 | byte(rm.Num()&7)
		case Mem:
			if !a.checkMem(in.op, rm) {
				return
			}
			var e memEnc
			e.encode(rm)
			modrm |= e.mod<<6 | e.rm
			sib, hasSIB = e.sib, e.hasSIB
			disp, dispLen = e.disp, e.dispLen
			rex |= e.rex
			ripLabel = rm.Label
		default:
			a.fail(in.op, "internal error: ModRM operand %T", in.rm)
			return
		}
	}
	if in.plusReg != NoReg {
		if in.plusReg.Num()&8 != 0 {
			rex |= rexB
		}
		if in.plusReg.needsREX() {
			rex |= rexBase
		}
	}
	if in.rel != nil && !a.checkLabel(in.op, in.rel) {
		return
	}
	if in.immLabel != nil && !a.checkLabel(in.op, in.immLabel) {
		return
	}

	if rex != 0 {
		b[n] = rexBase | rex
		n++
	}
	n += copy(b[n:], in.code)
	if in.plusReg != NoReg {
		b[n-1] |= byte(in.plusReg.Num() & 7)
	}
	var fix [2]fixup
	nfix := 0
	if in.hasModRM {
		b[n] = modrm
		n++
		if hasSIB {
			b[n] = sib
			n++
		}
		if ripLabel != nil {
			fix[nfix] = fixup{kind: fixRel32, at: n, l: ripLabel, add: int64(disp), op: in.op}
			nfix++
		}
		putLE(b[n:], uint64(disp), dispLen)
		n += dispLen
	}
	if in.rel != nil {
		k := fixRel32
		if in.relLen == 1 {
			k = fixRel8
		}
		fix[nfix] = fixup{kind: k, at: n, l: in.rel, op: in.op}
		nfix++
		n += in.relLen
	}
	if in.immLabel != nil {
		fix[nfix] = fixup{kind: fixAbs64, at: n, l: in.immLabel, op: in.op}
		nfix++
	}
	putLE(b[n:], uint64(in.imm), in.immLen)
	n += in.immLen
	if n > maxInsnLen {
		a.fail(in.op, "instruction would be %d bytes, over the 15-byte limit", n)
		return
	}
	// PC-relative displacements count from the end of the whole instruction,
	// which is only known now that the immediate is placed.
	for i := 0; i < nfix; i++ {
		fix[i].end = n
	}
	a.appendItem(recInsn, b[:n], fix[:nfix])
}

// checkMem validates the shape of a memory operand, recording an error and
// returning false if it cannot be encoded.
func (a *Assembler) checkMem(op string, m Mem) bool {
	switch {
	case m.Label != nil:
		if m.Base != NoReg || m.Index != NoReg {
			a.fail(op, "RIP-relative operand %v cannot have a base or index register", m)
			return false
		}
		return a.checkLabel(op, m.Label)
	case m.Base != NoReg && m.Base.Size() != 8:
		a.fail(op, "base register %v is not a 64-bit register", m.Base)
		return false
	case m.Index != NoReg && m.Index.Size() != 8:
		a.fail(op, "index register %v is not a 64-bit register", m.Index)
		return false
	case m.Index == RSP:
		a.fail(op, "rsp cannot be an index register")
		return false
	}
	switch m.Scale {
	case 0, 1:
	case 2, 4, 8:
		if m.Index == NoReg {
			a.fail(op, "scale %d without an index register", m.Scale)
			return false
		}
	default:
		a.fail(op, "scale %d is not 1, 2, 4 or 8", m.Scale)
		return false
	}
	return true
}

// memEnc is the ModRM/SIB/displacement encoding of a validated Mem.
type memEnc struct {
	mod, rm byte
	sib     byte
	hasSIB  bool
	disp    int32
	dispLen int
	rex     byte // REX.X and REX.B bits
}

var scaleBits = map[uint8]byte{1: 0, 2: 1, 4: 2, 8: 3}

// encode fills e for m. The special cases of ModRM addressing are:
// rm=100 means a SIB byte follows (so RSP/R12 bases need SIB), mod=00 rm=101
// means RIP+disp32 (so RBP/R13 bases need an explicit disp8 of 0), and a SIB
// base of 101 with mod=00 means "no base, disp32" (absolute addressing
// without RIP). SIB index 100 without REX.X means "no index", which is why
// RSP cannot be an index while R12 can.
func (e *memEnc) encode(m Mem) {
	e.disp = m.Disp
	if m.Label != nil {
		e.mod, e.rm, e.dispLen = 0, 5, 4
		return
	}
	index := byte(4) // none
	if m.Index != NoReg {
		index = byte(m.Index.Num())
		if index&8 != 0 {
			e.rex |= rexX
		}
	}
	ss := scaleBits[m.scale()] << 6
	if m.Base == NoReg {
		e.mod, e.rm, e.hasSIB, e.dispLen = 0, 4, true, 4
		e.sib = ss | (index&7)<<3 | 5
		return
	}
	base := byte(m.Base.Num())
	if base&8 != 0 {
		e.rex |= rexB
	}
	switch {
	case m.Disp == 0 && base&7 != 5:
		e.mod = 0
	case m.Disp >= -128 && m.Disp <= 127:
		e.mod, e.dispLen = 1, 1
	default:
		e.mod, e.dispLen = 2, 4
	}
	if m.Index != NoReg || base&7 == 4 {
		e.rm, e.hasSIB = 4, true
		e.sib = ss | (index&7)<<3 | base&7
		return
	}
	e.rm = base & 7
}

// setSize sets the operand-size prefix or REX.W for size (2 or 8 bytes).
// 8-bit forms use a separate opcode, chosen by the caller.
func (in *ins) setSize(size int) {
	in.opsize = size == 2
	in.w = size == 8
}

// immFor sets a full-size immediate (imm8, imm16 or imm32) for an operand
// of size bytes: 64-bit operands take a sign-extended imm32.
func (in *ins) immFor(v int64, size int) {
	in.imm = v
	in.immLen = size
	if size == 8 {
		in.immLen = 4
	}
}

// modRM sets the ModRM operands: reg is a register or nil for an opcode
// extension given by digit.
func (in *ins) modRM(reg Reg, digit int, rm Operand) {
	in.hasModRM = true
	in.rm = rm
	if reg != NoReg {
		in.reg = reg.Num()
		in.regIsReg = reg
	} else {
		in.reg = digit
	}
}

// opSize returns the operand size implied by a register or memory operand,
// 0 if the operand does not say (memory without Size).
func opSize(op Operand) int {
	switch o := op.(type) {
	case Reg:
		return o.Size()
	case Mem:
		return o.Size
	}
	return 0
}

// checkReg records an error unless r is a register of one of sizes.
func (a *Assembler) checkReg(op string, r Reg, sizes ...int) bool {
	if !r.valid() {
		a.fail(op, "invalid register %v", r)
		return false
	}
	for _, s := range sizes {
		if r.Size() == s {
			return true
		}
	}
	a.fail(op, "register %v has size %d, want %s", r, r.Size(), sizeList(sizes))
	return false
}

// checkRM validates a register-or-memory operand whose size is known to be
// size (from the other operand or from the instruction); a Mem with Size 0
// takes it.
func (a *Assembler) checkRM(op string, rm Operand, size int) (Operand, bool) {
	switch o := rm.(type) {
	case Reg:
		if !o.valid() {
			a.fail(op, "invalid register %v", o)
			return nil, false
		}
		if o.Size() != size {
			a.fail(op, "operand size mismatch: %v is %d bytes, want %d", o, o.Size(), size)
			return nil, false
		}
		return o, true
	case Mem:
		if o.Size != 0 && o.Size != size {
			a.fail(op, "operand size mismatch: %v is %d bytes, want %d", o, o.Size, size)
			return nil, false
		}
		o.Size = size
		return o, true
	}
	a.fail(op, "operand %s must be a register or memory", operandString(rm))
	return nil, false
}

// sizeList formats allowed sizes for messages, e.g. "2, 4 or 8 bytes".
func sizeList(sizes []int) string {
	s := ""
	for i, n := range sizes {
		switch {
		case i == 0:
		case i == len(sizes)-1:
			s += " or "
		default:
			s += ", "
		}
		s += fmt.Sprint(n)
	}
	return s + " bytes"
}

// validSize reports whether n is an operand size of general-purpose
// instructions.
func validSize(n int) bool { return n == 1 || n == 2 || n == 4 || n == 8 }

// Lock applies a LOCK prefix to the next instruction, which must be one of
// the lockable read-modify-write instructions with a memory destination
// (ADD, ADC, AND, BTC, BTR, BTS, CMPXCHG, DEC, INC, NEG, NOT, OR, SBB, SUB,
// XADD, XCHG, XOR); anything else is reported as an error on that
// instruction. It returns a so that calls chain: a.Lock().Xadd(m, RAX).
func (a *Assembler) Lock() *Assembler {
	a.setPrefix(&pending{op: "Lock", lock: true})
	return a
}

// Rep applies a REP prefix (F3) to the next instruction, which must be a
// string instruction. On CMPS and SCAS it means REPE/REPZ.
func (a *Assembler) Rep() *Assembler {
	a.setPrefix(&pending{op: "Rep", rep: pfxRep})
	return a
}

// Repne applies a REPNE prefix (F2) to the next instruction, which must be
// CMPS or SCAS.
func (a *Assembler) Repne() *Assembler {
	a.setPrefix(&pending{op: "Repne", rep: pfxRepne})
	return a
}

func (a *Assembler) setPrefix(p *pending) {
	if a.prefix != nil {
		a.fail(p.op, "a %s prefix is already pending", a.prefix.op)
		return
	}
	p.pcs = callers(nil)
	a.prefix = p
}
