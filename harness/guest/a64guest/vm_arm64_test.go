//go:build arm64

package a64guest_test

// These tests run the runtime on a real arm64 vCPU: KVM on an arm64 host
// (or inside an arm64 kernel under QEMU, see docs). Elsewhere, and until
// the kvm backend's vCPUs offer ONE_REG access, they skip with the reason.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/kvm"
)

// arm64Guest opens the kvm backend and builds a guest, or skips when no
// backend here runs arm64 guests.
func arm64Guest(t *testing.T, cfg a64guest.Config) *a64guest.Guest {
	t.Helper()
	h, err := kvm.Open(kvm.Options{})
	if err != nil {
		t.Skipf("no backend runs arm64 guests here: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	g, err := a64guest.New(h, cfg)
	if errors.Is(err, a64guest.ErrNotARM64) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// hostModes are the translation modes this CPU offers, read from a vCPU's
// ID_AA64MMFR0_EL1: every granule it has, with the largest VA size.
func hostModes(t *testing.T) []a64guest.Mode {
	g := arm64Guest(t, a64guest.Config{})
	mmfr0, _ := a64.Sys("ID_AA64MMFR0_EL1")
	v, err := g.Reg(0).GetOneReg(a64guest.RegSys(mmfr0))
	if err != nil {
		t.Fatalf("ID_AA64MMFR0_EL1: %v", err)
	}
	var modes []a64guest.Mode
	for _, gr := range a64guest.Granules {
		if a64guest.SupportsGranule(v, gr) {
			modes = append(modes, a64guest.Mode{PABits: 40, VABits: 48, Granule: gr})
		} else {
			t.Logf("granule %v: not supported by this CPU (ID_AA64MMFR0_EL1 %#x)", gr, v)
		}
	}
	return modes
}

func expectSync(t *testing.T, g *a64guest.Guest, ctx context.Context, stage uint64) *guest.Ucall {
	t.Helper()
	ev, err := g.Run(ctx, 0)
	if err != nil {
		t.Fatalf("stage %d: %v", stage, err)
	}
	if ev.Exit != nil {
		t.Fatalf("stage %d: %v", stage, g.Unexpected(0, ev.Exit))
	}
	if ev.Ucall.Cmd != guest.UcallSync || ev.Ucall.Stage() != stage {
		t.Fatalf("got %v, want SYNC %d", ev.Ucall, stage)
	}
	return ev.Ucall
}

// TestVMRuntime boots the runtime in every granule the CPU has, moves
// between EL1 and EL0, takes an expected permission fault whose ESR must
// carry the fault status code the host's walker predicts, and ends on an
// unexpected BRK reported with its vector and the Go line that built it.
func TestVMRuntime(t *testing.T) {
	for _, mode := range hostModes(t) {
		t.Run(mode.String(), func(t *testing.T) {
			g := arm64Guest(t, a64guest.Config{Mode: mode})
			p := g.Program()
			p.Mov(a64.X5, a64.Imm(0x55))
			p.Sync(1, a64.X0)
			p.ToEL0()
			p.Sync(2, a64.X5)
			fix := p.NewLabel()
			p.ExpectException(fix)
			p.Sub(a64.X6, a64.X28, a64.Imm(0x10000)) // the vCPU's EL1 block
			p.Ldr(a64.X7, a64.Ptr(a64.X6, 0))
			p.Fail("EL0 read EL1 data")
			p.Bind(fix)
			p.Ldr(a64.X8, a64.Ptr(a64.X28, a64guest.ExcESR))
			p.Ldr(a64.X9, a64.Ptr(a64.X28, a64guest.ExcFAR))
			p.Sync(3, a64.X8, a64.X9)
			p.ToEL1()
			p.Sync(4, a64.X5)
			p.Brk(7)
			p.Done()
			if err := g.Load(p); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if u := expectSync(t, g, ctx, 1); u.Args[1] != 0 {
				t.Errorf("vcpu index %#x", u.Args[1])
			}
			if u := expectSync(t, g, ctx, 2); u.Args[1] != 0x55 {
				t.Errorf("x5 at EL0 %#x", u.Args[1])
			}
			u := expectSync(t, g, ctx, 3)
			el1 := g.UserBlock(0) - 0x10000
			_, ferr := g.Walker().Translate(el1, a64guest.Access{EL: 0})
			var f *a64guest.Fault
			if !errors.As(ferr, &f) {
				t.Fatalf("walker predicts no fault: %v", ferr)
			}
			x := a64guest.Exception{ESR: u.Args[1]}
			if x.EC() != a64guest.ECDABTLower || x.FSC() != f.FSC() || u.Args[2] != el1 {
				t.Errorf("EL0 read of EL1 data: esr %#x far %#x; want EC %#x FSC %#x (%v) far %#x",
					u.Args[1], u.Args[2], a64guest.ECDABTLower, f.FSC(), f, el1)
			}
			expectSync(t, g, ctx, 4)
			_, err := g.Run(ctx, 0)
			var xe *a64guest.ExceptionError
			if !errors.As(err, &xe) || xe.Vector != a64guest.VecSyncEL1t || xe.EC() != a64guest.ECBRK64 ||
				!strings.Contains(xe.Source, "vm_arm64_test.go") {
				t.Fatalf("BRK: %v, want an unexpected BRK through %s built in this file", err, a64guest.VectorName(a64guest.VecSyncEL1t))
			}
		})
	}
}

// TestVMHandler installs a BRK handler that skips the instruction and
// reports from inside the handler; the interrupted registers survive.
func TestVMHandler(t *testing.T) {
	g := arm64Guest(t, a64guest.Config{})
	err := g.Handle(a64guest.Handler{Vector: a64guest.VecSyncEL1t, Body: func(p *a64guest.Program, f a64guest.Frame) {
		p.Mov(a64.X5, a64.Imm(0))
		p.Ldr(a64.X0, f.ELR)
		p.Add(a64.X0, a64.X0, a64.Imm(4))
		p.Str(a64.X0, f.ELR)
		p.Ldr(a64.X1, f.ESR)
		p.Sync(9, a64.X1)
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := g.Program()
	p.Mov(a64.X5, a64.Imm(0x55))
	p.Brk(3)
	p.Sync(10, a64.X5)
	p.Done()
	if err := g.Load(p); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []uint64
	err = g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
		got = append(got, u.Args...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{9, uint64(a64guest.ECBRK64)<<26 | 1<<25 | 3, 10, 0x55}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Fatalf("ucalls %#x, want %#x", got, want)
	}
	if n, err := g.HandlerCount(0, a64guest.VecSyncEL1t); err != nil || n != 1 {
		t.Fatalf("handler count %d, %v", n, err)
	}
}

// TestVMWalkerProbes is the walker's differential test on a real vCPU:
// pages with each attribute set are read, written and fetched at EL1 and
// EL0, and every outcome must be what the walker predicts (success, or
// the abort's EC and fault status code).
func TestVMWalkerProbes(t *testing.T) {
	for _, mode := range hostModes(t) {
		t.Run(mode.String(), func(t *testing.T) {
			g := arm64Guest(t, a64guest.Config{Mode: mode})
			gs := mode.Granule.Size()
			sets := []a64guest.Attrs{a64guest.KernelCode, a64guest.KernelData, a64guest.UserCode, a64guest.UserData,
				{AP: a64guest.APRW}, {AP: a64guest.APEL1RW}, {AP: a64guest.APEL1RO, PXN: true}, {AP: a64guest.APRW, NoAF: true}}
			type probe struct {
				va  uint64
				acc a64guest.Access
			}
			var probes []probe
			for k, a := range sets {
				pa, err := g.Alloc(gs, gs)
				if err != nil {
					t.Fatal(err)
				}
				va := 0x4000_0000 + uint64(k)*gs
				if err := g.PT.Map(va, pa, gs, a); err != nil {
					t.Fatal(err)
				}
				ret := []byte{0xc0, 0x03, 0x5f, 0xd6} // RET
				if err := g.VM.WriteGPA(pa, ret); err != nil {
					t.Fatal(err)
				}
				for _, el := range []int{1, 0} {
					for _, acc := range []a64guest.Access{{EL: el}, {EL: el, Write: true}, {EL: el, Exec: true}} {
						p := probe{va: va, acc: acc}
						if !acc.Exec {
							p.va += 8
						}
						probes = append(probes, p)
					}
				}
			}
			logAt, err := g.Alloc(8*uint64(len(probes)), 8)
			if err != nil {
				t.Fatal(err)
			}
			p := g.Program()
			p.Mov(a64.X26, a64.Imm(int64(logAt)))
			for _, pr := range probes {
				kind := a64guest.ProbeRead
				switch {
				case pr.acc.Exec:
					kind = a64guest.ProbeFetch
				case pr.acc.Write:
					kind = a64guest.ProbeWrite
				}
				p.Mov(a64.X6, a64.Imm(int64(pr.va)))
				if pr.acc.EL == 0 {
					p.ToEL0()
				}
				p.Probe(kind, a64.X6, a64.X8)
				if pr.acc.EL == 0 {
					p.ToEL1()
				}
				p.Str(a64.X8, a64.PostIndex(a64.X26, 8))
			}
			p.Done()
			if err := g.Load(p); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := g.RunUntilDone(ctx, 0, nil); err != nil {
				t.Fatal(err)
			}
			w := g.Walker()
			for i, pr := range probes {
				esr, err := g.VM.Load64(logAt + 8*uint64(i))
				if err != nil {
					t.Fatal(err)
				}
				_, ferr := w.Translate(pr.va, pr.acc)
				var f *a64guest.Fault
				x := a64guest.Exception{ESR: esr}
				switch {
				case ferr == nil && esr != 0:
					t.Errorf("%#x %v: walker allows it; the CPU took %v", pr.va, pr.acc, x)
				case ferr != nil && (!errors.As(ferr, &f) || esr == 0 || x.FSC() != f.FSC() || !x.IsAbort()):
					t.Errorf("%#x %v: walker predicts %v (FSC %#x); the CPU: esr %#x", pr.va, pr.acc, ferr, faultFSC(f), esr)
				}
			}
		})
	}
}

func faultFSC(f *a64guest.Fault) uint32 {
	if f == nil {
		return 0
	}
	return f.FSC()
}

// TestVMRunAll runs two vCPUs at once: each reports its index and the
// address of its own user block, then ends.
func TestVMRunAll(t *testing.T) {
	g := arm64Guest(t, a64guest.Config{VCPUs: 2})
	p := g.Program()
	p.Sync(1, a64.X0, a64.X28)
	p.Done()
	if err := g.Load(p); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := map[int]uint64{}
	err := g.RunAll(ctx, func(u *guest.Ucall) error {
		mu.Lock()
		defer mu.Unlock()
		if u.Args[1] != uint64(u.VCPU) {
			return fmt.Errorf("vcpu %d says it is %d", u.VCPU, u.Args[1])
		}
		seen[u.VCPU] = u.Args[2]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != g.UserBlock(0) || seen[1] != g.UserBlock(1) {
		t.Fatalf("user blocks %#x, want %#x and %#x", seen, g.UserBlock(0), g.UserBlock(1))
	}
}

// BenchmarkVMUcall is the cost of one ucall round trip on a real vCPU,
// split in three: "raw" is the MMIO exit alone (vCPU Run, nothing
// decoded) inside one Do on the vCPU's thread, "raw-per-call" pays the
// thread hand-off of Do per exit, "ucall" is Guest.Run: hand-off, exit,
// the walk of the record pointer, the record read and parse.
func BenchmarkVMUcall(b *testing.B) {
	h, err := kvm.Open(kvm.Options{})
	if err != nil {
		b.Skipf("no backend runs arm64 guests here: %v", err)
	}
	defer h.Close()
	g, err := a64guest.New(h, a64guest.Config{})
	if err != nil {
		b.Skip(err)
	}
	defer g.Close()
	p := g.Program()
	loop := p.Here()
	p.Sync(1, a64.X0)
	p.B(loop)
	if err := g.Load(p); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	v := g.VCPUs[0]
	b.Run("raw", func(b *testing.B) {
		err := v.Do(func() error {
			for range b.N {
				if _, err := v.Run(ctx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
	b.Run("raw-per-call", func(b *testing.B) {
		for range b.N {
			if err := v.Do(func() error { _, err := v.Run(ctx); return err }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ucall", func(b *testing.B) {
		for range b.N {
			if _, err := g.Run(ctx, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
