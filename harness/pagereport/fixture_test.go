package pagereport

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// The test machine: rings in low memory, reportable RAM in slot 1, a
// read-only slot 2 right after it and a hole beyond.
const (
	lowSlot, lowGPA, lowSize = 0, 0, 1 << 20
	ramSlot, ramGPA, ramSize = 1, 16 << 20, 8 << 20
	romSlot, romGPA, romSize = 2, ramGPA + ramSize, 64 << 10
	holeGPA                  = 64 << 20

	descGPA  = 0x10000
	availGPA = 0x20000
	usedGPA  = 0x30000

	pattern = 0x5a
)

// fakeVM is a GuestMemory over real hv.Memory mappings, as the backends
// build theirs, with the MSIs it was asked to signal.
type fakeVM struct {
	*hv.GuestAccess
	slots []hv.Memslot
	mu    sync.Mutex
	msis  int
}

func (v *fakeVM) Memslots() []hv.Memslot { return v.slots }

func (v *fakeVM) SignalMSI(addr uint64, data uint32) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.msis++
	return nil
}

func newFakeVM(t testing.TB, ramBacking hv.Backing) *fakeVM {
	t.Helper()
	return newFakeVMRAM(t, ramBacking, ramSize, true)
}

// newFakeVMRAM is newFakeVM with size bytes of RAM, filled with the
// pattern when fillRAM (the read-only slot then starts at ramGPA+ramSize
// only for the standard size; benchmarks use their own).
func newFakeVMRAM(t testing.TB, ramBacking hv.Backing, size uint64, fillRAM bool) *fakeVM {
	t.Helper()
	mk := func(size uint64, b hv.Backing) *hv.Memory {
		m, err := hv.NewMemory(size, b)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	v := &fakeVM{slots: []hv.Memslot{
		{Slot: lowSlot, GPA: lowGPA, Size: lowSize, Memory: mk(lowSize, hv.Anonymous)},
		{Slot: ramSlot, GPA: ramGPA, Size: size, Memory: mk(size, ramBacking)},
		{Slot: romSlot, GPA: ramGPA + size, Size: romSize, Memory: mk(romSize, hv.Anonymous), Flags: hv.MemReadOnly},
	}}
	v.GuestAccess = &hv.GuestAccess{Slots: func() []hv.Memslot { return v.slots }}
	if fillRAM {
		fill(v.ram(), pattern)
	}
	fill(v.slots[romSlot].Bytes(), pattern)
	return v
}

func fill(b []byte, c byte) {
	for i := range b {
		b[i] = c
	}
}

func (v *fakeVM) ram() []byte { return v.slots[ramSlot].Bytes() }

// hostDriver is a virtio driver written in Go that drives the device
// through its registers, as the guest driver does through MMIO.
type hostDriver struct {
	t     testing.TB
	d     *Device
	vm    *fakeVM
	size  uint16
	next  uint16 // next free descriptor
	avail uint16
}

func (h *hostDriver) read(off uint64) uint32 {
	var b [4]byte
	if err := h.d.Access(&hv.Access{Offset: off, Data: b[:]}); err != nil {
		h.t.Fatalf("read %#x: %v", off, err)
	}
	return binary.LittleEndian.Uint32(b[:])
}

func (h *hostDriver) write(off uint64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	if err := h.d.Access(&hv.Access{Offset: off, Data: b[:], Write: true}); err != nil {
		h.t.Fatalf("write %#x: %v", off, err)
	}
}

// setup negotiates features and enables a queue of size entries; it
// returns whether the device accepted the queue.
func (h *hostDriver) setup(features uint64, size uint16, poison uint32) bool {
	h.size, h.next, h.avail = size, 0, 0
	clear(h.vm.slots[lowSlot].Bytes()[descGPA : usedGPA+0x10000])
	h.write(RegStatus, 0)
	if !h.negotiate(features) {
		return false
	}
	if poison != 0 {
		h.write(RegConfig+ConfigPoisonVal, poison)
	}
	h.write(RegQueueSel, ReportingQueue)
	h.write(RegQueueNum, uint32(size))
	h.write(RegQueueDescLow, descGPA)
	h.write(RegQueueDriverLow, availGPA)
	h.write(RegQueueDeviceLow, usedGPA)
	h.write(RegQueueReady, 1)
	if h.read(RegQueueReady) != 1 {
		return false
	}
	h.write(RegStatus, StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK)
	return true
}

// negotiate acknowledges the device and offers features; it returns
// whether the device accepted them (FEATURES_OK reads back set).
func (h *hostDriver) negotiate(features uint64) bool {
	h.write(RegStatus, StatusAcknowledge|StatusDriver)
	h.write(RegDriverFeaturesSel, 0)
	h.write(RegDriverFeatures, uint32(features))
	h.write(RegDriverFeaturesSel, 1)
	h.write(RegDriverFeatures, uint32(features>>32))
	h.write(RegStatus, StatusAcknowledge|StatusDriver|StatusFeaturesOK)
	return h.read(RegStatus)&StatusFeaturesOK != 0
}

// post adds one chain of ranges, all device-writable unless flags say
// otherwise, and notifies. It returns the head.
func (h *hostDriver) post(ranges ...Desc) uint16 {
	head := h.next
	for i, r := range ranges {
		idx := h.next % h.size
		h.next++
		r.Flags |= DescFWrite
		if i < len(ranges)-1 {
			r.Flags |= DescFNext
			r.Next = h.next % h.size
		}
		h.writeDesc(idx, r)
	}
	h.publish(head % h.size)
	return head % h.size
}

// writeDesc stores descriptor idx exactly as given.
func (h *hostDriver) writeDesc(idx uint16, r Desc) {
	var raw [DescSize]byte
	binary.LittleEndian.PutUint64(raw[0:], r.Addr)
	binary.LittleEndian.PutUint32(raw[8:], r.Len)
	binary.LittleEndian.PutUint16(raw[12:], r.Flags)
	binary.LittleEndian.PutUint16(raw[14:], r.Next)
	if err := h.vm.WriteGPA(descGPA+DescSize*uint64(idx), raw[:]); err != nil {
		h.t.Fatal(err)
	}
}

// publish puts head in the avail ring, bumps the index and notifies.
func (h *hostDriver) publish(head uint16) {
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], head)
	if err := h.vm.WriteGPA(availGPA+4+2*uint64(h.avail%h.size), b[:]); err != nil {
		h.t.Fatal(err)
	}
	h.avail++
	h.setAvailIdx(h.avail)
	h.write(RegQueueNotify, ReportingQueue)
}

func (h *hostDriver) setAvailIdx(idx uint16) {
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], idx)
	if err := h.vm.WriteGPA(availGPA+2, b[:]); err != nil {
		h.t.Fatal(err)
	}
}

// usedIdx is the device's published used index.
func (h *hostDriver) usedIdx() uint16 {
	v, err := h.vm.Load32(usedGPA)
	if err != nil {
		h.t.Fatal(err)
	}
	return uint16(v >> 16)
}

// usedElem is used ring entry i: the head it completes and the length.
func (h *hostDriver) usedElem(i uint16) (uint32, uint32) {
	var b [UsedElemSize]byte
	if err := h.vm.ReadGPA(usedGPA+4+UsedElemSize*uint64(i%h.size), b[:]); err != nil {
		h.t.Fatal(err)
	}
	return binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint32(b[4:])
}

func newDriver(t testing.TB, vm *fakeVM, cfg Config) *hostDriver {
	t.Helper()
	d, err := New(vm, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &hostDriver{t: t, d: d, vm: vm}
}

// changed lists the RAM pages whose bytes are no longer all the pattern.
func changed(ram []byte) []int {
	var out []int
	want := bytes.Repeat([]byte{pattern}, hv.PageSize)
	for p := 0; p < len(ram)/hv.PageSize; p++ {
		if !bytes.Equal(ram[p*hv.PageSize:(p+1)*hv.PageSize], want) {
			out = append(out, p)
		}
	}
	return out
}
