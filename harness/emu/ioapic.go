package emu

import (
	"sync"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// ioapic is a minimal 82093AA-style I/O APIC at hv.IOAPICBase: IOREGSEL at
// offset 0, IOWIN at 0x10, the ID, version and arbitration registers, and
// hv.IOAPICPins redirection entries (vector, fixed delivery, physical
// destination, trigger mode, mask, remote IRR). Lines are set from any
// goroutine; the guest programs it from its vCPUs; a level-triggered EOI
// from a local APIC clears remote IRR and re-delivers a line still high.
type ioapic struct {
	mu    sync.Mutex
	sel   uint32
	id    uint32
	redir [hv.IOAPICPins]uint64
	line  [hv.IOAPICPins]bool
}

// Redirection-entry bits and register indices.
const (
	ioapicRegSel    = 0x00
	ioapicRegWin    = 0x10
	ioapicRegID     = 0x00
	ioapicRegVer    = 0x01
	ioapicRegArb    = 0x02
	ioapicRegRedir  = 0x10
	ioapicVersion   = 0x11 | (hv.IOAPICPins-1)<<16
	redirVector     = 0xff
	redirRemoteIRR  = 1 << 14
	redirLevel      = 1 << 15
	redirMasked     = 1 << 16
	redirDestShift  = 56
	redirWritableLo = 0x1afff // vector, delivery mode, dest mode, polarity, trigger, mask
)

func (io *ioapic) reset() {
	io.mu.Lock()
	defer io.mu.Unlock()
	io.sel, io.id = 0, 0
	for i := range io.redir {
		io.redir[i] = redirMasked
		io.line[i] = false
	}
}

// claims reports whether gpa is the I/O APIC's register window.
func (io *ioapic) claims(gpa uint64) bool { return gpa&^0xfff == hv.IOAPICBase }

func (io *ioapic) read(gpa uint64, n int) uint64 {
	io.mu.Lock()
	defer io.mu.Unlock()
	var v uint32
	switch gpa & 0xff {
	case ioapicRegSel:
		v = io.sel
	case ioapicRegWin:
		v = io.regLocked(io.sel)
	}
	return uint64(v) & sizeMask[n]
}

func (io *ioapic) regLocked(idx uint32) uint32 {
	switch {
	case idx == ioapicRegID:
		return io.id
	case idx == ioapicRegVer:
		return ioapicVersion
	case idx == ioapicRegArb:
		return io.id
	case idx >= ioapicRegRedir && idx < ioapicRegRedir+2*hv.IOAPICPins:
		e := io.redir[(idx-ioapicRegRedir)/2]
		if idx&1 == 1 {
			return uint32(e >> 32)
		}
		return uint32(e)
	}
	return 0
}

func (io *ioapic) write(vm *VM, gpa uint64, n int, v uint64) {
	if n != 4 {
		return
	}
	io.mu.Lock()
	var pin = -1
	switch gpa & 0xff {
	case ioapicRegSel:
		io.sel = uint32(v) & 0xff
	case ioapicRegWin:
		switch idx := io.sel; {
		case idx == ioapicRegID:
			io.id = uint32(v) & 0x0f000000
		case idx >= ioapicRegRedir && idx < ioapicRegRedir+2*hv.IOAPICPins:
			p := int(idx-ioapicRegRedir) / 2
			e := io.redir[p]
			if idx&1 == 1 {
				e = e&0xffffffff | (v&0xff000000)<<32
			} else {
				e = e&^uint64(redirWritableLo) | v&redirWritableLo
				if e&redirLevel == 0 {
					// Remote IRR means nothing for an edge pin; KVM clears
					// it when a pin is reprogrammed to edge, and so do we.
					e &^= redirRemoteIRR
				}
			}
			io.redir[p] = e
			pin = p
		}
	}
	var d delivery
	if pin >= 0 {
		// Unmasking a level pin that is high delivers it now.
		d = io.levelLocked(pin)
	}
	io.mu.Unlock()
	d.send(vm)
}

// delivery is an interrupt decided under the lock and sent after it.
type delivery struct {
	ok     bool
	dest   int
	vector uint8
	level  bool
}

func (d delivery) send(vm *VM) error {
	if !d.ok {
		return nil
	}
	return vm.deliver(d.dest, d.vector, d.level)
}

// levelLocked delivers a level-triggered pin that is high, unmasked and not
// waiting for its EOI, setting remote IRR.
func (io *ioapic) levelLocked(pin int) delivery {
	e := io.redir[pin]
	if e&redirLevel == 0 || !io.line[pin] || e&(redirMasked|redirRemoteIRR) != 0 {
		return delivery{}
	}
	io.redir[pin] |= redirRemoteIRR
	return delivery{ok: true, dest: int(e >> redirDestShift), vector: uint8(e & redirVector), level: true}
}

// setLine drives a pin: an edge pin interrupts on a rising edge, a level
// pin while high (once per EOI).
func (io *ioapic) setLine(vm *VM, pin uint32, high bool) error {
	io.mu.Lock()
	was := io.line[pin]
	io.line[pin] = high
	e := io.redir[pin]
	var d delivery
	switch {
	case e&redirLevel != 0:
		d = io.levelLocked(int(pin))
	case high && !was && e&redirMasked == 0:
		d = delivery{ok: true, dest: int(e >> redirDestShift), vector: uint8(e & redirVector)}
	}
	io.mu.Unlock()
	return d.send(vm)
}

// eoi is the local APICs' EOI broadcast for a level-triggered vector:
// remote IRR of the pins with that vector clears, and a line still high
// is delivered again.
func (io *ioapic) eoi(vm *VM, vector uint8) {
	var ds []delivery
	io.mu.Lock()
	for p, e := range io.redir {
		if e&redirLevel != 0 && e&redirRemoteIRR != 0 && uint8(e&redirVector) == vector {
			io.redir[p] &^= redirRemoteIRR
			if d := io.levelLocked(p); d.ok {
				ds = append(ds, d)
			}
		}
	}
	io.mu.Unlock()
	for _, d := range ds {
		d.send(vm)
	}
}
