package hv

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// guestAccessFixture: slot 0 at [0, 2 pages), slot 1 read-only at
// [2 pages, 3 pages), slot 2 at [4 pages, 5 pages): a hole at page 3.
func guestAccessFixture(t *testing.T) (*GuestAccess, *[]string) {
	t.Helper()
	mem, err := NewMemory(5*PageSize, Anonymous)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	slots := []Memslot{
		{Slot: 0, GPA: 0, Size: 2 * PageSize, Memory: mem, Flags: MemLogDirty},
		{Slot: 1, GPA: 2 * PageSize, Size: PageSize, Memory: mem, Offset: 2 * PageSize, Flags: MemReadOnly},
		{Slot: 2, GPA: 4 * PageSize, Size: PageSize, Memory: mem, Offset: 4 * PageSize},
	}
	var log []string
	a := &GuestAccess{
		Slots: func() []Memslot { return slots },
		Written: func(m Memslot, first, last uint64) {
			log = append(log, fmt.Sprintf("slot%d:%d-%d", m.Slot, first, last))
		},
	}
	return a, &log
}

func TestGuestAccess(t *testing.T) {
	a, log := guestAccessFixture(t)
	buf := []byte("across the page boundary")
	if err := a.WriteGPA(PageSize-4, buf); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(buf))
	if err := a.ReadGPA(PageSize-4, got); err != nil || string(got) != string(buf) {
		t.Fatalf("read back %q, %v", got, err)
	}
	if fmt.Sprint(*log) != "[slot0:0-1]" {
		t.Fatalf("dirty log %v, want pages 0-1 of slot 0", *log)
	}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"write into read-only slot", a.WriteGPA(2*PageSize+8, []byte{1}), ErrReadOnly},
		{"write spanning into read-only slot", a.WriteGPA(2*PageSize-2, []byte{1, 2, 3, 4}), ErrReadOnly},
		{"read of the hole", a.ReadGPA(3*PageSize, make([]byte, 1)), ErrUnbacked},
		// 3 pages - 1 is the last byte of read-only slot 1, then the hole.
		{"read spanning into the hole", a.ReadGPA(3*PageSize-1, make([]byte, 2)), ErrUnbacked},
		{"read spanning out of the hole", a.ReadGPA(4*PageSize-1, make([]byte, 2)), ErrUnbacked},
		{"read beyond every slot", a.ReadGPA(1<<40, make([]byte, 8)), ErrUnbacked},
		{"wrapping range", a.ReadGPA(^uint64(0)-1, make([]byte, 4)), ErrUnbacked},
		{"misaligned store", a.Store64(4, 1), ErrMisaligned},
		{"store into read-only", a.Store32(2*PageSize, 1), ErrReadOnly},
		{"cas in the hole", func() error { _, err := a.CAS64(3*PageSize, 0, 1); return err }(), ErrUnbacked},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	if fmt.Sprint(*log) != "[slot0:0-1]" {
		t.Fatalf("a refused access marked pages dirty: %v", *log)
	}
	// Atomics.
	if err := a.Store64(4*PageSize+8, 0x1122334455667788); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Load64(4*PageSize + 8); err != nil || v != 0x1122334455667788 {
		t.Fatalf("load64 %#x %v", v, err)
	}
	if v, err := a.Load32(4*PageSize + 12); err != nil || v != 0x11223344 {
		t.Fatalf("load32 %#x %v", v, err)
	}
	if ok, err := a.CAS64(4*PageSize+8, 1, 2); ok || err != nil {
		t.Fatalf("cas with a wrong old value: %v %v", ok, err)
	}
	if ok, err := a.CAS32(4*PageSize+8, 0x55667788, 7); !ok || err != nil {
		t.Fatalf("cas32: %v %v", ok, err)
	}
	if v, _ := a.Load64(4*PageSize + 8); v != 0x1122334400000007 {
		t.Fatalf("after cas32: %#x", v)
	}
}

func TestGuestAccessRefusal(t *testing.T) {
	a, log := guestAccessFixture(t)
	a.Writable = func(m Memslot) error {
		if m.Flags&MemLogDirty != 0 {
			return ErrDirtyUntracked
		}
		return nil
	}
	if err := a.WriteGPA(8, []byte{1}); !errors.Is(err, ErrDirtyUntracked) {
		t.Fatalf("write to a logging slot: %v", err)
	}
	if err := a.Store32(4*PageSize, 1); err != nil {
		t.Fatalf("write to a slot that does not log: %v", err)
	}
	if len(*log) != 1 {
		t.Fatalf("dirty log %v", *log)
	}
}

func TestCPUIDTable(t *testing.T) {
	var c CPUID
	c.Set(CPUIDEntry{Function: 1, EAX: 0x906a0})
	c.Set(CPUIDEntry{Function: 7, Index: 0, Indexed: true, EBX: 1})
	c.Set(CPUIDEntry{Function: 7, Index: 1, Indexed: true, EBX: 2})
	c.Set(CPUIDEntry{Function: 0, EAX: 0xa})
	if c[0].Function != 0 || len(c) != 4 {
		t.Fatalf("not sorted or lost entries: %+v", c)
	}
	if e, ok := c.Lookup(7, 1); !ok || e.EBX != 2 {
		t.Fatalf("indexed lookup: %+v %v", e, ok)
	}
	if e, ok := c.Lookup(1, 99); !ok || e.EAX != 0x906a0 {
		t.Fatalf("unindexed lookup ignores the index: %+v %v", e, ok)
	}
	if _, ok := c.Lookup(7, 2); ok {
		t.Fatal("indexed lookup matched a missing index")
	}
	p := PMULeaf{Version: 2, GPCounters: 4, GPWidth: 48, FixedCounters: 3, FixedWidth: 48, EventsLen: 7, Unavailable: 1 << PMUEventBranchMisses}
	d := c.Clone()
	d.SetPMU(p)
	if got := d.PMU(); got != p {
		t.Fatalf("PMU leaf round trip: %+v, want %+v", got, p)
	}
	if c.PMU().Version != 0 {
		t.Fatal("Clone shares entries with the original")
	}
	d.Remove(CPUIDLeafPMU)
	if d.PMU().String() != "no PMU" {
		t.Fatalf("removed PMU leaf still there: %v", d.PMU())
	}
	// Version 1 has no fixed counters, whatever EDX holds.
	v1 := DecodePMULeaf(CPUIDEntry{Function: CPUIDLeafPMU, EAX: 1 | 2<<8 | 40<<16, EDX: 3})
	if v1.FixedCounters != 0 || v1.GPCounters != 2 || v1.GPWidth != 40 {
		t.Fatalf("v1 leaf: %+v", v1)
	}
}

func TestDecodeMSI(t *testing.T) {
	cases := []struct {
		addr uint64
		data uint32
		want MSI
		ok   bool
	}{
		{0xfee00000, 0x41, MSI{0, 0x41}, true},
		{0xfee03000, 0xf0, MSI{3, 0xf0}, true},
		{0xfee00000 | 0xff<<12, 0x20, MSI{0xff, 0x20}, true},
		{0xfed00000, 0x41, MSI{}, false},  // outside the window
		{0xfee00000, 0x0f, MSI{}, false},  // reserved vector
		{0xfee00000, 0x441, MSI{}, false}, // NMI delivery mode
	}
	for _, c := range cases {
		got, err := DecodeMSI(c.addr, c.data)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("DecodeMSI(%#x, %#x) = %+v, %v", c.addr, c.data, got, err)
		}
	}
}

func TestDebugFlagsString(t *testing.T) {
	if s := (DebugEnable | DebugBlockIRQ | 1<<30).String(); s != "enable|blockirq|0x40000000" {
		t.Fatalf("flags string %q", s)
	}
	if s := DebugFlags(0).String(); s != "none" {
		t.Fatalf("zero flags %q", s)
	}
}

// Every exit type implements Exit through its pointer only, so a type
// switch must name *hv.HaltExit: a value case would not compile, and no
// case can silently never match.
func TestExitsArePointers(t *testing.T) {
	exit := reflect.TypeOf((*Exit)(nil)).Elem()
	for _, e := range []any{IOExit{}, MMIOExit{}, HaltExit{}, ShutdownExit{}, DirtyRingFullExit{},
		DebugExit{}, InternalErrorExit{}, FailEntryExit{}, MSRExit{}, HypercallExit{}, SystemEventExit{}, UnknownExit{}} {
		v := reflect.TypeOf(e)
		if v.Implements(exit) {
			t.Errorf("%s implements Exit as a value", v)
		}
		if !reflect.PointerTo(v).Implements(exit) {
			t.Errorf("*%s does not implement Exit", v)
		}
	}
	if s := (&InternalErrorExit{Suberror: 1, Detail: "emulation failure at 0x1000: 0f 0b"}).String(); !strings.Contains(s, "0f 0b") {
		t.Errorf("internal error without its detail: %q", s)
	}
}
