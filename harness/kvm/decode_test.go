package kvm

import (
	"encoding/binary"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// runWith is a vCPU whose kvm_run holds an exit built by the test.
func runWith(reason uint32, union []byte) *VCPU {
	v := &VCPU{run: make([]byte, 4096)}
	binary.LittleEndian.PutUint32(v.run[runExitReason:], reason)
	copy(v.run[runUnion:], union)
	return v
}

func ioUnion(in bool, size uint8, port uint16, count uint32, off uint64) []byte {
	b := make([]byte, 16)
	if !in {
		b[0] = 1
	}
	b[1] = size
	binary.LittleEndian.PutUint16(b[2:], port)
	binary.LittleEndian.PutUint32(b[4:], count)
	binary.LittleEndian.PutUint64(b[8:], off)
	return b
}

// KVM_EXIT_SYSTEM_EVENT (arm64's PSCI SYSTEM_OFF/RESET among others):
// ndata counts data[] since 5.18; an older kernel leaves it 0 with flags
// where data[0] is.
func TestDecodeSystemEvent(t *testing.T) {
	cases := []struct {
		name  string
		typ   uint32
		ndata uint32
		data  []uint64
		want  []uint64
	}{
		{"shutdown, old kernel", hv.SystemEventShutdown, 0, []uint64{0x5}, []uint64{0x5}},
		{"reset with two words", hv.SystemEventReset, 2, []uint64{1, 0x80000001}, []uint64{1, 0x80000001}},
		{"ndata past data[16] is cut", hv.SystemEventCrash, 300, nil, make([]uint64, 16)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := make([]byte, 8+8*16)
			binary.LittleEndian.PutUint32(u[0:], c.typ)
			binary.LittleEndian.PutUint32(u[4:], c.ndata)
			for i, d := range c.data {
				binary.LittleEndian.PutUint64(u[8+8*i:], d)
			}
			e, ok := runWith(exitSystemEvent, u).decodeExit().(*hv.SystemEventExit)
			if !ok {
				t.Fatal("not a *hv.SystemEventExit")
			}
			if e.Type != c.typ || len(e.Data) != len(c.want) {
				t.Fatalf("got %v, want type %d data %#x", e, c.typ, c.want)
			}
			for i := range c.want {
				if e.Data[i] != c.want[i] {
					t.Fatalf("got %v, want data %#x", e, c.want)
				}
			}
		})
	}
}

// An MMIO exit image: the data slice aliases kvm_run, so a read's
// answer written into it is what KVM hands the guest.
func TestDecodeMMIOExit(t *testing.T) {
	u := make([]byte, 24)
	binary.LittleEndian.PutUint64(u[0:], 0x10000008)
	binary.LittleEndian.PutUint32(u[16:], 4)
	v := runWith(exitMMIO, u)
	e, ok := v.decodeExit().(*hv.MMIOExit)
	if !ok || e.GPA != 0x10000008 || e.Len != 4 || e.Write {
		t.Fatalf("got %v", e)
	}
	e.SetValue(0xdeadbeef)
	if got := binary.LittleEndian.Uint32(v.run[runUnion+8:]); got != 0xdeadbeef {
		t.Fatalf("kvm_run mmio.data = %#x after SetValue", got)
	}
	binary.LittleEndian.PutUint32(v.run[runUnion+16:], 200) // a len past data[8]
	if e := v.decodeExit().(*hv.MMIOExit); e.Len != 8 {
		t.Fatalf("len 200 decoded as %d, want 8", e.Len)
	}
}

func TestDecodeIOExitBounds(t *testing.T) {
	cases := []struct {
		name  string
		union []byte
		kind  hv.ExitKind
	}{
		{"in range", ioUnion(false, 1, 0x10, 1, 0x100), hv.ExitIO},
		{"past the mapping", ioUnion(false, 4, 0x10, 2, 4092), hv.ExitInternalError},
		{"offset that wraps", ioUnion(true, 2, 0x10, 1, 1<<63-1), hv.ExitInternalError},
		{"huge count", ioUnion(true, 4, 0x10, 0xffffffff, 0x100), hv.ExitInternalError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := runWith(exitIO, c.union).decodeExit()
			if e == nil || e.Kind() != c.kind {
				t.Fatalf("exit %v, want kind %v", e, c.kind)
			}
		})
	}
}

// kvm_run is written by the kernel, but a decoder must not trust lengths
// and offsets in it to stay inside the mapping: no input may panic.
func FuzzDecodeExit(f *testing.F) {
	f.Add(uint32(exitIO), ioUnion(false, 1, 0x10, 1, 0x100))
	f.Add(uint32(exitMMIO), make([]byte, 24))
	f.Add(uint32(exitInternalError), []byte{1, 0, 0, 0, 200, 0, 0, 0})
	f.Add(uint32(exitDebug), make([]byte, 32))
	f.Add(uint32(exitSystemEvent), []byte{1, 0, 0, 0, 17, 0, 0, 0})
	f.Fuzz(func(t *testing.T, reason uint32, union []byte) {
		if len(union) > 256 {
			union = union[:256]
		}
		runWith(reason, union).decodeExit()
	})
}
