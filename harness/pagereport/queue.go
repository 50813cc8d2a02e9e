package pagereport

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// queue is the device side of one split virtqueue. Everything in guest
// memory is guest-written and re-read on every use: the device keeps only
// its own indices.
type queue struct {
	size               uint16 // QueueNum as the driver wrote it
	desc, avail, used  uint64
	ready              bool
	lastAvail, usedIdx uint16 // the device's next avail entry and used index
}

// Desc is one descriptor of a chain as the device read it.
type Desc struct {
	Addr  uint64
	Len   uint32
	Flags uint16
	Next  uint16
}

// errBroken is wrapped by every error that means the driver broke the
// queue: the device sets DEVICE_NEEDS_RESET and stops using it.
var errBroken = errors.New("virtqueue broken by the driver")

func broken(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBroken, fmt.Sprintf(format, args...))
}

// check validates a queue the driver wants to enable.
func (q *queue) check(max uint16) error {
	n := q.size
	switch {
	case n == 0 || n&(n-1) != 0:
		return broken("queue size %d is not a power of two", n)
	case n < MinQueueSize:
		return broken("queue size %d is below %d (PAGE_REPORTING_CAPACITY)", n, MinQueueSize)
	case n > max:
		return broken("queue size %d is above QueueNumMax %d", n, max)
	case q.desc%DescAlign != 0 || q.avail%AvailAlign != 0 || q.used%UsedAlign != 0:
		return broken("ring addresses desc %#x avail %#x used %#x not aligned to %d/%d/%d", q.desc, q.avail, q.used, DescAlign, AvailAlign, UsedAlign)
	}
	for _, r := range []struct {
		name      string
		base, len uint64
	}{{"descriptor table", q.desc, DescSize * uint64(n)}, {"avail ring", q.avail, AvailSize(int(n))}, {"used ring", q.used, UsedSize(int(n))}} {
		if r.base+r.len < r.base {
			return broken("%s [%#x, +%#x) wraps", r.name, r.base, r.len)
		}
	}
	return nil
}

// load16 reads the little-endian u16 at gpa (2-aligned) with one atomic
// 32-bit load of the word holding it, so a value the guest is writing is
// seen whole.
func load16(m hv.GuestMemory, gpa uint64) (uint16, error) {
	w, err := m.Load32(gpa &^ 3)
	if err != nil {
		return 0, err
	}
	return uint16(w >> (8 * (gpa & 2))), nil
}

// availIdx is the driver's avail index; availFlags its flags.
func (q *queue) availHeader(m hv.GuestMemory) (flags, idx uint16, err error) {
	if flags, err = load16(m, q.avail); err != nil {
		return 0, 0, broken("read avail flags: %v", err)
	}
	if idx, err = load16(m, q.avail+2); err != nil {
		return 0, 0, broken("read avail idx: %v", err)
	}
	return flags, idx, nil
}

// pending is how many elements the driver made available that the device
// has not taken; more than the queue size means the driver corrupted the
// index (QEMU: "Guest moved used index").
func (q *queue) pending(m hv.GuestMemory) (uint16, uint16, error) {
	flags, idx, err := q.availHeader(m)
	if err != nil {
		return 0, 0, err
	}
	n := idx - q.lastAvail
	if n > q.size {
		return 0, 0, broken("avail idx %d is %d ahead of the device's %d, more than the %d entries", idx, n, q.lastAvail, q.size)
	}
	return n, flags, nil
}

// head reads the descriptor index of the device's next avail entry.
func (q *queue) head(m hv.GuestMemory) (uint16, error) {
	h, err := load16(m, q.avail+4+2*uint64(q.lastAvail%q.size))
	if err != nil {
		return 0, broken("read avail ring entry %d: %v", q.lastAvail%q.size, err)
	}
	if h >= q.size {
		return 0, broken("avail ring entry %d names descriptor %d of %d", q.lastAvail%q.size, h, q.size)
	}
	return h, nil
}

// chain reads the descriptor chain starting at head, refusing indices out
// of the table, indirect descriptors (not negotiated) and chains longer
// than the table (a loop).
func (q *queue) chain(m hv.GuestMemory, head uint16, out []Desc) ([]Desc, error) {
	out = out[:0]
	var raw [DescSize]byte
	for i := head; ; {
		if len(out) >= int(q.size) {
			return nil, broken("descriptor chain from %d is longer than the %d-entry table (a loop)", head, q.size)
		}
		if err := m.ReadGPA(q.desc+DescSize*uint64(i), raw[:]); err != nil {
			return nil, broken("read descriptor %d: %v", i, err)
		}
		d := Desc{
			Addr:  binary.LittleEndian.Uint64(raw[0:]),
			Len:   binary.LittleEndian.Uint32(raw[8:]),
			Flags: binary.LittleEndian.Uint16(raw[12:]),
			Next:  binary.LittleEndian.Uint16(raw[14:]),
		}
		if d.Flags&DescFIndirect != 0 {
			return nil, broken("descriptor %d is indirect, VIRTIO_F_INDIRECT_DESC was not offered", i)
		}
		out = append(out, d)
		if d.Flags&DescFNext == 0 {
			return out, nil
		}
		if d.Next >= q.size {
			return nil, broken("descriptor %d chains to %d of %d", i, d.Next, q.size)
		}
		i = d.Next
	}
}

// push completes the chain at head with used length 0 and publishes the
// used index with one atomic store (the element before the index, as the
// driver reads them in the other order).
func (q *queue) push(m hv.GuestMemory, head uint16) error {
	var e [UsedElemSize]byte
	binary.LittleEndian.PutUint32(e[0:], uint32(head))
	// e[4:8] is the used length: 0, the device wrote nothing into the buffers.
	if err := m.WriteGPA(q.used+4+UsedElemSize*uint64(q.usedIdx%q.size), e[:]); err != nil {
		return broken("write used ring entry %d: %v", q.usedIdx%q.size, err)
	}
	q.usedIdx++
	// used flags (low half) are the device's and always 0: no
	// VIRTQ_USED_F_NO_NOTIFY, the device wants every notification.
	if err := m.Store32(q.used, uint32(q.usedIdx)<<16); err != nil {
		return broken("write used idx: %v", err)
	}
	q.lastAvail++
	return nil
}
