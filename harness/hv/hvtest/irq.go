package hvtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// I/O APIC programming of InterruptsDeliveredOnce: pin → vector, trigger.
const (
	irqEdgePin   = 5
	irqEdgeVec   = 0x42
	irqLevelPin  = 6
	irqLevelVec  = 0x43
	irqFixedVec  = 0x40
	irqMSIVec    = 0x41
	irqHaltVec   = 0x44
	ioapicRedir  = 0x10
	redirLevel   = 1 << 15
	apicSVR      = 0xf0
	apicSWEnable = 1 << 8
)

// irqGuest enables its local APIC, programs two I/O APIC pins (edge and
// level) to vCPU 0, reports ready on RawPortDone, and spins with
// interrupts enabled; every delivered vector is reported on RawPortVec by
// the stub, which EOIs.
func irqGuest(a *asm.Assembler) {
	a.Mov(asm.EDI, asm.Imm(hv.LAPICBase))
	a.Mov(asm.D(asm.RDI, apicSVR), asm.Imm(apicSWEnable|0xff))
	a.Mov(asm.EDI, asm.Imm(hv.IOAPICBase))
	for _, p := range []struct{ pin, lo int64 }{{irqEdgePin, irqEdgeVec}, {irqLevelPin, irqLevelVec | redirLevel}} {
		a.Mov(asm.D(asm.RDI, 0), asm.Imm(ioapicRedir+2*p.pin))
		a.Mov(asm.D(asm.RDI, 0x10), asm.Imm(p.lo))
		a.Mov(asm.D(asm.RDI, 0), asm.Imm(ioapicRedir+2*p.pin+1))
		a.Mov(asm.D(asm.RDI, 0x10), asm.Imm(0)) // destination APIC ID 0
	}
	RawDone(a)
	a.Sti()
	l := a.Here()
	a.Pause()
	a.Jmp(l)
}

// InterruptsDeliveredOnce checks hv.Interrupts: without VMConfig.IRQChip
// every method fails with ErrUnsupported; with it a fixed interrupt, an
// MSI, an edge line and a level line (re-delivered after EOI while high)
// each reach the guest's IDT exactly once, also when raised from another
// goroutine while the vCPU spins, and a vCPU halted with interrupts
// enabled wakes for one.
func InterruptsDeliveredOnce(t *testing.T, h hv.Hypervisor) {
	t.Run("without irqchip", func(t *testing.T) {
		vm, err := h.NewVM(hv.VMConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.Close()
		calls := []struct {
			name string
			err  error
		}{
			{"Interrupt", vm.Interrupt(0, 0x40)},
			{"SignalMSI", vm.SignalMSI(hv.MSIAddrBase, 0x40)},
			{"SetIRQLine", vm.SetIRQLine(1, true)},
		}
		for _, c := range calls {
			if !errors.Is(c.err, hv.ErrUnsupported) {
				t.Errorf("%s without IRQChip = %v, want ErrUnsupported", c.name, c.err)
			}
		}
	})
	if err := h.Caps().Require(hv.CapIRQChip); err != nil {
		t.Skip(err)
	}
	g := NewRawGuest(t, h, hv.VMConfig{IRQChip: true}, irqGuest)
	g.RunDone(t)
	// expect runs until one vector is reported and checks it; none runs
	// briefly and checks nothing more arrives.
	expect := func(want uint8) {
		t.Helper()
		if p, v := g.RunPort(t); p != RawPortVec || uint8(v) != want {
			t.Fatalf("port %#x value %#x, want vector %#x on %#x", p, v, want, RawPortVec)
		}
	}
	none := func() {
		t.Helper()
		if e, err := g.Run(t, 100*time.Millisecond); err == nil {
			t.Fatalf("unexpected exit %v (a second delivery?)", e)
		}
	}
	steps := []struct {
		name  string
		raise func() error
		want  uint8
		after func() error // while the handler reports, before its EOI
		again bool         // delivered a second time after EOI
	}{
		{"fixed", func() error { return g.VM.Interrupt(0, irqFixedVec) }, irqFixedVec, nil, false},
		{"msi", func() error { return g.VM.SignalMSI(hv.MSIAddrBase, irqMSIVec) }, irqMSIVec, nil, false},
		{"edge line", func() error { return g.VM.SetIRQLine(irqEdgePin, true) }, irqEdgeVec,
			func() error { return g.VM.SetIRQLine(irqEdgePin, false) }, false},
		{"level line lowered before EOI", func() error { return g.VM.SetIRQLine(irqLevelPin, true) }, irqLevelVec,
			func() error { return g.VM.SetIRQLine(irqLevelPin, false) }, false},
		{"level line still high at EOI", func() error { return g.VM.SetIRQLine(irqLevelPin, true) }, irqLevelVec,
			nil, true},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.raise(); err != nil {
				t.Fatal(err)
			}
			expect(s.want)
			if s.after != nil {
				if err := s.after(); err != nil {
					t.Fatal(err)
				}
			}
			if s.again {
				expect(s.want) // re-delivered: the line was high at EOI
				if err := g.VM.SetIRQLine(irqLevelPin, false); err != nil {
					t.Fatal(err)
				}
			}
			none()
		})
	}
	t.Run("from another goroutine while running", func(t *testing.T) {
		go func() {
			time.Sleep(20 * time.Millisecond)
			g.VM.Interrupt(0, irqFixedVec)
		}()
		expect(irqFixedVec)
		none()
	})
	t.Run("many at once from many goroutines", func(t *testing.T) {
		const lo, hi = 0x50, 0xf0 // stubs for these vectors EOI and return
		var wg sync.WaitGroup
		for v := lo; v < hi; v++ {
			wg.Add(1)
			go func(v uint8) {
				defer wg.Done()
				if err := g.VM.Interrupt(0, v); err != nil {
					t.Error(err)
				}
			}(uint8(v))
		}
		seen := map[uint8]int{}
		for len(seen) < hi-lo {
			p, v := g.RunPort(t)
			if p != RawPortVec {
				t.Fatalf("port %#x", p)
			}
			seen[uint8(v)]++
		}
		wg.Wait()
		none()
		for v, n := range seen {
			if n != 1 || v < lo || v >= hi {
				t.Fatalf("vector %#x delivered %d times", v, n)
			}
		}
	})
	t.Run("bad input", func(t *testing.T) {
		bad := []struct {
			name string
			err  error
		}{
			{"vector below 16", g.VM.Interrupt(0, 3)},
			{"no such vcpu", g.VM.Interrupt(7, 0x40)},
			{"msi outside window", g.VM.SignalMSI(0x1000, 0x40)},
			{"msi delivery mode", g.VM.SignalMSI(hv.MSIAddrBase, 0x40|1<<8)},
			{"pin out of range", g.VM.SetIRQLine(hv.IOAPICPins, true)},
		}
		for _, b := range bad {
			if b.err == nil {
				t.Errorf("%s: accepted", b.name)
			}
		}
	})
}

// HaltWakes checks that with an irqchip HLT waits inside Run (no
// HaltExit) until an interrupt raised from another goroutine arrives, and
// that the Run context still ends a HLT nothing can wake.
func HaltWakes(t *testing.T, h hv.Hypervisor) {
	if err := h.Caps().Require(hv.CapIRQChip); err != nil {
		t.Skip(err)
	}
	t.Run("context ends a HLT with interrupts off", func(t *testing.T) {
		g := NewRawGuest(t, h, hv.VMConfig{IRQChip: true}, func(a *asm.Assembler) {
			a.Cli()
			a.Hlt()
			RawDone(a)
		})
		g.VM.Interrupt(0, irqHaltVec) // pending, but IF=0: no wake-up
		start := time.Now()
		e, err := g.Run(t, 100*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %v, %v; want the context's deadline", e, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Run took %v after its deadline", d)
		}
	})
	g := NewRawGuest(t, h, hv.VMConfig{IRQChip: true}, func(a *asm.Assembler) {
		a.Mov(asm.EDI, asm.Imm(hv.LAPICBase))
		a.Mov(asm.D(asm.RDI, apicSVR), asm.Imm(apicSWEnable|0xff))
		a.Sti()
		a.Hlt()
		RawDone(a)
	})
	go func() {
		time.Sleep(50 * time.Millisecond)
		g.VM.Interrupt(0, irqHaltVec)
	}()
	start := time.Now()
	if p, v := g.RunPort(t); p != RawPortVec || v != irqHaltVec {
		t.Fatalf("port %#x value %#x, want vector %#x (HLT must wait for it)", p, v, irqHaltVec)
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Fatal("HLT returned before the interrupt was raised")
	}
	g.RunDone(t)
}
