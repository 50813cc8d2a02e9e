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
	f.Fuzz(func(t *testing.T, reason uint32, union []byte) {
		if len(union) > 256 {
			union = union[:256]
		}
		runWith(reason, union).decodeExit()
	})
}
