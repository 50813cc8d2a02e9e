package emu

import (
	"sync/atomic"
	"unsafe"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// Guest pages are page-aligned host mappings, so every naturally aligned
// 8-byte word of a page is a valid target for 64-bit host atomics. Smaller
// LOCKed operands are done with a CAS on the 8-byte word holding them.

func word64(p *[hv.PageSize]byte, off uint64) *uint64 {
	return (*uint64)(unsafe.Pointer(&p[off&^7]))
}

// atomicLoad64 loads the aligned quadword at off (off must be 8-aligned).
func atomicLoad64(p *[hv.PageSize]byte, off uint64) uint64 {
	return atomic.LoadUint64(word64(p, off))
}

// atomicOr64 ORs bits into the aligned quadword at off.
func atomicOr64(p *[hv.PageSize]byte, off uint64, bits uint64) {
	atomic.OrUint64(word64(p, off), bits)
}

// atomicLoadN loads size bytes at off, which must not cross an 8-byte
// boundary.
func atomicLoadN(p *[hv.PageSize]byte, off uint64, size uint8) uint64 {
	w := atomic.LoadUint64(word64(p, off))
	return w >> (8 * (off & 7)) & sizeMask[size]
}

// atomicCASN replaces size bytes at off with new if they hold old.
func atomicCASN(p *[hv.PageSize]byte, off uint64, size uint8, old, new uint64) bool {
	wp := word64(p, off)
	if size == 8 {
		return atomic.CompareAndSwapUint64(wp, old, new)
	}
	sh := 8 * (off & 7)
	m := sizeMask[size] << sh
	cur := atomic.LoadUint64(wp)
	if (cur&m)>>sh != old {
		return false
	}
	return atomic.CompareAndSwapUint64(wp, cur, cur&^m|new<<sh&m)
}
