package asm

import "fmt"

// Reg is a general-purpose register of a given width. The zero value,
// NoReg, means "no register" (for example an absent base or index in a Mem).
//
// The value packs the width class and the hardware number so that Size, Num
// and As are arithmetic rather than table look-ups: four classes of sixteen,
// 64-bit first. The high-byte registers AH, CH, DH and BH are deliberately
// absent: they cannot be encoded together with a REX prefix, and leaving them
// out means every 8-bit register can be used in every instruction.
type Reg uint8

// NoReg is the absent register.
const NoReg Reg = 0

// 64-bit registers.
const (
	RAX Reg = iota + 1
	RCX
	RDX
	RBX
	RSP
	RBP
	RSI
	RDI
	R8
	R9
	R10
	R11
	R12
	R13
	R14
	R15
)

// 32-bit registers. Writing one zero-extends into the full 64-bit register.
const (
	EAX Reg = iota + 17
	ECX
	EDX
	EBX
	ESP
	EBP
	ESI
	EDI
	R8D
	R9D
	R10D
	R11D
	R12D
	R13D
	R14D
	R15D
)

// 16-bit registers.
const (
	AX Reg = iota + 33
	CX
	DX
	BX
	SP
	BP
	SI
	DI
	R8W
	R9W
	R10W
	R11W
	R12W
	R13W
	R14W
	R15W
)

// 8-bit registers (low bytes). SPL, BPL, SIL and DIL always get a REX prefix,
// without which their encodings would mean AH, CH, DH and BH.
const (
	AL Reg = iota + 49
	CL
	DL
	BL
	SPL
	BPL
	SIL
	DIL
	R8B
	R9B
	R10B
	R11B
	R12B
	R13B
	R14B
	R15B
)

const (
	regsPerClass = 16
	lastReg      = R15B
)

// classSizes maps a register's class (its value's position in the blocks
// above) to its width in bytes.
var classSizes = [4]int{8, 4, 2, 1}

var regNames = [4][regsPerClass]string{
	{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"},
	{"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d"},
	{"ax", "cx", "dx", "bx", "sp", "bp", "si", "di", "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w"},
	{"al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil", "r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b"},
}

func (r Reg) valid() bool { return r >= RAX && r <= lastReg }

func (r Reg) class() int { return int(r-1) / regsPerClass }

// Size returns the register width in bytes (1, 2, 4 or 8), or 0 for NoReg
// and values that are not registers.
func (r Reg) Size() int {
	if !r.valid() {
		return 0
	}
	return classSizes[r.class()]
}

// Num returns the hardware register number 0..15 as used in ModRM, SIB and
// REX, or -1 for NoReg and values that are not registers.
func (r Reg) Num() int {
	if !r.valid() {
		return -1
	}
	return int(r-1) % regsPerClass
}

// String returns the Intel-syntax name, e.g. "r8d".
func (r Reg) String() string {
	if r == NoReg {
		return "noreg"
	}
	if !r.valid() {
		return fmt.Sprintf("Reg(%d)", uint8(r))
	}
	return regNames[r.class()][r.Num()]
}

// As returns the same hardware register at another width, e.g.
// RAX.As(4) == EAX and R9.As(1) == R9B. It returns NoReg when r is not a
// register or size is not 1, 2, 4 or 8.
func (r Reg) As(size int) Reg {
	if !r.valid() {
		return NoReg
	}
	for c, s := range classSizes {
		if s == size {
			return Reg(c*regsPerClass+r.Num()) + 1
		}
	}
	return NoReg
}

// needsREX reports whether an 8-bit register is only reachable with a REX
// prefix present (SPL, BPL, SIL, DIL).
func (r Reg) needsREX() bool {
	n := r.Num()
	return r.Size() == 1 && n >= 4 && n <= 7
}

// CReg is a control register. Its value is the hardware number used in the
// ModRM reg field of MOV to/from CR (CR8 needs REX.R).
type CReg uint8

// Control registers that exist in 64-bit mode.
const (
	CR0 CReg = 0
	CR2 CReg = 2
	CR3 CReg = 3
	CR4 CReg = 4
	CR8 CReg = 8
)

func (c CReg) valid() bool {
	switch c {
	case CR0, CR2, CR3, CR4, CR8:
		return true
	}
	return false
}

// String returns the register name, e.g. "cr3".
func (c CReg) String() string {
	if !c.valid() {
		return fmt.Sprintf("CReg(%d)", uint8(c))
	}
	return fmt.Sprintf("cr%d", uint8(c))
}

// DReg is a debug register DR0..DR7; the value is the hardware number.
// DR4 and DR5 are accepted because whether they alias DR6/DR7 (CR4.DE=0) or
// raise #UD (CR4.DE=1) is itself something a conformance suite checks.
type DReg uint8

// Debug registers.
const (
	DR0 DReg = iota
	DR1
	DR2
	DR3
	DR4
	DR5
	DR6
	DR7
)

func (d DReg) valid() bool { return d <= DR7 }

// String returns the register name, e.g. "dr7".
func (d DReg) String() string {
	if !d.valid() {
		return fmt.Sprintf("DReg(%d)", uint8(d))
	}
	return fmt.Sprintf("dr%d", uint8(d))
}

// Cond is a condition code, numbered as the hardware "cc" field of Jcc,
// SETcc and CMOVcc, so it is added directly to the base opcode.
type Cond uint8

// Condition codes, in hardware order.
const (
	CondO  Cond = iota // overflow
	CondNO             // no overflow
	CondB              // below (unsigned <), carry
	CondAE             // above or equal (unsigned >=), no carry
	CondE              // equal, zero
	CondNE             // not equal, not zero
	CondBE             // below or equal (unsigned <=)
	CondA              // above (unsigned >)
	CondS              // sign
	CondNS             // no sign
	CondP              // parity even
	CondNP             // parity odd
	CondL              // less (signed <)
	CondGE             // greater or equal (signed >=)
	CondLE             // less or equal (signed <=)
	CondG              // greater (signed >)
)

// Aliases for condition codes that have two common names.
const (
	CondC  = CondB  // carry
	CondNC = CondAE // no carry
	CondZ  = CondE  // zero
	CondNZ = CondNE // not zero
)

var condNames = [16]string{"o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"}

func (c Cond) valid() bool { return c <= CondG }

// Not returns the opposite condition. The hardware pairs each condition with
// its negation in the low bit, which is why this is a single XOR.
func (c Cond) Not() Cond { return c ^ 1 }

// String returns the mnemonic suffix, e.g. "ne".
func (c Cond) String() string {
	if !c.valid() {
		return fmt.Sprintf("Cond(%d)", uint8(c))
	}
	return condNames[c]
}
