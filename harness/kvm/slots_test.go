package kvm

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

func gpas(s []hv.Memslot) []uint64 {
	var out []uint64
	for _, m := range s {
		out = append(out, m.GPA)
	}
	return out
}

// TestSlotsByGPASnapshot: a memslot change only drops the GPA-sorted
// snapshot; the next access sees every change made before it, sorted,
// and a snapshot taken earlier stays as it was.
func TestSlotsByGPASnapshot(t *testing.T) {
	mem := newMem(t, 8)
	at := func(id uint32, page uint64) hv.Memslot {
		return hv.Memslot{Slot: id, GPA: page * hv.PageSize, Size: hv.PageSize, Memory: mem, Offset: uint64(id) * hv.PageSize}
	}
	vm := hostVM(t, hv.VMConfig{})
	if got := vm.slotsByGPA(); len(got) != 0 {
		t.Fatalf("a new VM has slots %v", gpas(got))
	}
	steps := []struct {
		do   func()
		want []uint64 // GPAs in pages
	}{
		{func() { vm.slotSet(at(0, 30)) }, []uint64{30}},
		{func() { vm.slotSet(at(1, 10)); vm.slotSet(at(2, 20)) }, []uint64{10, 20, 30}},
		{func() { vm.slotSet(at(1, 40)) }, []uint64{20, 30, 40}}, // a move
		{func() { vm.slotDeleted(2) }, []uint64{30, 40}},
		{func() { vm.slotDeleted(0); vm.slotDeleted(1) }, nil},
	}
	var prev []hv.Memslot
	var prevWant []uint64
	for i, s := range steps {
		s.do()
		if vm.byGPA.Load() != nil {
			t.Errorf("step %d: an update built the snapshot (its O(n log n) belongs to the next access)", i)
		}
		got := vm.slotsByGPA()
		var want []uint64
		for _, p := range s.want {
			want = append(want, p*hv.PageSize)
		}
		if g := gpas(got); !slices.Equal(g, want) {
			t.Errorf("step %d: slots at %#x, want %#x", i, g, want)
		}
		if again := vm.slotsByGPA(); len(again) > 0 && &again[0] != &got[0] {
			t.Errorf("step %d: a second access without a change rebuilt the snapshot", i)
		}
		if prev != nil && !slices.Equal(gpas(prev), prevWant) {
			t.Errorf("step %d: the previous snapshot changed to %#x, want %#x", i, gpas(prev), prevWant)
		}
		prev, prevWant = got, want
	}
}

// TestSlotsByGPAConcurrent: accesses racing with updates (go test -race)
// each see a sorted snapshot.
func TestSlotsByGPAConcurrent(t *testing.T) {
	mem := newMem(t, 64)
	vm := hostVM(t, hv.VMConfig{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 2000; i++ {
			id := uint32(i % 64)
			vm.slotSet(hv.Memslot{Slot: id, GPA: uint64(63-id) * hv.PageSize, Size: hv.PageSize, Memory: mem, Offset: uint64(id) * hv.PageSize})
			if i%3 == 0 {
				vm.slotDeleted(id)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 2000; i++ {
			s := vm.slotsByGPA()
			for j := 1; j < len(s); j++ {
				if s[j-1].GPA >= s[j].GPA {
					t.Errorf("snapshot not sorted: %#x", gpas(s))
					return
				}
			}
		}
	}()
	wg.Wait()
}

// BenchmarkSlotBookkeeping is the host-side part of a memslot update (no
// ioctl: what SetMemslot and DeleteMemslot do around it) with n slots
// present: a create, a move and a delete of one more slot per op.
func BenchmarkSlotBookkeeping(b *testing.B) {
	for _, n := range []int{8, 4096, 32766} {
		b.Run(fmt.Sprintf("slots=%d", n), func(b *testing.B) {
			mem, err := hv.NewMemory(uint64(n+1)*hv.PageSize, hv.Anonymous)
			if err != nil {
				b.Fatal(err)
			}
			defer mem.Close()
			vm := newVMState(&Hypervisor{}, -1, hv.VMConfig{})
			for i := 0; i < n; i++ {
				vm.slotSet(hv.Memslot{Slot: uint32(i), GPA: uint64(i) * hv.PageSize, Size: hv.PageSize, Memory: mem, Offset: uint64(i) * hv.PageSize})
			}
			probe := hv.Memslot{Slot: uint32(n), GPA: 1 << 32, Size: hv.PageSize, Memory: mem, Offset: uint64(n) * hv.PageSize}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				vm.slotSet(probe)
				moved := probe
				moved.GPA += 2 << 20
				vm.slotSet(moved)
				vm.slotDeleted(probe.Slot)
			}
		})
	}
}

// TestRawRegionIoctl: a memslot update keeps its P (raw syscall) unless
// the VM has a userfaultfd reader, which a vCPU holding the VM's SRCU
// lock may be waiting on.
func TestRawRegionIoctl(t *testing.T) {
	vm := hostVM(t, hv.VMConfig{})
	if !vm.rawRegionIoctl() {
		t.Error("a VM without userfault handlers: not raw")
	}
	vm.ufMu.Lock()
	uf := userfaultsLocked(vm, true)
	vm.ufMu.Unlock()
	if vm.rawRegionIoctl() {
		t.Error("a VM with a userfault handler: raw")
	}
	vm.ufMu.Lock()
	uf.forgetIfDone()
	vm.ufMu.Unlock()
	if !vm.rawRegionIoctl() {
		t.Error("a VM whose last handler went: not raw")
	}
}
