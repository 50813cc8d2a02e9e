package emu

import "sync"

// dirtyRing is one vCPU's dirty ring with KVM's three indices: entries are
// pushed by the vCPU (dirty), collected by the host (harvested) and given
// back by KVM_RESET_DIRTY_RINGS (reset). Pushed-but-not-reset entries count
// as used, so a harvest alone does not make room, as in KVM.
type dirtyRing struct {
	mu        sync.Mutex
	ents      []ringEntry
	soft      uint64 // used entries at which the vCPU exits (size - 64)
	dirty     uint64
	harvested uint64
	resetIdx  uint64
	dropped   uint64 // pushes into a completely full ring (KVM warns)
}

type ringEntry struct {
	slot uint32
	off  uint64
}

func newDirtyRing(bytes int) *dirtyRing {
	n := bytes / 16 // sizeof(struct kvm_dirty_gfn)
	return &dirtyRing{ents: make([]ringEntry, n), soft: uint64(n - dirtyRingReserved)}
}

// push adds an entry and reports whether the ring reached its soft limit.
func (r *dirtyRing) push(slot uint32, off uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dirty-r.resetIdx >= uint64(len(r.ents)) {
		r.dropped++
		return true
	}
	r.ents[r.dirty%uint64(len(r.ents))] = ringEntry{slot, off}
	r.dirty++
	return r.dirty-r.resetIdx >= r.soft
}

// softFull reports whether the vCPU must exit before running on.
func (r *dirtyRing) softFull() bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dirty-r.resetIdx >= r.soft
}

// harvest hands the host every entry published since the last harvest.
func (r *dirtyRing) harvest(fn func(slot uint32, offset uint64)) int {
	r.mu.Lock()
	var batch []ringEntry
	for r.harvested < r.dirty {
		batch = append(batch, r.ents[r.harvested%uint64(len(r.ents))])
		r.harvested++
	}
	r.mu.Unlock()
	for _, e := range batch {
		fn(e.slot, e.off)
	}
	return len(batch)
}

// reset write-protects the harvested entries' pages again and frees them.
func (r *dirtyRing) reset(vm *VM) int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	var batch []ringEntry
	for r.resetIdx < r.harvested {
		batch = append(batch, r.ents[r.resetIdx%uint64(len(r.ents))])
		r.resetIdx++
	}
	r.mu.Unlock()
	for _, e := range batch {
		vm.rearm(e.slot, e.off)
	}
	return len(batch)
}
