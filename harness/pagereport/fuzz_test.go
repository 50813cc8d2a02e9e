package pagereport

import (
	"encoding/binary"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// FuzzQueue fills the descriptor table and the avail ring with fuzzer
// bytes and notifies. Whatever the bytes, the device must not fail an
// access, must complete no more than was made available, and must change
// only RAM pages that some device-writable, 4 KiB-aligned descriptor
// inside the RAM slot names; the read-only slot never changes.
func FuzzQueue(f *testing.F) {
	seed := func(descs []Desc, heads []uint16, availIdx uint16) []byte {
		b := make([]byte, 2+2*len(heads)+1)
		binary.LittleEndian.PutUint16(b, availIdx)
		for i, h := range heads {
			binary.LittleEndian.PutUint16(b[2+2*i:], h)
		}
		b[len(b)-1] = byte(len(descs))
		for _, d := range descs {
			var raw [DescSize]byte
			binary.LittleEndian.PutUint64(raw[0:], d.Addr)
			binary.LittleEndian.PutUint32(raw[8:], d.Len)
			binary.LittleEndian.PutUint16(raw[12:], d.Flags)
			binary.LittleEndian.PutUint16(raw[14:], d.Next)
			b = append(b, raw[:]...)
		}
		return b
	}
	w := uint16(DescFWrite)
	f.Add(seed([]Desc{{Addr: ramGPA, Len: 2 << 20, Flags: w}}, []uint16{0}, 1))
	f.Add(seed([]Desc{{Addr: ramGPA, Len: 4096, Flags: w | DescFNext, Next: 1}, {Addr: ramGPA + 8192, Len: 4096, Flags: w}}, []uint16{0, 1}, 2))
	f.Add(seed([]Desc{{Addr: ramGPA, Len: 4096, Flags: w | DescFNext, Next: 0}}, []uint16{0}, 1))
	f.Add(seed([]Desc{{Addr: romGPA, Len: 4096, Flags: w}, {Addr: ramGPA + ramSize - 4096, Len: 8192, Flags: w}}, []uint16{0, 1}, 2))
	f.Add(seed([]Desc{{Addr: ramGPA + 1, Len: 4096, Flags: w}}, []uint16{40}, 9))

	vm := newFakeVM(f, hv.Anonymous)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 3 {
			return
		}
		h := newDriver(t, vm, Config{QueueSize: 64})
		size := uint16(32)
		if b[0]&1 != 0 {
			size = 64
		}
		if !h.setup(features, size, 0) {
			t.Fatal("setup refused")
		}
		availIdx := binary.LittleEndian.Uint16(b)
		b = b[2:]
		// Then avail ring entries, up to the count byte, then descriptors.
		nHeads := int(b[0]) % 8
		b = b[1:]
		ring := make([]byte, 2*nHeads)
		copy(ring, b)
		b = b[min(len(b), len(ring)):]
		if err := vm.WriteGPA(availGPA+4, ring); err != nil {
			t.Fatal(err)
		}
		var allowed []Desc
		for i := 0; i < int(size) && len(b) > 0; i++ {
			var raw [DescSize]byte
			b = b[copy(raw[:], b):]
			// The high byte of the address picks a region, so the fuzzer
			// reaches RAM, its edges, the read-only slot and the hole
			// without guessing 64-bit numbers.
			addr := binary.LittleEndian.Uint64(raw[0:])
			if raw[7] < 0xf0 {
				addr = ramGPA - 64<<10 + addr%(ramSize+romSize+128<<10)
				binary.LittleEndian.PutUint64(raw[0:], addr)
			}
			if err := vm.WriteGPA(descGPA+DescSize*uint64(i), raw[:]); err != nil {
				t.Fatal(err)
			}
			d := Desc{Addr: addr, Len: binary.LittleEndian.Uint32(raw[8:]), Flags: binary.LittleEndian.Uint16(raw[12:])}
			if d.Flags&DescFWrite != 0 && d.Addr%hv.PageSize == 0 && d.Len%hv.PageSize == 0 &&
				d.Addr >= ramGPA && d.Addr+uint64(d.Len) <= ramGPA+ramSize {
				allowed = append(allowed, d)
			}
		}
		h.avail = availIdx
		h.setAvailIdx(availIdx)
		h.write(RegQueueNotify, ReportingQueue)

		s := h.d.Stats()
		if used := h.usedIdx(); uint64(used) != s.Elements || used > availIdx || int(used) > int(size) {
			t.Fatalf("used idx %d, %d elements, avail idx %d", used, s.Elements, availIdx)
		}
		ram := vm.ram()
		for _, p := range changed(ram) {
			gpa := ramGPA + uint64(p)*hv.PageSize
			ok := false
			for _, d := range allowed {
				ok = ok || gpa >= d.Addr && gpa < d.Addr+uint64(d.Len)
			}
			if !ok {
				t.Fatalf("page %#x changed, no accepted descriptor names it (stats %+v)", gpa, s)
			}
			fill(ram[p*hv.PageSize:(p+1)*hv.PageSize], pattern)
		}
		if p := changed(vm.slots[romSlot].Bytes()); len(p) != 0 {
			t.Fatalf("read-only pages changed: %v", p)
		}
		h.d.Close()
	})
}

// FuzzRegisters applies fuzzer-chosen register accesses (offset, width,
// direction, value) to a device whose rings hold a valid report. No
// sequence may fail an access, panic, change a read-only page or a RAM
// page outside the one reported range, or complete more elements than
// the driver made available.
func FuzzRegisters(f *testing.F) {
	// One access: offset (2 bytes), width selector, write flag, value (4 bytes).
	acc := func(off uint16, width, write byte, v uint32) []byte {
		b := []byte{byte(off), byte(off >> 8), width, write, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(b[4:], v)
		return b
	}
	var good []byte
	for _, a := range [][]byte{
		acc(RegStatus, 2, 1, StatusAcknowledge|StatusDriver),
		acc(RegDriverFeatures, 2, 1, uint32(FeaturePageReporting)),
		acc(RegDriverFeaturesSel, 2, 1, 1),
		acc(RegDriverFeatures, 2, 1, 1),
		acc(RegStatus, 2, 1, StatusAcknowledge|StatusDriver|StatusFeaturesOK),
		acc(RegQueueSel, 2, 1, ReportingQueue),
		acc(RegQueueNum, 2, 1, 32),
		acc(RegQueueDescLow, 2, 1, descGPA),
		acc(RegQueueDriverLow, 2, 1, availGPA),
		acc(RegQueueDeviceLow, 2, 1, usedGPA),
		acc(RegQueueReady, 2, 1, 1),
		acc(RegStatus, 2, 1, StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK),
		acc(RegQueueNotify, 2, 1, ReportingQueue),
	} {
		good = append(good, a...)
	}
	f.Add(good)
	f.Add(append(append([]byte{}, good...), acc(RegStatus, 2, 1, 0)...))
	f.Add(acc(RegConfig+ConfigPoisonVal, 0, 1, 0xaa))

	vm := newFakeVM(f, hv.Anonymous)
	h := &hostDriver{t: f, vm: vm, size: 32}
	h.writeDesc(0, Desc{Addr: ramGPA + hv.PageSize, Len: hv.PageSize, Flags: DescFWrite})
	h.avail = 0
	if err := vm.WriteGPA(availGPA+4, []byte{0, 0}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := New(vm, Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		h.setAvailIdx(1)
		if err := vm.Store32(usedGPA, 0); err != nil {
			t.Fatal(err)
		}
		for ; len(b) >= 8; b = b[8:] {
			off := uint64(binary.LittleEndian.Uint16(b)) % RegionSize
			data := make([]byte, 1<<(b[2]%4)) // 1, 2, 4 or 8 bytes
			copy(data, b[4:8])
			a := hv.Access{Offset: off, Data: data, Write: b[3]&1 != 0}
			if err := d.Access(&a); err != nil {
				t.Fatalf("access %+v: %v", a, err)
			}
		}
		if s := d.Stats(); s.Elements > 1 {
			t.Fatalf("%d elements completed, one was available", s.Elements)
		}
		ram := vm.ram()
		for _, p := range changed(ram) {
			if p != 1 {
				t.Fatalf("RAM page %d changed; only page 1 was reported", p)
			}
			fill(ram[p*hv.PageSize:(p+1)*hv.PageSize], pattern)
		}
		if p := changed(vm.slots[romSlot].Bytes()); len(p) != 0 {
			t.Fatalf("read-only pages changed: %v", p)
		}
	})
}
