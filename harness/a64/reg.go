package a64

import "fmt"

// Reg is a general-purpose register: Xn (64-bit) or Wn (32-bit), n in
// 0..30, or register 31 as the zero register (XZR/WZR) or the stack pointer
// (SP/WSP). Which of the two register 31 means depends on the operand
// position, so they are distinct values and each instruction checks that
// it is given the one its encoding reads. The zero Reg is invalid.
type Reg uint8

const (
	regValid Reg = 0x80
	reg64    Reg = 0x40
	regSP    Reg = 0x20 // register 31 as the stack pointer
)

// 64-bit registers.
const (
	X0 Reg = regValid | reg64 | iota
	X1
	X2
	X3
	X4
	X5
	X6
	X7
	X8
	X9
	X10
	X11
	X12
	X13
	X14
	X15
	X16
	X17
	X18
	X19
	X20
	X21
	X22
	X23
	X24
	X25
	X26
	X27
	X28
	X29
	X30
	XZR
)

// 32-bit registers.
const (
	W0 Reg = regValid | iota
	W1
	W2
	W3
	W4
	W5
	W6
	W7
	W8
	W9
	W10
	W11
	W12
	W13
	W14
	W15
	W16
	W17
	W18
	W19
	W20
	W21
	W22
	W23
	W24
	W25
	W26
	W27
	W28
	W29
	W30
	WZR
)

// Stack pointers and the usual aliases.
const (
	SP  Reg = regValid | reg64 | regSP | 31
	WSP Reg = regValid | regSP | 31
	FP      = X29 // frame pointer
	LR      = X30 // link register
)

// X returns the 64-bit register Xn (n in 0..30; 31 is XZR), and the
// invalid Reg for other n.
func X(n int) Reg {
	if n < 0 || n > 31 {
		return 0
	}
	return X0 + Reg(n)
}

// W returns the 32-bit register Wn, as X does.
func W(n int) Reg {
	if n < 0 || n > 31 {
		return 0
	}
	return W0 + Reg(n)
}

func (r Reg) valid() bool {
	return r&regValid != 0 && r&^(regValid|reg64|regSP) <= 31 && (r&regSP == 0 || r.num() == 31)
}
func (r Reg) num() uint32 { return uint32(r & 31) }
func (r Reg) is64() bool  { return r&reg64 != 0 }
func (r Reg) isSP() bool  { return r&regSP != 0 }
func (r Reg) isZR() bool  { return r.num() == 31 && !r.isSP() }

// sf is the size bit of data-processing encodings.
func (r Reg) sf() uint32 {
	if r.is64() {
		return 1
	}
	return 0
}

// String returns the register's GNU name, e.g. "x3", "wzr", "sp".
func (r Reg) String() string {
	switch {
	case !r.valid():
		return fmt.Sprintf("Reg(%#x)", uint8(r))
	case r.isSP() && r.is64():
		return "sp"
	case r.isSP():
		return "wsp"
	case r.isZR() && r.is64():
		return "xzr"
	case r.isZR():
		return "wzr"
	case r.is64():
		return fmt.Sprintf("x%d", r.num())
	}
	return fmt.Sprintf("w%d", r.num())
}

func (Reg) isOperand() {}

// Operand is the flexible second source of data-processing instructions:
// an Imm, a Reg, or a register shifted by a constant (Shifted).
type Operand interface{ isOperand() }

// Imm is an immediate operand.
type Imm int64

func (Imm) isOperand() {}

// Shift is a shift kind of a shifted-register operand.
type Shift uint8

// Shift kinds, in encoding order.
const (
	LSL Shift = iota
	LSR
	ASR
	ROR // logical instructions only
)

func (s Shift) String() string {
	if s > ROR {
		return fmt.Sprintf("Shift(%d)", uint8(s))
	}
	return [...]string{"lsl", "lsr", "asr", "ror"}[s]
}

// ShiftedReg is a register operand shifted by a constant amount.
type ShiftedReg struct {
	R      Reg
	Shift  Shift
	Amount uint
}

func (ShiftedReg) isOperand() {}

// Shifted returns the operand "r, shift #amount".
func Shifted(r Reg, s Shift, amount uint) ShiftedReg { return ShiftedReg{r, s, amount} }

// Cond is a condition code of B.cond, CSEL and CSET.
type Cond uint8

// Condition codes, in encoding order.
const (
	EQ Cond = iota
	NE
	HS
	LO
	MI
	PL
	VS
	VC
	HI
	LS
	GE
	LT
	GT
	LE
	AL
	NV
	CS = HS
	CC = LO
)

func (c Cond) String() string {
	if c > NV {
		return fmt.Sprintf("Cond(%d)", uint8(c))
	}
	return [...]string{"eq", "ne", "cs", "cc", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al", "nv"}[c]
}

// Num returns the register number, 0..31.
func (r Reg) Num() uint32 { return r.num() }

// Equal reports whether r and s are the same register.
func (r Reg) Equal(s Reg) bool { return r == s }
