package lapic

import (
	"sync"
	"testing"
)

func enabled(t *testing.T) *APIC {
	t.Helper()
	a := New(3)
	a.Write(RegSVR, SVREnable|0xff)
	return a
}

func TestRegistersReadBack(t *testing.T) {
	cases := []struct {
		name      string
		off       uint32
		write     uint32
		want      uint32
		disabled  bool // leave SVR software-disabled
		skipWrite bool
	}{
		{"id", RegID, 0x07000000, 0x07000000, false, false},
		{"version read-only", RegVersion, 0xffffffff, Version, false, false},
		{"tpr keeps 8 bits", RegTPR, 0x1ff, 0xff, false, false},
		{"ldr keeps bits 31:24", RegLDR, 0x12345678, 0x12000000, false, false},
		{"dfr low bits read 1", RegDFR, 0, 0x0fffffff, false, false},
		{"svr keeps 10 bits", RegSVR, 0xfff, 0x3ff, false, false},
		{"esr write clears", RegESR, 0xff, 0, false, false},
		{"icr delivery status idle", RegICRLo, 0x1fff, 0x0fff, false, false},
		{"icr hi dest only", RegICRHi, 0xffffffff, 0xff000000, false, false},
		{"lvt perf writable bits", RegLVT0 + 0x20, 0xffffffff, lvtWritable, false, false},
		{"lvt masked while disabled", RegLVT0 + 0x20, 0x40, 0x40 | LVTMasked, true, false},
		{"timer divide", RegTDiv, 0xff, 0xb, false, false},
		{"unaligned write ignored", RegTPR + 4, 0x30, 0, false, false},
		{"unknown reads zero", 0x3f0, 0, 0, false, true},
		{"power-on lvt masked", RegLVT0, 0, LVTMasked, true, true},
		{"power-on svr", RegSVR, 0, 0xff, true, true},
		{"power-on id", RegID, 0, 3 << 24, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := New(3)
			if !tc.disabled {
				a.Write(RegSVR, SVREnable)
			}
			if !tc.skipWrite {
				a.Write(tc.off, tc.write)
			}
			if got := a.Read(tc.off &^ 0xf); got != tc.want {
				t.Fatalf("read %#x = %#x, want %#x", tc.off, got, tc.want)
			}
		})
	}
}

func TestPriorityAndAccept(t *testing.T) {
	cases := []struct {
		name   string
		tpr    uint32
		raise  []uint8
		ifFlag bool
		want   []uint8 // vectors accepted in order, EOI after each
	}{
		{"highest first", 0, []uint8{0x31, 0x80, 0x41}, true, []uint8{0x80, 0x41, 0x31}},
		{"IF clear blocks", 0, []uint8{0x40}, false, nil},
		{"TPR blocks same class", 0x40, []uint8{0x45, 0x50}, true, []uint8{0x50}},
		{"illegal vector dropped", 0, []uint8{3, 0x20}, true, []uint8{0x20}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := enabled(t)
			a.SetTPR(tc.tpr)
			for _, v := range tc.raise {
				a.Raise(v)
			}
			var got []uint8
			for {
				v, ok := a.Accept(tc.ifFlag)
				if !ok {
					break
				}
				got = append(got, v)
				if r := a.EOI(); !r.Done || r.Vector != v || r.Level {
					t.Fatalf("EOI after %#x: %+v", v, r)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("accepted %#x, want %#x", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("accepted %#x, want %#x", got, tc.want)
				}
			}
		})
	}
}

func TestNestedInServiceBlocksLowerClass(t *testing.T) {
	a := enabled(t)
	a.Raise(0x50)
	if v, ok := a.Accept(true); !ok || v != 0x50 {
		t.Fatalf("accept: %#x %v", v, ok)
	}
	if a.Read(RegPPR) != 0x50 {
		t.Fatalf("PPR %#x, want 0x50", a.Read(RegPPR))
	}
	a.Raise(0x42)
	if _, ok := a.Accept(true); ok {
		t.Fatal("lower class accepted while 0x50 in service")
	}
	a.Raise(0x61)
	if v, ok := a.Accept(true); !ok || v != 0x61 {
		t.Fatalf("higher class not accepted: %#x %v", v, ok)
	}
	if a.Read(RegISR+0x10*(0x61/32))&(1<<(0x61%32)) == 0 {
		t.Fatal("ISR lacks 0x61")
	}
	a.Write(RegEOI, 0)
	a.Write(RegEOI, 0)
	if v, ok := a.Accept(true); !ok || v != 0x42 {
		t.Fatalf("after EOIs: %#x %v", v, ok)
	}
}

func TestDisabledAPICAcceptsNothing(t *testing.T) {
	a := New(0)
	a.Raise(0x40)
	if _, ok := a.Accept(true); ok {
		t.Fatal("software-disabled APIC accepted an interrupt")
	}
	if !a.Requested() {
		t.Fatal("raise while disabled was lost")
	}
}

func TestLevelEOI(t *testing.T) {
	a := enabled(t)
	a.RaiseLevel(0x30)
	if a.Read(RegTMR+0x10)&(1<<(0x30%32)) == 0 {
		t.Fatal("TMR lacks level vector 0x30")
	}
	a.Accept(true)
	r := a.Write(RegEOI, 0)
	if !r.Done || r.Vector != 0x30 || !r.Level {
		t.Fatalf("EOI %+v, want level 0x30", r)
	}
	if r := a.EOI(); r.Done {
		t.Fatalf("second EOI retired %+v", r)
	}
}

func TestFireLVTPerfMasksItself(t *testing.T) {
	a := enabled(t)
	a.SetLVT(LVTPerf, 0x40)
	if !a.FireLVT(LVTPerf) {
		t.Fatal("unmasked LVT perf did not fire")
	}
	if a.LVT(LVTPerf)&LVTMasked == 0 {
		t.Fatal("LVT perf not masked after delivery")
	}
	if a.FireLVT(LVTPerf) {
		t.Fatal("masked LVT fired")
	}
	if v, ok := a.Accept(true); !ok || v != 0x40 {
		t.Fatalf("PMI vector %#x %v", v, ok)
	}
	if a.FireLVT(99) || a.LVT(-1) != 0 {
		t.Fatal("out-of-range LVT index accepted")
	}
}

func TestSVRDisableMasksLVT(t *testing.T) {
	a := enabled(t)
	a.SetLVT(LVTLINT0, 0x700)
	a.Write(RegSVR, 0xff)
	if a.LVT(LVTLINT0)&LVTMasked == 0 {
		t.Fatal("software disable left LVT LINT0 unmasked")
	}
}

// TestRaiseConcurrent: Raise from many goroutines while the owner accepts;
// every vector is taken exactly once (run with -race).
func TestRaiseConcurrent(t *testing.T) {
	a := enabled(t)
	var wg sync.WaitGroup
	for v := 32; v < 256; v++ {
		wg.Add(1)
		go func(v uint8) {
			defer wg.Done()
			a.Raise(v)
		}(uint8(v))
	}
	seen := map[uint8]int{}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		for {
			v, ok := a.Accept(true)
			if !ok {
				break
			}
			seen[v]++
			a.EOI()
		}
		if finished && !a.Requested() {
			break
		}
	}
	if len(seen) != 224 {
		t.Fatalf("accepted %d distinct vectors, want 224", len(seen))
	}
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("vector %#x accepted %d times", v, n)
		}
	}
}

func FuzzRegisters(f *testing.F) {
	f.Add(uint32(RegEOI), uint32(0), uint8(0x40))
	f.Add(uint32(RegSVR), uint32(0), uint8(2))
	f.Fuzz(func(t *testing.T, off, v uint32, vec uint8) {
		a := enabled(t)
		a.Raise(vec)
		a.Write(off&0xfff, v)
		_ = a.Read(off & 0xfff)
		if v, ok := a.Accept(true); ok && v < 16 {
			t.Fatalf("accepted illegal vector %d", v)
		}
		a.EOI()
	})
}
