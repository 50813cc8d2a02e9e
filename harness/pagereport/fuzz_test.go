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
