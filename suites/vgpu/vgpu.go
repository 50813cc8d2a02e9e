// Package vgpu checks the GVT-g vGPU model (harness/vgpu) end to end: a
// guest driver, written as a guest program at the spec's privilege level,
// detects the device, negotiates PV, registers its shared page, talks over
// the command transport buffer and submits workloads the PV way and the
// legacy ELSP way. The specs are the ten CI checks of devices.md part (a),
// plus device writes in the dirty log and several vCPUs submitting at once.
//
// The device reaches guest memory through hv.GuestMemory and raises its
// interrupts through hv.Interrupts; a backend without host-write tracking
// or without an irqchip skips the specs that need them, with its reason.
//
// Parameters (kvmspec run --param name=value; defaults in brackets):
//
//	vgpu.submissions  submissions per path in the PV vs legacy spec [200]
//	vgpu.seed         CTB message lengths [the run's --seed]
package vgpu

import (
	"context"
	"fmt"
	"math/rand"
	"strconv"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	dev "github.com/kvmspec/kvmspec/harness/vgpu"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func init() {
	framework.Register(taxonomy.VGPU, specs)
	framework.DeclareParams(taxonomy.VGPU,
		framework.Param{Key: "vgpu.submissions", Kind: framework.KindCount, Default: "200", Meaning: "submissions per path in the PV vs legacy ELSP comparison"},
		framework.Param{Key: "vgpu.seed", Kind: framework.KindInt, Default: "run seed", Meaning: "lengths and payloads of the CTB messages"},
	)
}

// specTimeout bounds each spec; the guests finish in well under a second.
const specTimeout = 60 * time.Second

// Guest-physical placement: BAR0 above the guest's RAM, and an address
// no memslot backs for the invalid registration.
const (
	barGPA      = 0x40000000
	unbackedGPA = 0x30000000
	irqVector   = 0x50
)

// testbed is one guest with the vGPU attached.
type testbed struct {
	g      *guest.Guest
	d      *dev.Device
	shared uint64 // the driver's shared page
	ctx    uint64 // one context page per engine
	seq    uint64 // one breadcrumb dword per engine, alone in its page
}

type bedConfig struct {
	vcpus int
	irq   bool // wire the device's interrupt to vCPU 0
}

func newTestbed(b *framework.Backend, mode guest.Mode, c bedConfig) *testbed {
	GinkgoHelper()
	b.Require(hv.CapGuestMemoryTrack)
	if c.irq {
		b.Require(hv.CapIRQChip)
	}
	if c.vcpus > 1 {
		b.Require(hv.CapMultiVCPU)
	}
	g := b.NewGuest(guest.Config{Mode: mode, VCPUs: c.vcpus, VM: hv.VMConfig{IRQChip: c.irq}})
	cfg := dev.Config{Memory: g.VM}
	if c.irq {
		cfg.IRQ, cfg.Vector = g.VM, irqVector
	}
	d, err := dev.New(cfg)
	Expect(err).NotTo(HaveOccurred())
	if err := g.VM.Attach(d, dev.Region(barGPA)); err != nil {
		d.Close()
		Fail(fmt.Sprintf("attach the vGPU: %v", err))
	}
	Expect(g.PT.Map(barGPA, barGPA, dev.BAR0Size, guest.PTEWrite|guest.PTEUser|guest.PTEPCD)).To(Succeed())
	t := &testbed{g: g, d: d}
	t.shared = alloc(g, hv.PageSize)
	t.ctx = alloc(g, uint64(len(dev.Engines))*hv.PageSize)
	t.seq = alloc(g, hv.PageSize)
	for e := range dev.Engines {
		t.stream(e)
	}
	return t
}

// signed is v as the sign-extended immediate a 32-bit compare or store takes.
func signed(v uint32) int64 { return int64(int32(v)) }

func alloc(g *guest.Guest, n uint64) uint64 {
	GinkgoHelper()
	gpa, err := g.Alloc(n, hv.PageSize)
	Expect(err).NotTo(HaveOccurred())
	return gpa
}

// stream writes engine e's command stream: store a value (which the
// driver rewrites per submission) to the engine's breadcrumb, end.
func (t *testbed) stream(e int) {
	GinkgoHelper()
	ctx := t.ctxOf(e)
	for i, v := range []uint32{dev.MIStoreDwordImm, uint32(t.seqOf(e)), 0, 0, dev.MIBatchBufferEnd} {
		Expect(t.g.VM.Store32(ctx+uint64(4*i), v)).To(Succeed())
	}
}

func (t *testbed) ctxOf(e int) uint64 { return t.ctx + uint64(e)*hv.PageSize }
func (t *testbed) seqOf(e int) uint64 { return t.seq + uint64(4*e) }

// desc is a valid PPGTT descriptor for engine e's context.
func (t *testbed) desc(e int) uint64 {
	return t.ctxOf(e)&dev.DescLRCAMask | dev.DescPrivilege | dev.DescValid
}

// program starts a driver on a fresh program.
func (t *testbed) program() (*guest.Program, *driver) {
	p := t.g.Program()
	return p, newDriver(p, barGPA, t.shared)
}

// setup is the whole bring-up: detect, negotiate caps, register the
// shared page and the submission area.
func (d *driver) setup(caps uint32) {
	d.detect()
	d.negotiate(caps)
	d.register()
	d.registerSubmission()
}

func (t *testbed) run(ctx context.Context, p *guest.Program, onSync func(*guest.Ucall) error) {
	GinkgoHelper()
	p.Done()
	Expect(t.g.Load(p)).To(Succeed())
	Expect(t.g.RunAll(ctx, onSync)).To(Succeed())
	Expect(t.d.Error()).To(BeEquivalentTo(dev.ErrNone), "device error register")
}

// submitLoop emits n submissions on engine e, numbered 1..n in R14: each
// rewrites the stream's value and waits for the breadcrumb; body submits.
func (t *testbed) submitLoop(d *driver, e int, n int, body func()) {
	p := d.p
	p.Mov(asm.R14D, asm.Imm(0))
	loop := p.Here()
	p.Inc(asm.R14D)
	p.Mov(asm.R8, asm.Imm(int64(t.desc(e))))
	p.Mov(asm.R9, asm.Imm(int64(t.ctxOf(e))))
	p.Mov(asm.ESI, asm.R14D)
	d.setStream()
	body()
	p.Mov(asm.R10, asm.Imm(int64(t.seqOf(e))))
	d.waitFor(asm.D(asm.R10, 0), asm.ESI, "workload breadcrumb")
	p.Cmp(asm.R14D, asm.Imm(int64(n)))
	p.Jcc(asm.CondB, loop)
}

func specs(b *framework.Backend) {
	for _, mode := range b.Modes() {
		mode := mode
		modeLabel := framework.ModeLabel(mode)
		name := func(s string) string { return fmt.Sprintf("%s [%s]", s, mode) }
		bed := func(c bedConfig) *testbed {
			GinkgoHelper()
			return newTestbed(b, mode, c)
		}

		It(name("check 1: PVINFO identity, read-only fields ignore writes"), modeLabel, func(ctx SpecContext) {
			t := bed(bedConfig{})
			p, d := t.program()
			d.detect()
			By("writing every identity field")
			p.Mov(pv(dev.OffMagic, 8), asm.Imm(0))
			p.Mov(pv(dev.OffMagic+4, 4), asm.Imm(-1))
			p.Mov(pv(dev.OffVersionMajor, 2), asm.Imm(0))
			p.Mov(pv(dev.OffVGTCaps, 4), asm.Imm(0))
			p.Mov(pv(dev.OffVGTCaps, 1), asm.Imm(0))
			d.detect()
			t.run(ctx, p, nil)
		}, SpecTimeout(specTimeout))

		It(name("check 2+3+4: negotiation keeps the common caps, the shared page is registered"), modeLabel, func(ctx SpecContext) {
			t := bed(bedConfig{})
			p, d := t.program()
			d.detect()
			d.negotiate(dev.PVSubmission)
			p.AssertEq(asm.EAX, asm.Imm(dev.PVSubmission), "pv_caps with guest caps {SUBMISSION}")
			d.register()
			p.Mov(asm.EAX, pv(dev.OffPVCaps, 4))
			p.AssertEq(asm.EAX, asm.Imm(dev.PVSubmission), "pv_caps after registration")
			p.Movzx(asm.EAX, pv(dev.OffG2VNotify, 4).WithSize(2))
			p.AssertEq(asm.EAX, asm.Imm(dev.G2VSharedPageRegister), "g2v_notify reads back")
			t.run(ctx, p, nil)
		}, SpecTimeout(specTimeout))

		It(name("check 4: an invalid shared page turns PV off and is not written"), modeLabel, func(ctx SpecContext) {
			t := bed(bedConfig{})
			p, d := t.program()
			d.detect()
			p.Mov(asm.RAX, asm.Imm(unbackedGPA))
			p.Mov(pv(dev.OffSharedPage, 8), asm.RAX)
			p.Mov(pv(dev.OffG2VNotify, 4), asm.Imm(dev.G2VSharedPageRegister))
			p.Mov(asm.EAX, pv(dev.OffPVCaps, 4))
			p.AssertEq(asm.EAX, asm.Imm(0), "pv_caps after an invalid registration")
			p.Mov(asm.EAX, reg(dev.RegError))
			p.AssertEq(asm.EAX, asm.Imm(dev.ErrSharedPageInvalid), "error register")
			p.Mov(reg(dev.RegError), asm.Imm(0))
			By("and the shared page, valid, is not written before it is registered")
			p.Mov(asm.EAX, asm.D(regShared, 0))
			p.AssertEq(asm.EAX, asm.Imm(0), "version words of the unregistered page")
			t.run(ctx, p, nil)
		}, SpecTimeout(specTimeout))

		It(name("check 3: with pv_caps 0 the submit value is an ordinary ELSP dword"), modeLabel, func(ctx SpecContext) {
			t := bed(bedConfig{})
			p, d := t.program()
			d.detect()
			d.register()
			d.negotiate(0)
			p.AssertEq(asm.EAX, asm.Imm(0), "pv_caps")
			// Port 1 upper = PV_CMD_SUBMIT_WORKLOAD, lower 0 (invalid), then
			// port 0: the fourth write submits port 0 the legacy way.
			r := reg(dev.Engines[0].Base + dev.RegELSP)
			p.Mov(asm.ESI, asm.Imm(1))
			p.Mov(asm.R9, asm.Imm(int64(t.ctxOf(0))))
			d.setStream()
			p.Mov(r, asm.Imm(dev.PVCmdSubmitWorkload))
			p.Mov(r, asm.Imm(0))
			p.Mov(r, asm.Imm(int64(t.desc(0)>>32)))
			p.Mov(r, asm.Imm(int64(uint32(t.desc(0)))))
			p.Mov(asm.R10, asm.Imm(int64(t.seqOf(0))))
			d.waitFor(asm.D(asm.R10, 0), asm.Imm(1), "legacy workload")
			t.run(ctx, p, nil)
			st := t.d.Stats()
			Expect(st.LegacySubmits).To(BeEquivalentTo(1))
			Expect(st.PVSubmits).To(BeZero())
		}, SpecTimeout(specTimeout))

		It(name("check 5: CTB ring math with random lengths across the wrap"), modeLabel, func(ctx SpecContext) {
			seed := b.Env.Seed
			if s := b.Env.Param("vgpu.seed", ""); s != "" {
				v, err := strconv.ParseInt(s, 0, 64)
				Expect(err).NotTo(HaveOccurred(), "vgpu.seed")
				seed = v
			}
			GinkgoWriter.Printf("vgpu.seed=%d\n", seed)
			rng := rand.New(rand.NewSource(seed))
			t := bed(bedConfig{})
			p, d := t.program()
			d.setup(dev.PVSubmission)
			const messages = 80 // about three trips round the 2 KiB ring
			table := alloc(t.g, 32*4*messages)
			at := table
			for m := 0; m < messages; m++ {
				n := rng.Intn(31) // data dwords: len-1 for len in [1, 31]
				Expect(t.g.VM.Store32(at, uint32(n))).To(Succeed())
				for i := 1; i <= n; i++ {
					Expect(t.g.VM.Store32(at+uint64(4*i), rng.Uint32())).To(Succeed())
				}
				at += uint64(4 * (n + 1))
			}
			d.sendTable(dev.PVCmdDefault, table, messages)
			By("an empty ring")
			p.Mov(asm.ESI, ctb(dev.CTBDescFence))
			p.Mov(pv(dev.OffG2VNotify, 4), asm.Imm(dev.G2VPVSendTrigger))
			p.Mov(asm.EAX, ctb(dev.CTBDescStatus))
			p.AssertEq(asm.EAX, asm.Imm(signed(dev.StatusENODATA)), "empty ring status")
			p.Mov(asm.EAX, ctb(dev.CTBDescFence))
			p.AssertEq(asm.EAX, asm.ESI, "empty ring leaves the fence")
			t.run(ctx, p, nil)
			Expect(t.d.Stats().CTBMessages).To(BeEquivalentTo(messages + 1))
		}, SpecTimeout(specTimeout))

		It(name("check 5: the guest refuses a message that would fill the ring (-ENOSPC)"), modeLabel, func(ctx SpecContext) {
			t := bed(bedConfig{})
			p, d := t.program()
			d.setup(dev.PVSubmission)
			// used+len+1 >= 512 dwords: with 509 dwords used a 2-dword
			// message (len 2) is refused, one of len 1 would fit.
			p.Mov(asm.EAX, ctb(dev.CTBDescTail))
			p.Add(asm.EAX, asm.Imm(12))
			p.And(asm.EAX, asm.Imm(dev.CTBSize-1))
			p.Mov(ctb(dev.CTBDescHead), asm.EAX)
			refused, sent := p.NewLabel(), p.NewLabel()
			d.trySend(refused, dev.PVCmdDefault, asm.Imm(7))
			p.Jmp(sent)
			p.Bind(refused)
			p.AssertEq(asm.EAX, asm.Imm(errNoSpace), "refusal")
			p.Mov(asm.EAX, ctb(dev.CTBDescTail))
			p.Mov(ctb(dev.CTBDescHead), asm.EAX)
			d.send(dev.PVCmdDefault, asm.Imm(7))
			p.AssertEq(asm.EAX, asm.Imm(0), "status once the ring is empty again")
			p.Mov(asm.R8D, asm.Imm(1))
			p.Bind(sent)
			p.AssertEq(asm.R8D, asm.Imm(1), "a message that does not fit was sent")
			t.run(ctx, p, nil)
		}, SpecTimeout(specTimeout))

		It(name("check 6: malformed ring indices get -EINVAL, never a host error"), modeLabel, func(ctx SpecContext) {
			t := bed(bedConfig{})
			p, d := t.program()
			d.setup(dev.PVSubmission)
			bad := []struct{ field, value int32 }{
				{dev.CTBDescHead, 2}, {dev.CTBDescTail, 6}, {dev.CTBDescSizeOf, dev.CTBSize - 2},
				{dev.CTBDescHead, dev.CTBSize}, {dev.CTBDescTail, 0x7ffffffc}, {dev.CTBDescSizeOf, 0},
				{dev.CTBDescAddr, dev.PVCmdOff + 4}, {dev.CTBDescAddr, -1},
			}
			for _, c := range bad {
				p.Mov(asm.EDI, ctb(c.field))
				p.Mov(ctb(c.field), asm.Imm(int64(c.value)))
				p.Mov(pv(dev.OffG2VNotify, 4), asm.Imm(dev.G2VPVSendTrigger))
				p.Mov(asm.EAX, ctb(dev.CTBDescStatus))
				p.AssertEq(asm.EAX, asm.Imm(signed(dev.StatusEINVAL)), fmt.Sprintf("status with field %d = %#x", c.field, c.value))
				p.Mov(asm.EAX, reg(dev.RegError))
				p.AssertEq(asm.EAX, asm.Imm(dev.ErrCTBDescriptor), "error register")
				p.Mov(reg(dev.RegError), asm.Imm(0))
				p.Mov(ctb(c.field), asm.EDI)
			}
			By("the ring still works")
			d.send(dev.PVCmdDefault, asm.Imm(1))
			p.AssertEq(asm.EAX, asm.Imm(0), "status after the bad descriptors")
			t.run(ctx, p, nil)
		}, SpecTimeout(specTimeout))

		It(name("check 7: invalid and GGTT descriptors are refused, valid ones run once each"), modeLabel, func(ctx SpecContext) {
			t := bed(bedConfig{})
			p, d := t.program()
			d.setup(dev.PVSubmission)
			refused := func(desc uint64, what string) {
				p.Mov(asm.R8, asm.Imm(int64(desc)))
				p.Mov(asm.R9, asm.Imm(int64(t.ctxOf(1))))
				d.pvSubmit(1, false)
				// The guest's 1 ms wait, as a bounded spin: submitted stays set.
				p.Mov(asm.ECX, asm.Imm(1000))
				l := p.Here()
				p.Pause()
				p.Dec(asm.ECX)
				p.Jcc(asm.CondNZ, l)
				p.Movzx(asm.EAX, area(1, dev.SubSubmitted, 1))
				p.AssertEq(asm.EAX, asm.Imm(1), what+": submitted")
				p.Mov(asm.EAX, reg(dev.RegError))
				p.AssertEq(asm.EAX, asm.Imm(dev.ErrSubmitInvalid), what+": error register")
				p.Mov(reg(dev.RegError), asm.Imm(0))
			}
			refused(t.desc(1)&^dev.DescValid, "desc[0] invalid")
			refused(t.desc(1)&^dev.DescPrivilege, "GGTT descriptor")
			for e := range dev.Engines {
				t.submitLoop(d, e, 3, func() { d.pvSubmit(e, true) })
			}
			t.run(ctx, p, nil)
			st := t.d.Stats()
			Expect(st.Workloads).To(BeEquivalentTo(3 * len(dev.Engines)))
			Expect(st.Rejected).To(BeEquivalentTo(2))
		}, SpecTimeout(specTimeout))

		It(name("check 9: an unknown REGISTER_CAP_GPA cap is acked and ignored"), modeLabel, func(ctx SpecContext) {
			t := bed(bedConfig{})
			p, d := t.program()
			d.setup(dev.PVSubmission)
			for _, c := range []int64{dev.PVPPGTT, 1 << 3, 1 << 4, -1} {
				d.send(dev.PVCmdRegisterCapGPA, asm.Imm(c), asm.Imm(unbackedGPA), asm.Imm(0))
				p.AssertEq(asm.EAX, asm.Imm(0), fmt.Sprintf("status for cap %#x", c))
			}
			By("PV submission still uses the registered area")
			t.submitLoop(d, 0, 1, func() { d.pvSubmit(0, true) })
			t.run(ctx, p, nil)
		}, SpecTimeout(specTimeout))

		It(name("check 8+10: PV raises no context-switch interrupt and exits less than legacy ELSP"), modeLabel, func(ctx SpecContext) {
			n := 200
			if s := b.Env.Param("vgpu.submissions", ""); s != "" {
				v, err := strconv.Atoi(s)
				Expect(err).NotTo(HaveOccurred(), "vgpu.submissions")
				n = v
			}
			t := bed(bedConfig{irq: true})
			Expect(t.g.Handle(guest.Handler{Vector: irqVector, EOI: true, Body: func(p *guest.Program, f guest.Frame) {
				// The legacy driver's interrupt work: IIR, the CSB pointer
				// and entry, and the acks.
				p.Mov(asm.RAX, asm.Imm(barGPA))
				p.Mov(asm.ECX, asm.D(asm.RAX, dev.RegIIR))
				p.Mov(asm.D(asm.RAX, dev.RegIIR), asm.ECX)
				base := int32(dev.Engines[0].Base)
				p.Mov(asm.EDX, asm.D(asm.RAX, base+dev.RegCSBPtr))
				p.And(asm.EDX, asm.Imm(0xf))
				p.Mov(asm.ESI, asm.D(asm.RAX, base+dev.RegCSBBuf).Idx(asm.RDX, 8))
				p.Shl(asm.EDX, asm.Imm(dev.CSBReadShift))
				p.Or(asm.EDX, asm.Imm(0xf00<<16))
				p.Mov(asm.D(asm.RAX, base+dev.RegCSBPtr), asm.EDX)
			}})).To(Succeed())
			p, d := t.program()
			p.APICWrite(guest.APICSVR, asm.Imm(guest.APICSVREnable|0xff))
			d.setup(dev.PVSubmission)
			p.Sync(1)
			t.submitLoop(d, 0, n, func() { d.pvSubmit(0, true) })
			p.Sync(2)
			d.negotiate(0)
			p.Sync(3)
			t.submitLoop(d, 0, n, func() {
				d.elsp(0)
				p.WaitInterrupts(irqVector, asm.R14D)
			})
			p.Sync(4)
			var (
				stats [5]dev.Stats
				at    [5]time.Time
				exits [5]uint64 // the vCPU's own count: every exit, not only the device's
			)
			t.run(ctx, p, func(u *guest.Ucall) error {
				stats[u.Stage()], at[u.Stage()] = t.d.Stats(), time.Now()
				st, err := t.g.VCPUs[0].Stats()
				if err != nil {
					return err
				}
				exits[u.Stage()], _ = st.Get("exits")
				return nil
			})
			pvS, lgS := stats[2].Sub(stats[1]), stats[4].Sub(stats[3])
			Expect(pvS.PVSubmits).To(BeEquivalentTo(n))
			Expect(lgS.LegacySubmits).To(BeEquivalentTo(n))
			Expect(pvS.CtxSwitchIRQs).To(BeZero(), "context-switch interrupts in PV mode")
			Expect(lgS.CtxSwitchIRQs).To(BeEquivalentTo(n), "context-switch interrupts of the legacy path")
			Expect(t.g.InterruptCount(0, irqVector)).To(BeEquivalentTo(n), "interrupts the guest took")
			pvExits := float64(pvS.MMIOReads+pvS.MMIOWrites) / float64(n)
			lgExits := float64(lgS.MMIOReads+lgS.MMIOWrites) / float64(n)
			pvRate := float64(n) / at[2].Sub(at[1]).Seconds()
			lgRate := float64(n) / at[4].Sub(at[3]).Seconds()
			pvVM := float64(exits[2]-exits[1]) / float64(n)
			lgVM := float64(exits[4]-exits[3]) / float64(n)
			report := fmt.Sprintf("%s: per submission PV %.1f device exits (%.1f vCPU exits), %d ctx-switch irqs; legacy %.1f device exits (%.1f vCPU exits), %.1f ctx-switch irqs; device-exit ratio %.2f; PV %.0f/s, legacy %.0f/s",
				b.Name, pvExits, pvVM, pvS.CtxSwitchIRQs, lgExits, lgVM, float64(lgS.CtxSwitchIRQs)/float64(n), lgExits/pvExits, pvRate, lgRate)
			AddReportEntry("vgpu PV vs legacy", report)
			GinkgoWriter.Println(report)
			Expect(pvExits).To(BeNumerically("<", lgExits), "PV device exits per submission")
		}, SpecTimeout(specTimeout))

		It(name("device writes appear in the dirty log"), modeLabel, func(ctx SpecContext) {
			b.Require(hv.CapDirtyLog)
			t := bed(bedConfig{})
			slot := t.g.VM.Memslots()[0]
			slot.Flags |= hv.MemLogDirty
			Expect(t.g.VM.SetMemslot(slot)).To(Succeed())
			bitmap := make([]uint64, (slot.Pages()+63)/64)
			Expect(t.g.VM.GetDirtyLog(slot.Slot, bitmap)).To(Succeed()) // start clean
			p, d := t.program()
			d.setup(dev.PVSubmission)
			p.Sync(1)
			t.submitLoop(d, 2, 1, func() { d.pvSubmit(2, true) })
			t.run(ctx, p, func(u *guest.Ucall) error {
				return t.g.VM.GetDirtyLog(slot.Slot, bitmap)
			})
			Expect(t.g.VM.GetDirtyLog(slot.Slot, bitmap)).To(Succeed())
			// Only the engine writes the breadcrumb page: the guest reads it.
			page := (t.seq - slot.GPA) / hv.PageSize
			Expect(bitmap[page/64]>>(page%64)&1).To(BeEquivalentTo(1), "breadcrumb page %#x dirty", t.seq)
		}, SpecTimeout(specTimeout))

		It(name("a reset with work in flight ends every workload exactly once"), modeLabel, func(ctx SpecContext) {
			t := bed(bedConfig{})
			// A page-long stream per engine, so some are still running.
			long := alloc(t.g, uint64(len(dev.Engines))*hv.PageSize)
			for e := range dev.Engines {
				at := long + uint64(e)*hv.PageSize
				var cmds []uint32
				for len(cmds)+5 < hv.PageSize/4 {
					cmds = append(cmds, dev.MIStoreDwordImm, uint32(t.seqOf(e)), 0, uint32(len(cmds)))
				}
				cmds = append(cmds, dev.MIBatchBufferEnd)
				for i, v := range cmds {
					Expect(t.g.VM.Store32(at+uint64(4*i), v)).To(Succeed())
				}
			}
			const rounds = 10
			p, d := t.program()
			d.setup(dev.PVSubmission)
			p.Mov(asm.R14D, asm.Imm(rounds))
			round := p.Here()
			for e := range dev.Engines {
				at := long + uint64(e)*hv.PageSize
				p.Mov(asm.R8, asm.Imm(int64(at|dev.DescPrivilege|dev.DescValid)))
				p.Mov(asm.R9, asm.Imm(int64(at)))
				d.pvSubmit(e, true)
			}
			p.Dec(asm.R14D)
			p.Jcc(asm.CondNZ, round)
			p.Sync(1)
			By("PV is off after the reset: the submit value is an ELSP dword")
			p.Mov(reg(dev.Engines[0].Base+dev.RegELSP), asm.Imm(dev.PVCmdSubmitWorkload))
			p.Mov(asm.EAX, reg(dev.RegError))
			p.AssertEq(asm.EAX, asm.Imm(dev.ErrSubmitNoArea), "error register after reset")
			p.Mov(reg(dev.RegError), asm.Imm(0))
			t.run(ctx, p, func(*guest.Ucall) error { return t.g.VM.ResetDevices() })
			st := t.d.Stats()
			GinkgoWriter.Printf("reset with %d queued: %d completed, %d failed\n", st.Workloads, st.Completed, st.Failed)
			Expect(st.Workloads).To(BeEquivalentTo(rounds * len(dev.Engines)))
			Expect(st.Completed+st.Failed).To(Equal(st.Workloads), "every workload ended once")
		}, SpecTimeout(specTimeout))

		It(name("several vCPUs submit on different engines at once"), modeLabel, func(ctx SpecContext) {
			const per = 50
			t := bed(bedConfig{vcpus: len(dev.Engines)})
			p, d := t.program()
			ready := asm.D(regShared, dev.PVRsvdOff+64)
			start := p.NewLabel()
			p.Cmp(asm.EDI, asm.Imm(0))
			p.Jcc(asm.CondNE, start)
			d.setup(dev.PVSubmission)
			p.Mov(ready, asm.Imm(1))
			p.Bind(start)
			d.waitFor(ready, asm.Imm(1), "vCPU 0's bring-up")
			end := p.NewLabel()
			for e := range dev.Engines {
				next := p.NewLabel()
				p.Cmp(asm.EDI, asm.Imm(int64(e)))
				p.Jcc(asm.CondNE, next)
				t.submitLoop(d, e, per, func() { d.pvSubmit(e, true) })
				p.Jmp(end)
				p.Bind(next)
			}
			p.Bind(end)
			t.run(ctx, p, nil)
			// The guest stops at its last breadcrumb, which an engine
			// writes before it counts the workload completed.
			Expect(t.d.Drain(ctx)).To(Succeed())
			st := t.d.Stats()
			Expect(st.PVSubmits).To(BeEquivalentTo(per * len(dev.Engines)))
			Expect(st.Completed).To(BeEquivalentTo(per * len(dev.Engines)))
			for e := range dev.Engines {
				v, err := t.g.VM.Load32(t.seqOf(e))
				Expect(err).NotTo(HaveOccurred())
				Expect(v).To(BeEquivalentTo(per), "engine %d's last breadcrumb", e)
			}
		}, SpecTimeout(specTimeout))
	}
}
