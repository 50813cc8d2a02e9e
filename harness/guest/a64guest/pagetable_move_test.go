package a64guest

import "testing"

// TestMoveLeafTable moves the last-level table of a mapping in every mode:
// the walker still translates every page it maps, through the copy, the
// returned descriptor address is the one the walk ends at, and the entry
// above keeps its bits but the address; bad targets are errors.
func TestMoveLeafTable(t *testing.T) {
	for _, m := range allModes {
		t.Run(m.String(), func(t *testing.T) {
			pt, mem := newTables(t, m)
			g := m.Granule.Size()
			va, pa := min(5*m.LevelSize(2), m.VASize()/2), uint64(16<<20)
			must(t, pt.Map(va, pa, 3*g, KernelData))
			before, err := pt.Walk(va + g)
			must(t, err)
			to := uint64(7<<20) + g // in the test memory, above the tables in use
			entry, err := pt.MoveLeafTable(va+g, to)
			if m.StartLevel() == 3 {
				if err == nil {
					t.Fatal("moved the root table")
				}
				return
			}
			must(t, err)
			after, err := pt.Walk(va + g)
			must(t, err)
			leaf, parent := after[len(after)-1], after[len(after)-2]
			if entry != leaf.EntryGPA || entry < to || entry >= to+g {
				t.Fatalf("descriptor at %#x, the walk ends at %#x (table copied to %#x)", entry, leaf.EntryGPA, to)
			}
			if leaf.Desc != before[len(before)-1].Desc {
				t.Errorf("descriptor %#x after the move, %#x before", leaf.Desc, before[len(before)-1].Desc)
			}
			if old := before[len(before)-2].Desc; parent.Desc&^descOAMask != old&^descOAMask || m.oa(parent.Desc, parent.Level) != to {
				t.Errorf("entry above: %#x, was %#x, want the same bits pointing at %#x", parent.Desc, old, to)
			}
			w := &Walker{Mode: m, TTBR0: pt.Root, Mem: mem}
			for i := uint64(0); i < 3; i++ {
				tr, err := w.Translate(va+i*g+8, Access{EL: 1})
				if err != nil || tr.PA != pa+i*g+8 {
					t.Errorf("page %d after the move: %#x, %v", i, tr.PA, err)
				}
			}
			for _, bad := range []uint64{to + 8, m.PALimit()} {
				if _, err := pt.MoveLeafTable(va, bad); err == nil {
					t.Errorf("move to %#x: no error", bad)
				}
			}
			if _, err := pt.MoveLeafTable(va+8*g, to); err == nil {
				t.Error("move the table of an unmapped address: no error")
			}
		})
	}
}
