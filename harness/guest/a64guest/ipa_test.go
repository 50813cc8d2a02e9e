package a64guest

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// A VM type with an IPA size gives the guest ModeForIPA's mode unless
// Config.Mode says otherwise; reserved bits alone leave the default.
func TestConfigModeFromVMType(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want Mode
		err  bool
	}{
		{"no type", Config{}, DefaultMode, false},
		{"32 bits", Config{VM: hv.VMConfig{ARM64Type: hv.ARM64IPASize(32)}}, Mode{32, 48, Granule4K}, false},
		{"44 bits", Config{VM: hv.VMConfig{ARM64Type: hv.ARM64IPASize(44)}}, Mode{44, 48, Granule4K}, false},
		{"52 bits", Config{VM: hv.VMConfig{ARM64Type: hv.ARM64IPASize(52)}}, Mode{52, 48, Granule64K}, false},
		{"52 bits, mode given", Config{Mode: Mode{48, 48, Granule16K}, VM: hv.VMConfig{ARM64Type: hv.ARM64IPASize(52)}}, Mode{48, 48, Granule16K}, false},
		{"reserved bit only", Config{VM: hv.VMConfig{ARM64Type: 1 << 8}}, DefaultMode, false},
		{"53 bits", Config{VM: hv.VMConfig{ARM64Type: hv.ARM64IPASize(53)}}, Mode{}, true},
	} {
		got, err := tc.cfg.withDefaults()
		if (err != nil) != tc.err || err == nil && got.Mode != tc.want {
			t.Errorf("%s: mode %v, %v; want %v (error %t)", tc.name, got.Mode, err, tc.want, tc.err)
		}
	}
}

// MapPhys maps identically where the VA range reaches and through the
// low VABits bits above it; the walker, configured by the TCR value,
// translates both, and a taken window or an unaligned range is refused.
func TestMapPhys(t *testing.T) {
	m := Mode{52, 48, Granule64K}
	g, err := newGuest(emu.New(emu.Options{}), Config{Mode: m})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	const top = 1<<52 - 0x10000
	cases := []struct{ gpa, va uint64 }{
		{0x4000_0000, 0x4000_0000},         // identity
		{1<<48 - 0x20000, 1<<48 - 0x20000}, // identity, the VA range's last but one page
		{top, top & (1<<48 - 1)},           // the 52-bit IPA space's last page: VA 2^48 - 64K
	}
	w, err := NewWalker(m.TCR(false), g.PT.Root, SCTLR(), g.VM)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		va, err := g.MapPhys(c.gpa, 0x10000, UserData)
		if err != nil || va != c.va {
			t.Fatalf("MapPhys(%#x) = %#x, %v; want %#x", c.gpa, va, err, c.va)
		}
		tr, err := w.Translate(va+0xff8, Access{EL: 0, Write: true})
		if err != nil || tr.PA != c.gpa+0xff8 {
			t.Errorf("translate %#x: %#x, %v; want %#x", va+0xff8, tr.PA, err, c.gpa+0xff8)
		}
	}
	if _, err := g.MapPhys(1<<49-0x10000, 0x10000, UserData); err == nil {
		t.Error("a second range mapped over the window of the top page")
	}
	if _, err := g.MapPhys(1<<50+0x1000, 0x1000, UserData); err == nil {
		t.Error("a range not aligned to the 64K page mapped")
	}
	if _, err := g.MapPhys(1<<49-0x10000, 0x20000, UserData); err == nil {
		t.Error("a window wrapping past the VA range mapped")
	}
}
