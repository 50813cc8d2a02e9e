package a64guest

import (
	"errors"
	"testing"
)

// FuzzWalker walks guest-controlled tables: the guest may rewrite its own
// page tables, and the host walks them to find a ucall record. Nothing may
// panic, and a translation or fault must be self-consistent.
func FuzzWalker(f *testing.F) {
	f.Add(uint8(0), uint64(0), uint64(0x1000), uint8(0), []byte{3, 0x10, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(1), uint64(0x4000), uint64(0x7ff8), uint8(5), []byte{0x43, 0x47, 0, 0, 0, 0, 0x60, 0})
	f.Add(uint8(2), uint64(0x10000), uint64(1<<47), uint8(3), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, sel uint8, ttbr, va uint64, acc uint8, data []byte) {
		if len(data) == 0 {
			return
		}
		m := allModes[int(sel)%len(allModes)]
		// 256 KiB of table memory: the fuzz data repeated.
		mem := &flatMem{b: make([]byte, 256<<10)}
		for i := range mem.b {
			mem.b[i] = data[i%len(data)]
		}
		a := accesses[int(acc)%len(accesses)]
		w := &Walker{Mode: m, TTBR0: ttbr, Mem: mem, HA: acc&8 != 0, WXN: acc&16 != 0}
		tr, err := w.Translate(va, a)
		if err != nil {
			var flt *Fault
			if !errors.As(err, &flt) || flt.Level < 0 || flt.Level > 3 || flt.VA != va || flt.FSC() > 0x17 {
				t.Fatalf("bad fault %v", err)
			}
			return
		}
		switch {
		case tr.PA >= m.PALimit():
			t.Fatalf("pa %#x beyond %d bits", tr.PA, m.PABits)
		case tr.Level < m.StartLevel() || tr.Level > 3 || tr.Size != m.LevelSize(tr.Level):
			t.Fatalf("level %d size %#x", tr.Level, tr.Size)
		case len(tr.Steps) != tr.Level-m.StartLevel()+1:
			t.Fatalf("%d steps to level %d", len(tr.Steps), tr.Level)
		case tr.PA&(tr.Size-1) != va&(tr.Size-1):
			t.Fatalf("offset not kept: va %#x pa %#x", va, tr.PA)
		case !tr.Perm.allows(a):
			t.Fatalf("translated a forbidden %v", a)
		}
	})
}
