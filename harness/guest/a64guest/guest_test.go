package a64guest

import (
	"errors"
	"testing"

	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// The bundled backend runs x86 guests only: New says so with an error
// that wraps hv.ErrUnsupported, after building (and freeing) the guest.
// With vCPU features it refuses the same way (its VMs are no hv.ARM64VM).
func TestNewRefusesBackendWithoutARM64(t *testing.T) {
	for _, cfg := range []Config{{}, {Features: hv.ARM64VCPUFeatures{PMUv3: true}}} {
		g, err := New(emu.New(emu.Options{}), cfg)
		if g != nil || !errors.Is(err, ErrNotARM64) || !errors.Is(err, hv.ErrUnsupported) {
			t.Fatalf("New on emu with features %+v = %v, %v; want ErrNotARM64", cfg.Features, g, err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{VCPUs: MaxVCPUs + 1},
		{MemSize: 0x12345},
		{MemSize: UcallMMIOGPA + 0x10000},
		{Mode: Mode{32, 48, Granule4K}, MemSize: 1 << 33},
		{Mode: Mode{40, 50, Granule4K}},
		{Layout: Layout{Code: 0x8000}},
		{Layout: Layout{Code: PageTableBase}},
		{Layout: Layout{Code: 0xf00000, CodeSize: 0x200000}},
		{HD: true}, // TCR_EL1.HD without HA is ignored: refused
	} {
		if _, err := cfg.withDefaults(); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// TestIdentityMap builds the guest's page tables in every granule and
// checks every page of slot 0, the ucall page and the page past memory
// through the walker that the TCR value itself configures: each area has
// its attributes, VA == PA, the null guard and the rest are unmapped.
func TestIdentityMap(t *testing.T) {
	for _, m := range []Mode{DefaultMode, {40, 47, Granule16K}, {36, 42, Granule64K}, {40, 39, Granule4K}} {
		t.Run(m.String(), func(t *testing.T) {
			g, err := newGuest(emu.New(emu.Options{}), Config{Mode: m})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			w, err := NewWalker(m.TCR(false), g.PT.Root, SCTLR(), g.VM)
			if err != nil {
				t.Fatal(err)
			}
			l := g.cfg.Layout
			want := func(va uint64) (Attrs, bool) {
				in := func(base, size uint64) bool { return va >= base && va < base+size }
				switch {
				case va < RuntimeBase, va >= g.cfg.MemSize && !in(UcallMMIOGPA, m.Granule.Size()):
					return Attrs{}, false
				case in(RuntimeBase, RuntimeSize):
					return KernelCode, true
				case in(l.VCPUBlocks, MaxVCPUs*VCPUBlockSize):
					if (va-l.VCPUBlocks)%VCPUBlockSize < el1HalfSize {
						return KernelData, true
					}
					return UserData, true
				case in(l.PageTables, l.PageTableSize):
					return KernelData, true
				case in(l.Code, l.CodeSize):
					return UserCode, true
				case in(UcallMMIOGPA, m.Granule.Size()):
					return Device, true
				}
				return UserData, true
			}
			g0 := m.Granule.Size()
			pages := append([]uint64{UcallMMIOGPA, UcallMMIOGPA + g0, g.cfg.MemSize}, 0)
			for va := uint64(0); va < g.cfg.MemSize; va += g0 {
				pages = append(pages, va)
			}
			for _, va := range pages {
				a, mapped := want(va)
				tr, err := w.Translate(va+g0-8, Access{EL: 1})
				switch {
				case !mapped && err == nil:
					t.Fatalf("%#x is mapped (%v), want unmapped", va, tr.Attrs)
				case !mapped:
					var f *Fault
					if !errors.As(err, &f) || f.Kind != FaultTranslation {
						t.Fatalf("%#x: %v", va, err)
					}
				case err != nil:
					t.Fatalf("%#x: %v", va, err)
				case tr.PA != va+g0-8 || tr.Attrs != a:
					t.Fatalf("%#x: pa %#x attrs %v, want identity with %v", va, tr.PA, tr.Attrs, a)
				}
			}
		})
	}
}
