package hvtest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// GuestMemory checks hv.GuestMemory: reads and writes across slot
// boundaries, the atomics, the errors for unbacked, read-only and
// misaligned targets (nothing transferred), and that host writes appear in
// the next dirty harvest in every logging mode the backend offers.
func GuestMemory(t *testing.T, h hv.Hypervisor) {
	t.Run("access", func(t *testing.T) { guestMemoryAccess(t, h) })
	modes := []struct {
		name string
		cfg  hv.VMConfig
		need hv.Cap
	}{
		{"bitmap", hv.VMConfig{}, hv.CapDirtyLog},
		{"manual-protect", hv.VMConfig{ManualProtect: true}, hv.CapManualProtect},
		{"ring-with-bitmap", hv.VMConfig{DirtyRingBytes: 1 << 16, DirtyRingWithBitmap: true}, hv.CapDirtyRingBitmap},
	}
	for _, m := range modes {
		t.Run("dirty/"+m.name, func(t *testing.T) {
			if err := h.Caps().Require(m.need); err != nil {
				t.Skip(err)
			}
			if err := h.Caps().Require(hv.CapGuestMemoryTrack); err != nil {
				t.Skip(err)
			}
			guestMemoryDirty(t, h, m.cfg)
		})
	}
	t.Run("dirty/ring-without-bitmap", func(t *testing.T) {
		if err := h.Caps().Require(hv.CapDirtyRing); err != nil {
			t.Skip(err)
		}
		vm, mem := memVM(t, h, hv.VMConfig{DirtyRingBytes: 1 << 16}, hv.MemLogDirty)
		_ = mem
		if err := vm.WriteGPA(0x1000, []byte{1}); !errors.Is(err, hv.ErrDirtyUntracked) {
			t.Fatalf("host write to a logging slot of a ring VM without bitmap = %v, want ErrDirtyUntracked", err)
		}
	})
}

// memVM makes a VM with one 64-page slot 0 at GPA 0 with flags.
func memVM(t *testing.T, h hv.Hypervisor, cfg hv.VMConfig, flags hv.MemFlags) (hv.VM, *hv.Memory) {
	t.Helper()
	vm, err := h.NewVM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := hv.NewMemory(64*hv.PageSize, hv.Anonymous)
	if err != nil {
		vm.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close(); mem.Close() })
	if err := vm.SetMemslot(hv.Memslot{Slot: 0, Size: 64 * hv.PageSize, Memory: mem, Flags: flags}); err != nil {
		t.Fatal(err)
	}
	return vm, mem
}

func guestMemoryAccess(t *testing.T, h hv.Hypervisor) {
	vm, err := h.NewVM(hv.VMConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	var mems [3]*hv.Memory
	for i := range mems {
		if mems[i], err = hv.NewMemory(0x10000, hv.Anonymous); err != nil {
			t.Fatal(err)
		}
		defer mems[i].Close()
	}
	// Slots 0 and 1 adjacent, slot 2 read-only after a hole.
	slots := []hv.Memslot{
		{Slot: 0, GPA: 0, Size: 0x10000, Memory: mems[0]},
		{Slot: 1, GPA: 0x10000, Size: 0x10000, Memory: mems[1]},
		{Slot: 2, GPA: 0x30000, Size: 0x10000, Memory: mems[2], Flags: hv.MemReadOnly},
	}
	for _, s := range slots {
		if err := vm.SetMemslot(s); err != nil {
			t.Fatal(err)
		}
	}
	msg := []byte("across the slot boundary")
	at := uint64(0x10000 - 10)
	if err := vm.WriteGPA(at, msg); err != nil {
		t.Fatalf("cross-slot write: %v", err)
	}
	if !bytes.Equal(mems[0].Bytes()[0x10000-10:], msg[:10]) || !bytes.Equal(mems[1].Bytes()[:len(msg)-10], msg[10:]) {
		t.Fatal("cross-slot write did not land in both memories")
	}
	back := make([]byte, len(msg))
	if err := vm.ReadGPA(at, back); err != nil || !bytes.Equal(back, msg) {
		t.Fatalf("cross-slot read %q, %v", back, err)
	}
	mems[2].Bytes()[8] = 0x77
	if b := make([]byte, 1); vm.ReadGPA(0x30008, b) != nil || b[0] != 0x77 {
		t.Fatal("read from the read-only slot failed")
	}

	if err := vm.Store32(0x100, 0xdeadbeef); err != nil {
		t.Fatal(err)
	}
	if v, err := vm.Load32(0x100); err != nil || v != 0xdeadbeef {
		t.Fatalf("Load32 = %#x, %v", v, err)
	}
	if err := vm.Store64(0x10008, 0x0123456789abcdef); err != nil {
		t.Fatal(err)
	}
	if v, err := vm.Load64(0x10008); err != nil || v != 0x0123456789abcdef {
		t.Fatalf("Load64 = %#x, %v", v, err)
	}
	cas := []struct {
		name     string
		do       func() (bool, error)
		want     bool
		wantLoad uint64
		load     func() (uint64, error)
	}{
		{"cas32 hit", func() (bool, error) { return vm.CAS32(0x100, 0xdeadbeef, 1) }, true, 1, func() (uint64, error) { v, e := vm.Load32(0x100); return uint64(v), e }},
		{"cas32 miss", func() (bool, error) { return vm.CAS32(0x100, 0xdeadbeef, 2) }, false, 1, func() (uint64, error) { v, e := vm.Load32(0x100); return uint64(v), e }},
		{"cas64 hit", func() (bool, error) { return vm.CAS64(0x10008, 0x0123456789abcdef, 7) }, true, 7, func() (uint64, error) { return vm.Load64(0x10008) }},
		{"cas64 miss", func() (bool, error) { return vm.CAS64(0x10008, 0, 9) }, false, 7, func() (uint64, error) { return vm.Load64(0x10008) }},
	}
	for _, c := range cas {
		ok, err := c.do()
		if err != nil || ok != c.want {
			t.Fatalf("%s = %v, %v; want %v", c.name, ok, err, c.want)
		}
		if v, err := c.load(); err != nil || v != c.wantLoad {
			t.Fatalf("%s: value %#x, %v; want %#x", c.name, v, err, c.wantLoad)
		}
	}

	errCases := []struct {
		name string
		do   func() error
		want error
	}{
		{"read hole", func() error { return vm.ReadGPA(0x20000, make([]byte, 4)) }, hv.ErrUnbacked},
		{"write into hole", func() error { return vm.WriteGPA(0x1fffe, []byte{1, 2, 3, 4}) }, hv.ErrUnbacked},
		{"write far", func() error { return vm.WriteGPA(1<<40, []byte{1}) }, hv.ErrUnbacked},
		{"write wraps", func() error { return vm.WriteGPA(^uint64(0), []byte{1, 2}) }, hv.ErrUnbacked},
		{"write read-only", func() error { return vm.WriteGPA(0x30000, []byte{1}) }, hv.ErrReadOnly},
		{"store32 read-only", func() error { return vm.Store32(0x30000, 1) }, hv.ErrReadOnly},
		{"cas64 read-only", func() error { _, e := vm.CAS64(0x30000, 0, 1); return e }, hv.ErrReadOnly},
		{"load32 misaligned", func() error { _, e := vm.Load32(0x102); return e }, hv.ErrMisaligned},
		{"store64 misaligned", func() error { return vm.Store64(0x104, 1) }, hv.ErrMisaligned},
		{"cas32 misaligned", func() error { _, e := vm.CAS32(0x101, 0, 1); return e }, hv.ErrMisaligned},
		{"load64 hole", func() error { _, e := vm.Load64(0x20000); return e }, hv.ErrUnbacked},
	}
	before := append([]byte(nil), mems[1].Bytes()[0xfff0:]...)
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.do(); !errors.Is(err, c.want) {
				t.Fatalf("= %v, want %v", err, c.want)
			}
		})
	}
	if !bytes.Equal(before, mems[1].Bytes()[0xfff0:]) {
		t.Fatal("a refused write into a hole changed the backed part")
	}
}

// guestMemoryDirty: pages written through GuestMemory are in the next
// harvest, once.
func guestMemoryDirty(t *testing.T, h hv.Hypervisor, cfg hv.VMConfig) {
	vm, _ := memVM(t, h, cfg, hv.MemLogDirty)
	bm := make([]uint64, 1)
	harvest := func() uint64 {
		t.Helper()
		if err := vm.GetDirtyLog(0, bm); err != nil {
			t.Fatalf("GetDirtyLog: %v", err)
		}
		got := bm[0]
		if cfg.ManualProtect && got != 0 {
			if err := vm.ClearDirtyLog(0, 0, 64, []uint64{got}); err != nil {
				t.Fatalf("ClearDirtyLog: %v", err)
			}
		}
		return got
	}
	harvest() // start clean
	if err := vm.WriteGPA(3*hv.PageSize+100, make([]byte, hv.PageSize)); err != nil {
		t.Fatal(err) // pages 3 and 4
	}
	if err := vm.Store32(9*hv.PageSize, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.CAS64(11*hv.PageSize, 5, 6); err != nil {
		t.Fatal(err) // a failed compare dirties too
	}
	if err := vm.ReadGPA(20*hv.PageSize, make([]byte, 8)); err != nil {
		t.Fatal(err) // reads do not
	}
	want := uint64(1<<3 | 1<<4 | 1<<9 | 1<<11)
	if got := harvest(); got != want {
		t.Fatalf("first harvest %#x, want %#x", got, want)
	}
	if got := harvest(); got != 0 {
		t.Fatalf("second harvest %#x, want 0", got)
	}
	if err := vm.Store64(9*hv.PageSize+8, 2); err != nil {
		t.Fatal(err)
	}
	if got := harvest(); got != 1<<9 {
		t.Fatalf("harvest after a re-write %#x, want page 9", got)
	}
}
