package hvtest

import (
	"bytes"
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// hookDevice is a Recorder that runs a hook on every access, from inside
// the access (what a device changing the memory map in its handler does).
type hookDevice struct {
	Recorder
	hook func(a *hv.Access)
}

func (d *hookDevice) Access(a *hv.Access) error {
	if err := d.Recorder.Access(a); err != nil {
		return err
	}
	if d.hook != nil {
		d.hook(a)
	}
	return nil
}

// Device regions of DeviceExactlyOnce.
const (
	exactMMIO    = 0xd0000000
	exactPort    = 0x500
	exactScratch = 0x40000000 // the slot the handlers move and delete
)

// DeviceExactlyOnce checks that every guest MMIO and port access reaches
// its device exactly once, writes included, also when the device's handler
// changes the memory map (moves or deletes a memslot) or detaches another
// device during the access, and for string I/O.
func DeviceExactlyOnce(t *testing.T, h hv.Hypervisor) {
	type program struct {
		name         string
		build        func(a *asm.Assembler)
		reads, wrote int
		data         []byte // bytes the writes carried, in order (nil: not checked)
	}
	programs := []program{
		{"mmio store", func(a *asm.Assembler) {
			a.Mov(asm.EAX, asm.Imm(exactMMIO))
			a.Mov(asm.D(asm.RAX, 0), asm.Imm(0x11223344))
		}, 0, 1, []byte{0x44, 0x33, 0x22, 0x11}},
		{"mmio load", func(a *asm.Assembler) {
			a.Mov(asm.EAX, asm.Imm(exactMMIO))
			a.Mov(asm.EBX, asm.D(asm.RAX, 4))
		}, 1, 0, nil},
		{"mmio read-modify-write", func(a *asm.Assembler) {
			a.Mov(asm.EAX, asm.Imm(exactMMIO))
			a.Add(asm.D(asm.RAX, 8), asm.Imm(1))
		}, 1, 1, nil},
		{"port out", func(a *asm.Assembler) {
			a.Mov(asm.EAX, asm.Imm(0x5a))
			a.Mov(asm.EDX, asm.Imm(exactPort))
			a.Out(asm.DX, asm.AL)
		}, 0, 1, []byte{0x5a}},
		{"port in", func(a *asm.Assembler) {
			a.Mov(asm.EDX, asm.Imm(exactPort))
			a.In(asm.AL, asm.DX)
		}, 1, 0, nil},
		{"rep outsb", func(a *asm.Assembler) {
			a.Mov(asm.RSI, asm.Imm(RawDataGPA))
			a.Mov(asm.D(asm.RSI, 0), asm.Imm(0x04030201))
			a.Mov(asm.ECX, asm.Imm(4))
			a.Mov(asm.EDX, asm.Imm(exactPort))
			a.RepOutsb()
		}, 0, 4, []byte{1, 2, 3, 4}},
		{"rep insb", func(a *asm.Assembler) {
			a.Mov(asm.RDI, asm.Imm(RawDataGPA))
			a.Mov(asm.ECX, asm.Imm(3))
			a.Mov(asm.EDX, asm.Imm(exactPort))
			a.RepInsb()
		}, 3, 0, nil},
		{"rep movsb to mmio", func(a *asm.Assembler) {
			a.Mov(asm.RSI, asm.Imm(RawDataGPA))
			a.Mov(asm.D(asm.RSI, 0), asm.Imm(0x0d0c0b0a))
			a.Mov(asm.EDI, asm.Imm(exactMMIO))
			a.Mov(asm.ECX, asm.Imm(4))
			a.RepMovsb()
		}, 0, 4, []byte{0xa, 0xb, 0xc, 0xd}},
	}
	type handler struct {
		name string
		// hook runs inside each access; other is a second attached device
		// it may detach.
		hook func(t *testing.T, g *RawGuest, scratch *hv.Memory, other *Recorder, n int)
	}
	handlers := []handler{
		{"plain", nil},
		{"moves a memslot", func(t *testing.T, g *RawGuest, scratch *hv.Memory, other *Recorder, n int) {
			gpa := uint64(exactScratch)
			if n%2 == 0 {
				gpa += 1 << 20
			}
			if err := g.VM.SetMemslot(hv.Memslot{Slot: 1, GPA: gpa, Size: hv.PageSize, Memory: scratch}); err != nil {
				t.Errorf("move in handler: %v", err)
			}
		}},
		{"deletes and re-creates a memslot", func(t *testing.T, g *RawGuest, scratch *hv.Memory, other *Recorder, n int) {
			if err := g.VM.DeleteMemslot(1); err != nil {
				t.Errorf("delete in handler: %v", err)
			}
			if err := g.VM.SetMemslot(hv.Memslot{Slot: 1, GPA: exactScratch, Size: hv.PageSize, Memory: scratch}); err != nil {
				t.Errorf("re-create in handler: %v", err)
			}
		}},
		{"detaches another device", func(t *testing.T, g *RawGuest, scratch *hv.Memory, other *Recorder, n int) {
			if n == 1 {
				if err := g.VM.Detach(other); err != nil {
					t.Errorf("detach in handler: %v", err)
				}
			}
		}},
	}
	for _, p := range programs {
		for _, hd := range handlers {
			t.Run(p.name+"/"+hd.name, func(t *testing.T) {
				g := NewRawGuest(t, h, hv.VMConfig{}, func(a *asm.Assembler) {
					p.build(a)
					RawDone(a)
				})
				scratch, err := hv.NewMemory(hv.PageSize, hv.Anonymous)
				if err != nil {
					t.Fatal(err)
				}
				defer scratch.Close()
				if err := g.VM.SetMemslot(hv.Memslot{Slot: 1, GPA: exactScratch, Size: hv.PageSize, Memory: scratch}); err != nil {
					t.Fatal(err)
				}
				other := &Recorder{DevName: "other"}
				if err := g.VM.Attach(other, hv.Region{Space: hv.SpacePIO, Base: exactPort + 0x100, Size: 1}); err != nil {
					t.Fatal(err)
				}
				dev := &hookDevice{Recorder: Recorder{DevName: "exact", ReadValue: 0x77}}
				n := 0
				if hd.hook != nil {
					dev.hook = func(*hv.Access) { n++; hd.hook(t, g, scratch, other, n) }
				}
				if err := g.VM.Attach(dev, hv.Region{Space: hv.SpaceMMIO, Base: exactMMIO, Size: 0x1000},
					hv.Region{Space: hv.SpacePIO, Base: exactPort, Size: 4}); err != nil {
					t.Fatal(err)
				}
				g.RunDone(t)
				reads, writes := dev.Counts()
				if reads != p.reads || writes != p.wrote {
					t.Fatalf("device saw %d reads and %d writes, want %d and %d: %+v", reads, writes, p.reads, p.wrote, dev.Accesses())
				}
				if p.data != nil {
					var got []byte
					for _, a := range dev.Accesses() {
						if a.Write {
							got = append(got, a.Data...)
						}
					}
					if !bytes.Equal(got, p.data) {
						t.Fatalf("writes carried % x, want % x", got, p.data)
					}
				}
				// VM.Close closes the bus: every device still attached is
				// closed once, a detached one is not closed again.
				if err := g.VM.Close(); err != nil {
					t.Fatalf("VM.Close: %v", err)
				}
				if _, closes := dev.Lifecycle(); closes != 1 {
					t.Fatalf("device closed %d times by VM.Close, want 1", closes)
				}
				if _, closes := other.Lifecycle(); closes != 1 {
					t.Fatalf("other device closed %d times, want 1", closes)
				}
			})
		}
	}
}
