package vgpu

import "encoding/binary"

// ctbDesc mirrors the CTB descriptor {u32 addr, size, head, tail, fence, status}.
type ctbDesc struct {
	addr, size, head, tail, fence, status uint32
}

// valid reports whether the guest-owned fields describe a ring that lies
// inside the shared page with dword-aligned, in-range indices. Upstream
// only GEM_BUG_ONs alignment; the model must not trust any of it.
func (c ctbDesc) valid() bool {
	return c.addr%4 == 0 && c.size%4 == 0 && c.size > 0 &&
		c.addr <= SharedPageSize && c.size <= SharedPageSize-c.addr &&
		c.head%4 == 0 && c.tail%4 == 0 && c.head < c.size && c.tail < c.size
}

// sendTrigger is PV_SEND_TRIGGER: consume the messages between head and
// tail, act on each, and write back head, status and fence (the fence
// last, because the guest waits on it and then reads status). d.mu held.
//
// Status per outcome: 0 after a message was handled; -ENODATA for an
// empty ring (the fence is left as it was); -EINVAL for a descriptor,
// message or action the model refuses (head and fence left as they were
// for a bad descriptor or message, so nothing outside the ring is read).
func (d *Device) sendTrigger() {
	if !d.sharedEnabled {
		d.setError(ErrCTBNotRegistered)
		return
	}
	base := d.sharedPage + PVDescOff
	var raw [CTBDescLen]byte
	if err := d.mem.ReadGPA(base, raw[:]); err != nil {
		d.setError(ErrCTBDescriptor)
		return
	}
	le := binary.LittleEndian
	c := ctbDesc{
		addr: le.Uint32(raw[CTBDescAddr:]), size: le.Uint32(raw[CTBDescSizeOf:]),
		head: le.Uint32(raw[CTBDescHead:]), tail: le.Uint32(raw[CTBDescTail:]),
		fence: le.Uint32(raw[CTBDescFence:]), status: le.Uint32(raw[CTBDescStatus:]),
	}
	if !c.valid() {
		d.setError(ErrCTBDescriptor)
		d.ctbWriteBack(c.head, c.fence, StatusEINVAL, false)
		return
	}
	if c.head == c.tail {
		d.ctbWriteBack(c.head, c.fence, StatusENODATA, false)
		return
	}
	// One read of the whole ring, inside the page by valid(); the messages
	// are then decoded from this copy, so wrap-around is index arithmetic.
	ring := make([]byte, c.size)
	if err := d.mem.ReadGPA(d.sharedPage+uint64(c.addr), ring); err != nil {
		d.setError(ErrCTBDescriptor)
		d.ctbWriteBack(c.head, c.fence, StatusEINVAL, false)
		return
	}
	dword := func(at uint32) uint32 { return le.Uint32(ring[at%c.size:]) }
	head, fence := c.head, c.fence
	for head != c.tail {
		used := (c.tail + c.size - head) % c.size
		hdr := dword(head)
		n := hdr & CTBLenMask
		if n == 0 || 4*(n+1) > used {
			d.setError(ErrCTBMessage)
			d.ctbWriteBack(head, fence, StatusEINVAL, true)
			return
		}
		fence = dword(head + 4)
		var data [CTBMaxData]uint32
		for i := uint32(0); i < n-1; i++ {
			data[i] = dword(head + 8 + 4*i)
		}
		head = (head + 4*(n+1)) % c.size
		d.stats.CTBMessages++
		st := d.command(hdr>>CTBActionShift, data[:n-1])
		d.ctbWriteBack(head, fence, st, true)
		if st != StatusOK {
			return
		}
	}
}

// ctbWriteBack stores the host-owned descriptor fields: head and status,
// then the fence when a message was read.
func (d *Device) ctbWriteBack(head, fence, status uint32, withFence bool) {
	base := d.sharedPage + PVDescOff
	// The page was writable at registration; a memslot change since then
	// makes these fail, which the error register records.
	err1 := d.mem.Store32(base+CTBDescHead, head)
	err2 := d.mem.Store32(base+CTBDescStatus, status)
	var err3 error
	if withFence {
		err3 = d.mem.Store32(base+CTBDescFence, fence)
	}
	if err1 != nil || err2 != nil || err3 != nil {
		d.setError(ErrCTBDescriptor)
	}
}

// command acts on one CTB message and returns its transport status.
func (d *Device) command(action uint32, data []uint32) uint32 {
	if d.trace != nil {
		d.trace(action, data)
	}
	switch action {
	case PVCmdRegisterCapGPA:
		if len(data) < 3 {
			d.setError(ErrCTBAction)
			return StatusEINVAL
		}
		// Only PV_SUBMISSION has an area; any other cap is acked and
		// ignored, as upstream logs "invalid pv cap" and returns 0.
		if data[0] == PVSubmission {
			d.subGPA = uint64(data[2])<<32 | uint64(data[1])
			d.subSet = true
		}
		return StatusOK
	case PVCmdDefault, PVCmdBindPPGTT, PVCmdUnbindPPGTT, PVCmdBindGGTT, PVCmdUnbindGGTT:
		// The model's GTTs map onto guest-physical memory directly, so
		// binds have nothing to update; they are acknowledged.
		return StatusOK
	}
	d.setError(ErrCTBAction)
	return StatusEINVAL
}
