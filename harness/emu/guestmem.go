package emu

import (
	"sync/atomic"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// Host and device access to guest memory (hv.GuestMemory) is hv.GuestAccess
// over the emu's slot map; these hooks make its writes behave as a vCPU's:
// dirty logging and decoded-code invalidation.

// publicSlots is GuestAccess.Slots: the current map, sorted by GPA.
func (vm *VM) publicSlots() []hv.Memslot { return vm.mm.Load().publicSlots() }

// hostWritable is GuestAccess.Writable: a dirty-ring VM without the backup
// bitmap has nowhere to log a write that no vCPU made, so a write to a
// logging slot is refused rather than lost to the harvest.
func (vm *VM) hostWritable(m hv.Memslot) error {
	if vm.cfg.DirtyRingBytes != 0 && !vm.cfg.DirtyRingWithBitmap && m.Flags&hv.MemLogDirty != 0 {
		return hv.ErrDirtyUntracked
	}
	return nil
}

// hostWritten is GuestAccess.Written: pages [first, last] of slot m were
// written by the host. Each is logged as a vCPU's first write to it would
// be (bitmap mode: dirty bit set and write tracking dropped until the next
// harvest re-arms it; ring mode: the backup bitmap), and decoded code on it
// is invalidated in every vCPU.
func (vm *VM) hostWritten(m hv.Memslot, first, last uint64) {
	s := vm.mm.Load().find(m.GPA)
	if s == nil || s.m.Slot != m.Slot || s.m.Memory != m.Memory {
		return // the slot moved or went away meanwhile: nothing tracks it
	}
	inval := false
	for idx := first; idx <= last && idx < s.pages(); idx++ {
		bit := uint64(1) << (idx % 64)
		if s.log {
			if vm.cfg.DirtyRingBytes == 0 {
				atomic.AndUint64(&s.armed[idx/64], ^bit)
			}
			if atomic.OrUint64(&s.dirty[idx/64], bit)&bit == 0 {
				vm.dirtyPages.Add(1)
			}
		}
		if vm.dropCode(&s.mi.code[s.pageBase+idx]) {
			inval = true
		}
	}
	if inval {
		vm.pokeAll(attnCode)
	}
}
