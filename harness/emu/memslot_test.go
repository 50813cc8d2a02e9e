package emu

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/hv/hvtest"
	"golang.org/x/sys/unix"
)

// TestMemslotErrors: the same table as the kvm backend, same errnos.
func TestMemslotErrors(t *testing.T) { hvtest.MemslotErrors(t, New(Options{})) }

func TestDirtyRingConfigErrors(t *testing.T) {
	h := New(Options{})
	for _, c := range []struct {
		bytes int
		want  error
	}{{2048, unix.EINVAL}, {6000, unix.EINVAL}, {4096, nil}, {1 << 20, nil}, {2 << 20, unix.E2BIG}} {
		vm, err := h.NewVM(hv.VMConfig{DirtyRingBytes: c.bytes})
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("ring %d bytes: %v, want %v", c.bytes, err, c.want)
		}
		if vm != nil {
			vm.Close()
		}
	}
}

// dirtyProgram writes one qword to each of n pages from dataGPA.
func dirtyProgram(t *testing.T, n int) []byte {
	return assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.RBX, asm.Imm(dataGPA))
		a.Mov(asm.ECX, asm.Imm(int64(n)))
		l := a.Here()
		a.Mov(asm.Q(asm.RBX, 0), asm.RCX)
		a.Add(asm.RBX, asm.Imm(4096))
		a.Dec(asm.ECX)
		a.Jcc(asm.CondNZ, l)
		done(a)
	})
}

func popcount(b []uint64) (n int) {
	for _, w := range b {
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return
}

func TestDirtyLogBitmap(t *testing.T) {
	g := newTestGuest(t, newEmu(t), guestOpt{slotFlag: hv.MemLogDirty}, dirtyProgram(t, 5))
	bm := make([]uint64, guestMem/hv.PageSize/64)
	if err := g.vm.GetDirtyLog(0, bm); err != nil {
		t.Fatal(err)
	}
	g.runDone(t)
	if err := g.vm.GetDirtyLog(0, bm); err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 5; i++ {
		p := dataGPA/hv.PageSize + i
		if bm[p/64]>>(p%64)&1 == 0 {
			t.Errorf("page %#x not logged", p)
		}
	}
	// Re-armed: running again logs the same pages again; nothing else.
	if err := g.vm.GetDirtyLog(0, bm); err != nil || popcount(bm) != 0 {
		t.Fatalf("second get: %v, %d bits", err, popcount(bm))
	}
	g.setup(t, g.vcpu, codeGPA)
	g.runDone(t)
	g.vm.GetDirtyLog(0, bm)
	if n := popcount(bm); n != 5 {
		t.Fatalf("after re-run %d pages logged, want 5", n)
	}
	// Errors.
	if err := g.vm.GetDirtyLog(9, bm); !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing slot: %v", err)
	}
	if err := g.vm.GetDirtyLog(0, bm[:1]); !errors.Is(err, unix.EINVAL) {
		t.Errorf("short bitmap: %v", err)
	}
}

func TestDirtyLogManualProtect(t *testing.T) {
	cfg := hv.VMConfig{ManualProtect: true, InitiallySet: true}
	g := newTestGuest(t, newEmu(t), guestOpt{cfg: cfg, slotFlag: hv.MemLogDirty}, dirtyProgram(t, 3))
	pages := uint64(guestMem / hv.PageSize)
	bm := make([]uint64, pages/64)
	g.vm.GetDirtyLog(0, bm)
	if popcount(bm) != int(pages) {
		t.Fatalf("initially set: %d of %d bits", popcount(bm), pages)
	}
	// Clear everything: now pages are write-protected.
	all := make([]uint64, pages/64)
	for i := range all {
		all[i] = ^uint64(0)
	}
	if err := g.vm.ClearDirtyLog(0, 0, pages, all); err != nil {
		t.Fatal(err)
	}
	g.vm.GetDirtyLog(0, bm)
	if popcount(bm) != 0 {
		t.Fatalf("after clear %d bits", popcount(bm))
	}
	g.runDone(t)
	g.vm.GetDirtyLog(0, bm)
	if n := popcount(bm); n < 3 {
		t.Fatalf("%d pages logged, want >= 3", n)
	}
	g.vm.GetDirtyLog(0, bm) // manual protect: get does not clear
	if n := popcount(bm); n < 3 {
		t.Fatalf("second get %d", n)
	}
	cases := []struct {
		name       string
		slot       uint32
		first, num uint64
		want       error
	}{
		{"first not multiple of 64", 0, 1, 64, unix.EINVAL},
		{"num not multiple of 64", 0, 0, 65, unix.EINVAL},
		{"tail may be short", 0, pages - 64, 64, nil},
		{"beyond slot", 0, pages, 64, unix.EINVAL},
		{"missing slot", 5, 0, 64, unix.ENOENT},
	}
	for _, c := range cases {
		err := g.vm.ClearDirtyLog(c.slot, c.first, c.num, all)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestDirtyRing(t *testing.T) {
	const ringBytes = 4096 // 256 entries, soft limit 192
	n := 200
	g := newTestGuest(t, newEmu(t), guestOpt{cfg: hv.VMConfig{DirtyRingBytes: ringBytes}, slotFlag: hv.MemLogDirty}, dirtyProgram(t, n))
	bm := make([]uint64, guestMem/hv.PageSize/64)
	if err := g.vm.GetDirtyLog(0, bm); !errors.Is(err, unix.ENXIO) {
		t.Fatalf("GetDirtyLog with rings = %v, want ENXIO", err)
	}
	e := g.run(t)
	if e.Kind() != hv.ExitDirtyRingFull {
		t.Fatalf("exit %v, want dirty-ring-full", e)
	}
	seen := map[uint64]bool{}
	got, err := g.vcpu.HarvestDirtyRing(func(slot uint32, off uint64) { seen[off] = true })
	if err != nil || got != ringBytes/16-64 {
		t.Fatalf("harvested %d (%v), want exactly the soft limit %d", got, err, ringBytes/16-64)
	}
	// Still full until reset: harvest alone frees nothing.
	if e := g.run(t); e.Kind() != hv.ExitDirtyRingFull {
		t.Fatalf("exit %v before reset, want dirty-ring-full again", e)
	}
	if n, err := g.vm.ResetDirtyRings(); err != nil || n != got {
		t.Fatalf("reset %d (%v), want %d", n, err, got)
	}
	g.runDone(t)
	more, _ := g.vcpu.HarvestDirtyRing(func(slot uint32, off uint64) { seen[off] = true })
	for i := uint64(0); i < uint64(n); i++ {
		if !seen[dataGPA/hv.PageSize+i] {
			t.Fatalf("page %d of the loop never reported (%d + %d entries)", i, got, more)
		}
	}
	if n, _ := g.vm.ResetDirtyRings(); n != more {
		t.Fatalf("reset %d, want %d", n, more)
	}

	// A page written again before its entry is reset adds no entry; after
	// the reset it is logged again.
	g = newTestGuest(t, newEmu(t), guestOpt{cfg: hv.VMConfig{DirtyRingBytes: ringBytes}, slotFlag: hv.MemLogDirty}, dirtyProgram(t, 5))
	g.runDone(t)
	first, _ := g.vcpu.HarvestDirtyRing(func(uint32, uint64) {})
	g.setup(t, g.vcpu, codeGPA)
	g.runDone(t)
	if again, _ := g.vcpu.HarvestDirtyRing(func(uint32, uint64) {}); again != 0 {
		t.Fatalf("%d entries for pages already dirty and not reset", again)
	}
	if n, _ := g.vm.ResetDirtyRings(); n != first {
		t.Fatalf("reset %d, want %d", n, first)
	}
	g.setup(t, g.vcpu, codeGPA)
	g.runDone(t)
	if again, _ := g.vcpu.HarvestDirtyRing(func(uint32, uint64) {}); again < 5 {
		t.Fatalf("%d entries after reset, want the 5 data pages again", again)
	}
}

func TestMissingPageHandler(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.RBX, asm.Imm(va4K+0x5000))
		a.Mov(asm.RAX, asm.Q(asm.RBX, 0))
		done(a)
	})
	h := newEmu(t)
	g := newTestGuest(t, h, guestOpt{}, code)
	b := g.mem.Bytes()
	split4K(b, func(uint64) uint64 { return 7 })
	// Make the data page and its page-table page non-resident.
	saved := append([]byte(nil), b[pte4KGPA:pte4KGPA+hv.PageSize]...)
	if err := g.mem.PunchHole(pte4KGPA, hv.PageSize); err != nil {
		t.Fatal(err)
	}
	if err := g.mem.PunchHole(va4K+0x5000, hv.PageSize); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var faults []uint64
	err := g.vm.SetMissingPageHandler(0, func(f hv.Fault, page []byte) error {
		mu.Lock()
		faults = append(faults, f.GPA)
		mu.Unlock()
		switch f.GPA {
		case pte4KGPA:
			copy(page, saved)
		case va4K + 0x5000:
			put64(page, 0, 0xabcd)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := g.runDone(t)
	if r.RAX != 0xabcd || len(faults) != 2 || faults[0] != pte4KGPA || faults[1] != va4K+0x5000 {
		t.Fatalf("rax %#x faults %#x, want the page-table page then the data page", r.RAX, faults)
	}
	g.setup(t, g.vcpu, codeGPA)
	g.runDone(t)
	if len(faults) != 2 {
		t.Fatalf("second touch faulted again: %#x", faults)
	}
	st, _ := g.vm.Stats()
	if n, _ := st.Get("missing_page_faults"); n != 2 {
		t.Fatalf("missing_page_faults = %d", n)
	}
	// A failing handler fails Run with its error.
	g2 := newTestGuest(t, h, guestOpt{}, code)
	split4K(g2.mem.Bytes(), func(uint64) uint64 { return 7 })
	g2.mem.PunchHole(va4K+0x5000, hv.PageSize)
	boom := errors.New("boom")
	g2.vm.SetMissingPageHandler(0, func(hv.Fault, []byte) error { return boom })
	if _, err := g2.vcpu.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the handler's error", err)
	}
}

// TestSelfModifyingCode: code copied into a page, run, overwritten, run
// again: the decode cache must notice each write.
func TestSelfModifyingCode(t *testing.T) {
	const target = dataGPA + 0x3000
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.RDI, asm.Imm(target))
		// mov eax, imm32 (b8 xx xx xx xx); ret (c3)
		a.MovAbs(asm.RAX, 0xc3000000_01b8)
		a.Mov(asm.Q(asm.RDI, 0), asm.RAX)
		a.CallInd(asm.RDI)
		a.Mov(asm.RBX, asm.RAX)
		a.Mov(asm.B(asm.RDI, 1), asm.Imm(2)) // patch the immediate
		a.CallInd(asm.RDI)
		a.Add(asm.RBX, asm.RAX)
		// Patch the very next instruction.
		next := a.NewLabel()
		a.Lea(asm.RSI, asm.Rel(8, next))
		a.Mov(asm.B(asm.RSI, 0), asm.Imm(0x90)) // turn the ud2 into nop; nop
		a.Mov(asm.B(asm.RSI, 1), asm.Imm(0x90))
		a.Bind(next)
		a.Ud2()
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{}, code)
	if r := g.runDone(t); r.RBX != 3 {
		t.Fatalf("rbx %d, want 1+2", r.RBX)
	}
	// Host-side rewrite between runs is seen too.
	g.mem.Bytes()[target+1] = 7
	g.setup(t, g.vcpu, codeGPA)
	if r := g.runDone(t); r.RBX != 2+2 && r.RBX != 3 {
		t.Fatalf("rbx %d", r.RBX)
	}
}

// TestLockedAtomicsAcrossVCPUs: two vCPUs hammer one counter.
func TestLockedAtomicsAcrossVCPUs(t *testing.T) {
	const iters = 20000
	for _, op := range []string{"xadd", "cmpxchg", "add"} {
		t.Run(op, func(t *testing.T) {
			code := assemble(t, func(a *asm.Assembler) {
				a.Mov(asm.RDI, asm.Imm(dataGPA))
				a.Mov(asm.ECX, asm.Imm(iters))
				l := a.Here()
				switch op {
				case "xadd":
					a.Mov(asm.EAX, asm.Imm(1))
					a.Lock().Xadd(asm.Q(asm.RDI, 0), asm.RAX)
				case "add":
					a.Lock().Add(asm.Q(asm.RDI, 0), asm.Imm(1))
				default:
					retry := a.Here()
					a.Mov(asm.RAX, asm.Q(asm.RDI, 0))
					a.Lea(asm.RDX, asm.Q(asm.RAX, 1))
					a.Lock().Cmpxchg(asm.Q(asm.RDI, 0), asm.RDX)
					a.Jcc(asm.CondNZ, retry)
				}
				a.Dec(asm.ECX)
				a.Jcc(asm.CondNZ, l)
				done(a)
			})
			g := newTestGuest(t, newEmu(t), guestOpt{}, code)
			v2, err := g.vm.NewVCPU(1)
			if err != nil {
				t.Fatal(err)
			}
			g.setup(t, v2, codeGPA)
			r, _ := v2.Regs()
			r.RSP = kstackTop - 0x8000
			v2.SetRegs(&r)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, v := range []hv.VCPU{g.vcpu, v2} {
				wg.Add(1)
				go func(i int, v hv.VCPU) {
					defer wg.Done()
					_, errs[i] = v.Run(ctx)
				}(i, v)
			}
			wg.Wait()
			if errors.Join(errs...) != nil {
				t.Fatal(errs)
			}
			if got := get64(g.mem.Bytes(), dataGPA); got != 2*iters {
				t.Fatalf("counter %d, want %d", got, 2*iters)
			}
		})
	}
}
