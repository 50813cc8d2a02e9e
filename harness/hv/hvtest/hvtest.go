// Package hvtest holds behaviour every hv backend must share, as tests a
// backend's own test file runs against it: one table, so the kvm backend
// and the bundled one cannot drift apart (the real kernel's answers are
// the reference: the kvm backend passes them by construction).
package hvtest

import (
	"errors"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// MemslotErrors checks the errno of every invalid memslot request, as
// KVM_SET_USER_MEMORY_REGION returns it, and that moves, flag changes and
// deletes work.
func MemslotErrors(t *testing.T, h hv.Hypervisor) {
	t.Helper()
	vm, err := h.NewVM(hv.VMConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	mem, err := hv.NewMemory(1<<20, hv.Anonymous)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if err := vm.SetMemslot(hv.Memslot{Slot: 0, GPA: 0, Size: 1 << 19, Memory: mem}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		m    hv.Memslot
		want error // nil: accepted
	}{
		// The kernel says EEXIST for a new slot overlapping another.
		{"overlap", hv.Memslot{Slot: 1, GPA: 0x1000, Size: 0x1000, Memory: mem, Offset: 1 << 19}, unix.EEXIST},
		{"unaligned gpa", hv.Memslot{Slot: 2, GPA: 0x100001, Size: 0x1000, Memory: mem, Offset: 1 << 19}, unix.EINVAL},
		{"unaligned size", hv.Memslot{Slot: 2, GPA: 0x100000, Size: 0x1001, Memory: mem, Offset: 1 << 19}, unix.EINVAL},
		{"unaligned offset", hv.Memslot{Slot: 2, GPA: 0x100000, Size: 0x1000, Memory: mem, Offset: 1<<19 + 8}, unix.EINVAL},
		{"size zero", hv.Memslot{Slot: 2, GPA: 0x100000, Size: 0, Memory: mem}, unix.EINVAL},
		{"no memory", hv.Memslot{Slot: 2, GPA: 0x100000, Size: 0x1000}, unix.EINVAL},
		{"beyond memory", hv.Memslot{Slot: 3, GPA: 0x200000, Size: 2 << 20, Memory: mem}, unix.EINVAL},
		{"slot id out of range", hv.Memslot{Slot: uint32(h.Caps().MaxMemslots), GPA: 0x300000, Size: 0x1000, Memory: mem, Offset: 1 << 19}, unix.EINVAL},
		{"resize", hv.Memslot{Slot: 0, GPA: 0, Size: 1 << 20, Memory: mem}, unix.EINVAL},
		{"flip readonly", hv.Memslot{Slot: 0, GPA: 0, Size: 1 << 19, Memory: mem, Flags: hv.MemReadOnly}, unix.EINVAL},
		{"unknown flag", hv.Memslot{Slot: 4, GPA: 0x400000, Size: 0x1000, Memory: mem, Offset: 1 << 19, Flags: 1 << 7}, unix.EINVAL},
		{"move", hv.Memslot{Slot: 0, GPA: 1 << 30, Size: 1 << 19, Memory: mem}, nil},
		{"enable logging", hv.Memslot{Slot: 0, GPA: 1 << 30, Size: 1 << 19, Memory: mem, Flags: hv.MemLogDirty}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := vm.SetMemslot(c.m)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("SetMemslot = %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), "slot") {
				t.Errorf("error %q does not name the slot", err)
			}
		})
	}
	if err := vm.DeleteMemslot(0); err != nil {
		t.Fatal(err)
	}
	if err := vm.DeleteMemslot(0); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("second delete = %v, want EINVAL", err)
	}
	if got := len(vm.Memslots()); got != 0 {
		t.Fatalf("%d slots left", got)
	}
}
