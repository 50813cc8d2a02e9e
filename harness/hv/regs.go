package hv

import "fmt"

// Regs holds the general-purpose registers. The field order is that of
// struct kvm_regs so the kvm backend can use it as the ioctl buffer.
type Regs struct {
	RAX, RBX, RCX, RDX uint64
	RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11   uint64
	R12, R13, R14, R15 uint64
	RIP, RFLAGS        uint64
}

// GPR returns general-purpose register n in hardware numbering
// (0 = RAX, 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP, 5 = RBP, 6 = RSI, 7 = RDI, 8..15 = R8..R15).
func (r *Regs) GPR(n int) uint64 { return *r.gprPtr(n) }

// SetGPR sets general-purpose register n in hardware numbering.
func (r *Regs) SetGPR(n int, v uint64) { *r.gprPtr(n) = v }

func (r *Regs) gprPtr(n int) *uint64 {
	switch n & 15 {
	case 0:
		return &r.RAX
	case 1:
		return &r.RCX
	case 2:
		return &r.RDX
	case 3:
		return &r.RBX
	case 4:
		return &r.RSP
	case 5:
		return &r.RBP
	case 6:
		return &r.RSI
	case 7:
		return &r.RDI
	case 8:
		return &r.R8
	case 9:
		return &r.R9
	case 10:
		return &r.R10
	case 11:
		return &r.R11
	case 12:
		return &r.R12
	case 13:
		return &r.R13
	case 14:
		return &r.R14
	default:
		return &r.R15
	}
}

// GPRNames are the register names in hardware numbering.
var GPRNames = [16]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}

func (r Regs) String() string {
	s := ""
	for i := 0; i < 16; i++ {
		s += fmt.Sprintf("%s=%#x ", GPRNames[i], r.GPR(i))
	}
	return s + fmt.Sprintf("rip=%#x rflags=%#x", r.RIP, r.RFLAGS)
}

// RFLAGS bits used by the harness.
const (
	FlagCF   = 1 << 0
	FlagPF   = 1 << 2
	FlagAF   = 1 << 4
	FlagZF   = 1 << 6
	FlagSF   = 1 << 7
	FlagTF   = 1 << 8
	FlagIF   = 1 << 9
	FlagDF   = 1 << 10
	FlagOF   = 1 << 11
	FlagIOPL = 3 << 12
	FlagNT   = 1 << 14
	FlagRF   = 1 << 16
	FlagVM   = 1 << 17
	FlagAC   = 1 << 18
	FlagID   = 1 << 21
	// FlagsFixed is bit 1, which always reads as one.
	FlagsFixed = 1 << 1
	// FlagsArith are the six arithmetic status flags.
	FlagsArith = FlagCF | FlagPF | FlagAF | FlagZF | FlagSF | FlagOF
)

// Segment mirrors struct kvm_segment.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
	_        uint8
}

// DTable mirrors struct kvm_dtable (GDTR/IDTR).
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// Sregs mirrors struct kvm_sregs.
type Sregs struct {
	CS, DS, ES, FS, GS, SS Segment
	TR, LDT                Segment
	GDT, IDT               DTable
	CR0, CR2, CR3, CR4     uint64
	CR8                    uint64
	EFER                   uint64
	APICBase               uint64
	InterruptBitmap        [4]uint64
}

// Control register and EFER bits used by the harness.
const (
	CR0PE = 1 << 0
	CR0MP = 1 << 1
	CR0ET = 1 << 4
	CR0NE = 1 << 5
	CR0WP = 1 << 16
	CR0AM = 1 << 18
	CR0PG = 1 << 31

	CR4PSE        = 1 << 4
	CR4PAE        = 1 << 5
	CR4PGE        = 1 << 7
	CR4PCE        = 1 << 8
	CR4OSFXSR     = 1 << 9
	CR4OSXMMEXCPT = 1 << 10

	EFERSCE = 1 << 0
	EFERLME = 1 << 8
	EFERLMA = 1 << 10
	EFERNXE = 1 << 11
)

// DebugRegs holds DR0-DR3, DR6 and DR7.
type DebugRegs struct {
	DB  [4]uint64
	DR6 uint64
	DR7 uint64
}

// DebugFlags are the control bits of KVM_SET_GUEST_DEBUG, with KVM's x86
// values (KVM_GUESTDBG_*), so the kvm backend passes them through as they are.
type DebugFlags uint32

// Guest debug flags.
const (
	// DebugEnable turns host-side debugging on; without it the other
	// flags are ignored and the guest owns its debug state.
	DebugEnable DebugFlags = 1 << 0
	// DebugSingleStep exits to the host after every guest instruction.
	DebugSingleStep DebugFlags = 1 << 1
	// DebugUseSWBP makes int3 exit to the host instead of raising #BP.
	DebugUseSWBP DebugFlags = 1 << 16
	// DebugUseHWBP makes GuestDebug.DebugReg[0..3,7] the host's hardware
	// breakpoints and watchpoints, in place of the guest's DR0-DR3/DR7.
	DebugUseHWBP DebugFlags = 1 << 17
	// DebugInjectDB injects a #DB into the guest on the next entry.
	DebugInjectDB DebugFlags = 1 << 18
	// DebugInjectBP injects a #BP into the guest on the next entry.
	DebugInjectBP DebugFlags = 1 << 19
	// DebugBlockIRQ keeps interrupts from being delivered while
	// single-stepping, so a step lands on the next instruction of the
	// code being stepped, not in an interrupt handler.
	DebugBlockIRQ DebugFlags = 1 << 20
)

// DebugFlagsKnown is every flag the contract defines; backends refuse others.
const DebugFlagsKnown = DebugEnable | DebugSingleStep | DebugUseSWBP | DebugUseHWBP |
	DebugInjectDB | DebugInjectBP | DebugBlockIRQ

var debugFlagNames = []struct {
	f    DebugFlags
	name string
}{
	{DebugEnable, "enable"}, {DebugSingleStep, "singlestep"}, {DebugUseSWBP, "sw-bp"},
	{DebugUseHWBP, "hw-bp"}, {DebugInjectDB, "inject-db"}, {DebugInjectBP, "inject-bp"},
	{DebugBlockIRQ, "blockirq"},
}

func (f DebugFlags) String() string {
	s := ""
	for _, n := range debugFlagNames {
		if f&n.f != 0 {
			s += "|" + n.name
		}
	}
	if rest := f &^ DebugFlagsKnown; rest != 0 {
		s += fmt.Sprintf("|%#x", uint32(rest))
	}
	if s == "" {
		return "none"
	}
	return s[1:]
}

// GuestDebug configures host-side debugging of a vCPU (KVM_SET_GUEST_DEBUG).
// DebugReg holds DR0-DR3 in [0..3] and DR7 in [7] when DebugUseHWBP is set.
type GuestDebug struct {
	Flags    DebugFlags
	DebugReg [8]uint64
}

// DebugExit routing. With host debugging enabled a debug event is the
// host's (a DebugExit) when it comes from the host's own settings: a
// single-step with DebugSingleStep, an int3 with DebugUseSWBP, a hit of a
// breakpoint in GuestDebug.DebugReg with DebugUseHWBP. Every other debug
// event (the guest's own TF, DR0-DR3, int3 without DebugUseSWBP) is the
// guest's and goes through its IDT as #DB or #BP.

// MSR indices used by the harness and suites.
const (
	MSREFER         = 0xC0000080
	MSRFSBase       = 0xC0000100
	MSRGSBase       = 0xC0000101
	MSRKernelGSBase = 0xC0000102
	MSRTSC          = 0x10
	MSRAPICBase     = 0x1B
)
