// Package emu is the bundled software hypervisor: an x86-64 long-mode
// interpreter behind the same hv contract as the kvm backend, so the same
// guest program behaves the same on both.
//
// The guest CPU decodes with golang.org/x/arch/x86/x86asm into a per-vCPU
// cache of pre-resolved blocks keyed by guest-physical address (bounded by
// Options.DecodeCacheBytes), walks
// 4-level page tables with accessed/dirty bits, and reaches guest memory
// through memslots exactly as KVM's second-level map does: read-only slots
// and holes exit as MMIO, dirty logging and dirty rings follow KVM's rules,
// and exceptions are delivered through the guest IDT. Nothing runs with
// privileges; vCPUs are goroutines sharing the host mappings.
//
// Where the emulator has to choose, it follows KVM on VMX hardware:
//
//   - Page walks and instruction fetches that reach unbacked guest-physical
//     memory stop the vCPU with an internal-error exit, suberror 1
//     (KVM_INTERNAL_ERROR_EMULATION), as KVM's emulator does.
//   - Without VMConfig.IRQChip, HLT exits (RIP after the HLT) and the APIC
//     page is plain MMIO; with it the local APIC (harness/lapic) and an
//     I/O APIC answer in the emulator, and HLT waits inside Run.
//   - VMCALL at CPL0 is a HypercallExit (RAX = Nr, RBX, RCX, RDX, RSI, RDI,
//     R8 = Args, Ret lands in RAX); at CPL > 0 RAX becomes -KVM_EPERM.
//   - A port-output exit (OUT) reports RIP at the OUT, which the next Run
//     completes; Options.OutRIP selects kvm_pvm's rule (RIP already past
//     it) instead. MMIO writes and OUTS exit past the instruction.
//   - Only 64-bit code runs: Run with a guest outside long mode returns a
//     FailEntryExit (reason 0x80000021, invalid guest state).
//   - Accessed/dirty bits are set only when the access is allowed, and the
//     page-table page counts as written for dirty logging (KVM does both).
//   - Alignment checks (#AC), segment limits, LDTs, x87/SSE, SYSCALL and
//     compatibility mode are outside the subset (#UD or internal error).
//
// Known deviations of this project's KVM host (kvm_pvm) found by the
// differential test: INT n (n != 3) at CPL3 raises #UD there, and ring-3
// code always runs with RFLAGS.IF = 1.
package emu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// Name is the backend name used in flags, labels and reports.
const Name = "emu"

// Limits of the emulated machine. They mirror the kvm backend on this host
// class so specs that probe limits give the same verdicts.
const (
	// MaxMemslots is the number of user memslots (KVM_USER_MEM_SLOTS on x86).
	MaxMemslots = 32764
	// MaxVCPUs is the largest vCPU id + 1.
	MaxVCPUs = 256
	// DirtyRingMaxBytes is the largest per-vCPU dirty ring.
	DirtyRingMaxBytes = 1 << 20
	// dirtyRingMinBytes is the smallest: one page of 16-byte entries.
	dirtyRingMinBytes = hv.PageSize
	// dirtyRingReserved entries stay free below the ring size: the ring is
	// "soft full" (DirtyRingFullExit) when size/16 - dirtyRingReserved
	// entries are in use, as KVM_DIRTY_RING_RSVD_ENTRIES makes it on x86.
	dirtyRingReserved = 64
)

// Options tune the emulator; the zero value is right for most users.
type Options struct {
	// TSCHz is the guest-visible TSC frequency under TimeHost (0: 1 GHz,
	// so one tick is one nanosecond of host monotonic time).
	TSCHz uint64
	// Time is what the TSC and the APIC timer count (default TimeHost;
	// TimeInstructions makes guest time deterministic, see timer.go).
	Time TimeSource
	// OutRIP is where RIP points while the host handles a port-output
	// exit (default OutRIPAtInsn, as VMX and SVM KVM).
	OutRIP OutRIPRule
	// DecodeCacheBytes bounds each vCPU's cache of decoded instructions
	// (0: DefaultDecodeCacheBytes). Past it, the vCPU keeps the code pages
	// it is running (up to half the budget) and forgets the rest, which
	// are decoded again if they run again. Guests that run more distinct
	// code than fits get slower, never different.
	DecodeCacheBytes int
}

// OutRIPRule is where RIP stands at a KVM_EXIT_IO for OUT. KVM differs by
// host: upstream KVM on VMX and SVM reports the OUT's own address and
// skips it when the next KVM_RUN completes the I/O (complete_fast_pio_out;
// not if the host moved RIP meanwhile), while kvm_pvm emulates the OUT and
// exits with RIP already past it. Guest code and harness/guest's ucalls
// work either way; a test about RIP at an exit must say which it expects.
// String output (OUTS) exits past the element on every KVM, and so here.
type OutRIPRule uint8

const (
	// OutRIPAtInsn: RIP at the OUT until the next Run (VMX, SVM).
	OutRIPAtInsn OutRIPRule = iota
	// OutRIPPast: RIP past the OUT at the exit (kvm_pvm).
	OutRIPPast
)

func (r OutRIPRule) String() string {
	switch r {
	case OutRIPAtInsn:
		return "at-insn"
	case OutRIPPast:
		return "past"
	}
	return fmt.Sprintf("OutRIPRule(%d)", uint8(r))
}

// DefaultDecodeCacheBytes is the decode-cache budget of a vCPU when
// Options leaves it 0: room for about 300 000 instructions.
const DefaultDecodeCacheBytes = 32 << 20

// Hypervisor is the emulator backend. It holds no host resources.
type Hypervisor struct {
	opt  Options
	caps hv.Caps
}

var _ hv.Hypervisor = (*Hypervisor)(nil)

// New returns the emulator backend.
func New(opt Options) *Hypervisor {
	if opt.TSCHz == 0 {
		opt.TSCHz = 1_000_000_000
	}
	if opt.DecodeCacheBytes <= 0 {
		opt.DecodeCacheBytes = DefaultDecodeCacheBytes
	}
	return &Hypervisor{opt: opt, caps: emuCaps(opt)}
}

// Name implements hv.Hypervisor.
func (h *Hypervisor) Name() string { return Name }

// Caps implements hv.Hypervisor.
func (h *Hypervisor) Caps() hv.Caps { return h.caps }

// Close implements hv.Hypervisor; the emulator holds nothing to release.
func (h *Hypervisor) Close() error { return nil }

// emuCaps states every capability with the reason a report shows (and
// the options that shape guest-visible behaviour, so a report says which
// ran).
func emuCaps(opt Options) hv.Caps {
	c := hv.Caps{Backend: Name, MaxMemslots: MaxMemslots, MaxVCPUs: MaxVCPUs, DirtyRingMaxBytes: DirtyRingMaxBytes, PMU: pmuCaps()}
	c.Set(hv.CapLongMode, true, 0, "64-bit long mode with 4-level paging (4 KiB, 2 MiB, 1 GiB pages)")
	c.Set(hv.CapMultiVCPU, true, MaxVCPUs, fmt.Sprintf("vCPUs are goroutines, up to %d", MaxVCPUs))
	c.Set(hv.CapReadOnlyMem, true, 0, "read-only slots: writes exit as MMIO")
	c.Set(hv.CapDirtyLog, true, 0, "dirty bitmap per slot")
	c.Set(hv.CapManualProtect, true, 0, "ClearDirtyLog with KVM's alignment rules")
	c.Set(hv.CapInitiallySet, true, 0, "first GetDirtyLog after enabling returns all pages")
	c.Set(hv.CapDirtyRing, true, DirtyRingMaxBytes, fmt.Sprintf("per-vCPU rings up to %d bytes, soft limit size/16-%d", DirtyRingMaxBytes, dirtyRingReserved))
	c.Set(hv.CapGuestDebug, true, 0, "one router sends each debug event to the host (DebugExit) or the guest (#DB/#BP)")
	c.Set(hv.CapHWBreakpoint, true, 4, "host execute breakpoints in GuestDebug.DebugReg (DR0-DR3, DR7)")
	c.Set(hv.CapSingleStep, true, 0, "DebugSingleStep exits after every instruction")
	c.Set(hv.CapSoftwareBP, true, 0, "DebugUseSWBP: int3 exits with vector 3, RIP at the int3")
	c.Set(hv.CapWatchpoint, true, 4, "data breakpoints (DR7 RW=01/11, 1-8 bytes) for host and guest; I/O breakpoints (RW=10 with CR4.DE)")
	c.Set(hv.CapBlockIRQ, true, 0, "DebugBlockIRQ holds interrupts back while host debugging is on")
	c.Set(hv.CapDebugInject, true, 0, "DebugInjectDB/BP queue the exception for the next entry")
	c.Set(hv.CapIRQChip, true, 0, "emulated xAPIC + I/O APIC")
	c.Set(hv.CapMSI, true, 0, "MSI to the local APIC of the destination APIC ID")
	c.Set(hv.CapIRQLine, true, hv.IOAPICPins, fmt.Sprintf("%d-pin I/O APIC at %#x, edge and level", hv.IOAPICPins, hv.IOAPICBase))
	c.Set(hv.CapDirtyRingBitmap, true, 0, "host and device writes go to the slot's backup bitmap")
	c.Set(hv.CapGuestMemoryTrack, true, 0, "host writes through GuestMemory are logged as a vCPU write would be")
	c.Set(hv.CapCPUID, true, 0, "the cpuid instruction answers from the vCPU's table")
	c.Set(hv.CapPMU, true, 0, "Intel architectural PMU v1-4 from CPUID leaf 0xA (default: v2, 4 GP + 3 fixed counters, 48 bits), event filter, PMI through the LAPIC")
	c.Set(hv.CapUserfault, true, 0, "missing-page handlers on non-resident slot pages")
	c.Set(hv.CapStats, true, 0, "counters kept by the interpreter")
	c.Set(hv.CapUserSpaceMSR, true, 0, "unknown MSRs exit to the host when VMConfig.UserSpaceMSR")
	c.Set(hv.CapSignalKick, true, 0, "context cancellation is checked before every instruction")
	c.Set(hv.CapMemfd, true, 0, "memfd_create + fallocate(PUNCH_HOLE)")
	c.Set(hv.CapCPL0Native, true, 0, "interpreted at the same speed in any ring")
	c.Set(hv.CapInstructionSet, true, 0, "every instruction of the harness subset is interpreted in every ring; "+opt.behaviour())
	return c
}

// Options returns the options the backend runs with (defaults filled in).
func (h *Hypervisor) Options() Options { return h.opt }

// ParseOptions reads options as the CLI's --emu flag gives them: a comma
// list of key=value, "" for the defaults. Keys:
//
//	out-rip=at-insn|past     OutRIP: RIP at a port-output exit
//	time=host|instructions   Time: what the TSC and the APIC timer count
//	decode-cache=SIZE        DecodeCacheBytes, in bytes or with K, M or G
func ParseOptions(s string) (Options, error) {
	var o Options
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return o, fmt.Errorf("emu option %q: want key=value", kv)
		}
		switch k {
		case "out-rip":
			switch v {
			case OutRIPAtInsn.String():
				o.OutRIP = OutRIPAtInsn
			case OutRIPPast.String():
				o.OutRIP = OutRIPPast
			default:
				return o, fmt.Errorf("emu option out-rip=%q: want %s or %s", v, OutRIPAtInsn, OutRIPPast)
			}
		case "time":
			switch v {
			case TimeHost.String():
				o.Time = TimeHost
			case TimeInstructions.String():
				o.Time = TimeInstructions
			default:
				return o, fmt.Errorf("emu option time=%q: want %s or %s", v, TimeHost, TimeInstructions)
			}
		case "decode-cache":
			n, err := parseBytes(v)
			if err != nil || n < minDecodeCacheBytes || n > maxDecodeCacheBytes {
				return o, fmt.Errorf("emu option decode-cache=%q: want a size from 64K to 16G (bytes, or with K, M or G)", v)
			}
			o.DecodeCacheBytes = int(n)
		default:
			return o, fmt.Errorf("unknown emu option %q (known: out-rip, time, decode-cache)", k)
		}
	}
	return o, nil
}

// behaviour describes the guest-visible choices of the options.
func (o Options) behaviour() string {
	out := "OUT exits with RIP at the OUT until the next run (VMX, SVM)"
	if o.OutRIP == OutRIPPast {
		out = "OUT exits with RIP past the OUT (kvm_pvm)"
	}
	clock := "TSC from host time, APIC timer not modelled"
	if o.Time == TimeInstructions {
		clock = "TSC and APIC timer count retired instructions (deterministic)"
	}
	return out + "; " + clock + " [--emu " + o.String() + "]"
}

// String is the options as ParseOptions reads them (decode-cache only
// when it is not the default).
func (o Options) String() string {
	s := "out-rip=" + o.OutRIP.String() + ",time=" + o.Time.String()
	if o.DecodeCacheBytes != 0 {
		s += ",decode-cache=" + strconv.Itoa(o.DecodeCacheBytes)
	}
	return s
}

// The decode-cache budgets --emu accepts: below 64 KiB a loop of a few
// pages would be decoded again on every pass.
const (
	minDecodeCacheBytes = 64 << 10
	maxDecodeCacheBytes = 16 << 30
)

// parseBytes reads a byte count: digits, optionally followed by K, M or G
// (powers of 1024).
func parseBytes(v string) (uint64, error) {
	shift := 0
	switch {
	case strings.HasSuffix(v, "K"):
		shift = 10
	case strings.HasSuffix(v, "M"):
		shift = 20
	case strings.HasSuffix(v, "G"):
		shift = 30
	}
	if shift != 0 {
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > 1<<34>>shift {
		return 0, fmt.Errorf("bad size %q", v)
	}
	return n << shift, nil
}
