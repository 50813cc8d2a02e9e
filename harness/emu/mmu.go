package emu

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/kvmspec/kvmspec/harness/guest/desc"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// Access kinds for translate.
const (
	accRead  = 0
	accWrite = 1 << iota
	accFetch
	accSys   // implicit supervisor access (IDT, GDT, TSS, exception frames)
	accStack // stack access: a non-canonical address raises #SS, not #GP
)

// physAddrBits is MAXPHYADDR of the emulated CPU (CPUID 0x80000008).
const physAddrBits = 46

const (
	physMask  = 1<<physAddrBits - 1
	pteAddr   = physMask &^ 0xfff
	rsvdAddr  = (1<<52 - 1) &^ physMask // bits 51:MAXPHYADDR
	dr6BS     = 1 << 14
	dr6BD     = 1 << 13
	dr7GD     = 1 << 13
	dr6Fixed  = 0xffff0ff0
	dr7Fixed  = 0x400
	cr0Fixed1 = hv.CR0ET
)

// Paging bits and exception vectors are desc's, the guest runtime's too;
// the short names keep the page walk readable.
const (
	pteP   = desc.PTEPresent
	pteRW  = desc.PTEWrite
	pteUS  = desc.PTEUser
	pteA   = desc.PTEAccessed
	pteD   = desc.PTEDirty
	ptePS  = desc.PTEHuge
	pteNX  = desc.PTENX
	pfP    = desc.PFPresent
	pfW    = desc.PFWrite
	pfU    = desc.PFUser
	pfRSVD = desc.PFReserved
	pfID   = desc.PFFetch
	vecDE  = desc.VectorDE
	vecDB  = desc.VectorDB
	vecBP  = desc.VectorBP
	vecUD  = desc.VectorUD
	vecDF  = desc.VectorDF
	vecTS  = desc.VectorTS
	vecNP  = desc.VectorNP
	vecSS  = desc.VectorSS
	vecGP  = desc.VectorGP
	vecPF  = desc.VectorPF
)

func canonical(a uint64) bool { return uint64(int64(a<<16)>>16) == a }

// raise throws a fault without error code; raiseErr with one.
func (c *cpu) raise(vec uint8) { panic(&guestFault{vec: vec}) }

func (c *cpu) raiseErr(vec uint8, code uint32) {
	panic(&guestFault{vec: vec, code: code, hasCode: true})
}

func (c *cpu) gp(code uint32) { c.raiseErr(vecGP, code) }

// raiseTrap throws a trap: the instruction is complete, RIP stays after it.
func (c *cpu) raiseTrap(vec uint8) { panic(&guestFault{vec: vec, trap: true}) }

// translate walks the guest page tables for an access to va and returns
// the guest-physical address and the TLB permissions of the page. It sets
// accessed bits on every level and the dirty bit on a write, only when the
// access is allowed (as KVM's walker does), and raises #PF otherwise.
func (c *cpu) translate(va uint64, acc int) (uint64, uint8) {
	if !canonical(va) {
		if acc&accStack != 0 {
			c.raiseErr(vecSS, 0)
		}
		c.gp(0)
	}
	user := acc&accSys == 0 && c.cpl == 3
	write := acc&accWrite != 0
	fetch := acc&accFetch != 0
	nxe := c.sr.EFER&hv.EFERNXE != 0
	var errc uint32
	if write {
		errc |= pfW
	}
	if user {
		errc |= pfU
	}
	if fetch && nxe {
		errc |= pfID
	}
	var path [4]uint64 // guest-physical addresses of the entries used
	n := 0
	rw, us, nx := true, true, false
	table := c.sr.CR3 & pteAddr
	var gpa, pte uint64
	for level := 4; level >= 1; level-- {
		ea := table + (va>>(12+9*(level-1))&511)*8
		pte = c.readPTE(ea)
		if pte&pteP == 0 {
			c.pageFault(va, errc)
		}
		rsvd := pte&rsvdAddr != 0 || (!nxe && pte&pteNX != 0)
		switch {
		case level == 4 && pte&ptePS != 0:
			rsvd = true
		case level == 3 && pte&ptePS != 0 && pte&0x3fffe000 != 0:
			rsvd = true
		case level == 2 && pte&ptePS != 0 && pte&0x1fe000 != 0:
			rsvd = true
		}
		if rsvd {
			c.pageFault(va, errc|pfP|pfRSVD)
		}
		path[n] = ea
		n++
		rw = rw && pte&pteRW != 0
		us = us && pte&pteUS != 0
		nx = nx || (nxe && pte&pteNX != 0)
		if level == 1 {
			gpa = pte&pteAddr | va&0xfff
			break
		}
		if (level == 3 || level == 2) && pte&ptePS != 0 {
			size := uint64(1) << (12 + 9*(level-1))
			gpa = pte&pteAddr&^(size-1) | va&(size-1)
			break
		}
		table = pte & pteAddr
	}
	wp := c.sr.CR0&hv.CR0WP != 0
	supW := rw || !wp
	switch {
	case user && !us, user && write && !rw, !user && write && !supW, fetch && nx:
		c.pageFault(va, errc|pfP)
	}
	// Accessed on every level, dirty on the leaf for a write.
	for i := 0; i < n; i++ {
		bits := uint64(pteA)
		if i == n-1 && write {
			bits |= pteD
		}
		c.setPTEBits(path[i], bits)
	}
	dirty := write || pte&pteD != 0
	var perm uint8 = permRS
	if us {
		perm |= permRU
	}
	if dirty && supW {
		perm |= permWS
	}
	if dirty && us && rw {
		perm |= permWU
	}
	if !nx {
		perm |= permXS
		if us {
			perm |= permXU
		}
	}
	c.st.tlbFills++
	return gpa, perm
}

func (c *cpu) pageFault(va uint64, code uint32) {
	panic(&guestFault{vec: vecPF, code: code, hasCode: true, cr2: va})
}

// readPTE reads a paging-structure entry. An entry outside guest RAM is
// an emulation failure, as on KVM.
func (c *cpu) readPTE(gpa uint64) uint64 {
	r := c.ramPage(gpa&^0xfff, false)
	if r.page == nil {
		c.internal(internalEmulation, "page walk reads unbacked guest-physical address %#x", gpa)
	}
	return atomicLoad64(r.page, gpa&0xff8)
}

// setPTEBits sets accessed/dirty bits with a locked OR, as the hardware
// walker does, and logs the page-table page as written (KVM does too).
// Read-only slots are left alone.
func (c *cpu) setPTEBits(gpa uint64, bits uint64) {
	r := c.ramPage(gpa&^0xfff, true)
	if r.page == nil || r.readonly {
		return
	}
	if atomicLoad64(r.page, gpa&0xff8)&bits == bits {
		return
	}
	c.logWrite(r)
	atomicOr64(r.page, gpa&0xff8, bits)
	c.codeWritten(r)
}

// ramRef is a resolved guest-physical page of RAM.
type ramRef struct {
	page     *[hv.PageSize]byte
	s        *slot
	idx      uint64 // page index inside the slot
	code     *uint32
	readonly bool
}

// ramPage resolves a page-aligned guest-physical address to host memory,
// filling a missing page first. page is nil for addresses no slot backs.
func (c *cpu) ramPage(gpa uint64, write bool) ramRef {
	s := c.last
	if s == nil || gpa < s.m.GPA || gpa-s.m.GPA >= s.m.Size {
		s = c.mm.find(gpa)
		if s == nil {
			return ramRef{}
		}
		c.last = s
	}
	idx := (gpa - s.m.GPA) / hv.PageSize
	// A write to a read-only slot becomes an MMIO exit without the page
	// ever being touched: KVM does not fault it in either.
	if ms := s.missing; ms != nil && !(write && s.readonly) && atomic.LoadUint64(&ms.bits[idx/64])>>(idx%64)&1 != 0 {
		c.fillMissing(s, idx, write)
	}
	off := idx * hv.PageSize
	return ramRef{page: (*[hv.PageSize]byte)(s.mem[off : off+hv.PageSize]), s: s, idx: idx,
		code: &s.mi.code[s.pageBase+idx], readonly: s.readonly}
}

// fillMissing calls the slot's missing-page handler for one page, once,
// outside the interpreter (the handler may take its time).
func (c *cpu) fillMissing(s *slot, idx uint64, write bool) {
	ms := s.missing
	var herr error
	gpa := s.m.GPA + idx*hv.PageSize
	c.callout(func() {
		ms.mu.Lock()
		defer ms.mu.Unlock()
		if atomic.LoadUint64(&ms.bits[idx/64])>>(idx%64)&1 == 0 {
			return
		}
		buf := make([]byte, hv.PageSize)
		if err := ms.handler(hv.Fault{Slot: s.m.Slot, GPA: gpa, Write: write}, buf); err != nil {
			herr = err
			if ms.firstErr == nil {
				ms.firstErr = err
			}
			return
		}
		copy(s.mem[idx*hv.PageSize:], buf)
		atomic.AndUint64(&ms.bits[idx/64], ^(uint64(1) << (idx % 64)))
		c.vm.missingFault.Add(1)
	})
	if herr != nil {
		panic(errorSignal{fmt.Errorf("vcpu %d: missing-page handler for slot %d gpa %#x: %w", c.v.id, s.m.Slot, gpa, herr)})
	}
}

// logWrite records the first write to a write-protected (armed) page of a
// logging slot: a dirty bit, or an entry in this vCPU's dirty ring.
func (c *cpu) logWrite(r ramRef) {
	s := r.s
	if !s.log {
		return
	}
	bit := uint64(1) << (r.idx % 64)
	if atomic.AndUint64(&s.armed[r.idx/64], ^bit)&bit == 0 {
		return
	}
	c.vm.dirtyPages.Add(1)
	if ring := c.v.ring; ring != nil {
		if ring.push(s.m.Slot, r.idx) {
			c.ringFull = true
			c.poke(attnExit)
		}
		return
	}
	atomic.OrUint64(&s.dirty[r.idx/64], bit)
}

// codeWritten invalidates decoded instructions of a page that was just
// written, in every vCPU.
func (c *cpu) codeWritten(r ramRef) {
	if c.vm.dropCode(r.code) {
		c.vm.pokeAll(attnCode)
	}
}

// dropCode makes a page's code word even (a new value) if some vCPU may
// hold decoded instructions of the page, and reports whether it did.
func (vm *VM) dropCode(code *uint32) bool {
	w := atomic.LoadUint32(code)
	if w&1 == 0 || !atomic.CompareAndSwapUint32(code, w, w+1) {
		return false
	}
	vm.codeInval.Add(1)
	return true
}

// pokeAll sets attention bits in every vCPU.
func (vm *VM) pokeAll(bits uint32) {
	for _, v := range *vm.running.Load() {
		v.c.poke(bits)
	}
}

// xlate translates va and caches the page in the data TLB when it is RAM.
// The entry is nil for MMIO and unbacked addresses.
func (c *cpu) xlate(va uint64, acc int) (uint64, *tlbEntry) {
	gpa, perm := c.translate(va, acc)
	r := c.ramPage(gpa&^0xfff, acc&accWrite != 0)
	if r.page == nil {
		return gpa, nil
	}
	if r.readonly {
		perm &^= permWS | permWU
	}
	if len(c.watch) > 0 && c.watchedPage(va) {
		perm = 0 // every access to a watched page comes back here
	}
	e := &c.dtlb[(va>>12)%tlbSize]
	*e = tlbEntry{vpn: va >> 12, perm: perm, page: r.page, code: r.code}
	if r.s.log {
		e.armed, e.abit = &r.s.armed[r.idx/64], 1<<(r.idx%64)
	}
	return gpa, e
}

func (c *cpu) permFor(acc int) (uint8, uint8) {
	if acc&accSys != 0 {
		return permRS, permWS
	}
	return c.rperm, c.wperm
}

// rd reads size bytes at va with the current privilege.
func (c *cpu) rd(va uint64, size uint8) uint64 {
	e := &c.dtlb[(va>>12)%tlbSize]
	off := va & 0xfff
	if e.vpn == va>>12 && e.perm&c.rperm != 0 && off <= hv.PageSize-uint64(size) {
		return loadLE(e.page, off, size)
	}
	return c.readSlow(va, size, accRead)
}

// wr writes size bytes at va with the current privilege.
func (c *cpu) wr(va uint64, size uint8, v uint64) {
	e := &c.dtlb[(va>>12)%tlbSize]
	off := va & 0xfff
	if e.vpn == va>>12 && e.perm&c.wperm != 0 && off <= hv.PageSize-uint64(size) &&
		atomic.LoadUint32(e.code)&1 == 0 && (e.armed == nil || atomic.LoadUint64(e.armed)&e.abit == 0) {
		storeLE(e.page, off, size, v)
		return
	}
	c.writeSlow(va, size, v, accWrite)
}

func (c *cpu) rdSys(va uint64, size uint8) uint64 { return c.readSlow(va, size, accSys) }
func (c *cpu) wrSys(va uint64, size uint8, v uint64) {
	c.writeSlow(va, size, v, accWrite|accSys)
}

func loadLE(p *[hv.PageSize]byte, off uint64, size uint8) uint64 {
	switch size {
	case 8:
		return binary.LittleEndian.Uint64(p[off:])
	case 4:
		return uint64(binary.LittleEndian.Uint32(p[off:]))
	case 2:
		return uint64(binary.LittleEndian.Uint16(p[off:]))
	}
	return uint64(p[off])
}

// readSlow handles TLB misses, page-straddling reads and MMIO.
func (c *cpu) readSlow(va uint64, size uint8, acc int) uint64 {
	off := va & 0xfff
	if off+uint64(size) <= hv.PageSize {
		return c.readChunk(va, int(size), acc)
	}
	n1 := int(hv.PageSize - off)
	lo := c.readChunk(va, n1, acc)
	hi := c.readChunk(va+uint64(n1), int(size)-n1, acc)
	return lo | hi<<(8*n1)
}

func (c *cpu) readChunk(va uint64, n int, acc int) uint64 {
	rp, _ := c.permFor(acc)
	e := &c.dtlb[(va>>12)%tlbSize]
	var gpa uint64
	if e.vpn != va>>12 || e.perm&rp == 0 {
		gpa, e = c.xlate(va, acc)
		if len(c.watch) > 0 {
			c.watchAccess(va, n, false)
		}
		if e == nil {
			return c.mmioRead(gpa, n)
		}
	}
	var v uint64
	off := va & 0xfff
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(e.page[off+uint64(i)])
	}
	return v
}

// writeSlow handles TLB misses, straddling writes, read-only slots, MMIO,
// dirty logging and writes to pages holding decoded code. Both pages of a
// straddling write are translated before either is written.
func (c *cpu) writeSlow(va uint64, size uint8, v uint64, acc int) {
	acc |= accWrite
	if len(c.watch) > 0 {
		c.watchAccess(va, int(size), true)
	}
	off := va & 0xfff
	if off+uint64(size) <= hv.PageSize {
		gpa, _ := c.xlate(va, acc)
		c.physWrite(gpa, int(size), v)
		return
	}
	n1 := int(hv.PageSize - off)
	gpa1, _ := c.translate(va, acc)
	gpa2, _ := c.translate(va+uint64(n1), acc)
	c.physWrite(gpa1, n1, v)
	c.physWrite(gpa2, int(size)-n1, v>>(8*n1))
}

// physWrite stores n bytes of v at a guest-physical address.
func (c *cpu) physWrite(gpa uint64, n int, v uint64) {
	r := c.ramPage(gpa&^0xfff, true)
	if r.page == nil || r.readonly {
		c.mmioWrite(gpa, n, v)
		return
	}
	c.logWrite(r)
	storeBytes(r.page, gpa&0xfff, n, v)
	c.codeWritten(r)
}

// loc is a resolved read-modify-write location: a host page when the
// fast path applies, else the virtual address for the slow path.
type loc struct {
	page *[hv.PageSize]byte
	off  uint64
	va   uint64
}

// rmwLoc prepares a read-modify-write of size bytes at va: write
// permission is checked (and #PF raised) before anything is read.
func (c *cpu) rmwLoc(va uint64, size uint8) loc {
	e := &c.dtlb[(va>>12)%tlbSize]
	off := va & 0xfff
	if e.vpn == va>>12 && e.perm&c.wperm != 0 && off <= hv.PageSize-uint64(size) &&
		atomic.LoadUint32(e.code)&1 == 0 && (e.armed == nil || atomic.LoadUint64(e.armed)&e.abit == 0) {
		return loc{page: e.page, off: off}
	}
	c.translate(va, accWrite)
	if off+uint64(size) > hv.PageSize {
		c.translate(va+uint64(size)-1, accWrite)
	}
	return loc{va: va}
}

func (c *cpu) ldLoc(l loc, size uint8) uint64 {
	if l.page != nil {
		return loadLE(l.page, l.off, size)
	}
	return c.rd(l.va, size)
}

func (c *cpu) stLoc(l loc, size uint8, v uint64) {
	if l.page != nil {
		storeLE(l.page, l.off, size, v)
		return
	}
	c.wr(l.va, size, v)
}

// lockedRMW performs a LOCKed read-modify-write: atomic on host memory
// with respect to other vCPUs. Accesses that cross an 8-byte boundary or
// reach MMIO take a VM-wide lock instead (atomic against other locked
// accesses only, which is what split locks are worth on hardware too).
func (c *cpu) lockedRMW(va uint64, size uint8, f func(uint64) uint64) uint64 {
	m := sizeMask[size]
	off := va & 0xfff
	if len(c.watch) > 0 {
		c.watchAccess(va, int(size), true)
	}
	if off%8+uint64(size) <= 8 {
		gpa, _ := c.translate(va, accWrite)
		r := c.ramPage(gpa&^0xfff, true)
		if r.page != nil && !r.readonly {
			c.logWrite(r)
			var old uint64
			for {
				old = atomicLoadN(r.page, off, size)
				if atomicCASN(r.page, off, size, old, f(old)&m) {
					break
				}
			}
			c.codeWritten(r)
			return old
		}
	}
	c.vm.splitLock.Lock()
	defer c.vm.splitLock.Unlock()
	l := c.rmwLoc(va, size)
	old := c.ldLoc(l, size)
	c.stLoc(l, size, f(old)&m)
	return old
}

// Stack accesses: 64-bit pushes and pops through RSP.
func (c *cpu) push(v uint64, size uint8) {
	rsp := c.regs[4] - uint64(size)
	c.wrStack(rsp, size, v)
	c.regs[4] = rsp
}

func (c *cpu) pop(size uint8) uint64 {
	v := c.rdStack(c.regs[4], size)
	c.regs[4] += uint64(size)
	return v
}

// rdStack and wrStack are rd and wr for the stack: a non-canonical
// address raises #SS. A data TLB hit needs no check: only canonical pages
// are ever cached (translate refuses the others).
func (c *cpu) rdStack(va uint64, size uint8) uint64 {
	e := &c.dtlb[(va>>12)%tlbSize]
	off := va & 0xfff
	if e.vpn == va>>12 && e.perm&c.rperm != 0 && off <= hv.PageSize-uint64(size) {
		return loadLE(e.page, off, size)
	}
	if !canonical(va) || !canonical(va+uint64(size)-1) {
		c.raiseErr(vecSS, 0)
	}
	return c.readSlow(va, size, accRead)
}

func (c *cpu) wrStack(va uint64, size uint8, v uint64) {
	e := &c.dtlb[(va>>12)%tlbSize]
	off := va & 0xfff
	if e.vpn == va>>12 && e.perm&c.wperm != 0 && off <= hv.PageSize-uint64(size) &&
		atomic.LoadUint32(e.code)&1 == 0 && (e.armed == nil || atomic.LoadUint64(e.armed)&e.abit == 0) {
		storeLE(e.page, off, size, v)
		return
	}
	if !canonical(va) || !canonical(va+uint64(size)-1) {
		c.raiseErr(vecSS, 0)
	}
	c.writeSlow(va, size, v, accWrite)
}

// push8 and pop8 are push and pop of a quadword (PUSH/POP r64, CALL,
// RET), with the data TLB hit inlined.
func (c *cpu) push8(v uint64) {
	rsp := c.regs[4] - 8
	e := &c.dtlb[(rsp>>12)%tlbSize]
	off := rsp & 0xfff
	if e.vpn == rsp>>12 && e.perm&c.wperm != 0 && off <= hv.PageSize-8 &&
		atomic.LoadUint32(e.code)&1 == 0 && (e.armed == nil || atomic.LoadUint64(e.armed)&e.abit == 0) {
		storeLE(e.page, off, 8, v)
	} else {
		c.wrStack(rsp, 8, v)
	}
	c.regs[4] = rsp
}

func (c *cpu) pop8() uint64 {
	v := c.peek8(c.regs[4])
	c.regs[4] += 8
	return v
}

// peek8 reads the quadword at stack address va.
func (c *cpu) peek8(va uint64) uint64 {
	e := &c.dtlb[(va>>12)%tlbSize]
	off := va & 0xfff
	if e.vpn == va>>12 && e.perm&c.rperm != 0 && off <= hv.PageSize-8 {
		return loadLE(e.page, off, 8)
	}
	return c.rdStack(va, 8)
}

// mmioRead reads guest-physical memory no slot backs: the local APIC, the
// I/O APIC, an attached device, or an exit to the host (RIP stays at the
// instruction, which runs again once the host has filled in the value).
func (c *cpu) mmioRead(gpa uint64, n int) uint64 {
	if v, ok := c.replayed(false, false, gpa, n); ok {
		return v
	}
	if c.vm.cfg.IRQChip {
		if c.apicClaims(gpa) {
			return c.apicRead(gpa, n)
		}
		if c.vm.ioapic.claims(gpa) {
			return c.vm.ioapic.read(gpa, n)
		}
	}
	c.st.mmioExits++
	e := &c.busExit
	*e = hv.MMIOExit{GPA: gpa, Len: n, Data: c.mmioBuf[:n]}
	clear(c.mmioBuf[:])
	if v, ok := c.dispatch(e, false, false, gpa, n); ok {
		return v
	}
	c.record(ioRecord{addr: gpa, n: n})
	c.mmioExit = hv.MMIOExit{GPA: gpa, Len: n, Data: c.mmioBuf[:n]}
	c.exit = &c.mmioExit
	c.rip = c.cur
	panic(exitSignal{})
}

// Exactly-once accesses. Every MMIO/PIO access of an instruction that
// reaches a device or the host is recorded with the instruction's sequence
// number (c.retired(), which only moves when an instruction completes). When the same instruction runs again (after an exit for a
// read, or a restart after a missing-page fill) its accesses are answered
// from the record instead of reaching the device or the host a second
// time: reads get the value they had, writes are dropped.

// record appends an access record for the executing instruction.
func (c *cpu) record(r ioRecord) {
	seq := c.retired()
	if n := len(c.replay); n > 0 && c.replay[0].seq != seq {
		c.replay = c.replay[:0] // left over from a completed instruction
		c.replayAt = 0
	}
	r.seq = seq
	c.replay = append(c.replay, r)
	c.setSlow()
}

// replayed answers an access the executing instruction already made.
func (c *cpu) replayed(port, write bool, addr uint64, n int) (uint64, bool) {
	if c.replayAt >= len(c.replay) {
		return 0, false
	}
	r := c.replay[c.replayAt]
	if r.seq != c.retired() || r.port != port || r.write != write || r.addr != addr || r.n != n || !r.done {
		c.replay = c.replay[:0] // another instruction, or the guest changed course: forget
		c.replayAt = 0
		return 0, false
	}
	c.replayAt++
	return r.val, true
}

// dispatch offers an access to the attached devices, outside the
// interpreter, exactly once: the access is recorded, so a re-run of the
// instruction does not deliver it again. The instruction goes on after a
// memory-map change in the handler: callout's re-entry has flushed every
// cached translation, and no instruction holds a host page across an
// MMIO or port access.
func (c *cpu) dispatch(e hv.Exit, port, write bool, addr uint64, n int) (uint64, bool) {
	if c.vm.bus.Empty() {
		return 0, false
	}
	var handled bool
	var err error
	c.leave()
	handled, err = c.vm.bus.Dispatch(c.v.id, e)
	c.enter()
	if err != nil {
		panic(errorSignal{fmt.Errorf("vcpu %d: %w", c.v.id, err)})
	}
	if !handled {
		return 0, false
	}
	var v uint64
	switch x := e.(type) {
	case *hv.MMIOExit:
		if !x.Write {
			v = x.Value()
		}
	case *hv.IOExit:
		if x.In {
			v = x.Value()
		}
	}
	c.record(ioRecord{port: port, write: write, addr: addr, n: n, val: v, done: true})
	return v, true
}

// mmioWrite writes guest-physical memory no writable slot backs. An
// unclaimed write becomes an exit after the instruction completes.
func (c *cpu) mmioWrite(gpa uint64, n int, v uint64) {
	if _, ok := c.replayed(false, true, gpa, n); ok {
		return
	}
	if c.vm.cfg.IRQChip {
		if c.apicClaims(gpa) {
			c.apicWrite(gpa, n, v)
			return
		}
		if c.vm.ioapic.claims(gpa) {
			c.vm.ioapic.write(c.vm, gpa, n, v)
			return
		}
	}
	c.st.mmioExits++
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], v)
	e := &c.busExit
	*e = hv.MMIOExit{GPA: gpa, Len: n, Write: true, Data: buf[:n]}
	if _, ok := c.dispatch(e, false, true, gpa, n); ok {
		return
	}
	c.record(ioRecord{write: true, addr: gpa, n: n, done: true})
	c.pend = append(c.pend, pendingWrite{addr: gpa, n: n, data: buf})
	c.poke(attnExit)
}
