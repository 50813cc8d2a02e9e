// Package hvtest holds behaviour every hv backend must share, as tests a
// backend's own test file runs against it: one table, so the kvm backend
// and the bundled one cannot drift apart (the real kernel's answers are
// the reference: the kvm backend passes them by construction).
package hvtest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

type memslotCase struct {
	name string
	m    hv.Memslot
	want error
}

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
	// Refused requests: the errno KVM_SET_USER_MEMORY_REGION gives,
	// wrapped with the operation and slot, and nothing half-applied.
	refused := []memslotCase{
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
		{"overlap start", hv.Memslot{Slot: 5, GPA: 1<<19 - 0x1000, Size: 0x2000, Memory: mem, Offset: 1 << 19}, unix.EEXIST},
		{"overlap around", hv.Memslot{Slot: 5, GPA: 0, Size: 1 << 19, Memory: mem, Offset: 1 << 19}, unix.EEXIST},
		{"unaligned gpa half page", hv.Memslot{Slot: 5, GPA: 0x100800, Size: 0x1000, Memory: mem, Offset: 1 << 19}, unix.EINVAL},
		{"gpa range wraps", hv.Memslot{Slot: 5, GPA: ^uint64(0) - 0xfff, Size: 0x2000, Memory: mem, Offset: 1 << 19}, unix.EINVAL},
		{"gpa beyond 52 bits", hv.Memslot{Slot: 5, GPA: 1 << 52, Size: 0x1000, Memory: mem, Offset: 1 << 19}, unix.EINVAL},
		{"shrink", hv.Memslot{Slot: 0, GPA: 0, Size: 1<<19 - 0x1000, Memory: mem}, unix.EINVAL},
		{"change host offset", hv.Memslot{Slot: 0, GPA: 0, Size: 1 << 19, Memory: mem, Offset: 0x1000}, unix.EINVAL},
		{"move and resize", hv.Memslot{Slot: 0, GPA: 1 << 30, Size: 0x1000, Memory: mem}, unix.EINVAL},
	}
	// Every flag bit KVM_SET_USER_MEMORY_REGION does not know (bit 2,
	// KVM_MEM_GUEST_MEMFD, is valid only in the REGION2 ioctl).
	for bit := 2; bit < 32; bit++ {
		refused = append(refused, memslotCase{fmt.Sprintf("flag bit %d", bit),
			hv.Memslot{Slot: 6, GPA: 0x600000, Size: 0x1000, Memory: mem, Offset: 1 << 19, Flags: hv.MemFlags(1) << bit}, unix.EINVAL})
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			before := vm.Memslots()
			err := vm.SetMemslot(c.m)
			if !errors.Is(err, c.want) {
				t.Fatalf("SetMemslot = %v, want %v", err, c.want)
			}
			if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("slot %d", c.m.Slot)) || !strings.Contains(msg, "MEMORY_REGION") {
				t.Errorf("error %q does not name the operation and slot %d", err, c.m.Slot)
			}
			if after := vm.Memslots(); !reflect.DeepEqual(after, before) {
				t.Errorf("a refused request changed the slots: %v, was %v", after, before)
			}
		})
	}
	// Accepted changes, in order.
	for _, c := range []memslotCase{
		{"move", hv.Memslot{Slot: 0, GPA: 1 << 30, Size: 1 << 19, Memory: mem}, nil},
		{"enable logging", hv.Memslot{Slot: 0, GPA: 1 << 30, Size: 1 << 19, Memory: mem, Flags: hv.MemLogDirty}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := vm.SetMemslot(c.m); err != nil {
				t.Fatal(err)
			}
			if got := vm.Memslots(); len(got) != 1 || got[0] != c.m {
				t.Fatalf("slots %v after the change, want [%v]", got, c.m)
			}
		})
	}
	if err := vm.DeleteMemslot(0); err != nil {
		t.Fatal(err)
	}
	if err := vm.DeleteMemslot(0); !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "slot 0") {
		t.Fatalf("second delete = %v, want EINVAL naming slot 0", err)
	}
	if got := len(vm.Memslots()); got != 0 {
		t.Fatalf("%d slots left", got)
	}
}
