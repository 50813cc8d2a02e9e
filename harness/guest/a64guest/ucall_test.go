package a64guest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

const (
	recVA       = 0x10000 // identity-mapped user data with the record
	kernelVA    = 0x40000 // EL1 data: the host reads it like the CPU at EL1
	unbackedVA  = 0x30000 // mapped to guest-physical memory no slot backs
	unmappedVA  = 0x50000
	ucallMemTop = 1 << 20
)

// ucallFixture is guest memory with page tables for the decoder, and the
// sites a host would have issued.
func ucallFixture(t testing.TB) (*flatMem, *Walker, *sites, uint64, uint64) {
	mem := &flatMem{b: make([]byte, ucallMemTop)}
	pt, err := NewPageTables(DefaultMode, mem, bump(mem, 0x80000, ucallMemTop, 4096))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		va, pa uint64
		a      Attrs
	}{{recVA, recVA, UserData}, {kernelVA, kernelVA, KernelData}, {unbackedVA, 0x7000000, UserData}} {
		if err := pt.Map(m.va, m.pa, 4096, m.a); err != nil {
			t.Fatal(err)
		}
	}
	s := &sites{}
	syncID := s.add(guest.UcallSync, "spec.go", 10, "", "")
	doneID := s.add(guest.UcallDone, "spec.go", 11, "", "")
	return mem, &Walker{Mode: DefaultMode, TTBR0: pt.Root, Mem: mem}, s, syncID, doneID
}

func record(cmd, site, n uint64, args ...uint64) []byte {
	b := make([]byte, guest.UcallRecordSize)
	le := binary.LittleEndian
	le.PutUint64(b[guest.UcallCmdOffset:], cmd)
	le.PutUint64(b[guest.UcallSiteOffset:], site)
	le.PutUint64(b[guest.UcallNArgsOffset:], n)
	for i, a := range args {
		le.PutUint64(b[guest.UcallArgsOffset+8*i:], a)
	}
	return b
}

func ucallExit(gpa uint64, write bool, ptr uint64, n int) *hv.MMIOExit {
	var q [8]byte
	binary.LittleEndian.PutUint64(q[:], ptr)
	return &hv.MMIOExit{GPA: gpa, Len: n, Write: write, Data: q[:n]}
}

func TestDecodeUcall(t *testing.T) {
	mem, w, s, syncID, doneID := ucallFixture(t)
	sync := record(uint64(guest.UcallSync), syncID, 3, 7, 8, 9)
	for _, tc := range []struct {
		name string
		exit *hv.MMIOExit
		at   uint64 // where the record is written
		rec  []byte
		want string // the Ucall, or a fragment of the error
	}{
		{"sync", ucallExit(UcallMMIOGPA, true, recVA+0x80, 8), recVA + 0x80, sync, "SYNC [0x7 0x8 0x9] spec.go:10"},
		{"record in EL1 data", ucallExit(UcallMMIOGPA, true, kernelVA, 8), kernelVA, sync, "SYNC [0x7 0x8 0x9] spec.go:10"},
		{"done", ucallExit(UcallMMIOGPA, true, recVA, 8), recVA, record(uint64(guest.UcallDone), doneID, 0), "DONE [] spec.go:11"},
		{"anonymous unhandled", ucallExit(UcallMMIOGPA, true, recVA, 8), recVA, record(uint64(guest.UcallUnhandled), 0, 5, 8, 0x96000045, 0, 0x701000, 0x3c0), "UNHANDLED [0x8 0x96000045 0x0 0x701000 0x3c0] unknown site"},
		{"other address in the page", ucallExit(UcallMMIOGPA+8, true, recVA, 8), recVA, sync, "MMIO address"},
		{"read", ucallExit(UcallMMIOGPA, false, recVA, 8), recVA, sync, "MMIO read"},
		{"4-byte store", ucallExit(UcallMMIOGPA, true, recVA, 4), recVA, sync, "MMIO store size 4"},
		{"unaligned", ucallExit(UcallMMIOGPA, true, recVA+4, 8), recVA + 4, sync, "not 8-byte aligned"},
		{"across a page", ucallExit(UcallMMIOGPA, true, recVA+4096-16, 8), recVA, sync, "crosses"},
		{"unmapped", ucallExit(UcallMMIOGPA, true, unmappedVA, 8), recVA, sync, "translation fault"},
		{"beyond the VA range", ucallExit(UcallMMIOGPA, true, 1<<63, 8), recVA, sync, "translation fault"},
		{"unbacked", ucallExit(UcallMMIOGPA, true, unbackedVA, 8), recVA, sync, "guest-physical 0x7000000"},
		{"unknown command", ucallExit(UcallMMIOGPA, true, recVA, 8), recVA, record(99, 0, 0), "command 99"},
		{"site never issued", ucallExit(UcallMMIOGPA, true, recVA, 8), recVA, record(uint64(guest.UcallSync), 77, 1, 1), "site 77"},
		{"site of another command", ucallExit(UcallMMIOGPA, true, recVA, 8), recVA, record(uint64(guest.UcallSync), doneID, 1, 1), "issued for DONE"},
		{"too many arguments", ucallExit(UcallMMIOGPA, true, recVA, 8), recVA, record(uint64(guest.UcallPrintf), 0, 9), "argument count 9"},
		{"sync without a stage", ucallExit(UcallMMIOGPA, true, recVA, 8), recVA, record(uint64(guest.UcallSync), 0, 0), "argument count 0"},
		{"x86-sized unhandled report", ucallExit(UcallMMIOGPA, true, recVA, 8), recVA, record(uint64(guest.UcallUnhandled), 0, 4), "argument count 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clear(mem.b[recVA : recVA+4096])
			copy(mem.b[tc.at:], tc.rec)
			u, err := decodeUcall(tc.exit, 3, w, s.get)
			got := ""
			if err != nil {
				var ue *guest.UcallError
				if !errors.As(err, &ue) || ue.VCPU != 3 {
					t.Fatalf("error %v is not a *guest.UcallError of vcpu 3", err)
				}
				got = err.Error()
			} else {
				got = fmt.Sprintf("%v %#x %v", u.Cmd, u.Args, u.Site)
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzDecodeUcall feeds the decoder guest-controlled exits and records:
// it must never panic, and what it accepts must be a well-formed ucall.
func FuzzDecodeUcall(f *testing.F) {
	f.Add(uint16(0), true, uint8(8), uint64(recVA), record(uint64(guest.UcallSync), 1, 2, 5, 6))
	f.Add(uint16(0), true, uint8(8), uint64(recVA), record(uint64(guest.UcallUnhandled), 0, 5, 1, 2, 3, 4, 5))
	f.Add(uint16(8), false, uint8(4), uint64(unbackedVA), record(5, 2, 9))
	f.Add(uint16(0), true, uint8(8), uint64(recVA+4090), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, off uint16, write bool, n uint8, ptr uint64, rec []byte) {
		mem, w, s, _, _ := ucallFixture(t)
		copy(mem.b[recVA:recVA+4096], rec)
		size := int(n % 9)
		var q [8]byte
		binary.LittleEndian.PutUint64(q[:], ptr)
		e := &hv.MMIOExit{GPA: UcallMMIOGPA + uint64(off), Len: int(n), Write: write, Data: q[:size]}
		u, err := decodeUcall(e, 0, w, s.get)
		if err != nil {
			var ue *guest.UcallError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v is not a *guest.UcallError", err)
			}
			return
		}
		switch {
		case strings.HasPrefix(u.Cmd.String(), "ucall("):
			t.Fatalf("accepted unknown command %v", u.Cmd)
		case len(u.Args) > guest.MaxUcallArgs:
			t.Fatalf("%d arguments", len(u.Args))
		case u.Site != nil && u.Site.Cmd != u.Cmd:
			t.Fatalf("site %v of %v used for %v", u.Site, u.Site.Cmd, u.Cmd)
		case u.Cmd == guest.UcallUnhandled && len(u.Args) != unhandledArgs:
			t.Fatalf("UNHANDLED with %d values", len(u.Args))
		case e.GPA != UcallMMIOGPA || !write || e.Len != 8:
			t.Fatalf("accepted exit %v", e)
		}
	})
}
