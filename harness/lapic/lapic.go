// Package lapic is a backend-neutral model of the xAPIC registers a guest
// sees in its local APIC page: identification, task and processor priority,
// EOI, the spurious-vector register, the LVT entries and the IRR/ISR/TMR
// that deliver fixed interrupts. The emulator uses it as its LAPIC; a
// backend that injects interrupts from userspace (KVM without an in-kernel
// irqchip) uses it to decide what to inject and when.
//
// Raise may be called from any goroutine (a device completing work): IRR
// and TMR are atomic words. Every other method belongs to the vCPU that
// owns the APIC. The timer, IPIs and x2APIC are not modelled: their
// registers read back what was written.
package lapic

import (
	"math/bits"
	"sync/atomic"
)

// Register offsets in the APIC page (Intel SDM vol. 3, table 11-1).
const (
	RegID      = 0x20
	RegVersion = 0x30
	RegTPR     = 0x80
	RegPPR     = 0xa0
	RegEOI     = 0xb0
	RegLDR     = 0xd0
	RegDFR     = 0xe0
	RegSVR     = 0xf0
	RegISR     = 0x100 // 8 registers, 0x10 apart
	RegTMR     = 0x180
	RegIRR     = 0x200
	RegESR     = 0x280
	RegICRLo   = 0x300
	RegICRHi   = 0x310
	RegLVT0    = 0x320 // LVT timer; the others follow 0x10 apart
	RegTInit   = 0x380
	RegTCur    = 0x390
	RegTDiv    = 0x3e0
	// RegMask keeps the 16-byte aligned register offset of a page offset.
	RegMask = 0xff0
)

// LVT entry indices, in register order.
const (
	LVTTimer = iota
	LVTThermal
	LVTPerf
	LVTLINT0
	LVTLINT1
	LVTError
	lvtCount
)

// Architectural bits.
const (
	// Version is what the version register reads: an integrated APIC
	// (0x14) with 6 LVT entries.
	Version = 0x14 | (lvtCount-1)<<16
	// LVTMasked is the mask bit of an LVT entry.
	LVTMasked = 1 << 16
	// SVREnable is the software-enable bit of the spurious-vector register.
	SVREnable = 1 << 8
	// ESRIllegalVector is the ESR bit for a vector below 16 received.
	ESRIllegalVector = 1 << 6
	// lvtWritable are the LVT bits software may set (vector, delivery
	// mode, polarity, trigger mode, mask, timer mode).
	lvtWritable = 0x717ff
)

// APIC is one local APIC. The zero value is not ready: use New.
type APIC struct {
	id    uint32
	tpr   uint32
	svr   uint32
	ldr   uint32
	dfr   uint32
	esr   atomic.Uint32
	icr   [2]uint32
	lvt   [lvtCount]uint32
	tinit uint32
	tdiv  uint32
	isr   [8]uint32
	irr   [8]atomic.Uint32
	tmr   [8]atomic.Uint32
}

// New returns an APIC in its power-on state with the given APIC ID.
func New(id uint32) *APIC {
	a := &APIC{}
	a.Reset(id)
	return a
}

// Reset puts the APIC in its power-on state (INIT): every LVT entry masked,
// software-disabled, nothing pending.
func (a *APIC) Reset(id uint32) {
	a.id, a.tpr, a.svr, a.ldr, a.dfr = id, 0, 0xff, 0, 0xffffffff
	a.esr.Store(0)
	a.icr = [2]uint32{}
	a.tinit, a.tdiv = 0, 0
	a.isr = [8]uint32{}
	for i := range a.irr {
		a.irr[i].Store(0)
		a.tmr[i].Store(0)
	}
	for i := range a.lvt {
		a.lvt[i] = LVTMasked
	}
}

// ID is the APIC ID (bits 31:24 of the ID register).
func (a *APIC) ID() uint32 { return a.id }

// TPR is the task-priority register (CR8 is TPR >> 4).
func (a *APIC) TPR() uint32 { return a.tpr }

// SetTPR writes the task-priority register.
func (a *APIC) SetTPR(v uint32) { a.tpr = v & 0xff }

// SoftwareEnabled reports SVR bit 8: a disabled APIC accepts no interrupts.
func (a *APIC) SoftwareEnabled() bool { return a.svr&SVREnable != 0 }

// Read returns the 32-bit register at off (a page offset; the low four
// bits are ignored). Unknown offsets read 0.
func (a *APIC) Read(off uint32) uint32 {
	off &= RegMask
	switch off {
	case RegID:
		return a.id << 24
	case RegVersion:
		return Version
	case RegTPR:
		return a.tpr
	case RegPPR:
		return a.PPR()
	case RegLDR:
		return a.ldr
	case RegDFR:
		return a.dfr
	case RegSVR:
		return a.svr
	case RegESR:
		return a.esr.Load()
	case RegICRLo:
		return a.icr[0]
	case RegICRHi:
		return a.icr[1]
	case RegTInit:
		return a.tinit
	case RegTDiv:
		return a.tdiv
	}
	switch {
	case off >= RegLVT0 && off < RegLVT0+lvtCount*0x10:
		return a.lvt[(off-RegLVT0)/0x10]
	case off >= RegISR && off < RegISR+0x80:
		return a.isr[(off-RegISR)/0x10]
	case off >= RegTMR && off < RegTMR+0x80:
		return a.tmr[(off-RegTMR)/0x10].Load()
	case off >= RegIRR && off < RegIRR+0x80:
		return a.irr[(off-RegIRR)/0x10].Load()
	}
	return 0
}

// Write stores v to the register at off. Only 16-byte aligned offsets
// reach a register (the caller checks the access width). A write to EOI
// returns what it retired, so the caller can broadcast a level-triggered
// EOI to its I/O APIC; every other write returns the zero EOIResult.
func (a *APIC) Write(off uint32, v uint32) (eoi EOIResult) {
	if off&0xf != 0 {
		return EOIResult{}
	}
	switch off {
	case RegID:
		a.id = v >> 24
	case RegTPR:
		a.tpr = v & 0xff
	case RegEOI:
		return a.EOI()
	case RegLDR:
		a.ldr = v & 0xff000000
	case RegDFR:
		a.dfr = v | 0x0fffffff
	case RegSVR:
		a.svr = v & 0x3ff
		if v&SVREnable == 0 {
			for i := range a.lvt {
				a.lvt[i] |= LVTMasked
			}
		}
	case RegESR:
		a.esr.Store(0)
	case RegICRLo:
		a.icr[0] = v &^ (1 << 12) // delivery status: always idle
	case RegICRHi:
		a.icr[1] = v & 0xff000000
	case RegTInit:
		a.tinit = v
	case RegTDiv:
		a.tdiv = v & 0xb
	default:
		if off >= RegLVT0 && off < RegLVT0+lvtCount*0x10 {
			a.SetLVT(int((off-RegLVT0)/0x10), v)
		}
	}
	return EOIResult{}
}

// EOIResult says which in-service vector an EOI retired.
type EOIResult struct {
	Vector uint8
	// Done is false when nothing was in service.
	Done bool
	// Level is true when the vector was accepted level-triggered: the
	// I/O APIC must clear the remote IRR of the pins routed to it.
	Level bool
}

// LVT returns LVT entry i (LVTTimer..LVTError); out of range reads 0.
func (a *APIC) LVT(i int) uint32 {
	if i < 0 || i >= lvtCount {
		return 0
	}
	return a.lvt[i]
}

// SetLVT writes LVT entry i as the guest's register write does: while
// the APIC is software-disabled the entry stays masked.
func (a *APIC) SetLVT(i int, v uint32) {
	if i < 0 || i >= lvtCount {
		return
	}
	if !a.SoftwareEnabled() {
		v |= LVTMasked
	}
	a.lvt[i] = v & lvtWritable
}

// FireLVT delivers LVT entry i as a fixed interrupt unless it is masked,
// and reports whether it did. The performance-counter entry masks itself
// on delivery, as the hardware does for a PMI.
func (a *APIC) FireLVT(i int) bool {
	if i < 0 || i >= lvtCount {
		return false
	}
	e := a.lvt[i]
	if e&LVTMasked != 0 {
		return false
	}
	a.Raise(uint8(e))
	if i == LVTPerf {
		a.lvt[i] |= LVTMasked
	}
	return true
}

// Raise makes vector v pending as a fixed, edge-triggered interrupt. A
// vector below 16 is illegal: it sets the ESR bit and is dropped. Safe
// from any goroutine.
func (a *APIC) Raise(v uint8) bool { return a.raise(v, false) }

// RaiseLevel makes vector v pending as a level-triggered interrupt (an
// I/O APIC pin): its EOI reports Level. Safe from any goroutine.
func (a *APIC) RaiseLevel(v uint8) bool { return a.raise(v, true) }

func (a *APIC) raise(v uint8, level bool) bool {
	if v < 16 {
		a.esr.Or(ESRIllegalVector)
		return false
	}
	bit := uint32(1) << (v % 32)
	if level {
		a.tmr[v/32].Or(bit)
	} else {
		a.tmr[v/32].And(^bit)
	}
	a.irr[v/32].Or(bit)
	return true
}

// highestIRR returns the highest requested vector, or -1.
func (a *APIC) highestIRR() int {
	for i := 7; i >= 0; i-- {
		if w := a.irr[i].Load(); w != 0 {
			return i*32 + 31 - bits.LeadingZeros32(w)
		}
	}
	return -1
}

func (a *APIC) highestISR() int {
	for i := 7; i >= 0; i-- {
		if w := a.isr[i]; w != 0 {
			return i*32 + 31 - bits.LeadingZeros32(w)
		}
	}
	return -1
}

// PPR is the processor priority: the higher of TPR and the class of the
// highest in-service vector.
func (a *APIC) PPR() uint32 {
	isrc := uint32(max(a.highestISR(), 0)) & 0xf0
	if isrc > a.tpr&0xf0 {
		return isrc
	}
	return a.tpr
}

// Pending reports whether an interrupt is requested whose priority class
// is above the processor priority (deliverable once RFLAGS.IF allows).
func (a *APIC) Pending() bool {
	v := a.highestIRR()
	return v >= 0 && uint32(v)&0xf0 > a.PPR()&0xf0
}

// Requested reports whether any vector is in the IRR, deliverable or not.
func (a *APIC) Requested() bool { return a.highestIRR() >= 0 }

// Accept moves the highest deliverable vector from IRR to ISR and returns
// it, when the CPU can take an interrupt now (ifFlag: RFLAGS.IF and no
// interrupt shadow) and the APIC is software-enabled.
func (a *APIC) Accept(ifFlag bool) (uint8, bool) {
	if !ifFlag || !a.SoftwareEnabled() || !a.Pending() {
		return 0, false
	}
	v := a.highestIRR()
	bit := uint32(1) << (v % 32)
	a.irr[v/32].And(^bit)
	a.isr[v/32] |= bit
	return uint8(v), true
}

// EOI retires the highest in-service vector.
func (a *APIC) EOI() EOIResult {
	v := a.highestISR()
	if v < 0 {
		return EOIResult{}
	}
	bit := uint32(1) << (v % 32)
	a.isr[v/32] &^= bit
	return EOIResult{Vector: uint8(v), Done: true, Level: a.tmr[v/32].Load()&bit != 0}
}
