package guest

import (
	"strings"
	"testing"
)

func TestAllocator(t *testing.T) {
	type step struct {
		reserve     bool
		gpa         uint64 // reserve: where; alloc: the address wanted
		size, align uint64
		wantErr     string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"first fit with alignment", []step{
			{reserve: true, gpa: 0, size: 0x1000},
			{gpa: 0x1000, size: 0x10, align: 8},
			{gpa: 0x2000, size: 0x1000, align: 0x1000},
			{gpa: 0x1010, size: 0x20, align: 16},     // back-fills the gap before 0x2000
			{gpa: 0x1100, size: 0x100, align: 0x100}, // also before 0x2000
		}},
		{"a reservation splits free memory", []step{
			{reserve: true, gpa: 0x1800, size: 0x800},
			{gpa: 0, size: 0x1800},
			{gpa: 0x2000, size: 0x10},
		}},
		{"runs out", []step{
			{gpa: 0, size: 0x3000},
			{size: 0x2000, wantErr: "alloc data 0x2000 bytes aligned to 0x8: guest memory exhausted (0x1000 bytes free, largest free range 0x1000)"},
			{gpa: 0x3000, size: 0x1000},
			{size: 1, wantErr: "exhausted"},
		}},
		{"alignment beyond what is left", []step{
			{gpa: 0, size: 0x10},
			{size: 0x10, align: 0x4000, wantErr: "exhausted"},
		}},
		{"bad alignment", []step{{size: 8, align: 12, wantErr: "alignment 0xc is not a power of two"}}},
		{"zero size", []step{{size: 0, wantErr: "zero bytes"}}},
		{"overlapping reservations", []step{
			{reserve: true, gpa: 0x1000, size: 0x1000},
			{reserve: true, gpa: 0x1800, size: 0x1000, wantErr: "overlaps data [0x1000, 0x2000)"},
			{reserve: true, gpa: 0x800, size: 0x1000, wantErr: "overlaps data [0x1000, 0x2000)"},
			{reserve: true, gpa: 0x2000, size: 0x1000},
		}},
		{"reservation outside memory", []step{
			{reserve: true, gpa: 0x3000, size: 0x2000, wantErr: "outside guest memory [0x0, 0x4000)"},
			{reserve: true, gpa: 1<<64 - 0x1000, size: 0x2000, wantErr: "outside guest memory"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := NewAllocator(0, 0x4000)
			for i, s := range c.steps {
				var err error
				got := s.gpa
				if s.reserve {
					err = a.Reserve(s.gpa, s.size, "data")
				} else {
					got, err = a.Alloc(s.size, s.align, "data")
				}
				if s.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), s.wantErr) {
						t.Fatalf("step %d: err = %v, want %q", i, err, s.wantErr)
					}
					continue
				}
				if err != nil || got != s.gpa {
					t.Fatalf("step %d: got %#x, %v; want %#x", i, got, err, s.gpa)
				}
			}
			// The books balance: used plus free is the whole area.
			used := uint64(0)
			for _, r := range a.Regions() {
				used += r.Size
			}
			if used+a.Free() != 0x4000 {
				t.Fatalf("used %#x + free %#x != 0x4000", used, a.Free())
			}
		})
	}
}

// FuzzAllocator: any sequence of requests leaves regions sorted, aligned,
// inside the area and disjoint, and never panics.
func FuzzAllocator(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, ops []byte) {
		a := NewAllocator(0x1000, 0x10000)
		for i := 0; i+2 < len(ops); i += 3 {
			size := uint64(ops[i+1]) << (ops[i+2] % 9)
			if ops[i]&1 == 0 {
				addr, err := a.Alloc(size, 1<<(ops[i]>>1%13), "x")
				if err == nil && addr%(1<<(ops[i]>>1%13)) != 0 {
					t.Fatalf("alloc %#x not aligned", addr)
				}
			} else {
				_ = a.Reserve(0x1000+uint64(ops[i+2])<<8, size, "y")
			}
		}
		end := uint64(0x1000)
		for _, r := range a.Regions() {
			if r.Base < end || r.End() > 0x11000 || r.Size == 0 {
				t.Fatalf("bad region %v after %#x", r, end)
			}
			end = r.End()
		}
	})
}
