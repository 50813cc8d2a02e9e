package emu

import (
	"math/bits"
)

// apic is a minimal xAPIC: identification, task priority, EOI, the
// spurious-vector register, the LVT entries (the performance-counter
// entry is what a PMU will use to deliver a PMI) and the IRR/ISR that
// deliver fixed interrupts through the IDT. The timer, IPIs and x2APIC
// are not modelled: their registers read back what was written.
//
// The kvm backend creates no in-kernel irqchip, so on KVM the APIC page is
// plain MMIO (exits); here it is the APIC, like KVM with an irqchip.
type apic struct {
	id    uint32
	tpr   uint64
	svr   uint32
	ldr   uint32
	dfr   uint32
	esr   uint32
	icr   [2]uint32
	lvt   [6]uint32 // timer, thermal, perf, LINT0, LINT1, error
	tinit uint32
	tdiv  uint32
	irr   [8]uint32
	isr   [8]uint32
}

// LVT entry indices.
const (
	lvtTimer = iota
	lvtThermal
	lvtPerf
	lvtLINT0
	lvtLINT1
	lvtError
)

const (
	apicVersion  = 0x14 | (6-1)<<16 // integrated APIC, 6 LVT entries
	lvtMasked    = 1 << 16
	apicEnable   = 1 << 11
	svrSWEnable  = 1 << 8
	apicBaseBSP  = 1 << 8
	apicDefault  = 0xfee00000
	apicRegsMask = 0xff0
)

func (a *apic) reset(id int) {
	*a = apic{id: uint32(id), svr: 0xff, dfr: 0xffffffff}
	for i := range a.lvt {
		a.lvt[i] = lvtMasked
	}
}

// claims reports whether gpa is in the enabled APIC page.
func (a *apic) claims(c *cpu, gpa uint64) bool {
	b := c.sr.APICBase
	return b&apicEnable != 0 && gpa&^0xfff == b&physMask&^0xfff
}

func (a *apic) reg(off uint64) uint32 {
	switch off {
	case 0x20:
		return a.id << 24
	case 0x30:
		return apicVersion
	case 0x80:
		return uint32(a.tpr)
	case 0xa0:
		return uint32(a.ppr())
	case 0xd0:
		return a.ldr
	case 0xe0:
		return a.dfr
	case 0xf0:
		return a.svr
	case 0x280:
		return a.esr
	case 0x300:
		return a.icr[0]
	case 0x310:
		return a.icr[1]
	case 0x320, 0x330, 0x340, 0x350, 0x360, 0x370:
		return a.lvt[(off-0x320)/0x10]
	case 0x380:
		return a.tinit
	case 0x3e0:
		return a.tdiv
	}
	switch {
	case off >= 0x100 && off < 0x180:
		return a.isr[(off-0x100)/0x10]
	case off >= 0x200 && off < 0x280:
		return a.irr[(off-0x200)/0x10]
	}
	return 0
}

func (a *apic) read(c *cpu, gpa uint64, n int) uint64 {
	off := gpa & 0xfff
	v := uint64(a.reg(off & apicRegsMask))
	return v >> (8 * (off & 3)) & sizeMask[n]
}

func (a *apic) write(c *cpu, gpa uint64, n int, v uint64) {
	off := gpa & 0xfff
	if off&0xf != 0 {
		return // only aligned 32-bit accesses reach registers
	}
	x := uint32(v)
	switch off {
	case 0x20:
		a.id = x >> 24
	case 0x80:
		a.tpr = uint64(x & 0xff)
	case 0xb0:
		a.eoi()
	case 0xd0:
		a.ldr = x & 0xff000000
	case 0xe0:
		a.dfr = x | 0x0fffffff
	case 0xf0:
		a.svr = x & 0x3ff
		if x&svrSWEnable == 0 {
			for i := range a.lvt {
				a.lvt[i] |= lvtMasked
			}
		}
	case 0x280:
		a.esr = 0
	case 0x300:
		a.icr[0] = x &^ (1 << 12)
	case 0x310:
		a.icr[1] = x & 0xff000000
	case 0x320, 0x330, 0x340, 0x350, 0x360, 0x370:
		if a.svr&svrSWEnable == 0 {
			x |= lvtMasked
		}
		a.lvt[(off-0x320)/0x10] = x & 0x717ff
	case 0x380:
		a.tinit = x
	case 0x3e0:
		a.tdiv = x & 0xb
	}
	c.updateSlow()
}

// highest returns the highest set vector of a 256-bit register.
func highest(r *[8]uint32) int {
	for i := 7; i >= 0; i-- {
		if r[i] != 0 {
			return i*32 + 31 - bits.LeadingZeros32(r[i])
		}
	}
	return -1
}

func (a *apic) ppr() uint64 {
	isr := highest(&a.isr)
	if isrc := uint64(max(isr, 0)) & 0xf0; isrc > a.tpr&0xf0 {
		return isrc
	}
	return a.tpr
}

func (a *apic) eoi() {
	if v := highest(&a.isr); v >= 0 {
		a.isr[v/32] &^= 1 << (v % 32)
	}
}

// raise makes vector v pending (a fixed-mode interrupt to this APIC).
func (a *apic) raise(v uint8) {
	if v < 16 {
		a.esr |= 1 << 6 // illegal vector
		return
	}
	a.irr[v/32] |= 1 << (v % 32)
}

// raiseLVT delivers an LVT entry, unless masked. The performance-counter
// entry masks itself on delivery, as the hardware does for a PMI.
func (c *cpu) raiseLVT(i int) {
	a := &c.apic
	e := a.lvt[i]
	if e&lvtMasked != 0 || c.sr.APICBase&apicEnable == 0 {
		return
	}
	a.raise(uint8(e))
	if i == lvtPerf {
		a.lvt[i] |= lvtMasked
	}
	c.updateSlow()
}

// pending reports whether an interrupt could be accepted.
func (a *apic) pending() bool {
	v := highest(&a.irr)
	return v >= 0 && uint64(v)&0xf0 > a.ppr()&0xf0
}

// accept moves the highest deliverable interrupt from IRR to ISR.
func (a *apic) accept() (uint8, bool) {
	if a.svr&svrSWEnable == 0 || !a.pending() {
		return 0, false
	}
	v := highest(&a.irr)
	a.irr[v/32] &^= 1 << (v % 32)
	a.isr[v/32] |= 1 << (v % 32)
	return uint8(v), true
}
