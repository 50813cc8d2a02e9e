package kvm

import (
	"math/bits"
	"sync/atomic"
)

// hostDirty is one dirty-logged slot's record of the pages host code wrote
// through hv.GuestMemory. KVM never sees userspace writes, so without it a
// device's write would be missing from the next harvest; like QEMU, the
// backend keeps its own bitmap and merges it into what KVM_GET_DIRTY_LOG
// returns. Bits are set and taken with atomics: devices write from their
// own goroutines while the host harvests.
type hostDirty struct {
	words []atomic.Uint64
	pages uint64
}

func newHostDirty(pages uint64) *hostDirty {
	return &hostDirty{words: make([]atomic.Uint64, (pages+63)/64), pages: pages}
}

// mark records pages [first, last] as written; pages beyond the slot are
// ignored (the caller clips, this is a guard).
func (d *hostDirty) mark(first, last uint64) {
	if d == nil || first > last || first >= d.pages {
		return
	}
	last = min(last, d.pages-1)
	for w := first / 64; w <= last/64; w++ {
		lo, hi := max(first, w*64)-w*64, min(last, w*64+63)-w*64
		mask := ^uint64(0) >> (63 - (hi - lo)) << lo
		d.words[w].Or(mask)
	}
}

// collect ORs the recorded pages into dst (bit i = page i). With take
// set (KVM's bitmap mode, where a get also re-arms logging) the record
// is cleared word by word as it is read, so a page written during the
// harvest is either in this one or in the next, never lost.
func (d *hostDirty) collect(dst []uint64, take bool) {
	if d == nil {
		return
	}
	n := min(len(dst), len(d.words))
	for i := 0; i < n; i++ {
		if take {
			dst[i] |= d.words[i].Swap(0)
		} else {
			dst[i] |= d.words[i].Load()
		}
	}
}

// clear drops the record of the set bits of mask, which covers pages
// [first, first+num) (KVM_CLEAR_DIRTY_LOG's arguments, already checked
// by KVM: first is a multiple of 64).
func (d *hostDirty) clear(first, num uint64, mask []uint64) {
	if d == nil || first%64 != 0 {
		return
	}
	for i, m := range mask {
		p := first + uint64(i)*64
		if p >= first+num || p >= d.pages {
			return
		}
		if rem := first + num - p; rem < 64 {
			m &= 1<<rem - 1
		}
		if m != 0 {
			d.words[p/64].And(^m)
		}
	}
}

// count is how many pages are recorded (for tests and stats).
func (d *hostDirty) count() int {
	n := 0
	for i := range d.words {
		n += bits.OnesCount64(d.words[i].Load())
	}
	return n
}
