package a64guest

import (
	"errors"
	"testing"
)

// ModeForIPA picks the smallest PA size TCR_EL1.IPS has for an IPA size,
// and the 64K granule where only FEAT_LPA's format reaches.
func TestModeForIPA(t *testing.T) {
	for _, tc := range []struct {
		ipa  int
		want Mode
		err  bool
	}{
		{32, Mode{32, 48, Granule4K}, false},
		{33, Mode{36, 48, Granule4K}, false},
		{36, Mode{36, 48, Granule4K}, false},
		{40, Mode{40, 48, Granule4K}, false},
		{41, Mode{42, 48, Granule4K}, false},
		{44, Mode{44, 48, Granule4K}, false},
		{48, Mode{48, 48, Granule4K}, false},
		{49, Mode{52, 48, Granule64K}, false},
		{52, Mode{52, 48, Granule64K}, false},
		{53, Mode{}, true},
	} {
		m, err := ModeForIPA(tc.ipa)
		if (err != nil) != tc.err || m != tc.want {
			t.Errorf("ModeForIPA(%d) = %v, %v; want %v (error %t)", tc.ipa, m, err, tc.want, tc.err)
		}
		if err == nil {
			if verr := m.Validate(); verr != nil {
				t.Errorf("ModeForIPA(%d) = %v: %v", tc.ipa, m, verr)
			}
		}
	}
}

// FEAT_LPA's 64K descriptors: OA[47:16] in place and OA[51:48] in bits
// 15:12, worked out by hand from the Arm ARM's layout; 48-bit modes keep
// bits 47:12.
func TestLPADescriptors(t *testing.T) {
	lpa := Mode{52, 48, Granule64K}
	for _, tc := range []struct {
		name string
		m    Mode
		pa   uint64
		enc  uint64 // the address field
	}{
		{"LPA top 64K page", lpa, 0x000f_ffff_ffff_0000, 0x0000_ffff_ffff_f000},
		{"LPA bit 48", lpa, 1 << 48, 0x1000},
		{"LPA below 2^48", lpa, 0x0000_8000_1234_0000, 0x0000_8000_1234_0000},
		{"48-bit 64K", Mode{48, 48, Granule64K}, 0x0000_ffff_ffff_0000, 0x0000_ffff_ffff_0000},
		{"48-bit 4K", Mode{48, 48, Granule4K}, 0x0000_ffff_ffff_f000, 0x0000_ffff_ffff_f000},
	} {
		if got := tc.m.encodeOA(tc.pa); got != tc.enc {
			t.Errorf("%s: encodeOA(%#x) = %#x, want %#x", tc.name, tc.pa, got, tc.enc)
		}
		d := tc.m.leafDesc(UserData, 3, tc.pa)
		if d&^(descOAMask) != UserData.leaf(3, 0) {
			t.Errorf("%s: attribute bits %#x, want %#x", tc.name, d&^descOAMask, UserData.leaf(3, 0))
		}
		if got := tc.m.oa(d, 3); got != tc.pa {
			t.Errorf("%s: oa(leaf) = %#x, want %#x", tc.name, got, tc.pa)
		}
		if got := tc.m.oa(tc.m.tableDesc(tc.pa), 2); got != tc.pa {
			t.Errorf("%s: oa(table) = %#x, want %#x", tc.name, got, tc.pa)
		}
	}
	// The TCR of the 52-bit mode has IPS 0b110 and decodes back to it.
	tcr := lpa.TCR(false)
	if ips := tcr >> TCRIPSShift & 7; ips != 0b110 {
		t.Errorf("TCR %#x: IPS %#b, want 0b110", tcr, ips)
	}
	if m, err := ModeFromTCR(tcr); err != nil || m != lpa {
		t.Errorf("ModeFromTCR(%#x) = %v, %v", tcr, m, err)
	}
}

// A page at the top of a 52-bit PA space is mapped and translated as the
// CPU does, and 48-bit modes refuse it; the walker reads BADDR[51:48]
// from TTBR0 bits 5:2.
func TestLPAWalk(t *testing.T) {
	m := Mode{52, 48, Granule64K}
	pt, mem := newTables(t, m)
	const va, pa = 0x0000_ffff_ffff_0000, 0x000f_ffff_ffff_0000
	if err := pt.Map(va, pa, 0x10000, UserData); err != nil {
		t.Fatal(err)
	}
	w := &Walker{Mode: m, TTBR0: pt.Root, Mem: mem}
	tr, err := w.Translate(va+0xff8, Access{EL: 0, Write: true})
	if err != nil {
		t.Fatal(err)
	}
	if tr.PA != pa+0xff8 || tr.Level != 3 {
		t.Errorf("translation %#x at level %d, want %#x at 3", tr.PA, tr.Level, uint64(pa+0xff8))
	}
	// The same tables read with a 48-bit PA size: the leaf's address is
	// too wide, an address size fault at level 3.
	w48 := &Walker{Mode: Mode{48, 48, Granule64K}, TTBR0: pt.Root, Mem: mem}
	var f *Fault
	if _, err := w48.Translate(va, Access{EL: 1}); !errors.As(err, &f) || f.Kind != FaultAddressSize || f.Level != 3 {
		t.Errorf("48-bit walk of a 52-bit leaf: %v, want an address size fault at level 3", err)
	}
	if err := (&PageTables{Mode: Mode{48, 48, Granule64K}, Root: pt.Root, mem: mem, alloc: pt.alloc}).Map(va-0x10000, pa, 0x10000, UserData); err == nil {
		t.Error("a 48-bit mode mapped a 52-bit PA")
	}
	// TTBR0 with BADDR[51:48] = 1 puts the root at 2^48 + Root: unbacked
	// here, an external abort on the walk at the start level.
	wHigh := &Walker{Mode: m, TTBR0: pt.Root | 1<<2, Mem: mem}
	if _, err := wHigh.Translate(va, Access{EL: 1}); !errors.As(err, &f) || f.Kind != FaultWalkExternal || !errors.Is(err, errUnbacked) {
		t.Errorf("root at 2^48+%#x: %v, want an external abort on the walk", pt.Root, err)
	}
}

// MMFR0PABits reads PARange up to 52 bits; PABitsFromMMFR0 stays capped
// at 48 (what every granule reaches).
func TestMMFR0PABits(t *testing.T) {
	for _, tc := range []struct {
		parange  uint64
		all, cap int
	}{{0, 32, 32}, {2, 40, 40}, {5, 48, 48}, {6, 52, 48}, {7, 52, 48}} {
		if got := MMFR0PABits(tc.parange); got != tc.all {
			t.Errorf("PARange %d: MMFR0PABits %d, want %d", tc.parange, got, tc.all)
		}
		if got := PABitsFromMMFR0(tc.parange); got != tc.cap {
			t.Errorf("PARange %d: PABitsFromMMFR0 %d, want %d", tc.parange, got, tc.cap)
		}
	}
}
