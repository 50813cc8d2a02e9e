// Package smoke is the quick check that a backend runs guests: arithmetic,
// the ucall ABI, port and MMIO exits, HLT, exceptions through the guest
// IDT, several vCPUs, timeouts and capability skips. Every case runs with
// test code at CPL3 and at CPL0.
package smoke

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func init() { framework.Register(taxonomy.Smoke, specs) }

// specTimeout bounds every smoke spec; guests here finish in milliseconds.
const specTimeout = 20 * time.Second

// mmioGPA is an unbacked guest-physical page the MMIO specs map and touch.
const mmioGPA = 0x40000000

func specs(b *framework.Backend) {
	for _, mode := range b.Modes() {
		mode := mode
		modeLabel := framework.ModeLabel(mode)
		name := func(s string) string { return fmt.Sprintf("%s [%s]", s, mode) }
		newGuest := func(cfg guest.Config) *guest.Guest {
			GinkgoHelper()
			cfg.Mode = mode
			return b.NewGuest(cfg)
		}
		run := func(ctx context.Context, g *guest.Guest, p *guest.Program, onSync func(*guest.Ucall) error) {
			GinkgoHelper()
			Expect(g.Load(p)).To(Succeed())
			Expect(g.RunUntilDone(ctx, 0, onSync)).To(Succeed())
		}

		It(name("arithmetic and memory"), modeLabel, func(ctx SpecContext) {
			g := newGuest(guest.Config{})
			buf, err := g.Alloc(64, 64)
			Expect(err).NotTo(HaveOccurred())
			p := g.Program()
			p.Mov(asm.RAX, asm.Imm(0))
			p.Mov(asm.RCX, asm.Imm(100))
			loop := p.Here()
			p.Add(asm.RAX, asm.RCX)
			p.Dec(asm.RCX)
			p.Jcc(asm.CondNE, loop)
			p.AssertEq(asm.RAX, asm.Imm(5050), "sum 1..100")
			p.Mov(asm.RBX, asm.Imm(int64(buf)))
			p.Mov(asm.Q(asm.RBX, 0), asm.RAX)
			p.MovAbs(asm.RDX, 0x1122334455667788)
			p.Mov(asm.Q(asm.RBX, 8), asm.RDX)
			p.Imul3(asm.RSI, asm.RAX, 3)
			p.Mov(asm.Q(asm.RBX, 16), asm.RSI)
			p.Mov(asm.RAX, asm.Q(asm.RBX, 8))
			p.AssertEq(asm.RAX, asm.RDX, "memory read back")
			p.Done()
			run(ctx, g, p, nil)
			for off, want := range map[uint64]uint64{0: 5050, 8: 0x1122334455667788, 16: 15150} {
				Expect(g.Read64(buf+off)).To(Equal(want), "guest memory at %#x", buf+off)
			}
		}, SpecTimeout(specTimeout))

		It(name("ucall round trip with arguments"), modeLabel, func(ctx SpecContext) {
			g := newGuest(guest.Config{})
			p := g.Program()
			regs := []asm.Reg{asm.RAX, asm.RBX, asm.RCX, asm.RDX, asm.RSI, asm.R8}
			for i, r := range regs {
				p.MovAbs(r, 0xA000_0000_0000_0000|uint64(i))
			}
			p.Sync(1, asm.RAX, asm.RBX, asm.RCX, asm.RDX, asm.RSI, asm.R8)
			// The host answers through the scratch area; echo it back.
			p.Mov(asm.RAX, asm.Q(asm.R15, guest.UserScratch))
			p.Sync(2, asm.RAX)
			p.Done()
			stages := 0
			run(ctx, g, p, func(u *guest.Ucall) error {
				stages++
				switch u.Stage() {
				case 1:
					Expect(u.Args).To(HaveLen(7))
					for i := range regs {
						Expect(u.Args[i+1]).To(Equal(0xA000_0000_0000_0000|uint64(i)), "argument %d", i+1)
					}
					return g.Write64(guest.UserScratchAddr(0), 0xfeedface)
				case 2:
					Expect(u.Args[1]).To(Equal(uint64(0xfeedface)), "host value echoed by the guest")
				}
				return nil
			})
			Expect(stages).To(Equal(2))
		}, SpecTimeout(specTimeout))

		It(name("pio out and in"), modeLabel, func(ctx SpecContext) {
			g := newGuest(guest.Config{})
			p := g.Program()
			p.Mov(asm.EAX, asm.Imm(0x12345678))
			p.Out(asm.Imm(0x10), asm.EAX)
			p.Mov(asm.EDX, asm.Imm(0x3f8))
			p.Mov(asm.AL, asm.Imm(0x5a))
			p.Out(asm.DX, asm.AL)
			p.In(asm.EAX, asm.Imm(0x11))
			p.Mov(asm.RBX, asm.RAX)
			p.In(asm.AX, asm.DX)
			p.Sync(1, asm.RBX, asm.RAX)
			p.Done()
			Expect(g.Load(p)).To(Succeed())
			want := []struct {
				port  uint16
				size  int
				in    bool
				value uint64
			}{{0x10, 4, false, 0x12345678}, {0x3f8, 1, false, 0x5a}, {0x11, 4, true, 0xcafe0001}, {0x3f8, 2, true, 0xbeef}}
			for i, w := range want {
				By(fmt.Sprintf("exit %d: %s port %#x", i, map[bool]string{false: "out", true: "in"}[w.in], w.port))
				ev, err := g.Run(ctx, 0)
				Expect(err).NotTo(HaveOccurred())
				io, ok := ev.Exit.(*hv.IOExit)
				Expect(ok).To(BeTrue(), "want a port I/O exit, got %+v", ev)
				Expect([]any{io.Port, io.Size, io.In}).To(Equal([]any{w.port, w.size, w.in}))
				if w.in {
					io.SetValue(w.value)
				} else {
					Expect(io.Value()).To(Equal(w.value))
				}
			}
			ev, err := g.Run(ctx, 0)
			Expect(err).NotTo(HaveOccurred())
			Expect(ev.Ucall).NotTo(BeNil())
			// A 16-bit IN writes AX and keeps the rest of RAX.
			Expect(ev.Ucall.Args[1:]).To(Equal([]uint64{0xcafe0001, 0xcafebeef}), "values the host supplied for IN")
		}, SpecTimeout(specTimeout))

		It(name("mmio write and read to an unbacked gpa"), modeLabel, func(ctx SpecContext) {
			g := newGuest(guest.Config{})
			Expect(g.PT.Map(mmioGPA, mmioGPA, hv.PageSize, guest.PTEWrite|guest.PTEUser)).To(Succeed())
			p := g.Program()
			p.Mov(asm.RBX, asm.Imm(mmioGPA))
			p.Mov(asm.D(asm.RBX, 0x10), asm.Imm(0x1234))
			p.Mov(asm.RAX, asm.Q(asm.RBX, 0x18))
			p.Movzx(asm.ECX, asm.B(asm.RBX, 0x20))
			p.Sync(1, asm.RAX, asm.RCX)
			p.Done()
			Expect(g.Load(p)).To(Succeed())
			By("a 4-byte write")
			ev, err := g.Run(ctx, 0)
			Expect(err).NotTo(HaveOccurred())
			m, ok := ev.Exit.(*hv.MMIOExit)
			Expect(ok).To(BeTrue(), "want an MMIO exit, got %+v", ev)
			Expect([]any{m.GPA, m.Len, m.Write, m.Value()}).To(Equal([]any{uint64(mmioGPA + 0x10), 4, true, uint64(0x1234)}))
			By("an 8-byte read the host answers")
			ev, err = g.Run(ctx, 0)
			Expect(err).NotTo(HaveOccurred())
			m, ok = ev.Exit.(*hv.MMIOExit)
			Expect(ok).To(BeTrue(), "want an MMIO exit, got %+v", ev)
			Expect([]any{m.GPA, m.Len, m.Write}).To(Equal([]any{uint64(mmioGPA + 0x18), 8, false}))
			m.SetValue(0xfeedfacecafebeef)
			By("a 1-byte read the host answers")
			ev, err = g.Run(ctx, 0)
			Expect(err).NotTo(HaveOccurred())
			m, ok = ev.Exit.(*hv.MMIOExit)
			Expect(ok).To(BeTrue(), "want an MMIO exit, got %+v", ev)
			Expect([]any{m.GPA, m.Len, m.Write}).To(Equal([]any{uint64(mmioGPA + 0x20), 1, false}))
			m.SetValue(0xa5)
			ev, err = g.Run(ctx, 0)
			Expect(err).NotTo(HaveOccurred())
			Expect(ev.Ucall).NotTo(BeNil(), "want the SYNC, got %+v", ev.Exit)
			Expect(ev.Ucall.Args[1:]).To(Equal([]uint64{0xfeedfacecafebeef, 0xa5}))
		}, SpecTimeout(specTimeout))

		if mode == guest.CPL0 {
			It(name("hlt exits to the host"), modeLabel, func(ctx SpecContext) {
				g := newGuest(guest.Config{})
				p := g.Program()
				p.Hlt()
				p.Done()
				Expect(g.Load(p)).To(Succeed())
				ev, err := g.Run(ctx, 0)
				Expect(err).NotTo(HaveOccurred())
				Expect(ev.Exit).NotTo(BeNil(), "want a halt exit, got ucall %v", ev.Ucall)
				Expect(ev.Exit.Kind()).To(Equal(hv.ExitHalt), "exit %v", ev.Exit)
				By("the guest resumes after HLT")
				ev, err = g.Run(ctx, 0)
				Expect(err).NotTo(HaveOccurred())
				Expect(ev.Ucall).NotTo(BeNil())
				Expect(ev.Ucall.Cmd).To(Equal(guest.UcallDone))
			}, SpecTimeout(specTimeout))
		} else {
			It(name("hlt raises #GP"), modeLabel, func(ctx SpecContext) {
				expectException(ctx, newGuest(guest.Config{}), 13, 0, 0, func(p *guest.Program) { p.Hlt() })
			}, SpecTimeout(specTimeout))
		}

		user := uint64(0)
		if mode == guest.CPL3 {
			user = 4 // #PF error code bit U/S
		}
		exceptions := []struct {
			name     string
			vector   uint64
			errCode  uint64
			cr2      uint64
			setup    func(g *guest.Guest)
			faulting func(p *guest.Program)
		}{
			{"#UD from ud2", 6, 0, 0, nil, func(p *guest.Program) { p.Ud2() }},
			{"#DE from div by zero", 0, 0, 0, nil, func(p *guest.Program) {
				p.Xor(asm.ECX, asm.ECX)
				p.Div(asm.RCX)
			}},
			{"#BP from int3", 3, 0, 0, nil, func(p *guest.Program) { p.Int3() }},
			{"#GP from a non-canonical address", 13, 0, 0, nil, func(p *guest.Program) {
				p.MovAbs(asm.RAX, 0x8000_0000_0000_0000)
				p.Mov(asm.RBX, asm.Q(asm.RAX, 0))
			}},
			{"#PF on a not-present page", 14, user, 0x10, nil, func(p *guest.Program) {
				// [0x10]: page 0 is never mapped
				p.Mov(asm.RAX, asm.Abs(8, 0x10))
			}},
			{"#PF on a write to a read-only page", 14, user | 2 | 1, guest.DataBase, func(g *guest.Guest) {
				Expect(g.PT.Protect(guest.DataBase, hv.PageSize, 0, guest.PTEWrite)).To(Succeed())
			}, func(p *guest.Program) {
				p.Mov(asm.RAX, asm.Imm(guest.DataBase))
				p.Mov(asm.Q(asm.RAX, 0), asm.Imm(1))
			}},
		}
		for _, x := range exceptions {
			x := x
			It(name("exception "+x.name), modeLabel, func(ctx SpecContext) {
				g := newGuest(guest.Config{})
				if x.setup != nil {
					x.setup(g)
				}
				expectException(ctx, g, x.vector, x.errCode, x.cr2, x.faulting)
			}, SpecTimeout(specTimeout))
		}

		It(name("guest assert failure names the go source line"), modeLabel, func(ctx SpecContext) {
			g := newGuest(guest.Config{})
			p := g.Program()
			p.Mov(asm.RAX, asm.Imm(41))
			p.AssertEq(asm.RAX, asm.Imm(42), "the answer") // assertLine
			p.Done()
			Expect(g.Load(p)).To(Succeed())
			err := g.RunUntilDone(ctx, 0, nil)
			var ae *guest.AssertError
			Expect(errors.As(err, &ae)).To(BeTrue(), "want a guest assertion, got %v", err)
			Expect(err.Error()).To(MatchRegexp(`smoke\.go:\d+: the answer \(values: 0x29 0x2a\)`))
		}, SpecTimeout(specTimeout))

		for _, n := range []int{2, 4} {
			n := n
			It(name(fmt.Sprintf("%d vcpus run at once", n)), modeLabel, taxonomy.Needs(hv.CapMultiVCPU), func(ctx SpecContext) {
				b.Require(hv.CapMultiVCPU)
				g := newGuest(guest.Config{VCPUs: n})
				counter, err := g.Alloc(8, 64)
				Expect(err).NotTo(HaveOccurred())
				const iters = 10000
				p := g.Program()
				// Each vCPU computes its own value from its index and adds
				// to a shared counter with lock xadd.
				p.Mov(asm.RAX, asm.RDI)
				p.Imul3(asm.RAX, asm.RAX, 1000)
				p.Add(asm.RAX, asm.Imm(7))
				p.Mov(asm.RBX, asm.Imm(int64(counter)))
				p.Mov(asm.RCX, asm.Imm(iters))
				loop := p.Here()
				p.Mov(asm.EDX, asm.Imm(1))
				p.Lock().Xadd(asm.Q(asm.RBX, 0), asm.RDX)
				p.Dec(asm.RCX)
				p.Jcc(asm.CondNE, loop)
				p.Sync(1, asm.RDI, asm.RAX)
				p.Done()
				Expect(g.Load(p)).To(Succeed())
				var mu sync.Mutex
				seen := map[uint64]uint64{}
				Expect(g.RunAll(ctx, func(u *guest.Ucall) error {
					mu.Lock()
					defer mu.Unlock()
					seen[u.Args[1]] = u.Args[2]
					return nil
				})).To(Succeed())
				for i := 0; i < n; i++ {
					Expect(seen).To(HaveKeyWithValue(uint64(i), uint64(i*1000+7)), "vcpu %d result", i)
				}
				Expect(g.Read64(counter)).To(Equal(uint64(n*iters)), "shared counter after lock xadd")
			}, SpecTimeout(specTimeout))
		}

		It(name("a spinning guest is cut off by its timeout"), modeLabel, func(ctx SpecContext) {
			g := newGuest(guest.Config{})
			p := g.Program()
			spin := p.Here()
			p.Jmp(spin) // spinLine
			p.Done()
			Expect(g.Load(p)).To(Succeed())
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := g.RunUntilDone(short, 0, nil)
			var te *guest.TimeoutError
			Expect(errors.As(err, &te)).To(BeTrue(), "want a timeout, got %v", err)
			Expect(errors.Is(err, context.DeadlineExceeded)).To(BeTrue())
			Expect(te.Source).To(ContainSubstring("smoke.go"), "the report names the spinning instruction's Go line")
			AddReportEntry("stopped after", time.Since(start).String())
			By("the vCPU runs again afterwards")
			q := g.Program()
			q.Done()
			Expect(g.Load(q)).To(Succeed())
			Expect(g.RunUntilDone(ctx, 0, nil)).To(Succeed())
		}, SpecTimeout(specTimeout))

		It(name("pmu version matches the capability"), modeLabel, taxonomy.Needs(hv.CapPMU), func(ctx SpecContext) {
			b.Require(hv.CapPMU)
			g := newGuest(guest.Config{})
			p := g.Program()
			p.Mov(asm.EAX, asm.Imm(0xa))
			p.Xor(asm.ECX, asm.ECX)
			p.Cpuid()
			p.Sync(1, asm.RAX)
			p.Done()
			run(ctx, g, p, func(u *guest.Ucall) error {
				Expect(int(u.Args[1] & 0xff)).To(Equal(b.Caps.PMU.Version))
				return nil
			})
		}, SpecTimeout(specTimeout))
	}
}

// expectException runs faulting code and checks the guest IDT saw the
// exception with the right vector, error code and (for #PF) CR2, at the
// faulting instruction's address.
func expectException(ctx context.Context, g *guest.Guest, vector, errCode, cr2 uint64, faulting func(p *guest.Program)) {
	GinkgoHelper()
	p := g.Program()
	fix := p.NewLabel()
	p.ExpectException(fix)
	at := p.Here()
	faulting(p)
	p.Bind(fix)
	p.Done()
	Expect(g.Load(p)).To(Succeed())
	Expect(g.RunUntilDone(ctx, 0, nil)).To(Succeed())
	x, n, err := g.LastException(0)
	Expect(err).NotTo(HaveOccurred())
	Expect(n).To(Equal(uint64(1)), "exceptions taken")
	Expect(guest.VectorName(x.Vector)).To(Equal(guest.VectorName(vector)), "vector (%v)", x)
	Expect(x.ErrorCode).To(Equal(errCode), "error code (%v)", x)
	if vector == 14 {
		Expect(x.CR2).To(Equal(cr2), "cr2 (%v)", x)
	}
	start, _ := p.Addr(at)
	end, _ := p.Addr(fix)
	if vector == 3 || vector == 4 {
		// Traps report the instruction after the one that trapped.
		Expect(x.RIP).To(Equal(end), "#BP/#OF are traps: rip after the instruction (%v)", x)
		return
	}
	// Faults report the faulting instruction, which the test built.
	Expect(x.RIP).To(And(BeNumerically(">=", start), BeNumerically("<", end)), "rip %#x inside the faulting code [%#x, %#x)", x.RIP, start, end)
	Expect(g.Source(x.RIP)).To(ContainSubstring("smoke.go"))
}
