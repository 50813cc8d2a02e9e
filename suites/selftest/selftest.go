// Package selftest holds specs that fail, time out or skip on purpose, so
// kvmspec's own tests can check how such outcomes are reported (JUnit
// failure types, file:line of guest asserts, unexpected passes). They are
// registered only when KVMSPEC_SELFTEST=1, never in a user's run.
package selftest

import (
	"os"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// EnvVar enables the self-test specs.
const EnvVar = "KVMSPEC_SELFTEST"

func init() {
	if os.Getenv(EnvVar) == "1" {
		framework.Register(taxonomy.SelfTest, specs)
	}
}

func specs(b *framework.Backend) {
	mode := guest.CPL3
	program := func(build func(p *guest.Program)) *guest.Guest {
		GinkgoHelper()
		g := b.NewGuest(guest.Config{Mode: mode})
		p := g.Program()
		build(p)
		Expect(g.Load(p)).To(Succeed())
		return g
	}

	It("a failing guest assert", func(ctx SpecContext) {
		g := program(func(p *guest.Program) {
			p.Mov(asm.RAX, asm.Imm(1))
			p.AssertEq(asm.RAX, asm.Imm(2), "one is not two") // selftest-assert-line
			p.Done()
		})
		Expect(g.RunUntilDone(ctx, 0, nil)).To(Succeed())
	}, SpecTimeout(20*time.Second))

	It("a guest that spins past the spec timeout", func(ctx SpecContext) {
		g := program(func(p *guest.Program) {
			spin := p.Here()
			p.Jmp(spin)
		})
		Expect(g.RunUntilDone(ctx, 0, nil)).To(Succeed())
	}, SpecTimeout(time.Second))

	It("a spec after the timeout", func(ctx SpecContext) {
		g := program(func(p *guest.Program) { p.Done() })
		Expect(g.RunUntilDone(ctx, 0, nil)).To(Succeed())
	}, SpecTimeout(20*time.Second))

	It("a deviation that fails as declared", func(ctx SpecContext) {
		Expect(1).To(Equal(2), "the declared deviation")
	})

	// One spec per route a spec can fail by, so a test can declare a
	// deviation on each and check that every route is classified alike.
	It("a deviation that fails through Fail", func(ctx SpecContext) {
		Fail("failed through Ginkgo's Fail")
	})

	It("a deviation that panics", func(ctx SpecContext) {
		panic("panicked on purpose")
	})

	It("a guest that exits unexpectedly", func(ctx SpecContext) {
		g := program(func(p *guest.Program) {
			p.Out(asm.Imm(0x10), asm.EAX) // no device, no ucall: an exit the spec does not expect
			p.Done()
		})
		Expect(g.RunUntilDone(ctx, 0, nil)).To(Succeed())
	}, SpecTimeout(20*time.Second))

	It("a deviation that passes", func(ctx SpecContext) {
		Expect(1).To(Equal(1))
	})

	It("a deviation that is not run", func(ctx SpecContext) {
		Fail("a not-run deviation ran")
	})

	It("always skips", func(ctx SpecContext) {
		Skip("selftest: skipped on purpose")
	})
}
