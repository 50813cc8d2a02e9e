package smoke

// Interrupts the host raises into an arm64 guest: KVM_IRQ_LINE on the
// in-kernel vGICv3 (hv.ARM64VM.IRQLine) for an SPI or one vCPU's PPI,
// taken by the guest's GICv3 bring-up and IRQ handler
// (a64guest.GICv3): the INTID the handler acknowledges, exactly one
// interrupt per rising edge of an edge-triggered line, and a
// level-sensitive one that stays pending until the host lowers the line.

import (
	"fmt"
	"sync"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The vGICv3 frames (where QEMU's virt board has them, outside slot 0).
const (
	a64GICD = 0x0800_0000
	a64GICR = 0x080a_0000
	// The guest waits up to a64IRQWait (virtual counter time) for an
	// interrupt, then a quiet window in which no other may come.
	a64IRQWait  = 5 * time.Second
	a64IRQQuiet = 100 * time.Millisecond
	// a64IRQStage is the SYNC stage the handler of a level-sensitive
	// interrupt sends with the INTID: the host lowers the line.
	a64IRQStage = 100
)

// CNTKCTL_EL1 and its EL0VCTEN bit (EL0 may read CNTVCT_EL0).
var cntkctlEL1 = a64.SysReg{Name: "CNTKCTL_EL1", Op0: 3, Op1: 0, CRn: 14, CRm: 1, Op2: 0}

const cntkctlEL0VCTEN = 1 << 1

// a64Line is one interrupt line the host drives.
type a64Line struct {
	kind    hv.ARM64IRQKind
	intid   uint32
	trigger a64guest.Trigger
}

func (l a64Line) String() string {
	t, k := "a level-sensitive", "SPI"
	if l.trigger == a64guest.Edge {
		t = "an edge-triggered"
	}
	if l.kind == hv.ARM64IRQPPI {
		k = "PPI of vCPU 0"
	}
	return fmt.Sprintf("%s %s (INTID %d)", t, k, l.intid)
}

var a64Lines = []a64Line{
	{hv.ARM64IRQSPI, 40, a64guest.Edge},
	{hv.ARM64IRQSPI, 41, a64guest.Level},
	{hv.ARM64IRQPPI, 20, a64guest.Level}, // KVM makes PPIs level-sensitive
}

func arm64IRQSpecs(b *framework.Backend) {
	// irqGuest is a guest with a vGICv3 whose IRQ handler runs body, and
	// its program after the bring-up with l enabled and IRQs unmasked.
	irqGuest := func(l a64Line, body a64guest.IRQBody) (*a64guest.Guest, *a64guest.GICv3, hv.ARM64VM, *a64guest.Program) {
		GinkgoHelper()
		b.Require(hv.CapVGICv3)
		g := b.NewARM64Guest(a64guest.Config{})
		vm, ok := g.VM.(hv.ARM64VM)
		Expect(ok).To(BeTrue(), "%s VMs have no vGIC", b.Name)
		gic, err := g.NewGICv3(a64GICD, a64GICR, 0, body)
		Expect(err).NotTo(HaveOccurred())
		p := g.Program()
		gic.Init(p)
		gic.Enable(p, l.intid, l.trigger)
		p.MsrDAIFClr(2)
		return g, gic, vm, p
	}
	// waitCount waits for the n-th interrupt and leaves the count after
	// the quiet window in dst.
	waitCount := func(gic *a64guest.GICv3, p *a64guest.Program, dst a64.Reg, n int64) {
		gic.WaitIRQs(p, dst, n, a64IRQWait)
		a64guest.SpinFor(p, a64IRQQuiet)
		p.Ldr(dst, a64.Ptr(a64.X28, a64guest.IRQCount))
	}
	checkLog := func(gic *a64guest.GICv3, l a64Line, n int) {
		GinkgoHelper()
		intids, count, spurious, err := gic.IRQs(0)
		Expect(err).NotTo(HaveOccurred())
		want := make([]uint32, n)
		for i := range want {
			want[i] = l.intid
		}
		Expect(intids).To(Equal(want), "the INTIDs the guest acknowledged (%d in all)", count)
		Expect(spurious).To(BeZero(), "spurious acknowledges")
	}

	for _, l := range a64Lines {
		if l.trigger == a64guest.Edge {
			It("KVM_IRQ_LINE: "+l.String()+" reaches the guest's IRQ handler once per rising edge", func(ctx SpecContext) {
				g, gic, vm, p := irqGuest(l, nil)
				p.Sync(1)
				waitCount(gic, p, a64.X2, 1)
				p.Sync(2, a64.X2)
				waitCount(gic, p, a64.X3, 2)
				p.Sync(3, a64.X3)
				p.Done()
				Expect(g.Load(p)).To(Succeed())
				edge := func() error {
					if err := vm.IRQLine(l.kind, 0, l.intid, true); err != nil {
						return err
					}
					return vm.IRQLine(l.kind, 0, l.intid, false)
				}
				got := map[uint64]uint64{}
				Expect(g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
					if u.Stage() > 1 {
						got[u.Stage()] = u.Args[1]
					}
					if u.Stage() < 3 {
						return edge()
					}
					return nil
				})).To(Succeed())
				Expect(got).To(Equal(map[uint64]uint64{2: 1, 3: 2}), "interrupts the guest took after the first and the second edge")
				checkLog(gic, l, 2)
			}, SpecTimeout(arm64SpecTimeout))
			continue
		}
		It("KVM_IRQ_LINE: "+l.String()+" reaches the guest's IRQ handler and stays pending until the host lowers the line", func(ctx SpecContext) {
			// The handler reports the INTID to the host, which lowers the
			// line before the handler ends the interrupt: one interrupt.
			body := func(p *a64guest.Program) { p.Sync(a64IRQStage, a64.X19) }
			g, gic, vm, p := irqGuest(l, body)
			p.Sync(1)
			waitCount(gic, p, a64.X2, 1)
			p.Sync(2, a64.X2)
			p.Done()
			Expect(g.Load(p)).To(Succeed())
			var inHandler []uint64
			var after uint64
			Expect(g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
				switch u.Stage() {
				case 1:
					return vm.IRQLine(l.kind, 0, l.intid, true)
				case a64IRQStage:
					inHandler = append(inHandler, u.Args[1])
					return vm.IRQLine(l.kind, 0, l.intid, false)
				case 2:
					after = u.Args[1]
				}
				return nil
			})).To(Succeed())
			Expect(inHandler).To(Equal([]uint64{uint64(l.intid)}), "the INTIDs the handler reported while the line was high")
			Expect(after).To(Equal(uint64(1)), "interrupts the guest took")
			checkLog(gic, l, 1)
		}, SpecTimeout(arm64SpecTimeout))
	}

	It("KVM_IRQ_LINE: two rising edges of an SPI before the guest runs again are one interrupt", func(ctx SpecContext) {
		l := a64Lines[0]
		Expect(l.trigger).To(Equal(a64guest.Edge))
		g, gic, vm, p := irqGuest(l, nil)
		p.Sync(1)
		waitCount(gic, p, a64.X2, 1)
		a64guest.SpinFor(p, a64IRQQuiet) // a second interrupt would come by now
		p.Ldr(a64.X2, a64.Ptr(a64.X28, a64guest.IRQCount))
		p.Sync(2, a64.X2)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		var after uint64
		Expect(g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
			if u.Stage() == 2 {
				after = u.Args[1]
				return nil
			}
			for range 2 {
				if err := vm.IRQLine(l.kind, 0, l.intid, true); err != nil {
					return err
				}
				if err := vm.IRQLine(l.kind, 0, l.intid, false); err != nil {
					return err
				}
			}
			return nil
		})).To(Succeed())
		Expect(after).To(Equal(uint64(1)), "interrupts after two edges while the SPI was pending (one pending latch)")
		checkLog(gic, l, 1)
	}, SpecTimeout(arm64SpecTimeout))

	It("KVM_IRQ_LINE: an SPI interrupts test code at EL0 through the lower-EL IRQ vector, which returns to EL0", func(ctx SpecContext) {
		l := a64Lines[0]
		g, gic, vm, p := irqGuest(l, nil)
		// EL0 reads the virtual counter for the wait: CNTKCTL_EL1.EL0VCTEN.
		p.Mov(a64.X9, a64.Imm(cntkctlEL0VCTEN))
		p.Msr(cntkctlEL1, a64.X9)
		p.Isb()
		p.ToEL0()
		p.Sync(1)
		waitCount(gic, p, a64.X2, 1)
		p.Sync(2, a64.X2)
		// ToEL1's SVC is answered only from EL0: the handler returned there.
		p.ToEL1()
		p.Mrs(a64.X3, currentEL)
		p.Sync(3, a64.X3)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		got := map[uint64]uint64{}
		Expect(g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
			if u.Stage() == 1 {
				if err := vm.IRQLine(l.kind, 0, l.intid, true); err != nil {
					return err
				}
				return vm.IRQLine(l.kind, 0, l.intid, false)
			}
			got[u.Stage()] = u.Args[1]
			return nil
		})).To(Succeed())
		Expect(got).To(Equal(map[uint64]uint64{2: 1, 3: currentELValue(1)}), "interrupts taken at EL0, then CurrentEL after ToEL1")
		lower, err := g.HandlerCount(0, a64guest.VecIRQLower64)
		Expect(err).NotTo(HaveOccurred())
		el1, err := g.HandlerCount(0, a64guest.VecIRQEL1t)
		Expect(err).NotTo(HaveOccurred())
		Expect([]uint32{lower, el1}).To(Equal([]uint32{1, 0}), "runs of the lower-EL and the EL1t IRQ handlers")
		checkLog(gic, l, 1)
	}, SpecTimeout(arm64SpecTimeout))

	It("KVM_IRQ_LINE: a PPI reaches only the vCPU it names, each vCPU bringing up its own redistributor", func(ctx SpecContext) {
		// vCPU i enables PPIs 20 and 21 and the host raises 20+i for it
		// alone: each takes exactly its own.
		const ppi, vcpus = 20, 2
		b.Require(hv.CapVGICv3)
		g := b.NewARM64Guest(a64guest.Config{VCPUs: vcpus})
		vm, ok := g.VM.(hv.ARM64VM)
		Expect(ok).To(BeTrue(), "%s VMs have no vGIC", b.Name)
		gic, err := g.NewGICv3(a64GICD, a64GICR, 0, func(p *a64guest.Program) { p.Sync(a64IRQStage, a64.X19) })
		Expect(err).NotTo(HaveOccurred())
		p := g.Program()
		gic.Init(p)
		for i := range vcpus {
			gic.Enable(p, ppi+uint32(i), a64guest.Level)
		}
		p.MsrDAIFClr(2)
		p.Sync(1)
		waitCount(gic, p, a64.X2, 1)
		p.Ldr(a64.X3, a64.Ptr(a64.X28, a64guest.IRQRedist))
		p.Sync(2, a64.X2, a64.X3)
		p.Done()
		Expect(g.Load(p)).To(Succeed())
		var mu sync.Mutex
		handled := map[int][]uint64{}
		after := map[int][]uint64{}
		Expect(g.RunAll(ctx, func(u *guest.Ucall) error {
			mu.Lock()
			defer mu.Unlock()
			switch u.Stage() {
			case 1:
				return vm.IRQLine(hv.ARM64IRQPPI, u.VCPU, ppi+uint32(u.VCPU), true)
			case a64IRQStage:
				handled[u.VCPU] = append(handled[u.VCPU], u.Args[1])
				return vm.IRQLine(hv.ARM64IRQPPI, u.VCPU, ppi+uint32(u.VCPU), false)
			case 2:
				after[u.VCPU] = append([]uint64(nil), u.Args[1:]...)
			}
			return nil
		})).To(Succeed())
		for i := range vcpus {
			Expect(handled[i]).To(Equal([]uint64{ppi + uint64(i)}), "the PPIs vCPU %d's handler reported", i)
			Expect(after[i]).To(Equal([]uint64{1, a64GICR + uint64(i)*a64guest.GICRedistSize}),
				"vCPU %d: interrupts taken and the redistributor it found", i)
		}
	}, SpecTimeout(arm64SpecTimeout))
}
