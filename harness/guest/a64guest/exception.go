package a64guest

import "fmt"

// Exception classes, ESR_EL1.EC (Arm ARM D19.2).
const (
	ECUnknown         = 0x00
	ECWFx             = 0x01
	ECFPAccess        = 0x07
	ECIllegalState    = 0x0e
	ECSVC             = ECSVC64
	ECHVC64           = 0x16
	ECSMC64           = 0x17
	ECSysReg          = 0x18
	ECIABTLower       = 0x20
	ECIABTCurrent     = 0x21
	ECPCAlign         = 0x22
	ECDABTLower       = 0x24
	ECDABTCurrent     = 0x25
	ECSPAlign         = 0x26
	ECFPException     = 0x2c
	ECSError          = 0x2f
	ECBreakptLower    = 0x30
	ECBreakptCurrent  = 0x31
	ECSoftStepLower   = 0x32
	ECSoftStepCurrent = 0x33
	ECWatchptLower    = 0x34
	ECWatchptCurrent  = 0x35
	ECBRK64           = 0x3c
)

var ecNames = map[uint32]string{
	ECUnknown: "unknown reason", ECWFx: "WFI/WFE", ECFPAccess: "FP/SIMD access", ECIllegalState: "illegal execution state",
	ECSVC: "SVC", ECHVC64: "HVC", ECSMC64: "SMC", ECSysReg: "MSR/MRS trap",
	ECIABTLower: "instruction abort from EL0", ECIABTCurrent: "instruction abort", ECPCAlign: "PC alignment fault",
	ECDABTLower: "data abort from EL0", ECDABTCurrent: "data abort", ECSPAlign: "SP alignment fault",
	ECFPException: "FP exception", ECSError: "SError", ECBreakptLower: "breakpoint from EL0", ECBreakptCurrent: "breakpoint",
	ECSoftStepLower: "software step from EL0", ECSoftStepCurrent: "software step",
	ECWatchptLower: "watchpoint from EL0", ECWatchptCurrent: "watchpoint", ECBRK64: "BRK",
}

// ECName names an exception class.
func ECName(ec uint32) string {
	if n, ok := ecNames[ec]; ok {
		return n
	}
	return fmt.Sprintf("EC %#x", ec)
}

// ESR ISS fields of aborts.
const (
	ESRFSCMask = 0x3f    // ISS.DFSC/IFSC
	ESRWnR     = 1 << 6  // data abort: a write
	ESRISV     = 1 << 24 // data abort: the syndrome (size, register) is valid
)

// Exception is an exception the runtime caught: the vector it came
// through and the syndrome registers.
type Exception struct {
	Vector        uint64
	ESR, FAR, ELR uint64
	SPSR          uint64
}

// EC is the exception class.
func (x Exception) EC() uint32 { return uint32(x.ESR>>ESRECShift) & 0x3f }

// IsAbort reports whether the exception is an instruction or data abort.
func (x Exception) IsAbort() bool {
	switch x.EC() {
	case ECIABTLower, ECIABTCurrent, ECDABTLower, ECDABTCurrent:
		return true
	}
	return false
}

// FSC is the fault status code of an abort.
func (x Exception) FSC() uint32 { return uint32(x.ESR) & ESRFSCMask }

func (x Exception) String() string {
	s := fmt.Sprintf("%s through %s at pc %#x (esr %#x, spsr %#x)", ECName(x.EC()), VectorName(x.Vector), x.ELR, x.ESR, x.SPSR)
	if x.IsAbort() || x.EC() == ECWatchptLower || x.EC() == ECWatchptCurrent || x.EC() == ECPCAlign {
		s += fmt.Sprintf(", far %#x", x.FAR)
	}
	if x.IsAbort() {
		s += fmt.Sprintf(", fsc %#x", x.FSC())
	}
	return s
}

// ExceptionError is an exception the guest did not expect.
type ExceptionError struct {
	VCPU int
	Exception
	Source string // Go file:line that built the instruction at ELR, when known
}

func (e *ExceptionError) Error() string {
	s := fmt.Sprintf("unexpected guest exception: %s [vcpu %d]", e.Exception, e.VCPU)
	if e.Source != "" {
		s += " built at " + e.Source
	}
	return s
}

// TimeoutError says the guest was still running when the context ended.
type TimeoutError struct {
	VCPU   int
	PC     uint64
	Source string
	Err    error
}

func (e *TimeoutError) Error() string {
	s := fmt.Sprintf("guest timed out on vcpu %d at pc %#x", e.VCPU, e.PC)
	if e.Source != "" {
		s += " (instruction built at " + e.Source + ")"
	}
	return s + ": " + e.Err.Error()
}

func (e *TimeoutError) Unwrap() error { return e.Err }
