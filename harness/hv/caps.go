package hv

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Cap names one capability of a backend. Names are stable: they appear in
// `kvmspec caps`, in skip messages and in report properties.
type Cap string

// Capabilities a backend may offer. Suites ask for them with Caps.Require.
const (
	CapLongMode       Cap = "long-mode"         // 64-bit guests with 4-level paging
	CapMultiVCPU      Cap = "multi-vcpu"        // several vCPUs running at once
	CapReadOnlyMem    Cap = "readonly-mem"      // MemReadOnly slots
	CapDirtyLog       Cap = "dirty-log"         // MemLogDirty + GetDirtyLog
	CapManualProtect  Cap = "manual-protect"    // ClearDirtyLog (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)
	CapInitiallySet   Cap = "initially-set"     // manual protect with all bits initially set
	CapDirtyRing      Cap = "dirty-ring"        // per-vCPU dirty rings
	CapGuestDebug     Cap = "guest-debug"       // host-side SetGuestDebug
	CapHWBreakpoint   Cap = "hw-breakpoint"     // host-set hardware breakpoints
	CapSingleStep     Cap = "single-step"       // host-side single-step
	CapPMU            Cap = "pmu"               // guest-visible architectural PMU
	CapUserfault      Cap = "userfault"         // missing-page handlers on memslots
	CapStats          Cap = "stats"             // binary statistics
	CapUserSpaceMSR   Cap = "user-space-msr"    // MSR accesses exit to the host
	CapSignalKick     Cap = "cancel-running"    // a running vCPU can be stopped from outside
	CapMemfd          Cap = "memfd-backing"     // memfd-backed guest memory with hole punching
	CapCPL0Native     Cap = "cpl0-native"       // supervisor guest code runs at native speed
	CapInstructionSet Cap = "instruction-exact" // every instruction of the subset executes (no emulation gaps)

	// Contract v2.
	CapIRQChip          Cap = "irqchip"                   // VMConfig.IRQChip: LAPIC + I/O APIC; the detail says which path (in-kernel, userspace)
	CapMSI              Cap = "msi"                       // SignalMSI
	CapIRQLine          Cap = "irq-line"                  // SetIRQLine through an I/O APIC
	CapDirtyRingBitmap  Cap = "dirty-ring-with-bitmap"    // VMConfig.DirtyRingWithBitmap
	CapSoftwareBP       Cap = "sw-breakpoint"             // DebugUseSWBP: int3 exits to the host
	CapWatchpoint       Cap = "hw-watchpoint"             // DebugUseHWBP data breakpoints (RW=01/11)
	CapBlockIRQ         Cap = "guest-debug-blockirq"      // DebugBlockIRQ
	CapDebugInject      Cap = "guest-debug-inject"        // DebugInjectDB / DebugInjectBP
	CapCPUID            Cap = "cpuid"                     // per-vCPU CPUID tables (SetCPUID)
	CapGuestMemoryTrack Cap = "host-write-dirty-tracking" // host writes through GuestMemory show up in dirty harvests
)

// Support says whether one capability is present and, if not, why.
type Support struct {
	OK     bool
	Value  uint64 // a size, count or bit mask where the capability has one
	Reason string // why not (or a detail when OK)
}

// PMUInfo describes the guest-visible performance monitoring unit.
type PMUInfo struct {
	Version       int
	GPCounters    int
	FixedCounters int
	CounterWidth  int
}

// Caps is the typed capability set of one backend on this host.
type Caps struct {
	Backend     string
	Features    map[Cap]Support
	MaxMemslots int
	MaxVCPUs    int
	// DirtyRingMaxBytes is the largest dirty ring a vCPU may have (0: none).
	DirtyRingMaxBytes int
	PMU               PMUInfo
	// Arch is the guests' architecture ("": x86-64; see GuestArch).
	Arch Arch
}

// Has reports whether c is supported.
func (cs Caps) Has(c Cap) bool { return cs.Features[c].OK }

// Value returns the capability's value (0 when absent).
func (cs Caps) Value(c Cap) uint64 { return cs.Features[c].Value }

// Require returns nil when c is supported, else an error wrapping
// ErrUnsupported that names the backend, the capability and the reason.
func (cs Caps) Require(c Cap) error {
	s, ok := cs.Features[c]
	if ok && s.OK {
		return nil
	}
	reason := s.Reason
	if !ok || reason == "" {
		reason = "not implemented by this backend"
	}
	return &UnsupportedError{Backend: cs.Backend, Cap: c, Reason: reason}
}

// Names returns the capabilities in a stable order.
func (cs Caps) Names() []Cap {
	out := make([]Cap, 0, len(cs.Features))
	for c := range cs.Features {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Set records a capability; it is how backends build their Caps.
func (cs *Caps) Set(c Cap, ok bool, value uint64, reason string) {
	if cs.Features == nil {
		cs.Features = map[Cap]Support{}
	}
	cs.Features[c] = Support{OK: ok, Value: value, Reason: reason}
}

// ErrUnsupported is wrapped by every error that reports a missing capability.
var ErrUnsupported = errors.New("unsupported")

// UnsupportedError says which capability is missing, where, and why.
type UnsupportedError struct {
	Backend string
	Cap     Cap
	Reason  string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("%s: %s unsupported: %s", e.Backend, e.Cap, e.Reason)
}

// Is makes errors.Is(err, ErrUnsupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// Unsupported builds an UnsupportedError.
func Unsupported(backend string, c Cap, format string, args ...any) error {
	return &UnsupportedError{Backend: backend, Cap: c, Reason: fmt.Sprintf(format, args...)}
}

// UnavailableError says a whole backend cannot be used on this host.
type UnavailableError struct {
	Backend string
	Reason  string
	Err     error
}

func (e *UnavailableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: unavailable: %s", e.Backend, e.Reason)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// ErrUnavailable is wrapped by errors that say a backend cannot run here.
var ErrUnavailable = errors.New("backend unavailable")
