package kvm

import (
	"slices"
	"sync"
	"testing"
)

func TestHostDirtyMark(t *testing.T) {
	cases := []struct {
		name        string
		pages       uint64
		first, last uint64
		want        []uint64
	}{
		{"one page", 128, 3, 3, []uint64{1 << 3, 0}},
		{"run in a word", 128, 4, 7, []uint64{0xf0, 0}},
		{"across words", 128, 62, 65, []uint64{3 << 62, 3}},
		{"whole word", 128, 64, 127, []uint64{0, ^uint64(0)}},
		{"clipped at the slot end", 70, 66, 200, []uint64{0, 0xf << 2}},
		{"beyond the slot", 70, 80, 90, []uint64{0, 0}},
		{"reversed", 128, 9, 3, []uint64{0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newHostDirty(c.pages)
			d.mark(c.first, c.last)
			got := make([]uint64, len(c.want))
			d.collect(got, false)
			if !slices.Equal(got, c.want) {
				t.Fatalf("bits %#x, want %#x", got, c.want)
			}
		})
	}
}

func TestHostDirtyCollectAndClear(t *testing.T) {
	d := newHostDirty(200)
	d.mark(1, 1)
	d.mark(70, 71)
	d.mark(150, 150)

	// Manual protect: a get reports and keeps; KVM's own bits are kept.
	got := []uint64{1 << 5, 0, 0, 0}
	d.collect(got, false)
	if want := []uint64{1<<5 | 1<<1, 3 << 6, 1 << 22, 0}; !slices.Equal(got, want) {
		t.Fatalf("manual get %#x, want %#x", got, want)
	}
	if d.count() != 4 {
		t.Fatalf("a manual-protect get consumed host bits: %d left", d.count())
	}
	// ClearDirtyLog of pages [64, 128) with only page 70's bit set.
	d.clear(64, 64, []uint64{1 << 6})
	if d.count() != 3 {
		t.Fatalf("clear of one page left %d of 3", d.count())
	}
	// A clear whose num stops short of a set bit in its mask word must
	// not clear past num.
	d.clear(128, 20, []uint64{1 << 22})
	if d.count() != 3 {
		t.Fatal("clear went past first+num")
	}
	// An unaligned first is KVM's EINVAL: nothing changes.
	d.clear(1, 64, []uint64{^uint64(0)})
	if d.count() != 3 {
		t.Fatal("unaligned clear changed the record")
	}
	// Bitmap mode: the get takes the bits.
	got = make([]uint64, 4)
	d.collect(got, true)
	if want := []uint64{1 << 1, 1 << 7, 1 << 22, 0}; !slices.Equal(got, want) {
		t.Fatalf("bitmap get %#x, want %#x", got, want)
	}
	if d.count() != 0 {
		t.Fatal("a bitmap-mode get left bits behind")
	}
	// A short destination takes only what fits.
	d.mark(199, 199)
	d.collect(make([]uint64, 1), true)
	if d.count() != 1 {
		t.Fatal("a short bitmap took bits it could not report")
	}
	var nilRec *hostDirty // a slot without logging
	nilRec.mark(0, 5)
	nilRec.collect(got, true)
	nilRec.clear(0, 64, got)
}

// Pages written by devices while the host harvests are each reported by
// exactly one harvest: none lost, none twice.
func TestHostDirtyConcurrentHarvestLosesNothing(t *testing.T) {
	const pages, writers = 4096, 4
	d := newHostDirty(pages)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for p := uint64(w); p < pages; p += writers {
				d.mark(p, p)
			}
		}(w)
	}
	seen := make([]int, pages)
	harvest := func() {
		bm := make([]uint64, pages/64)
		d.collect(bm, true)
		for i, w := range bm {
			for b := 0; b < 64; b++ {
				if w&(1<<b) != 0 {
					seen[i*64+b]++
				}
			}
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		harvest()
	}
	harvest()
	for p, n := range seen {
		if n != 1 {
			t.Fatalf("page %d reported %d times", p, n)
		}
	}
}
