// Package debug checks the x86 debug architecture as a hypervisor exposes
// it: breakpoints, watchpoints and single-step, owned by the host
// (KVM_SET_GUEST_DEBUG: the event is a DebugExit) or by the guest (its own
// DR0-DR7, TF and int3, delivered through its IDT as #DB and #BP).
//
// It follows the kernel's x86/debug_regs.c and arm64/debug-exceptions.c:
// every case runs at each privilege level the backend offers (b.Modes),
// and each is one spec. Spec IDs read
// "debug/<group> / <case> [cplN]" with the groups
//
//	host-owned   software, execute and data breakpoints, single-step, DR7.GD,
//	             BLOCKIRQ, resume semantics (RF; disarm, step, re-arm)
//	guest-owned  the guest arms its own DR0-DR3/DR7 and checks DR6 and the
//	             saved RIP in its #DB and #BP handlers; TF stepping, int3 in a
//	             loop, ICEBP, every data access path, every execute
//	             breakpoint with every watchpoint in another register
//	interplay    a host single-step meeting the guest's watchpoint; a
//	             watchpoint on a dirty-logged or a demand-paged page
//	bad input    the errors for flags and debug registers the contract refuses
//
// kvm-pvm hosts run little of this (kvm-host.md); fixtures/hosts/pvm.json
// declares what fails there, with the result observed.
package debug

import (
	"fmt"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func init() { framework.Register(taxonomy.Debug, specs) }

// specTimeout bounds every spec: the guests run a few dozen instructions.
const specTimeout = 10 * time.Second

// Group names, part of every spec ID (host profiles match on them).
const (
	groupHost      = "host-owned"
	groupGuest     = "guest-owned"
	groupInterplay = "interplay"
	groupBadInput  = "bad input"
)

// Architectural debug register bits (SDM vol. 3, 18.2).
const (
	dr6Fixed = 0xffff0ff0 // DR6 with no condition reported (reserved bits read 1)
	dr6BD    = 1 << 13
	dr6BS    = 1 << 14
	dr7Fixed = 0x400
	dr7GD    = 1 << 13
	rwExec   = 0
	rwWrite  = 1
	rwRW     = 3
)

// dr7Enable is the enable bit of breakpoint i: L (local) or G (global).
func dr7Enable(i int, global bool) uint64 {
	if global {
		return 1 << (2*i + 1)
	}
	return 1 << (2 * i)
}

// lenBits encodes a watch length in DR7's LEN field (8 bytes is 10b).
func lenBits(n int) uint64 {
	switch n {
	case 1:
		return 0
	case 2:
		return 1
	case 8:
		return 2
	}
	return 3
}

// dr7Cond is breakpoint i's RW and LEN fields in DR7.
func dr7Cond(i int, rw uint64, n int) uint64 {
	return (rw | lenBits(n)<<2) << (16 + 4*i)
}

// caseFn is one case: it runs with the spec's context on a fresh guest.
type caseFn func(ctx SpecContext, e *env)

// env is one spec's guest and what the cases share.
type env struct {
	b    *framework.Backend
	mode guest.Mode
	g    *guest.Guest
	p    *guest.Program
	// buf is a 4 KiB page of test data, identity-mapped, user-accessible.
	buf uint64
	// log holds the guest handlers' records (see installDB).
	log uint64
}

func newEnv(b *framework.Backend, mode guest.Mode, vm hv.VMConfig) *env {
	GinkgoHelper()
	g := b.NewGuest(guest.Config{Mode: mode, VM: vm})
	buf, err := g.Alloc(hv.PageSize, hv.PageSize)
	Expect(err).NotTo(HaveOccurred())
	log, err := g.Alloc(hv.PageSize, hv.PageSize)
	Expect(err).NotTo(HaveOccurred())
	return &env{b: b, mode: mode, g: g, p: g.Program(), buf: buf, log: log}
}

// vcpu is the spec's only vCPU.
func (e *env) vcpu() hv.VCPU { return e.g.VCPUs[0] }

// load assembles the program.
func (e *env) load() {
	GinkgoHelper()
	Expect(e.g.Load(e.p)).To(Succeed())
}

// addr is a label's address once the program is loaded.
func (e *env) addr(l *asm.Label) uint64 {
	GinkgoHelper()
	a, ok := e.p.Addr(l)
	Expect(ok).To(BeTrue(), "label %v unbound", l)
	return a
}

// run runs to the next event and fails the spec on an error.
func (e *env) run(ctx SpecContext) guest.Event {
	GinkgoHelper()
	ev, err := e.g.Run(ctx, 0)
	Expect(err).NotTo(HaveOccurred())
	return ev
}

// runDone runs to the guest's DONE with no other event on the way.
func (e *env) runDone(ctx SpecContext) {
	GinkgoHelper()
	ev := e.run(ctx)
	Expect(ev.Exit).To(BeNil(), "want DONE, got exit %v", ev.Exit)
	Expect(ev.Ucall).NotTo(BeNil())
	Expect(ev.Ucall.Cmd).To(Equal(guest.UcallDone), "want DONE, got %v", ev.Ucall)
}

// runSync runs to the guest's SYNC of stage.
func (e *env) runSync(ctx SpecContext, stage uint64) *guest.Ucall {
	GinkgoHelper()
	ev := e.run(ctx)
	Expect(ev.Exit).To(BeNil(), "want SYNC %d, got exit %v", stage, ev.Exit)
	Expect(ev.Ucall.Cmd).To(Equal(guest.UcallSync), "want SYNC %d, got %v", stage, ev.Ucall)
	Expect(ev.Ucall.Stage()).To(Equal(stage))
	return ev.Ucall
}

// debugExit is the host-side event a case expects.
type debugExit struct {
	vector uint32
	pc     uint64
	dr6    uint64
}

// expectDebug runs to the next event, which must be the debug exit want,
// with the vCPU's RIP where KVM leaves it (the PC reported).
func (e *env) expectDebug(ctx SpecContext, want debugExit) *hv.DebugExit {
	GinkgoHelper()
	ev := e.run(ctx)
	Expect(ev.Exit).NotTo(BeNil(), "want a debug exit at %#x (%s), got ucall %v", want.pc, e.g.Source(want.pc), ev.Ucall)
	d, ok := ev.Exit.(*hv.DebugExit)
	Expect(ok).To(BeTrue(), "want a debug exit at %#x (%s), got %v", want.pc, e.g.Source(want.pc), ev.Exit)
	Expect(d.Exception).To(Equal(want.vector), "vector of %v", d)
	Expect(d.PC).To(Equal(want.pc), "pc of %v: at %s, want %s", d, e.g.Source(d.PC), e.g.Source(want.pc))
	if want.dr6 != 0 {
		Expect(d.DR6).To(Equal(want.dr6), "dr6 of %v", d)
	}
	r, err := e.vcpu().Regs()
	Expect(err).NotTo(HaveOccurred())
	Expect(r.RIP).To(Equal(want.pc), "RIP after %v", d)
	return d
}

// setDebug sets host debugging: flags and, with DebugUseHWBP, DR0-DR3
// and DR7 (the other registers zero).
func (e *env) setDebug(f hv.DebugFlags, dr7 uint64, drs ...uint64) {
	GinkgoHelper()
	d := hv.GuestDebug{Flags: f}
	copy(d.DebugReg[:4], drs)
	d.DebugReg[7] = dr7
	Expect(e.vcpu().SetGuestDebug(&d)).To(Succeed(), "set guest debug %v", f)
}

// noDebug turns host debugging off.
func (e *env) noDebug() { GinkgoHelper(); e.setDebug(0, 0) }

// setRIP moves the vCPU, as a debugger skipping an instruction does.
func (e *env) setRIP(rip uint64) {
	GinkgoHelper()
	r, err := e.vcpu().Regs()
	Expect(err).NotTo(HaveOccurred())
	r.RIP = rip
	Expect(e.vcpu().SetRegs(&r)).To(Succeed())
}

// entries builds one table entry per case and mode, in mode order so the
// host's fast mode comes first. cpl0Only cases need ring 0 for what they
// test (MOV to or from a debug register).
type tcase struct {
	name     string
	cpl0Only bool
	irqchip  bool // the guest needs VMConfig.IRQChip
	fn       caseFn
}

func entries(b *framework.Backend, cases []tcase) []TableEntry {
	var out []TableEntry
	for _, mode := range b.Modes() {
		for _, c := range cases {
			if c.cpl0Only && mode != guest.CPL0 {
				continue
			}
			out = append(out, Entry(fmt.Sprintf("%s [%s]", c.name, mode), framework.ModeLabel(mode), SpecTimeout(specTimeout), mode, c))
		}
	}
	return out
}

func specs(b *framework.Backend) {
	DescribeTable(groupHost, func(ctx SpecContext, mode guest.Mode, c tcase) {
		b.Require(hv.CapGuestDebug)
		cfg := hv.VMConfig{}
		if c.irqchip {
			b.Require(hv.CapIRQChip)
			cfg.IRQChip = true
		}
		c.fn(ctx, newEnv(b, mode, cfg))
	}, entries(b, hostCases()))

	DescribeTable(groupGuest, func(ctx SpecContext, mode guest.Mode, c tcase) {
		e := newEnv(b, mode, hv.VMConfig{})
		e.installHandlers()
		c.fn(ctx, e)
	}, entries(b, guestCases()))

	DescribeTable(groupInterplay, func(ctx SpecContext, mode guest.Mode, c tcase) {
		b.Require(hv.CapGuestDebug)
		e := newEnv(b, mode, hv.VMConfig{})
		e.installHandlers()
		c.fn(ctx, e)
	}, entries(b, interplayCases()))

	DescribeTable(groupBadInput, func(ctx SpecContext, fn caseFn) {
		b.Require(hv.CapGuestDebug)
		fn(ctx, newEnv(b, b.Modes()[0], hv.VMConfig{}))
	}, badInputEntries())
}
