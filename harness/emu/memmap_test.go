package emu

import (
	"math/rand"
	"sort"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// TestMemMapChunks checks the chunked slot map against a plain sorted
// list through random creates, moves and deletes, past several chunk
// splits and merges: lookups, overlap checks and the public list agree.
func TestMemMapChunks(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	vm := &VM{}
	vm.mm.Store(&memMap{})
	live := map[uint32]*slot{}
	const pages = 4096 // GPA space in pages; slots are 1 or 2 pages
	for step := 0; step < 20000; step++ {
		id := uint32(rng.Intn(600))
		old := live[id]
		var nw *slot
		if rng.Intn(3) > 0 { // create or move
			n := uint64(1 + rng.Intn(2))
			gpa := uint64(rng.Intn(pages-2)) * hv.PageSize
			if o := vm.mm.Load().overlapping(id, gpa, n*hv.PageSize); o != nil {
				continue
			}
			nw = &slot{m: hv.Memslot{Slot: id, GPA: gpa, Size: n * hv.PageSize}}
		}
		if old == nil && nw == nil {
			continue
		}
		vm.publish(old, nw)
		if nw == nil {
			delete(live, id)
		} else {
			live[id] = nw
		}
		if step%500 != 0 {
			continue
		}
		var want []*slot
		for _, s := range live {
			want = append(want, s)
		}
		sort.Slice(want, func(i, j int) bool { return want[i].m.GPA < want[j].m.GPA })
		mm := vm.mm.Load()
		pub := mm.publicSlots()
		if len(pub) != len(want) {
			t.Fatalf("step %d: %d slots public, want %d", step, len(pub), len(want))
		}
		for i, s := range want {
			if pub[i] != s.m {
				t.Fatalf("step %d: public[%d] = %v, want %v", step, i, pub[i], s.m)
			}
		}
		for k := 0; k < 200; k++ {
			gpa := uint64(rng.Intn(pages)) * hv.PageSize
			var ref *slot
			for _, s := range want {
				if s.m.Contains(gpa + 8) {
					ref = s
				}
			}
			if got := mm.find(gpa + 8); got != ref {
				t.Fatalf("step %d: find(%#x) = %v, want %v", step, gpa+8, got, ref)
			}
		}
	}
	if n := len(vm.mm.Load().chunks); n < 3 {
		t.Fatalf("only %d chunks: the test never split one", n)
	}
}
