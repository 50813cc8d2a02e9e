package a64guest

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
)

// TestSGI1RValue encodes values field by field against the register's
// layout (TargetList 15:0, Aff1 23:16, INTID 27:24, Aff2 39:32, IRM 40,
// RS 47:44, Aff3 55:48) and decodes them back.
func TestSGI1RValue(t *testing.T) {
	for _, tc := range []struct {
		s    SGI1R
		want uint64
	}{
		{SGI1R{INTID: 5, TargetList: 0x2}, 0x0500_0002},
		{SGI1R{INTID: 0, TargetList: 0x1}, 0x1},
		{SGI1R{INTID: 15, Aff1: 0x12, Aff2: 0x34, Aff3: 0x56, RS: 3, TargetList: 0x8001}, 0x0056_3034_0f12_8001},
		{SGIBroadcast(1), 0x0000_0100_0100_0000},
		{SGI1R{INTID: 15, Broadcast: true, Aff1: 0xff, Aff2: 0xff, Aff3: 0xff, RS: 15, TargetList: 0xffff}, SGI1RFields},
	} {
		got, err := tc.s.Value()
		if err != nil || got != tc.want {
			t.Errorf("%+v.Value() = %#x, %v; want %#x", tc.s, got, err, tc.want)
		}
		if back := ParseSGI1R(tc.want); back != tc.s {
			t.Errorf("ParseSGI1R(%#x) = %+v, want %+v", tc.want, back, tc.s)
		}
	}
	for _, bad := range []SGI1R{{INTID: 16}, {INTID: 1, RS: 16}} {
		if v, err := bad.Value(); err == nil {
			t.Errorf("%+v.Value() = %#x, want an error", bad, v)
		}
	}
}

// TestSGITo builds target lists from MPIDR_EL1 values (KVM's shape:
// bit 31 RES1, Aff0 the vCPU index below 16): one bit per Aff0 within
// the range RS selects, the cluster's Aff3.Aff2.Aff1; PEs one write
// cannot reach together are errors.
func TestSGITo(t *testing.T) {
	for _, tc := range []struct {
		intid  uint8
		mpidrs []uint64
		want   SGI1R
	}{
		{3, []uint64{0x8000_0001}, SGI1R{INTID: 3, TargetList: 0x2}},
		{7, []uint64{0x8000_0001, 0x8000_0003}, SGI1R{INTID: 7, TargetList: 0xa}},
		{0, []uint64{0x8000_0000, 0x8000_0000}, SGI1R{INTID: 0, TargetList: 0x1}},
		{9, []uint64{0x8000_0011, 0x8000_001f}, SGI1R{INTID: 9, RS: 1, TargetList: 0x8002}},
		{15, []uint64{0x12_8034_5600, 0x12_8034_5605}, SGI1R{INTID: 15, Aff3: 0x12, Aff2: 0x34, Aff1: 0x56, TargetList: 0x21}},
	} {
		got, err := SGITo(tc.intid, tc.mpidrs...)
		if err != nil || got != tc.want {
			t.Errorf("SGITo(%d, %#x) = %+v, %v; want %+v", tc.intid, tc.mpidrs, got, err, tc.want)
		}
	}
	for _, bad := range []struct {
		intid  uint8
		mpidrs []uint64
	}{
		{1, nil},
		{1, []uint64{0x8000_0001, 0x8000_0101}},   // another Aff1
		{1, []uint64{0x8000_0001, 0x8001_0001}},   // another Aff2
		{1, []uint64{0x8000_0001, 0x1_8000_0001}}, // another Aff3
		{1, []uint64{0x8000_0001, 0x8000_0011}},   // another range of 16
		{16, []uint64{0x8000_0001}},
	} {
		if got, err := SGITo(bad.intid, bad.mpidrs...); err == nil {
			t.Errorf("SGITo(%d, %#x) = %+v, want an error", bad.intid, bad.mpidrs, got)
		}
	}
}

// FuzzSGI1R: any register value decodes into fields that encode back to
// its defined bits.
func FuzzSGI1R(f *testing.F) {
	for _, v := range []uint64{0, 0x0500_0002, 0x0000_0100_0100_0000, SGI1RFields, ^uint64(0)} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v uint64) {
		s := ParseSGI1R(v)
		got, err := s.Value()
		if err != nil || got != v&SGI1RFields {
			t.Fatalf("ParseSGI1R(%#x) = %+v encodes as %#x, %v; want %#x", v, s, got, err, v&SGI1RFields)
		}
	})
}

// TestSGIProgram assembles the SGI helpers: the write of ICC_SGI1R_EL1 is
// GNU as's `msr icc_sgi1r_el1, x9` (d518cba9), the waits refuse their own
// scratch registers and a bad SGI is an error the load reports.
func TestSGIProgram(t *testing.T) {
	g, c := modelGIC(t)
	p := g.Program()
	c.Init(p)
	c.EnableSGIs(p, 0xffff)
	c.DisableSGIs(p, 1<<9)
	p.MsrDAIFClr(2)
	AtomicAdd(p, 0x20_0000, 1)
	WaitWord(p, a64.X2, 0x20_0000, a64.Imm(2), time.Millisecond)
	WaitWord(p, a64.X2, g.UserBlock(1)+IRQCount, a64.X21, time.Millisecond)
	c.SendSGI(p, SGIBroadcast(3))
	c.WaitSGIPending(p, a64.X3, 1<<9, time.Millisecond)
	c.ReadSGIPending(p, a64.X4)
	p.Done()
	code, err := p.Assemble()
	must(t, err)
	found := false
	for i := 0; i+4 <= len(code); i += 4 {
		if binary.LittleEndian.Uint32(code[i:]) == 0xd518cba9 {
			found = true
		}
	}
	if !found {
		t.Error("no `msr icc_sgi1r_el1, x9` (0xd518cba9) in the program")
	}
	must(t, g.load(p))
	for _, bad := range []struct {
		name, want string
		emit       func(p *Program, c *GICv3)
	}{
		{"SGI 16", "INTID", func(p *Program, c *GICv3) { c.SendSGI(p, SGI1R{INTID: 16}) }},
		{"wait into X13", "own register", func(p *Program, _ *GICv3) { WaitWord(p, a64.X13, 0x1000, a64.Imm(1), time.Millisecond) }},
		{"wait bound X14", "own register", func(p *Program, _ *GICv3) { WaitWord(p, a64.X2, 0x1000, a64.X14, time.Millisecond) }},
		{"pending wait into X9", "own register", func(p *Program, c *GICv3) { c.WaitSGIPending(p, a64.X9, 1, time.Millisecond) }},
	} {
		g, c := modelGIC(t)
		p := g.Program()
		bad.emit(p, c)
		p.Done()
		if err := g.load(p); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: load error %v, want one saying %q", bad.name, err, bad.want)
		}
	}
}
