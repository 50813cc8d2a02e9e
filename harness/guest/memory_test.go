package guest_test

import (
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// addSlot gives g a memslot of size bytes at gpa with flags.
func addSlot(t *testing.T, g *guest.Guest, id uint32, gpa, size uint64, flags hv.MemFlags) {
	t.Helper()
	mem, err := hv.NewMemory(size, hv.Anonymous)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	if err := g.VM.SetMemslot(hv.Memslot{Slot: id, GPA: gpa, Size: size, Flags: flags, Memory: mem}); err != nil {
		t.Fatal(err)
	}
}

// atomicCase is one access and the error it must give ("": success).
type atomicCase struct {
	name    string
	op      func() error
	wantErr string
}

func TestAtomicsAddressChecks(t *testing.T) {
	for _, h := range backends(t) {
		t.Run(h.Name(), func(t *testing.T) {
			g := newGuest(t, h, guest.Config{})
			const slot1, ro = 0x40000000, 0x50000000
			addSlot(t, g, 1, slot1, 2*hv.PageSize, 0)
			if h.Caps().Has(hv.CapReadOnlyMem) {
				addSlot(t, g, 2, ro, hv.PageSize, hv.MemReadOnly)
			}
			cases := []atomicCase{
				{"store64 slot 0", func() error { return g.Store64(guest.DataBase, 1) }, ""},
				{"store64 another slot", func() error { return g.Store64(slot1+8, 1) }, ""},
				{"store32 another slot", func() error { return g.Store32(slot1+4, 1) }, ""},
				{"load64 unaligned", func() error { _, err := g.Load64(guest.DataBase + 4); return err }, "load64 at 0x900004: atomic access not naturally aligned"},
				{"cas32 unaligned", func() error { _, err := g.CAS32(slot1+2, 0, 1); return err }, "cas32 at 0x40000002: atomic access not naturally aligned"},
				{"load64 in a hole", func() error { _, err := g.Load64(0x30000000); return err }, "load64 [0x30000000, +0x8): 0x30000000: guest-physical address not backed by a memslot"},
				{"store64 past the last slot byte", func() error { return g.Store64(slot1+2*hv.PageSize, 1) }, "not backed by a memslot"},
				{"load32 at the top of the address space", func() error { _, err := g.Load32(1<<64 - 4); return err }, "range wraps"},
				{"bytes wrapping around", func() error { _, err := g.Bytes(1<<64-8, 16); return err }, "not inside one memslot"},
				{"bytes negative", func() error { _, err := g.Bytes(0x1000, -1); return err }, "negative length"},
			}
			if h.Caps().Has(hv.CapReadOnlyMem) {
				cases = append(cases,
					atomicCase{"store64 read-only slot", func() error { return g.Store64(ro, 1) }, "store64 [0x50000000, +0x8): 0x50000000 is in read-only slot 2"},
					atomicCase{"load64 read-only slot", func() error { _, err := g.Load64(ro); return err }, ""})
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					err := c.op()
					if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
						t.Fatalf("err = %v, want %q", err, c.wantErr)
					}
				})
			}
		})
	}
}

func TestAtomicsValues(t *testing.T) {
	g := newGuest(t, backends(t)[0], guest.Config{})
	const a = guest.DataBase
	if err := g.Store64(a, 0x1122334455667788); err != nil {
		t.Fatal(err)
	}
	lo, _ := g.Load32(a)
	hi, _ := g.Load32(a + 4)
	if lo != 0x55667788 || hi != 0x11223344 {
		t.Fatalf("halves %#x %#x: not little-endian", lo, hi)
	}
	if ok, _ := g.CAS64(a, 1, 2); ok {
		t.Fatal("CAS64 with a wrong old value swapped")
	}
	if ok, _ := g.CAS64(a, 0x1122334455667788, 7); !ok {
		t.Fatal("CAS64 with the right old value did not swap")
	}
	if ok, _ := g.CAS32(a, 7, 9); !ok {
		t.Fatal("CAS32 did not swap")
	}
	if v, _ := g.Load64(a); v != 9 {
		t.Fatalf("Load64 = %#x, want 9", v)
	}
}

// TestAtomicsHandshake: the guest counts with lock xadd until the host
// raises a stop flag, while the host adds to the same counter with CAS64;
// no increment of either side may be lost.
func TestAtomicsHandshake(t *testing.T) {
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		g := newGuest(t, h, guest.Config{Mode: mode})
		ctr, err := g.Alloc(8, 64)
		if err != nil {
			t.Fatal(err)
		}
		stop, err := g.Alloc(8, 64)
		if err != nil {
			t.Fatal(err)
		}
		p := g.Program()
		p.MovAbs(asm.RSI, ctr)
		p.MovAbs(asm.RDX, stop)
		p.Xor(asm.RCX, asm.RCX) // the guest's own count
		loop := p.Here()
		p.Mov(asm.RAX, asm.Imm(1))
		p.Lock().Xadd(asm.Q(asm.RSI, 0), asm.RAX)
		p.Inc(asm.RCX)
		p.Cmp(asm.Q(asm.RDX, 0), asm.Imm(0))
		p.Jcc(asm.CondE, loop)
		p.Sync(1, asm.RCX)
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		var guestCount uint64
		done := make(chan error, 1)
		go func() {
			done <- g.RunUntilDone(ctx(t), 0, func(u *guest.Ucall) error { guestCount = u.Args[1]; return nil })
		}()
		const hostAdds = 2000
		for n := 0; n < hostAdds; {
			v, err := g.Load64(ctr)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := g.CAS64(ctr, v, v+1); err != nil {
				t.Fatal(err)
			} else if ok {
				n++
			}
		}
		if err := g.Store64(stop, 1); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		total, _ := g.Load64(ctr)
		if total != guestCount+hostAdds {
			t.Fatalf("counter %d, want guest %d + host %d: an increment was lost", total, guestCount, hostAdds)
		}
	})
}
