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

// Stores into guest pages go through a pointer to the stored bytes, never
// through the page's array: indexing *[PageSize]byte makes the compiler
// check the page pointer for nil by reading the page's first byte, and on
// a page the host has not touched yet that read maps the shared zero page,
// so the store after it takes a second fault to copy it. A store through
// its own address is its own nil check: the first touch of a page the
// guest writes costs one host fault (TestFirstTouchFaults).

// storeLE stores the low size bytes of v at off, little-endian (both
// supported hosts are); off+size must not pass the end of the page.
func storeLE(p *[hv.PageSize]byte, off uint64, size uint8, v uint64) {
	a := unsafe.Add(unsafe.Pointer(p), off)
	switch size {
	case 8:
		*(*uint64)(a) = v
	case 4:
		*(*uint32)(a) = uint32(v)
	case 2:
		*(*uint16)(a) = uint16(v)
	default:
		*(*byte)(a) = byte(v)
	}
}

// storeBytes stores the low n bytes of v at off, n from 1 to 8 (the
// piece of a store that straddles pages); off+n must not pass the end.
func storeBytes(p *[hv.PageSize]byte, off uint64, n int, v uint64) {
	a := unsafe.Add(unsafe.Pointer(p), off)
	for i := 0; i < n; i++ {
		*(*byte)(unsafe.Add(a, i)) = byte(v >> (8 * i))
	}
}

// Data-TLB hits of the fixed-size memory forms (ops_sized.go): a pointer
// to the accessed bytes when the access hits the data TLB with the
// permission it needs and stays inside the page (for a write, with wr's
// other conditions: no decoded code on the page, no dirty-log bit to
// set), else nil, and the caller takes its general handler, which deals
// with misses, MMIO, faults, logging and code. The pointer is the
// access's own address (see storeLE).

func (c *cpu) rdHit(va, size uint64) unsafe.Pointer {
	e := &c.dtlb[(va>>12)%tlbSize]
	if off := va & 0xfff; e.vpn == va>>12 && e.perm&c.rperm != 0 && off <= hv.PageSize-size {
		return unsafe.Add(unsafe.Pointer(e.page), off)
	}
	return nil
}

func (c *cpu) wrHit(va, size uint64) unsafe.Pointer {
	e := &c.dtlb[(va>>12)%tlbSize]
	if off := va & 0xfff; e.vpn == va>>12 && e.perm&c.wperm != 0 && off <= hv.PageSize-size &&
		atomic.LoadUint32(e.code)&1 == 0 && (e.armed == nil || atomic.LoadUint64(e.armed)&e.abit == 0) {
		return unsafe.Add(unsafe.Pointer(e.page), off)
	}
	return nil
}

func (c *cpu) rdHit64(va uint64) *uint64 { return (*uint64)(c.rdHit(va, 8)) }
func (c *cpu) rdHit32(va uint64) *uint32 { return (*uint32)(c.rdHit(va, 4)) }
func (c *cpu) rdHit8(va uint64) *uint8   { return (*uint8)(c.rdHit(va, 1)) }
func (c *cpu) wrHit64(va uint64) *uint64 { return (*uint64)(c.wrHit(va, 8)) }
func (c *cpu) wrHit32(va uint64) *uint32 { return (*uint32)(c.wrHit(va, 4)) }
