package memslot

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
)

func TestMatchSequence(t *testing.T) {
	moved := []step{{valueOld, false}, {mmioValue, true}, {valueShift, false}, {mmioValue, true}, {valueOld, false}, {valueFinal, false}}
	deleted := []step{{valueOld, false}, {mmioValue, false}, {valueFinal, false}}
	for _, c := range []struct {
		name string
		seen []uint64
		want []step
		ok   bool
	}{
		{"move, no MMIO", []uint64{valueOld, valueShift, valueOld, valueFinal}, moved, true},
		{"move, MMIO both ways", []uint64{valueOld, mmioValue, valueShift, mmioValue, valueOld, valueFinal}, moved, true},
		{"move, MMIO on the way back", []uint64{valueOld, valueShift, mmioValue, valueOld, valueFinal}, moved, true},
		{"move, shift never seen", []uint64{valueOld, mmioValue, valueOld, valueFinal}, moved, false},
		{"move, out of order", []uint64{valueShift, valueOld, valueFinal}, moved, false},
		{"move, trailing value", []uint64{valueOld, valueShift, valueOld, valueFinal, valueOld}, moved, false},
		{"move, stale value after the final", []uint64{valueOld, valueShift, valueOld, valueFinal, mmioValue}, moved, false},
		{"delete", []uint64{valueOld, mmioValue, valueFinal}, deleted, true},
		{"delete without MMIO", []uint64{valueOld, valueFinal}, deleted, false},
		{"delete, old value again", []uint64{valueOld, mmioValue, valueOld, valueFinal}, deleted, false},
		{"nothing seen", nil, deleted, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := matchSequence(c.seen, c.want); (err == nil) != c.ok {
				t.Fatalf("matchSequence(%#x) = %v, want ok=%v", c.seen, err, c.ok)
			}
		})
	}
}

func TestSweepCounts(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want []int
		err  bool
	}{
		{"", 32764, []int{1, 8, 64, 512, 4096, 32763}, false},
		{"", 509, []int{1, 8, 64, 508}, false},
		{"max,8,8,1", 100, []int{1, 8, 99}, false},
		{"2, 3000", 100, []int{2}, false},
		{"0", 100, nil, true},
		{"x", 100, nil, true},
		{"200", 100, nil, true},
	} {
		got, err := sweepCounts(c.in, c.max)
		if (err != nil) != c.err || !slices.Equal(got, c.want) {
			t.Errorf("sweepCounts(%q, %d) = %v, %v; want %v (error %v)", c.in, c.max, got, err, c.want, c.err)
		}
	}
}

func TestAreaSlots(t *testing.T) {
	a := area{gpa: perfGPA, pages: 10, nslots: 3, firstSlot: 1}
	var next uint64 = perfGPA
	var total uint64
	for i := 0; i < a.nslots; i++ {
		s := a.slot(i)
		if s.Slot != uint32(1+i) || s.GPA != next || s.Offset != s.GPA-perfGPA {
			t.Fatalf("slot %d = %v offset %#x: not consecutive", i, s, s.Offset)
		}
		next += s.Size
		total += s.Size
	}
	if total != 10*hv.PageSize || a.slot(2).Size != 4*hv.PageSize {
		t.Fatalf("slots cover %d bytes, last %d: want 10 pages, the last with the remainder", total, a.slot(2).Size)
	}
	if validSplit(4, 5) == "" || validSplit(4, 0) == "" || validSplit(4, 4) != "" {
		t.Fatal("validSplit: one page per slot at least, one slot at least")
	}
}

// TestMoveFit: the kernel's sizes leave room for the active move at every
// slot count up to x86's maximum - 1 (that is why MEM_SIZE is 512 MiB).
func TestMoveFit(t *testing.T) {
	pages := uint64(512<<20) / hv.PageSize
	active, inactive := &perfTest{fits: fitsMove(true)}, &perfTest{fits: fitsMove(false)}
	for _, n := range []int{2, 8, 64, 512, 4096, 32763} {
		if why := active.fits(pages, hv.PageSize, n); why != "" {
			t.Errorf("active move, %d slots of 512 MiB: %s", n, why)
		}
		if why := inactive.fits(pages, hv.PageSize, n); why != "" {
			t.Errorf("inactive move, %d slots of 512 MiB: %s", n, why)
		}
	}
	if active.fits(pages, hv.PageSize, 1) == "" || inactive.fits(pages, hv.PageSize, 1) == "" {
		t.Error("one slot leaves no room before the moved slot")
	}
	small := uint64(128<<20) / hv.PageSize
	if got := maxFit(active, small, hv.PageSize, 32763); got != 32745 {
		t.Errorf("maxFit(active, 128 MiB) = %d, want 32745 (the last slot keeps 24 pages)", got)
	}
	if got := maxFit(&perfTest{fits: fitsPages}, 8192, hv.PageSize, 32763); got != 8192 {
		t.Errorf("maxFit(pages, 8192 pages) = %d, want 8192", got)
	}
}

func TestSweepPoints(t *testing.T) {
	c := perfConfig{slots: []int{1, 8, 4096, 32763}, maxSlots: 32763, ps: hv.PageSize}
	pts, opt := sweepPoints(&perfTest{fits: fitsMove(true)}, uint64(128<<20)/hv.PageSize, c)
	want := []perfPoint{{Slots: 1, Skipped: "x"}, {Slots: 8}, {Slots: 4096, Skipped: "x"}, {Slots: 32745, Requested: 32763}}
	if opt != 32745 || len(pts) != len(want) {
		t.Fatalf("sweepPoints = %+v, optimal %d", pts, opt)
	}
	for i, p := range pts {
		if p.Slots != want[i].Slots || p.Requested != want[i].Requested || (p.Skipped != "") != (want[i].Skipped != "") {
			t.Errorf("point %d = %+v, want %+v", i, p, want[i])
		}
	}
}

func TestParams(t *testing.T) {
	p := params{&framework.Env{Params: map[string]string{
		"s": "64M", "k": "4k", "n": "3", "d": "250ms", "bad": "-1", "g": "1G", "plain": "4096",
	}}}
	for name, want := range map[string]uint64{"s": 64 << 20, "k": 4 << 10, "g": 1 << 30, "plain": 4096, "unset": 7} {
		if got, err := p.size(name, 7); err != nil || got != want {
			t.Errorf("size(%s) = %d, %v; want %d", name, got, err, want)
		}
	}
	if _, err := p.size("bad", 1); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("size(bad) error %v does not name the parameter", err)
	}
	if n, err := p.count("n", 1); err != nil || n != 3 {
		t.Errorf("count = %d, %v", n, err)
	}
	if _, err := p.count("bad", 1); err == nil {
		t.Error("count(-1) accepted")
	}
	if d, err := p.duration("d", 0); err != nil || d != 250*time.Millisecond {
		t.Errorf("duration = %v, %v", d, err)
	}
	if d, err := (params{}).duration("d", time.Second); err != nil || d != time.Second {
		t.Errorf("duration without an env = %v, %v", d, err)
	}
}

// FuzzMatchSequence: the value log is written by the guest, so the check
// must take any sequence without panicking, and accept exactly the
// sequences that are the pattern with some optional steps left out.
func FuzzMatchSequence(f *testing.F) {
	f.Add([]byte{0, 1, 2, 1, 3}, uint8(0))
	f.Add([]byte{}, uint8(5))
	f.Add([]byte{0, 0, 0}, uint8(255))
	pattern := []step{{valueOld, false}, {mmioValue, true}, {valueShift, false}, {mmioValue, true}, {valueOld, false}, {valueFinal, false}}
	values := []uint64{valueOld, mmioValue, valueShift, valueFinal}
	f.Fuzz(func(t *testing.T, picks []byte, drop uint8) {
		seen := make([]uint64, 0, len(picks))
		for _, p := range picks {
			seen = append(seen, values[int(p)%len(values)])
		}
		_ = matchSequence(seen, pattern) // must not panic on anything
		// A pattern instance: drop the optional steps whose bit is set.
		var inst []uint64
		for i, s := range pattern {
			if s.optional && drop&(1<<i) != 0 {
				continue
			}
			inst = append(inst, s.v)
		}
		if err := matchSequence(inst, pattern); err != nil {
			t.Fatalf("instance %#x of the pattern refused: %v", inst, err)
		}
	})
}
