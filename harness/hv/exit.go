package hv

import "fmt"

// ExitKind classifies why Run returned.
type ExitKind int

// Exit kinds. They follow the KVM exit reasons a conformance suite cares about.
const (
	ExitUnknown ExitKind = iota
	ExitIO
	ExitMMIO
	ExitHalt
	ExitDebug
	ExitShutdown
	ExitDirtyRingFull
	ExitInternalError
	ExitFailEntry
	ExitMSR
	ExitHypercall
	ExitSystemEvent
)

var exitNames = [...]string{"unknown", "io", "mmio", "halt", "debug", "shutdown",
	"dirty-ring-full", "internal-error", "fail-entry", "msr", "hypercall", "system-event"}

func (k ExitKind) String() string {
	if int(k) < len(exitNames) {
		return exitNames[k]
	}
	return fmt.Sprintf("exit(%d)", int(k))
}

// Exit is what Run returns when the guest stops for the host. The value
// belongs to the vCPU and is valid until the next Run: the host answers an
// IN or an MMIO read by writing into its Data, and Run hands it to the guest.
// Every exit type implements Exit with pointer receivers only, so a type
// switch names them as *hv.HaltExit and a value case cannot compile.
type Exit interface {
	Kind() ExitKind
	String() string
}

// IOExit is a port I/O exit. For an IN the host fills Data before the next Run.
type IOExit struct {
	Port  uint16
	Size  int // bytes per element: 1, 2 or 4
	Count int // elements (string I/O may move several)
	In    bool
	Data  []byte // Size*Count bytes
}

// Kind implements Exit.
func (*IOExit) Kind() ExitKind { return ExitIO }

func (e *IOExit) String() string {
	dir := "out"
	if e.In {
		dir = "in"
	}
	return fmt.Sprintf("io %s port %#x size %d count %d data % x", dir, e.Port, e.Size, e.Count, e.Data)
}

// Value returns the first element of Data as a little-endian integer.
func (e *IOExit) Value() uint64 { return leUint(e.Data[:e.Size]) }

// SetValue stores v as the first element of Data (for an IN).
func (e *IOExit) SetValue(v uint64) { putLE(e.Data[:e.Size], v) }

// MMIOExit is an access to guest-physical memory that no writable slot backs.
// For a read the host fills Data before the next Run.
type MMIOExit struct {
	GPA   uint64
	Len   int
	Write bool
	Data  []byte // Len bytes
}

// Kind implements Exit.
func (*MMIOExit) Kind() ExitKind { return ExitMMIO }

func (e *MMIOExit) String() string {
	dir := "read"
	if e.Write {
		dir = "write"
	}
	return fmt.Sprintf("mmio %s gpa %#x len %d data % x", dir, e.GPA, e.Len, e.Data)
}

// Value returns Data as a little-endian integer.
func (e *MMIOExit) Value() uint64 { return leUint(e.Data) }

// SetValue stores v into Data (for a read).
func (e *MMIOExit) SetValue(v uint64) { putLE(e.Data, v) }

// HaltExit: the guest executed HLT with interrupts that cannot wake it.
type HaltExit struct{}

// Kind implements Exit.
func (*HaltExit) Kind() ExitKind { return ExitHalt }
func (*HaltExit) String() string { return "halt" }

// ShutdownExit: triple fault or a similar unrecoverable guest state.
type ShutdownExit struct{}

// Kind implements Exit.
func (*ShutdownExit) Kind() ExitKind { return ExitShutdown }
func (*ShutdownExit) String() string { return "shutdown" }

// DirtyRingFullExit: the vCPU's dirty ring reached its soft limit.
type DirtyRingFullExit struct{}

// Kind implements Exit.
func (*DirtyRingFullExit) Kind() ExitKind { return ExitDirtyRingFull }
func (*DirtyRingFullExit) String() string { return "dirty-ring-full" }

// DebugExit: a host-requested debug event (breakpoint, single-step).
type DebugExit struct {
	Exception uint32 // x86: 1 = #DB, 3 = #BP; arm64: the exception class ESR[31:26]
	PC        uint64
	DR6, DR7  uint64
	// ESR and FAR are arm64's: the syndrome KVM reports (ESR_EL2, hsr
	// and hsr_high) and the faulting address of a watchpoint.
	ESR, FAR uint64
}

// Kind implements Exit.
func (*DebugExit) Kind() ExitKind { return ExitDebug }
func (e *DebugExit) String() string {
	if e.ESR != 0 {
		return fmt.Sprintf("debug ec %#x pc %#x esr %#x far %#x", e.Exception, e.PC, e.ESR, e.FAR)
	}
	return fmt.Sprintf("debug vector %d pc %#x dr6 %#x dr7 %#x", e.Exception, e.PC, e.DR6, e.DR7)
}

// InternalErrorExit: the hypervisor could not handle the guest (for example an
// instruction its emulator does not know). Detail is the backend's own
// diagnosis in words (the emu's: the instruction and why; KVM's: the
// suberror's name and the instruction bytes when KVM gives them), so a
// report says more than a number.
type InternalErrorExit struct {
	Suberror uint32
	Data     []uint64
	Detail   string
}

// Kind implements Exit.
func (*InternalErrorExit) Kind() ExitKind { return ExitInternalError }
func (e *InternalErrorExit) String() string {
	if e.Detail != "" {
		return fmt.Sprintf("internal-error suberror %d data %#x: %s", e.Suberror, e.Data, e.Detail)
	}
	return fmt.Sprintf("internal-error suberror %d data %#x", e.Suberror, e.Data)
}

// FailEntryExit: the hypervisor refused to enter the guest with this state.
type FailEntryExit struct {
	Reason uint64
	CPU    uint32
}

// Kind implements Exit.
func (*FailEntryExit) Kind() ExitKind { return ExitFailEntry }
func (e *FailEntryExit) String() string {
	return fmt.Sprintf("fail-entry reason %#x cpu %d", e.Reason, e.CPU)
}

// MSRExit: an RDMSR/WRMSR the host asked to handle. For a read the host sets
// Data; setting Error injects #GP. Both are handed back on the next Run.
type MSRExit struct {
	Write  bool
	Index  uint32
	Data   uint64
	Reason uint32
	Error  bool
}

// Kind implements Exit.
func (*MSRExit) Kind() ExitKind { return ExitMSR }
func (e *MSRExit) String() string {
	op := "rdmsr"
	if e.Write {
		op = "wrmsr"
	}
	return fmt.Sprintf("%s %#x data %#x reason %d", op, e.Index, e.Data, e.Reason)
}

// HypercallExit: the guest made a hypercall the hypervisor passed up.
type HypercallExit struct {
	Nr   uint64
	Args [6]uint64
	Ret  uint64
}

// Kind implements Exit.
func (*HypercallExit) Kind() ExitKind   { return ExitHypercall }
func (e *HypercallExit) String() string { return fmt.Sprintf("hypercall %d args %#x", e.Nr, e.Args) }

// SystemEventExit: the guest asked the platform to power off, reset or
// similar (KVM_EXIT_SYSTEM_EVENT; on arm64 the PSCI SYSTEM_OFF and
// SYSTEM_RESET calls). Type is KVM's KVM_SYSTEM_EVENT_* value; Data is
// what KVM adds (flags, for PSCI 1.1 SYSTEM_RESET2 the reset type).
type SystemEventExit struct {
	Type uint32
	Data []uint64
}

// System event types, with KVM's values.
const (
	SystemEventShutdown = 1
	SystemEventReset    = 2
	SystemEventCrash    = 3
)

// Kind implements Exit.
func (*SystemEventExit) Kind() ExitKind { return ExitSystemEvent }
func (e *SystemEventExit) String() string {
	name := map[uint32]string{SystemEventShutdown: "shutdown", SystemEventReset: "reset", SystemEventCrash: "crash"}[e.Type]
	if name == "" {
		name = fmt.Sprintf("type %d", e.Type)
	}
	return fmt.Sprintf("system-event %s data %#x", name, e.Data)
}

// UnknownExit carries an exit reason the backend does not classify.
type UnknownExit struct{ Reason uint32 }

// Kind implements Exit.
func (*UnknownExit) Kind() ExitKind   { return ExitUnknown }
func (e *UnknownExit) String() string { return fmt.Sprintf("unknown exit reason %d", e.Reason) }

func leUint(b []byte) uint64 {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func putLE(b []byte, v uint64) {
	for i := range b {
		b[i] = byte(v)
		v >>= 8
	}
}
