package asm

import (
	"fmt"
	"strings"
)

// Operand is an instruction operand: a Reg, an Imm or a Mem. The interface is
// sealed (its method is unexported) so that an instruction method can rely on
// seeing only those three types.
type Operand interface {
	isOperand()
}

func (Reg) isOperand() {}
func (Imm) isOperand() {}
func (Mem) isOperand() {}

// Imm is an immediate operand. Its value is taken at the width of the other
// operand: for 8-, 16- and 32-bit operands any value that fits that width,
// signed or unsigned, is accepted (Imm(0xFF) and Imm(-1) are the same byte);
// for 64-bit operands, whose immediates are 32 bits sign-extended by the CPU,
// the value must fit in int32 so that what executes is exactly what was
// written. Mov and MovAbs are the only ways to load a full 64-bit constant.
type Imm int64

// Mem is a memory operand [Base + Index*Scale + Disp] or [rip + Label + Disp].
// Addresses are always 64-bit: Base and Index must be 64-bit registers.
type Mem struct {
	Base  Reg    // NoReg: no base (absolute disp32 via SIB, or RIP-relative when Label != nil)
	Index Reg    // NoReg: none; RSP cannot be an index
	Scale uint8  // 1, 2, 4 or 8 (0 means 1)
	Disp  int32  // displacement; for RIP-relative operands, added to the label address
	Size  int    // operand size in bytes 1, 2, 4, 8; 0 = taken from the other operand when unambiguous
	Label *Label // RIP-relative reference to a label (Base and Index must be NoReg)
}

// B returns the byte operand [base+disp].
func B(base Reg, disp int32) Mem { return Mem{Base: base, Disp: disp, Size: 1} }

// W returns the word (16-bit) operand [base+disp].
func W(base Reg, disp int32) Mem { return Mem{Base: base, Disp: disp, Size: 2} }

// D returns the doubleword (32-bit) operand [base+disp].
func D(base Reg, disp int32) Mem { return Mem{Base: base, Disp: disp, Size: 4} }

// Q returns the quadword (64-bit) operand [base+disp].
func Q(base Reg, disp int32) Mem { return Mem{Base: base, Disp: disp, Size: 8} }

// Idx returns m with index register index scaled by scale (1, 2, 4 or 8).
func (m Mem) Idx(index Reg, scale uint8) Mem {
	m.Index, m.Scale = index, scale
	return m
}

// WithSize returns m with operand size n bytes.
func (m Mem) WithSize(n int) Mem {
	m.Size = n
	return m
}

// Abs returns the operand at absolute address addr, encoded as [disp32]
// through a SIB byte (not RIP-relative). The CPU sign-extends the
// displacement, so negative addrs reach the top 2 GiB of the address space.
func Abs(size int, addr int32) Mem { return Mem{Disp: addr, Size: size} }

// Rel returns the RIP-relative operand [rip + l]; add to Disp for an offset
// from the label.
func Rel(size int, l *Label) Mem { return Mem{Label: l, Size: size} }

// scale returns the effective scale (0 means 1).
func (m Mem) scale() uint8 {
	if m.Scale == 0 {
		return 1
	}
	return m.Scale
}

var sizeNames = map[int]string{1: "byte", 2: "word", 4: "dword", 8: "qword"}

// String returns the operand in Intel syntax, e.g. "qword ptr [rax+rcx*8+0x10]".
// It exists for error messages.
func (m Mem) String() string {
	var b strings.Builder
	if n, ok := sizeNames[m.Size]; ok {
		b.WriteString(n + " ptr ")
	}
	b.WriteByte('[')
	sep := ""
	if m.Label != nil {
		b.WriteString("rip+" + m.Label.String())
		sep = "+"
	}
	if m.Base != NoReg {
		b.WriteString(m.Base.String())
		sep = "+"
	}
	if m.Index != NoReg {
		fmt.Fprintf(&b, "%s%s*%d", sep, m.Index, m.scale())
		sep = "+"
	}
	switch {
	case m.Disp < 0:
		fmt.Fprintf(&b, "-%#x", -int64(m.Disp))
	case m.Disp > 0 || sep == "":
		fmt.Fprintf(&b, "%s%#x", sep, m.Disp)
	}
	b.WriteByte(']')
	return b.String()
}

// operandString formats any operand for error messages.
func operandString(op Operand) string {
	switch o := op.(type) {
	case nil:
		return "<nil>"
	case Reg:
		return o.String()
	case Mem:
		return o.String()
	case Imm:
		if o < 0 {
			return fmt.Sprintf("-%#x", uint64(-o))
		}
		return fmt.Sprintf("%#x", int64(o))
	}
	return fmt.Sprintf("%v", op)
}

// kind classifies an operand for the instruction methods' operand switches.
type kind uint8

const (
	kNone kind = iota // nil operand
	kReg
	kMem
	kImm
)

func kindOf(op Operand) kind {
	switch op.(type) {
	case Reg:
		return kReg
	case Mem:
		return kMem
	case Imm:
		return kImm
	}
	return kNone
}

var kindNames = [...]string{kNone: "none", kReg: "reg", kMem: "mem", kImm: "imm"}

func (k kind) String() string { return kindNames[k] }

// signExtend truncates v to size bytes and sign-extends the result, giving
// the value the CPU will see for an immediate of that operand size.
func signExtend(v int64, size int) int64 {
	switch size {
	case 1:
		return int64(int8(v))
	case 2:
		return int64(int16(v))
	case 4:
		return int64(int32(v))
	}
	return v
}

// immFits reports whether v is an exact immediate for an operand of size
// bytes (see Imm for the rule).
func immFits(v int64, size int) bool {
	switch size {
	case 1:
		return v >= -1<<7 && v < 1<<8
	case 2:
		return v >= -1<<15 && v < 1<<16
	case 4:
		return v >= -1<<31 && v < 1<<32
	case 8:
		return v >= -1<<31 && v < 1<<31
	}
	return false
}

// fitsInt8 reports whether v, taken at operand size size, can be encoded as
// a sign-extended imm8.
func fitsInt8(v int64, size int) bool {
	s := signExtend(v, size)
	return s >= -128 && s <= 127
}
