package a64guest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// flatMem is guest memory for host-only tests: [base, base+len(b)).
type flatMem struct {
	base uint64
	b    []byte
}

var errUnbacked = errors.New("unbacked")

func (m *flatMem) span(gpa uint64, n int) ([]byte, error) {
	if gpa < m.base || gpa-m.base > uint64(len(m.b)) || uint64(n) > uint64(len(m.b))-(gpa-m.base) {
		return nil, fmt.Errorf("gpa %#x+%d: %w", gpa, n, errUnbacked)
	}
	return m.b[gpa-m.base : gpa-m.base+uint64(n)], nil
}

func (m *flatMem) ReadGPA(gpa uint64, b []byte) error {
	s, err := m.span(gpa, len(b))
	if err == nil {
		copy(b, s)
	}
	return err
}

func (m *flatMem) WriteGPA(gpa uint64, b []byte) error {
	s, err := m.span(gpa, len(b))
	if err == nil {
		copy(s, b)
	}
	return err
}

// bump hands out zeroed tables from [next, end) of mem.
func bump(m *flatMem, next, end, align uint64) func() (uint64, error) {
	return func() (uint64, error) {
		if next+align > end {
			return 0, errors.New("out of tables")
		}
		t := next
		next += align
		s, _ := m.span(t, int(align))
		clear(s)
		return t, nil
	}
}

// newTables gives a mode 64 MiB of memory at GPA 0 with tables from its
// first 8 MiB.
func newTables(t *testing.T, m Mode) (*PageTables, *flatMem) {
	t.Helper()
	mem := &flatMem{b: make([]byte, 8<<20)}
	pt, err := NewPageTables(m, mem, bump(mem, 0, 8<<20, m.Granule.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return pt, mem
}

func TestModeGeometry(t *testing.T) {
	const K, M, G = 1 << 10, 1 << 20, 1 << 30
	for _, tc := range []struct {
		mode    Mode
		start   int
		entries uint64 // of the start table
		sizes   [4]uint64
		blocks  []int
	}{
		{Mode{40, 48, Granule4K}, 0, 512, [4]uint64{512 * G, G, 2 * M, 4 * K}, []int{1, 2}},
		{Mode{40, 40, Granule4K}, 0, 2, [4]uint64{512 * G, G, 2 * M, 4 * K}, []int{1, 2}},
		{Mode{40, 39, Granule4K}, 1, 512, [4]uint64{512 * G, G, 2 * M, 4 * K}, []int{1, 2}},
		{Mode{36, 30, Granule4K}, 2, 512, [4]uint64{512 * G, G, 2 * M, 4 * K}, []int{1, 2}},
		{Mode{32, 25, Granule4K}, 2, 16, [4]uint64{512 * G, G, 2 * M, 4 * K}, []int{1, 2}},
		{Mode{48, 48, Granule16K}, 0, 2, [4]uint64{128 << 40, 64 * G, 32 * M, 16 * K}, []int{2}},
		{Mode{40, 47, Granule16K}, 1, 2048, [4]uint64{128 << 40, 64 * G, 32 * M, 16 * K}, []int{2}},
		{Mode{36, 36, Granule16K}, 2, 2048, [4]uint64{128 << 40, 64 * G, 32 * M, 16 * K}, []int{2}},
		{Mode{48, 48, Granule64K}, 1, 64, [4]uint64{0, 4 << 40, 512 * M, 64 * K}, []int{2}},
		{Mode{40, 42, Granule64K}, 2, 8192, [4]uint64{0, 4 << 40, 512 * M, 64 * K}, []int{2}},
		{Mode{40, 25, Granule64K}, 3, 512, [4]uint64{0, 4 << 40, 512 * M, 64 * K}, []int{2}},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			m := tc.mode
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := m.StartLevel(); got != tc.start {
				t.Fatalf("start level %d, want %d", got, tc.start)
			}
			if got := m.Entries(tc.start); got != tc.entries {
				t.Errorf("start table entries %d, want %d", got, tc.entries)
			}
			for l := max(tc.start, 1); l <= 3; l++ {
				if got := m.LevelSize(l); got != tc.sizes[l] {
					t.Errorf("level %d size %#x, want %#x", l, got, tc.sizes[l])
				}
			}
			if fmt.Sprint(m.BlockLevels()) != fmt.Sprint(tc.blocks) {
				t.Errorf("block levels %v, want %v", m.BlockLevels(), tc.blocks)
			}
		})
	}
}

func TestModeValidate(t *testing.T) {
	for _, m := range []Mode{{40, 49, Granule4K}, {40, 24, Granule4K}, {52, 48, Granule4K}, {52, 48, Granule16K}, {41, 48, Granule4K}, {40, 48, 13}} {
		if err := m.Validate(); err == nil {
			t.Errorf("%v: no error", m)
		}
	}
}

// The register values, against numbers worked out by hand from the Arm
// ARM's field positions (not from the constants above).
func TestSystemRegisterValues(t *testing.T) {
	for _, tc := range []struct {
		m   Mode
		tcr uint64
	}{
		{Mode{40, 48, Granule4K}, 0x2_8090_3510},
		{Mode{48, 42, Granule64K}, 0x5_c096_7516},
		{Mode{36, 47, Granule16K}, 0x1_4091_b511},
	} {
		if got := tc.m.TCR(false); got != tc.tcr {
			t.Errorf("%v: TCR %#x, want %#x", tc.m, got, tc.tcr)
		}
		if got := tc.m.TCR(true); got != tc.tcr|1<<39 {
			t.Errorf("%v: TCR with HA %#x", tc.m, got)
		}
	}
	if got := MAIR(); got != 0x4400_04ff {
		t.Errorf("MAIR %#x, want 0x440004ff", got)
	}
	if got := SCTLR(); got != 0x34d5_d81d {
		t.Errorf("SCTLR %#x, want 0x34d5d81d", got)
	}
	// A reserved TG0 and an unsupported IPS are refused.
	if _, err := ModeFromTCR(0x2_8090_3510 | 3<<14); err == nil {
		t.Error("TG0 0b11 decoded")
	}
	if _, err := ModeFromTCR(0x6_8090_3510); err == nil {
		t.Error("IPS 52 bits with the 4K granule (FEAT_LPA2) decoded")
	}
}

// allModes is the matrix of the page-table tests: every granule with the
// largest VA size, and VA sizes that start the walk at each level.
var allModes = []Mode{
	{40, 48, Granule4K}, {40, 39, Granule4K}, {36, 30, Granule4K},
	{48, 48, Granule16K}, {40, 47, Granule16K}, {40, 36, Granule16K},
	{48, 48, Granule64K}, {40, 42, Granule64K}, {40, 28, Granule64K},
}

func TestModeFromTCRRoundTrip(t *testing.T) {
	for _, m := range allModes {
		for _, ha := range []bool{false, true} {
			w, err := NewWalker(m.TCR(ha), 0x1000, SCTLR(), nil)
			if err != nil {
				t.Fatalf("%v: %v", m, err)
			}
			if w.Mode != m || w.HA != ha || w.WXN {
				t.Errorf("%v ha %v: walker %+v", m, ha, w)
			}
		}
	}
}

// accesses are the six kinds of access, in Perm's field order.
var accesses = []Access{{EL: 1}, {EL: 1, Write: true}, {EL: 1, Exec: true}, {EL: 0}, {EL: 0, Write: true}, {EL: 0, Exec: true}}

// permCases are attribute sets with the accesses the CPU allows, written
// as "el1 rwx el0 rwx" strings from the Arm ARM's tables, independently of
// Walker.perm.
var permCases = []struct {
	name  string
	attrs Attrs
	want  string
}{
	{"kernel code", KernelCode, "r-x---"},
	{"kernel data", KernelData, "rw----"},
	{"user code", UserCode, "r-xr-x"},
	{"user data", UserData, "rw-rw-"},
	{"el0-writable is pxn", Attrs{AP: APRW}, "rw-rwx"},
	{"el0 execute-only", Attrs{AP: APEL1RW}, "rwx--x"},
	{"el1 read-only, el0 execute-only", Attrs{AP: APEL1RO, PXN: true}, "r----x"},
	{"device", Device, "rw-rw-"},
}

func allowed(p Perm) string {
	b := []byte("------")
	for i, a := range accesses {
		if p.allows(a) {
			b[i] = "rwxrwx"[i]
		}
	}
	return string(b)
}

// TestMapAndWalk maps pages and blocks in every mode with every attribute
// set and checks each mapping through the walker: output address, level,
// and which of the six accesses fault with a permission fault.
func TestMapAndWalk(t *testing.T) {
	for _, m := range allModes {
		t.Run(m.String(), func(t *testing.T) {
			for i, pc := range permCases {
				pt, mem := newTables(t, m)
				g := m.Granule.Size()
				va := uint64(3+i) * 7 * g // distinct, granule aligned
				pa := 16<<20 + uint64(i)*g
				if err := pt.Map(va, pa, 2*g, pc.attrs); err != nil {
					t.Fatal(err)
				}
				w := &Walker{Mode: m, TTBR0: pt.Root, Mem: mem}
				for _, off := range []uint64{0, 8, g - 1, g, 2*g - 8} {
					tr, err := w.Translate(va+off, Access{EL: 1})
					if err != nil {
						t.Fatalf("%s: %v", pc.name, err)
					}
					if tr.PA != pa+off || tr.Level != 3 || tr.Size != g {
						t.Fatalf("%s: %#x -> %#x level %d size %#x, want %#x level 3", pc.name, va+off, tr.PA, tr.Level, tr.Size, pa+off)
					}
				}
				got := []byte("------")
				for k, a := range accesses {
					_, err := w.Translate(va, a)
					var f *Fault
					switch {
					case err == nil:
						got[k] = "rwxrwx"[k]
					case !errors.As(err, &f) || f.Kind != FaultPermission || f.Level != 3:
						t.Fatalf("%s %v: %v, want a level-3 permission fault or success", pc.name, a, err)
					}
				}
				if string(got) != pc.want {
					t.Errorf("%s: allowed %s, want %s", pc.name, got, pc.want)
				}
				tr, _ := w.Translate(va, Access{EL: 1})
				if allowed(tr.Perm) != pc.want || tr.Attrs != pc.attrs {
					t.Errorf("%s: perm %v attrs %v", pc.name, tr.Perm, tr.Attrs)
				}
			}
		})
	}
}

func TestMapBlocks(t *testing.T) {
	for _, m := range allModes {
		t.Run(m.String(), func(t *testing.T) {
			bl := m.BlockLevels()
			level := bl[len(bl)-1] // the smallest block
			if level < m.StartLevel() {
				t.Skipf("no blocks below start level %d", m.StartLevel())
			}
			bs := m.LevelSize(level)
			g := m.Granule.Size()
			if bs > 1<<30 {
				t.Skip("block too large for the test's address space")
			}
			mem := &flatMem{b: make([]byte, 8<<20)}
			pt, err := NewPageTables(m, mem, bump(mem, 0, 8<<20, g))
			if err != nil {
				t.Fatal(err)
			}
			// One page before a block boundary, a whole block, a page after.
			va, pa := 2*bs-g, 4*bs-g
			if va+bs+2*g > m.VASize() {
				t.Skip("VA range too small")
			}
			if err := pt.MapBlocks(va, pa, bs+2*g, UserData); err != nil {
				t.Fatal(err)
			}
			w := &Walker{Mode: m, TTBR0: pt.Root, Mem: mem}
			for _, tc := range []struct {
				va    uint64
				level int
			}{{va, 3}, {va + g, level}, {va + g + bs/2, level}, {va + bs, level}, {va + g + bs, 3}} {
				tr, err := w.Translate(tc.va, Access{EL: 0, Write: true})
				if err != nil {
					t.Fatal(err)
				}
				if tr.Level != tc.level || tr.PA != pa+(tc.va-va) {
					t.Errorf("%#x: level %d pa %#x, want level %d pa %#x", tc.va, tr.Level, tr.PA, tc.level, pa+(tc.va-va))
				}
			}
			// A page inside the block cannot be mapped, changed alone or unmapped alone.
			if err := pt.MapAt(3, va+g, 0, UserData); err == nil {
				t.Error("mapped a page inside a block")
			}
			if err := pt.Protect(va+g, g, KernelData); err == nil {
				t.Error("protected part of a block")
			}
			if err := pt.Protect(va+g, bs, KernelData); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Translate(va+g, Access{EL: 0}); !isFault(err, FaultPermission, level) {
				t.Errorf("EL0 read of a protected block: %v", err)
			}
			if err := pt.Unmap(va+g, bs); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Translate(va+g+bs/2, Access{EL: 1}); !isFault(err, FaultTranslation, level) {
				t.Errorf("read of an unmapped block: %v", err)
			}
		})
	}
}

func isFault(err error, k FaultKind, level int) bool {
	var f *Fault
	return errors.As(err, &f) && f.Kind == k && f.Level == level
}

func TestBuilderErrors(t *testing.T) {
	m := Mode{40, 48, Granule16K}
	pt, _ := newTables(t, m)
	g := m.Granule.Size()
	if err := pt.MapAt(1, 0, 0, UserData); err == nil {
		t.Error("16K level-1 block accepted")
	}
	if err := pt.MapAt(3, g/2, 0, UserData); err == nil {
		t.Error("misaligned VA accepted")
	}
	if err := pt.MapAt(3, 0, g+4096, UserData); err == nil {
		t.Error("misaligned PA accepted")
	}
	if err := pt.MapAt(3, 1<<48, 0, UserData); err == nil {
		t.Error("VA beyond 48 bits accepted")
	}
	if err := pt.MapAt(3, 0, 1<<40, UserData); err == nil {
		t.Error("PA beyond 40 bits accepted")
	}
	if err := pt.Map(0, 0, g+1, UserData); err == nil {
		t.Error("size not a granule multiple accepted")
	}
	if err := pt.Map(g, g, g, UserData); err != nil {
		t.Fatal(err)
	}
	if err := pt.Map(g, 2*g, g, UserData); err == nil {
		t.Error("remapping a valid page accepted")
	}
	if err := pt.MapAt(2, 0, 0, UserData); err == nil {
		t.Error("block over a table accepted")
	}
	if err := pt.Protect(3*g, g, UserData); err == nil {
		t.Error("protecting an unmapped page accepted")
	}
	// Table allocation failures are errors too.
	mem := &flatMem{b: make([]byte, 1<<20)}
	small, err := NewPageTables(m, mem, bump(mem, 0, 2*g, g))
	if err != nil {
		t.Fatal(err)
	}
	if err := small.Map(0, 0, g, UserData); err == nil {
		t.Error("mapping with too few tables succeeded")
	}
	bad, _ := NewPageTables(m, mem, func() (uint64, error) { return 4096, nil })
	if bad != nil {
		t.Error("a misaligned table was accepted as root")
	}
}

// TestWalkerFaults builds broken and restricted descriptors by hand and
// checks the fault the walker predicts, with its ESR fault status code.
func TestWalkerFaults(t *testing.T) {
	for _, m := range allModes {
		t.Run(m.String(), func(t *testing.T) {
			g := m.Granule.Size()
			start := m.StartLevel()
			fresh := func() (*PageTables, *Walker) {
				pt, mem := newTables(t, m)
				if err := pt.Map(4*g, 16<<20, 2*g, UserData); err != nil {
					t.Fatal(err)
				}
				return pt, &Walker{Mode: m, TTBR0: pt.Root, Mem: mem}
			}
			// The last-level table for 4*g covers this too.
			neighbour := 6 * g
			far := m.VASize() - g // a different start-level entry when start < 3
			for _, tc := range []struct {
				name  string
				edit  func(pt *PageTables, w *Walker)
				va    uint64
				acc   Access
				kind  FaultKind
				level int
			}{
				{"unmapped neighbour", nil, neighbour, Access{EL: 1}, FaultTranslation, 3},
				{"unmapped far", nil, far, Access{EL: 1}, FaultTranslation, map[bool]int{true: start, false: 3}[start < 3]},
				{"above the VA range", nil, m.VASize(), Access{EL: 1}, FaultTranslation, 0},
				{"upper half", nil, ^uint64(0) &^ (g - 1), Access{EL: 1}, FaultTranslation, 0},
				{"no AF", func(pt *PageTables, w *Walker) { must(t, pt.ClearAccessFlag(4*g)) }, 4 * g, Access{EL: 1}, FaultAccessFlag, 3},
				{"AF before permission", func(pt *PageTables, w *Walker) { must(t, pt.ClearAccessFlag(4*g)) }, 4 * g, Access{EL: 0, Exec: true}, FaultAccessFlag, 3},
				{"exec of data", nil, 4 * g, Access{EL: 1, Exec: true}, FaultPermission, 3},
				{"reserved level-3 encoding", func(pt *PageTables, w *Walker) {
					s, _, _ := pt.Leaf(4 * g)
					must(t, pt.SetLeaf(4*g, s.Desc&^DescPage))
				}, 4 * g, Access{EL: 1}, FaultTranslation, 3},
				{"output beyond PA size", func(pt *PageTables, w *Walker) {
					if m.PABits == 48 {
						w.Mode.PABits = 40 // make the same tables too wide for a smaller PA size
					}
					s, _, _ := pt.Leaf(4 * g)
					must(t, pt.SetLeaf(4*g, s.Desc|1<<45))
				}, 4 * g, Access{EL: 1}, FaultAddressSize, 3},
				{"TTBR beyond PA size", func(pt *PageTables, w *Walker) {
					w.TTBR0 |= 1 << 44
					if m.PABits == 48 {
						w.Mode.PABits = 40
					}
				}, 4 * g, Access{EL: 1}, FaultAddressSize, 0},
				{"ASID and CnP are not address bits", func(pt *PageTables, w *Walker) { w.TTBR0 |= 0x1234<<48 | 1 }, 4 * g, Access{EL: 1}, -1, 0},
				{"HA sets AF instead of faulting", func(pt *PageTables, w *Walker) {
					must(t, pt.ClearAccessFlag(4*g))
					w.HA = true
				}, 4 * g, Access{EL: 0, Write: true}, -1, 0},
				{"HD: a write to a writable-clean page clears AP[2] instead of faulting", func(pt *PageTables, w *Walker) {
					must(t, pt.Protect(4*g, g, Attrs{AP: APEL1RO, DBM: true, UXN: true}))
					w.HA, w.HD = true, true
				}, 4 * g, Access{EL: 1, Write: true}, -1, 0},
				{"DBM without HD", func(pt *PageTables, w *Walker) {
					must(t, pt.Protect(4*g, g, Attrs{AP: APEL1RO, DBM: true, UXN: true}))
					w.HA = true
				}, 4 * g, Access{EL: 1, Write: true}, FaultPermission, 3},
				{"HD without DBM", func(pt *PageTables, w *Walker) {
					must(t, pt.Protect(4*g, g, Attrs{AP: APEL1RO, UXN: true}))
					w.HA, w.HD = true, true
				}, 4 * g, Access{EL: 1, Write: true}, FaultPermission, 3},
				{"HD without HA is ignored", func(pt *PageTables, w *Walker) {
					must(t, pt.Protect(4*g, g, Attrs{AP: APEL1RO, DBM: true, UXN: true}))
					w.HD = true
				}, 4 * g, Access{EL: 1, Write: true}, FaultPermission, 3},
				{"WXN", func(pt *PageTables, w *Walker) {
					must(t, pt.Protect(4*g, g, Attrs{AP: APEL1RW}))
					w.WXN = true
				}, 4 * g, Access{EL: 1, Exec: true}, FaultPermission, 3},
				{"table outside memory", func(pt *PageTables, w *Walker) {
					steps, _ := pt.Walk(4 * g)
					if len(steps) < 2 { // the root is the last level
						w.TTBR0 = 1 << 30
						return
					}
					s := steps[len(steps)-2]
					must(t, write64(pt.mem, s.EntryGPA, tableDesc(1<<30)))
				}, 4 * g, Access{EL: 1}, FaultWalkExternal, 3},
			} {
				pt, w := fresh()
				if tc.edit != nil {
					tc.edit(pt, w)
				}
				_, err := w.Translate(tc.va, tc.acc)
				if tc.kind == -1 {
					if err != nil {
						t.Errorf("%s: %v", tc.name, err)
					}
					continue
				}
				var f *Fault
				if !errors.As(err, &f) || f.Kind != tc.kind || f.Level != tc.level {
					t.Errorf("%s: %v, want %v fault at level %d", tc.name, err, tc.kind, tc.level)
				}
			}
		})
	}
}

// Table descriptors restrict everything below them (hierarchical
// permissions); only levels above 3 have table descriptors.
func TestWalkerTableRestrictions(t *testing.T) {
	for _, m := range allModes {
		if m.StartLevel() == 3 {
			continue
		}
		t.Run(m.String(), func(t *testing.T) {
			for _, tc := range []struct {
				bits uint64
				want string
			}{
				{0, "rw-rwx"},
				// The restrictions apply before the implicit rule: memory EL0
				// can no longer write becomes executable at EL1.
				{TableAPRO, "r-xr-x"},
				{TableAPNoEL0, "rwx--x"},
				{TableAPRO | TableAPNoEL0, "r-x--x"},
				{TableUXN, "rw-rw-"},
				{TablePXN | TableUXN, "rw-rw-"},
			} {
				pt, mem := newTables(t, m)
				g := m.Granule.Size()
				must(t, pt.Map(0x10*g, 0x20*g, g, Attrs{AP: APRW}))
				steps, err := pt.Walk(0x10 * g)
				if err != nil {
					t.Fatal(err)
				}
				s := steps[len(steps)-2] // the table descriptor above the page
				must(t, write64(mem, s.EntryGPA, s.Desc|tc.bits))
				w := &Walker{Mode: m, TTBR0: pt.Root, Mem: mem}
				got := []byte("------")
				for k, a := range accesses {
					if _, err := w.Translate(0x10*g, a); err == nil {
						got[k] = "rwxrwx"[k]
					} else if !isFault(err, FaultPermission, 3) {
						t.Fatalf("%v: %v", a, err)
					}
				}
				if string(got) != tc.want {
					t.Errorf("table bits %#x: %s, want %s", tc.bits, got, tc.want)
				}
			}
		})
	}
}

func TestFSC(t *testing.T) {
	for _, tc := range []struct {
		f    Fault
		want uint32
	}{
		{Fault{Kind: FaultAddressSize, Level: 0}, 0x00},
		{Fault{Kind: FaultTranslation, Level: 3}, 0x07},
		{Fault{Kind: FaultTranslation, Level: 1}, 0x05},
		{Fault{Kind: FaultAccessFlag, Level: 3}, 0x0b},
		{Fault{Kind: FaultPermission, Level: 2}, 0x0e},
		{Fault{Kind: FaultWalkExternal, Level: 3}, 0x17},
	} {
		if got := tc.f.FSC(); got != tc.want {
			t.Errorf("%v level %d: FSC %#x, want %#x", tc.f.Kind, tc.f.Level, got, tc.want)
		}
	}
}

// TestRandomMappings maps random page and block runs with random
// attributes in every mode, keeps a model of every page, and walks every
// page of the range: mapped pages translate to the model's address with
// its attributes, the rest fault with a translation fault.
func TestRandomMappings(t *testing.T) {
	seed := uint64(20261205)
	for _, m := range allModes {
		t.Run(m.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(m.Granule)<<8|uint64(m.VABits)))
			g := m.Granule.Size()
			const pages = 256
			type want struct {
				pa    uint64
				attrs Attrs
			}
			model := map[uint64]want{}
			pt, mem := newTables(t, m)
			attrSets := []Attrs{KernelCode, KernelData, UserCode, UserData, Device, {AP: APEL1RW, NG: true, Mem: MemNormalNC}}
			for i := 0; i < 60; i++ {
				first := uint64(rng.IntN(pages))
				n := uint64(1 + rng.IntN(8))
				if first+n > pages {
					n = pages - first
				}
				free := true
				for p := first; p < first+n; p++ {
					if _, ok := model[p]; ok {
						free = false
					}
				}
				if !free {
					continue
				}
				pa := uint64(rng.IntN(1<<20)) * g % m.PALimit()
				a := attrSets[rng.IntN(len(attrSets))]
				va := 0x40*g + first*g
				if err := pt.Map(va, pa, n*g, a); err != nil {
					t.Fatal(err)
				}
				for p := uint64(0); p < n; p++ {
					model[first+p] = want{pa + p*g, a}
				}
			}
			w := &Walker{Mode: m, TTBR0: pt.Root, Mem: mem}
			for p := uint64(0); p < pages; p++ {
				va := 0x40*g + p*g
				tr, err := w.Translate(va+8, Access{EL: 1})
				wt, ok := model[p]
				switch {
				case !ok && !isFault(err, FaultTranslation, 3):
					t.Errorf("page %d: %v, want a level-3 translation fault", p, err)
				case ok && err != nil:
					t.Errorf("page %d: %v", p, err)
				case ok && (tr.PA != wt.pa+8 || tr.Attrs != wt.attrs):
					t.Errorf("page %d: pa %#x attrs %v, want %#x %v", p, tr.PA, tr.Attrs, wt.pa+8, wt.attrs)
				}
			}
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDescriptorBits(t *testing.T) {
	// A level-3 user data page at 0x12345000 and a level-2 block, against
	// hand-assembled values: valid|page, AttrIndx 0, AP 01, SH 11, AF,
	// PXN, UXN.
	if got := UserData.leaf(3, 0x12345000); got != 0x0060_0000_1234_5743 {
		t.Errorf("page %#x", got)
	}
	if got := Device.leaf(2, 0x4000_0000); got != 0x0060_0000_4000_0445 {
		t.Errorf("block %#x", got)
	}
	if got := (Attrs{AP: APRO, NG: true, NoAF: true}).leaf(3, 0x1000); got != 0x18c3 {
		t.Errorf("ng no-af page %#x", got)
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], tableDesc(0x8000))
	if b[0] != 3 || b[1] != 0x80 {
		t.Errorf("table descriptor % x", b)
	}
}

func TestMMFR0(t *testing.T) {
	for _, tc := range []struct {
		mmfr0   uint64
		granule string // supported granules
		pa      int
	}{
		// A Cortex-A72-like value: 4K and 64K, no 16K, 44-bit PA.
		{0x0000_0000_0000_1124, "4K 64K", 44},
		// Apple-like: 4K and 16K, no 64K, 42-bit PA.
		{0x0000_0000_0f10_0003, "4K 16K", 42},
		// All three, 16K with 52 bits, 4K with 52 bits, 52-bit PA (capped).
		{0x0000_0000_1020_0006, "4K 16K 64K", 48},
		// 64K only, 32-bit PA.
		{0x0000_0000_f000_0000, "64K", 32},
	} {
		var got []string
		for _, g := range Granules {
			if SupportsGranule(tc.mmfr0, g) {
				got = append(got, g.String())
			}
		}
		if s := fmt.Sprint(got); s != "["+tc.granule+"]" {
			t.Errorf("%#x: granules %s, want %s", tc.mmfr0, s, tc.granule)
		}
		if pa := PABitsFromMMFR0(tc.mmfr0); pa != tc.pa {
			t.Errorf("%#x: PA bits %d, want %d", tc.mmfr0, pa, tc.pa)
		}
	}
}
