package emu

import (
	"encoding/binary"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// FuzzIOAPIC drives the I/O APIC with guest register writes and line
// changes in any order: it must never panic, never deliver an illegal
// vector, and keep remote IRR only on level pins.
func FuzzIOAPIC(f *testing.F) {
	f.Add([]byte{0x00, 0x10, 0x10, 0x43, 0x80, 0x00, 0x00, 0x05, 0x01})
	f.Add([]byte{0x00, 0x12, 0x10, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x06, 0x00})
	f.Fuzz(func(t *testing.T, ops []byte) {
		vm, err := New(Options{}).CreateVM(hv.VMConfig{IRQChip: true})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.Close()
		v, err := vm.CreateVCPU(0)
		if err != nil {
			t.Fatal(err)
		}
		v.c.apic.Write(0xf0, 0x1ff)
		for len(ops) >= 2 {
			switch ops[0] % 3 {
			case 0: // register write: offset selector, 4 value bytes
				if len(ops) < 6 {
					return
				}
				off := uint64(ops[1]&1) * ioapicRegWin
				vm.ioapic.write(vm, hv.IOAPICBase+off, 4, uint64(binary.LittleEndian.Uint32(ops[2:6])))
				ops = ops[6:]
			case 1: // line change
				vm.ioapic.setLine(vm, uint32(ops[1])%hv.IOAPICPins, ops[1]&0x80 != 0)
				ops = ops[2:]
			case 2: // guest takes an interrupt and EOIs it
				if vec, ok := v.c.apic.Accept(true); ok {
					if vec < 16 {
						t.Fatalf("illegal vector %d accepted", vec)
					}
					if r := v.c.apic.EOI(); r.Level {
						vm.ioapic.eoi(vm, r.Vector)
					}
				}
				ops = ops[2:]
			}
		}
		for p, e := range vm.ioapic.redir {
			if e&redirRemoteIRR != 0 && e&redirLevel == 0 {
				t.Fatalf("pin %d: remote IRR on an edge pin: %#x", p, e)
			}
		}
	})
}
