package kvm

import (
	"errors"
	"slices"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// hostVM is a VM's host-side state without a KVM descriptor: what guest
// memory access and host-write tracking do needs no /dev/kvm.
func hostVM(t *testing.T, cfg hv.VMConfig, slots ...hv.Memslot) *VM {
	t.Helper()
	vm := newVMState(&Hypervisor{}, -1, cfg)
	for _, m := range slots {
		vm.slotSet(m)
	}
	return vm
}

func newMem(t *testing.T, pages uint64) *hv.Memory {
	t.Helper()
	m, err := hv.NewMemory(pages*hv.PageSize, hv.Anonymous)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestHostWritesTrackedPerSlot(t *testing.T) {
	a, b := newMem(t, 64), newMem(t, 64)
	vm := hostVM(t, hv.VMConfig{},
		hv.Memslot{Slot: 0, GPA: 0, Size: 64 * hv.PageSize, Memory: a, Flags: hv.MemLogDirty},
		hv.Memslot{Slot: 1, GPA: 64 * hv.PageSize, Size: 64 * hv.PageSize, Memory: b})
	// One write across the boundary: slot 0 logs, slot 1 does not.
	if err := vm.WriteGPA(63*hv.PageSize+10, make([]byte, 2*hv.PageSize)); err != nil {
		t.Fatal(err)
	}
	if err := vm.Store64(5*hv.PageSize, 7); err != nil {
		t.Fatal(err)
	}
	if v, err := vm.Load64(5 * hv.PageSize); err != nil || v != 7 {
		t.Fatalf("Load64 = %d, %v", v, err)
	}
	// KVM reported page 2 dirty itself: the merge keeps it.
	bm := []uint64{1 << 2}
	vm.mergeHostWrites(0, bm)
	if want := uint64(1<<2 | 1<<5 | 1<<63); bm[0] != want {
		t.Fatalf("merged %#x, want %#x", bm[0], want)
	}
	bm[0] = 0
	vm.mergeHostWrites(0, bm)
	if bm[0] != 0 {
		t.Fatalf("bitmap mode: second get %#x, want 0", bm[0])
	}
	if vm.dirtyRecord(1) != nil {
		t.Fatal("a slot without logging has a host-write record")
	}
}

func TestHostWritesManualProtect(t *testing.T) {
	mem := newMem(t, 64)
	vm := hostVM(t, hv.VMConfig{ManualProtect: true},
		hv.Memslot{Slot: 3, GPA: 0x100000, Size: 64 * hv.PageSize, Memory: mem, Flags: hv.MemLogDirty})
	if _, err := vm.CAS32(0x100000+9*hv.PageSize, 1, 2); err != nil { // fails, dirties anyway
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		bm := []uint64{0}
		vm.mergeHostWrites(3, bm)
		if bm[0] != 1<<9 {
			t.Fatalf("get %d: %#x, want page 9 until cleared", i, bm[0])
		}
	}
	vm.dirtyRecord(3).clear(0, 64, []uint64{1 << 9})
	bm := []uint64{0}
	vm.mergeHostWrites(3, bm)
	if bm[0] != 0 {
		t.Fatalf("after ClearDirtyLog: %#x", bm[0])
	}
}

func TestHostWriteRecordFollowsLogging(t *testing.T) {
	mem := newMem(t, 64)
	m := hv.Memslot{Slot: 0, GPA: 0, Size: 64 * hv.PageSize, Memory: mem, Flags: hv.MemLogDirty}
	vm := hostVM(t, hv.VMConfig{}, m)
	if err := vm.Store32(0, 1); err != nil {
		t.Fatal(err)
	}
	m.GPA = 1 << 30 // a move keeps the record, as KVM keeps its bitmap
	vm.slotSet(m)
	if vm.dirtyRecord(0).count() != 1 {
		t.Fatal("moving a logged slot dropped its host writes")
	}
	if err := vm.Store32(1<<30+hv.PageSize, 1); err != nil {
		t.Fatal(err)
	}
	m.Flags = 0 // logging off drops it
	vm.slotSet(m)
	if vm.dirtyRecord(0) != nil {
		t.Fatal("logging turned off, record kept")
	}
	m.Flags = hv.MemLogDirty // back on: a fresh record
	vm.slotSet(m)
	if vm.dirtyRecord(0).count() != 0 {
		t.Fatal("re-enabled logging starts with old host writes")
	}
	vm.slotDeleted(0)
	if err := vm.Store32(1<<30, 1); !errors.Is(err, hv.ErrUnbacked) {
		t.Fatalf("write to a deleted slot = %v, want ErrUnbacked", err)
	}
}

func TestHostWritesToRingVM(t *testing.T) {
	cases := []struct {
		name string
		cfg  hv.VMConfig
		want error
	}{
		{"ring without bitmap refuses", hv.VMConfig{DirtyRingBytes: 1 << 16}, hv.ErrDirtyUntracked},
		{"ring with bitmap records", hv.VMConfig{DirtyRingBytes: 1 << 16, DirtyRingWithBitmap: true}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := newMem(t, 8)
			vm := hostVM(t, c.cfg,
				hv.Memslot{Slot: 0, GPA: 0, Size: 4 * hv.PageSize, Memory: mem, Flags: hv.MemLogDirty},
				hv.Memslot{Slot: 1, GPA: 4 * hv.PageSize, Size: 4 * hv.PageSize, Memory: mem, Offset: 4 * hv.PageSize})
			before := slices.Clone(mem.Bytes()[:16])
			err := vm.WriteGPA(0, []byte{1, 2, 3})
			if !errors.Is(err, c.want) {
				t.Fatalf("WriteGPA = %v, want %v", err, c.want)
			}
			if c.want != nil && !slices.Equal(before, mem.Bytes()[:16]) {
				t.Fatal("a refused write changed memory")
			}
			if err := vm.WriteGPA(4*hv.PageSize, []byte{1}); err != nil {
				t.Fatalf("write to a slot without logging: %v", err)
			}
			if c.want == nil && vm.dirtyRecord(0).count() != 1 {
				t.Fatal("backup-bitmap VM did not record the host write")
			}
		})
	}
}

func TestDirtyRingBitmapSupport(t *testing.T) {
	cases := []struct {
		ring, bitmap int
		ok           bool
		reason       string
	}{
		{0, 1, false, "no dirty ring"},
		{1 << 16, 0, false, "KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP not offered (x86 KVM dirties no page outside vCPU context)"},
		{1 << 20, 1, true, "KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP=1"},
	}
	for _, c := range cases {
		s := dirtyRingBitmapSupport(c.ring, c.bitmap)
		if s.OK != c.ok || !contains(s.Reason, c.reason) {
			t.Errorf("ring %d bitmap %d: %+v, want ok=%v reason %q", c.ring, c.bitmap, s, c.ok, c.reason)
		}
	}
}
