package kvm

// Tests that run AArch64 guests on /dev/kvm. They skip without it (as on
// the development machine, x86 without KVM); `make test-arm64` runs them
// in an arm64 kernel under qemu-system-aarch64. The guests are a few raw
// instructions at EL1 with the MMU off (so every data access is to
// physical addresses), built with harness/a64; the arm64 guest runtime
// (page tables, vectors, ucalls) lives elsewhere.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// Guest physical layout (the "virt" board's: RAM at 1 GiB, devices below).
const (
	a64RAM      = 0x4000_0000
	a64RAMSize  = 2 << 20
	a64Code     = a64RAM + 0x1000
	a64Data     = a64RAM + a64RAMSize // slot 1 in the dirty-log tests, after RAM
	a64DataSize = 64 << 10
	a64MMIO     = 0x1000_0000 // unbacked: every access exits
	a64GICD     = 0x0800_0000
	a64GICR     = 0x080a_0000
	a64PMUIRQ   = 23 // the PMU overflow PPI the virt board uses
)

type a64Guest struct {
	h    *Hypervisor
	vm   *VM
	mem  *hv.Memory
	vcpu *VCPU
	// code is the assembled program, to find instruction addresses.
	asm *a64.Assembler
}

// openARM64OrSkip opens the backend and checks it runs AArch64 guests
// with 4 KiB host pages (memslots and dirty bitmaps here count 4 KiB).
func openARM64OrSkip(tb testing.TB) *Hypervisor {
	tb.Helper()
	h := openMemOrSkip(tb)
	if a := h.Caps().GuestArch(); a != hv.ArchARM64 {
		tb.Fatalf("an arm64 build whose kvm backend says its guests are %s", a)
	}
	return h
}

// newA64Guest builds a VM with RAM in slot 0, the program at a64Code, and
// one vCPU with features f whose PC is a64Code. A nil build leaves the
// vCPU unstarted for tests that only look at registers.
func newA64Guest(tb testing.TB, h *Hypervisor, cfg hv.VMConfig, f hv.ARM64VCPUFeatures, build func(a *a64.Assembler)) *a64Guest {
	tb.Helper()
	vm, err := h.CreateVM(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	mem, err := hv.NewMemory(a64RAMSize, hv.Anonymous)
	if err != nil {
		vm.Close()
		tb.Fatal(err)
	}
	g := &a64Guest{h: h, vm: vm, mem: mem, asm: a64.New(a64Code)}
	tb.Cleanup(func() {
		vm.Close()
		mem.Close()
	})
	if build != nil {
		build(g.asm)
		code, err := g.asm.Assemble()
		if err != nil {
			tb.Fatal(err)
		}
		copy(mem.Bytes()[a64Code-a64RAM:], code)
	}
	if err := vm.SetMemslot(hv.Memslot{Slot: 0, GPA: a64RAM, Size: mem.Size(), Memory: mem}); err != nil {
		tb.Fatal(err)
	}
	if g.vcpu, err = vm.CreateARM64VCPU(0, f); err != nil {
		tb.Fatal(err)
	}
	if err := g.vcpu.SetOneReg(hv.ARM64RegPC, a64Code); err != nil {
		tb.Fatal(err)
	}
	if err := g.vcpu.SetOneReg(hv.ARM64RegSPEL1, a64RAM+a64RAMSize); err != nil {
		tb.Fatal(err)
	}
	return g
}

// systemOff is PSCI SYSTEM_OFF: x0 = function id, HVC #0. Like every
// SMCCC call it returns in x0-x3 (KVM writes them even for SYSTEM_OFF):
// programs leave what the host checks in x4 and up.
func systemOff(a *a64.Assembler) {
	a.Mov(a64.W0, a64.Imm(hv.PSCISystemOff))
	a.Hvc(0)
}

func (g *a64Guest) run(tb testing.TB) hv.Exit {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := g.vcpu.Run(ctx)
	if err != nil {
		tb.Fatalf("Run: %v", err)
	}
	return e
}

func (g *a64Guest) reg(tb testing.TB, id uint64) uint64 {
	tb.Helper()
	v, err := g.vcpu.GetOneReg(id)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// wantSystemOff runs to the PSCI SYSTEM_OFF the program ends with.
func (g *a64Guest) wantSystemOff(tb testing.TB) {
	tb.Helper()
	if !g.h.arch.psci02 {
		tb.Skip("KVM_CAP_ARM_PSCI_0_2=0: no PSCI SYSTEM_OFF")
	}
	e := g.run(tb)
	se, ok := e.(*hv.SystemEventExit)
	if !ok || se.Type != hv.SystemEventShutdown {
		tb.Fatalf("exit %v, want system-event shutdown (PSCI SYSTEM_OFF)", e)
	}
}

func TestARM64Caps(t *testing.T) {
	h := openAnyOrSkip(t)
	c := h.Caps()
	if c.Arch != hv.ArchARM64 || !c.Has(hv.CapARM64) || c.Has(hv.CapLongMode) {
		t.Fatalf("caps: arch %q, arm64 %v, long-mode %v", c.Arch, c.Features[hv.CapARM64], c.Features[hv.CapLongMode])
	}
	for _, cp := range []hv.Cap{hv.CapLongMode, hv.CapCPUID, hv.CapUserSpaceMSR, hv.CapIRQChip, hv.CapMSI, hv.CapIRQLine} {
		if s := c.Features[cp]; s.OK || s.Reason == "" {
			t.Errorf("%s = %+v on arm64, want absent with a reason", cp, s)
		}
	}
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, nil)
	x86 := map[string]error{}
	_, x86["Regs"] = g.vcpu.Regs()
	x86["SetRegs"] = g.vcpu.SetRegs(&hv.Regs{})
	_, x86["Sregs"] = g.vcpu.Sregs()
	_, x86["GetMSR"] = g.vcpu.GetMSR(0x10)
	_, x86["CPUID"] = g.vcpu.CPUID()
	x86["Interrupt"] = g.vm.Interrupt(0, 32)
	x86["SetIRQLine"] = g.vm.SetIRQLine(4, true)
	for name, err := range x86 {
		if !errors.Is(err, hv.ErrUnsupported) {
			t.Errorf("%s on arm64 = %v, want ErrUnsupported", name, err)
		}
	}
	if _, err := h.CreateVM(hv.VMConfig{IRQChip: true}); !errors.Is(err, hv.ErrUnsupported) {
		t.Errorf("VMConfig.IRQChip on arm64 = %v, want ErrUnsupported", err)
	}
}

// The round trip the arm64 ucall is built on: a store to an unbacked
// address is an MMIO write exit with the data, a load is an MMIO read
// whose answer the guest gets, and PSCI SYSTEM_OFF over HVC is a
// system-event exit with the registers as the guest left them.
func TestARM64MMIORoundTrip(t *testing.T) {
	h := openARM64OrSkip(t)
	var hvcPC uint64
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, func(a *a64.Assembler) {
		a.Mov(a64.X0, a64.Imm(a64MMIO))
		a.Mov(a64.X1, a64.Imm(0x1122_3344_5566_7788))
		a.Str(a64.X1, a64.Ptr(a64.X0, 0))
		a.Ldr(a64.W4, a64.Ptr(a64.X0, 8))
		a.Add(a64.X5, a64.X4, a64.Imm(1))
		a.Strh(a64.W5, a64.Ptr(a64.X0, 16))
		a.Mov(a64.W0, a64.Imm(hv.PSCISystemOff))
		hvcPC = a.PC()
		a.Hvc(0)
	})
	steps := []struct {
		write bool
		gpa   uint64
		len   int
		value uint64 // written by the guest, or the host's answer to a read
	}{
		{true, a64MMIO, 8, 0x1122_3344_5566_7788},
		{false, a64MMIO + 8, 4, 0xcafe_f00d},
		{true, a64MMIO + 16, 2, 0xf00e},
	}
	for i, s := range steps {
		e := g.run(t)
		m, ok := e.(*hv.MMIOExit)
		if !ok {
			t.Fatalf("step %d: exit %v, want mmio", i, e)
		}
		if m.Write != s.write || m.GPA != s.gpa || m.Len != s.len {
			t.Fatalf("step %d: %v, want write=%v gpa %#x len %d", i, m, s.write, s.gpa, s.len)
		}
		if s.write {
			if m.Value() != s.value {
				t.Fatalf("step %d: guest wrote %#x, want %#x", i, m.Value(), s.value)
			}
		} else {
			m.SetValue(s.value)
		}
	}
	g.wantSystemOff(t)
	if x4, x5 := g.reg(t, hv.ARM64X(4)), g.reg(t, hv.ARM64X(5)); x4 != 0xcafe_f00d || x5 != 0xcafe_f00e {
		t.Errorf("x4 = %#x, x5 = %#x; want the MMIO answer 0xcafef00d and one more", x4, x5)
	}
	if pc := g.reg(t, hv.ARM64RegPC); pc != hvcPC+4 {
		t.Errorf("pc = %#x after SYSTEM_OFF, want %#x (past the HVC)", pc, hvcPC+4)
	}
}

func TestARM64OneRegs(t *testing.T) {
	h := openARM64OrSkip(t)
	tpidrSys, _ := a64.Sys("TPIDR_EL1")
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, func(a *a64.Assembler) {
		a.Add(a64.X6, a64.X0, a64.X1)
		a.Mrs(a64.X4, tpidrSys)
		systemOff(a)
	})
	// KVM's reset state: EL1 with SP_EL1, every exception masked.
	if ps := g.reg(t, hv.ARM64RegPSTATE); ps != hv.ARM64PStateModeEL1h|hv.ARM64PStateDAIF {
		t.Errorf("pstate after KVM_ARM_VCPU_INIT = %#x, want %#x", ps, hv.ARM64PStateModeEL1h|hv.ARM64PStateDAIF)
	}
	tpidr := hv.ARM64SysReg(tpidrSys.Op0, tpidrSys.Op1, tpidrSys.CRn, tpidrSys.CRm, tpidrSys.Op2)
	writes := []struct {
		id  uint64
		val uint64
	}{
		{hv.ARM64RegELREL1, 0x4000_2000},
		{hv.ARM64SPSR(0), hv.ARM64PStateModeEL1h},
		{hv.ARM64RegSP, 0x4000_8000},
		{tpidr, 0xfeed_face_0000_0001},
	}
	for n := 0; n <= 30; n++ {
		writes = append(writes, struct{ id, val uint64 }{hv.ARM64X(n), 0x1000*uint64(n) + 7})
	}
	for _, w := range writes {
		if err := g.vcpu.SetOneReg(w.id, w.val); err != nil {
			t.Fatalf("set %s: %v", hv.ARM64RegName(w.id), err)
		}
	}
	for _, w := range writes {
		if got := g.reg(t, w.id); got != w.val {
			t.Errorf("%s = %#x, want %#x", hv.ARM64RegName(w.id), got, w.val)
		}
	}
	g.wantSystemOff(t)
	if x6 := g.reg(t, hv.ARM64X(6)); x6 != 7+0x1007 {
		t.Errorf("guest x0+x1 = %#x, want %#x", x6, 7+0x1007)
	}
	if x4 := g.reg(t, hv.ARM64X(4)); x4 != 0xfeed_face_0000_0001 {
		t.Errorf("guest read TPIDR_EL1 = %#x, want the value set through ONE_REG", x4)
	}

	ids, err := g.vcpu.RegList()
	if err != nil {
		t.Fatal(err)
	}
	have := map[uint64]bool{}
	for _, id := range ids {
		have[id] = true
	}
	for _, id := range []uint64{hv.ARM64X(0), hv.ARM64RegPC, hv.ARM64RegPSTATE, hv.ARM64SCTLREL1, tpidr, hv.ARM64FWReg(0)} {
		if !have[id] {
			t.Errorf("KVM_GET_REG_LIST (%d ids) lacks %s", len(ids), hv.ARM64RegName(id))
		}
	}
	if _, err := g.vcpu.GetOneReg(0x6040_0000_0010_0054); !errors.Is(err, unix.EINVAL) { // v0
		t.Errorf("GetOneReg of a 128-bit register = %v, want EINVAL", err)
	}
	if _, err := g.vcpu.GetOneReg(hv.ARM64SysReg(3, 7, 15, 15, 7)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("GetOneReg of a register KVM lacks = %v, want ENOENT", err)
	}
	if psci, err := g.vcpu.GetOneReg(hv.ARM64FWReg(0)); err != nil || psci < 2 {
		t.Errorf("PSCI version pseudo-register = %#x, %v; want at least 0.2", psci, err)
	}
}

// ESR_EL2 exception classes of the debug exits from an EL1 guest.
const (
	ecBreakpointLow = 0x30
	ecSoftStepLow   = 0x32
	ecWatchpointLow = 0x34
	ecBRK64         = 0x3c
)

func wantDebug(tb testing.TB, e hv.Exit, ec uint32, pc uint64) *hv.DebugExit {
	tb.Helper()
	d, ok := e.(*hv.DebugExit)
	if !ok {
		tb.Fatalf("exit %v, want debug ec %#x", e, ec)
	}
	if d.Exception != ec || d.PC != pc {
		tb.Fatalf("%v, want ec %#x pc %#x", d, ec, pc)
	}
	return d
}

// BRK exits to the host with DebugUseSWBP; the host steps over it and
// single-steps the next instruction.
func TestARM64SoftwareBreakpointAndStep(t *testing.T) {
	h := openARM64OrSkip(t)
	for _, cp := range []hv.Cap{hv.CapSoftwareBP, hv.CapSingleStep} {
		if err := h.Caps().Require(cp); err != nil {
			t.Skip(err)
		}
	}
	var brkPC, movPC uint64
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, func(a *a64.Assembler) {
		a.Nop()
		brkPC = a.PC()
		a.Brk(0)
		movPC = a.PC()
		a.Mov(a64.X5, a64.Imm(7))
		a.Mov(a64.X6, a64.Imm(8))
		systemOff(a)
	})
	if err := g.vcpu.SetARM64GuestDebug(&hv.ARM64GuestDebug{Flags: hv.DebugEnable | hv.DebugUseSWBP}); err != nil {
		t.Fatal(err)
	}
	wantDebug(t, g.run(t), ecBRK64, brkPC)
	if err := g.vcpu.SetOneReg(hv.ARM64RegPC, movPC); err != nil {
		t.Fatal(err)
	}
	if err := g.vcpu.SetARM64GuestDebug(&hv.ARM64GuestDebug{Flags: hv.DebugEnable | hv.DebugSingleStep}); err != nil {
		t.Fatal(err)
	}
	wantDebug(t, g.run(t), ecSoftStepLow, movPC+4)
	if x5, x6 := g.reg(t, hv.ARM64X(5)), g.reg(t, hv.ARM64X(6)); x5 != 7 || x6 != 0 {
		t.Fatalf("after one step x5 = %d, x6 = %d; want 7, 0", x5, x6)
	}
	if err := g.vcpu.SetARM64GuestDebug(&hv.ARM64GuestDebug{}); err != nil {
		t.Fatal(err)
	}
	g.wantSystemOff(t)
}

// The host's hardware breakpoint and watchpoint registers
// (kvm_guest_debug_arch): an execute breakpoint stops before the
// instruction, a store watchpoint before the store, with FAR.
func TestARM64HardwareBreakAndWatch(t *testing.T) {
	h := openARM64OrSkip(t)
	const (
		bcrEL1Exec = 0xf<<5 | 1<<1 | 1         // BAS all, PMC EL1, enabled
		wcrEL1Save = 0xff<<5 | 2<<3 | 1<<1 | 1 // BAS all 8 bytes, LSC store, PAC EL1, enabled
		watched    = a64RAM + 0x8000
	)
	cases := []struct {
		name string
		cap  hv.Cap
		set  func(d *hv.ARM64GuestDebug, bpPC uint64)
		ec   uint32
		far  uint64
	}{
		{"breakpoint", hv.CapHWBreakpoint, func(d *hv.ARM64GuestDebug, bpPC uint64) {
			d.BCR[0], d.BVR[0] = bcrEL1Exec, bpPC
		}, ecBreakpointLow, 0},
		{"watchpoint", hv.CapWatchpoint, func(d *hv.ARM64GuestDebug, _ uint64) {
			d.WCR[0], d.WVR[0] = wcrEL1Save, watched
		}, ecWatchpointLow, watched},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := h.Caps().Require(c.cap); err != nil {
				t.Skip(err)
			}
			var stopPC uint64
			g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, func(a *a64.Assembler) {
				a.Mov(a64.X1, a64.Imm(watched))
				a.Mov(a64.X2, a64.Imm(0x55))
				stopPC = a.PC()
				a.Str(a64.X2, a64.Ptr(a64.X1, 0))
				systemOff(a)
			})
			d := hv.ARM64GuestDebug{Flags: hv.DebugEnable | hv.DebugUseHWBP}
			c.set(&d, stopPC)
			if err := g.vcpu.SetARM64GuestDebug(&d); err != nil {
				t.Fatal(err)
			}
			e := wantDebug(t, g.run(t), c.ec, stopPC)
			if c.far != 0 && e.FAR != c.far {
				t.Errorf("far = %#x, want %#x", e.FAR, c.far)
			}
			if v, _ := g.vm.Load64(watched); v != 0 {
				t.Errorf("the store ran before the debug exit (memory %#x)", v)
			}
			if err := g.vcpu.SetARM64GuestDebug(&hv.ARM64GuestDebug{}); err != nil {
				t.Fatal(err)
			}
			g.wantSystemOff(t)
			if v, _ := g.vm.Load64(watched); v != 0x55 {
				t.Errorf("memory %#x after the resumed store, want 0x55", v)
			}
		})
	}
}

func TestARM64VGICv3(t *testing.T) {
	h := openARM64OrSkip(t)
	if err := h.Caps().Require(hv.CapVGICv3); err != nil {
		t.Skip(err)
	}
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, nil)
	if _, err := g.vm.CreateARM64VCPU(1, hv.ARM64VCPUFeatures{}); err != nil {
		t.Fatal(err)
	}
	if err := g.vm.IRQLine(hv.ARM64IRQSPI, 0, 40, true); !errors.Is(err, unix.ENXIO) {
		t.Errorf("IRQLine before the vGIC = %v, want ENXIO", err)
	}
	if err := g.vm.CreateVGICv3(a64GICD, a64GICR, 64); err != nil {
		t.Fatal(err)
	}
	if err := g.vm.CreateVGICv3(a64GICD, a64GICR, 64); !errors.Is(err, unix.EEXIST) {
		t.Errorf("a second vGIC = %v, want EEXIST", err)
	}
	lines := []struct {
		name  string
		kind  hv.ARM64IRQKind
		vcpu  int
		intid uint32
		want  error
	}{
		{"SPI 40", hv.ARM64IRQSPI, 0, 40, nil},
		{"last SPI of 64 IDs", hv.ARM64IRQSPI, 0, 63, nil},
		{"SPI beyond nr_irqs", hv.ARM64IRQSPI, 0, 64, unix.EINVAL},
		{"PPI 27 of vcpu 1", hv.ARM64IRQPPI, 1, 27, nil},
		{"PPI of a vcpu that does not exist", hv.ARM64IRQPPI, 2, 27, unix.EINVAL},
	}
	for _, l := range lines {
		t.Run(l.name, func(t *testing.T) {
			for _, level := range []bool{true, false} {
				err := g.vm.IRQLine(l.kind, l.vcpu, l.intid, level)
				if (l.want == nil && err != nil) || (l.want != nil && !errors.Is(err, l.want)) {
					t.Fatalf("level %v: %v, want %v", level, err, l.want)
				}
			}
		})
	}
}

// The PMU controls, in the order KVM wants them: the filter before
// INIT, the vGIC before the overflow interrupt, INIT last; the guest
// then reads the PMCR_EL0 the host reads through ONE_REG.
func TestARM64PMUControls(t *testing.T) {
	h := openARM64OrSkip(t)
	for _, cp := range []hv.Cap{hv.CapARM64PMU, hv.CapVGICv3} {
		if err := h.Caps().Require(cp); err != nil {
			t.Skip(err)
		}
	}
	pmcr := hv.ARM64SysReg(3, 3, 9, 12, 0)
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{PMUv3: true}, func(a *a64.Assembler) {
		a.Mrs(a64.X4, a64.PMCR_EL0)
		systemOff(a)
	})
	if err := g.vcpu.SetPMUFilter(hv.ARM64PMUFilter{BaseEvent: 0x11, NEvents: 1, Action: hv.PMUFilterAllow}); err != nil {
		t.Fatal(err)
	}
	if err := g.vm.CreateVGICv3(a64GICD, a64GICR, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.vcpu.SetPMUIRQ(a64PMUIRQ); err != nil {
		t.Fatal(err)
	}
	if err := g.vcpu.InitPMU(); err != nil {
		t.Fatal(err)
	}
	if err := g.vcpu.SetPMUIRQ(a64PMUIRQ); !errors.Is(err, unix.EBUSY) {
		t.Errorf("SetPMUIRQ after InitPMU = %v, want EBUSY", err)
	}
	g.wantSystemOff(t)
	if x4, host := g.reg(t, hv.ARM64X(4)), g.reg(t, pmcr); x4&^0x1f != host&^0x1f {
		t.Errorf("guest PMCR_EL0 %#x, ONE_REG %#x", x4, host)
	}

	plain := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, nil)
	if err := plain.vcpu.SetPMUIRQ(a64PMUIRQ); !errors.Is(err, unix.ENXIO) {
		t.Errorf("SetPMUIRQ on a vCPU without PMUv3 = %v, want ENXIO", err)
	}
}

// dirtyWriter stores to pages 0 and 3 of the data slot, then powers off.
func dirtyWriter(a *a64.Assembler) {
	a.Mov(a64.X1, a64.Imm(a64Data))
	a.Mov(a64.X2, a64.Imm(0xab))
	a.Str(a64.X2, a64.Ptr(a64.X1, 0))
	a.Str(a64.X2, a64.Ptr(a64.X1, 3*hv.PageSize+8))
	systemOff(a)
}

func addDataSlot(tb testing.TB, g *a64Guest) *hv.Memory {
	tb.Helper()
	data, err := hv.NewMemory(a64DataSize, hv.Anonymous)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { data.Close() })
	if err := g.vm.SetMemslot(hv.Memslot{Slot: 1, GPA: a64Data, Size: a64DataSize, Memory: data, Flags: hv.MemLogDirty}); err != nil {
		tb.Fatal(err)
	}
	return data
}

func TestARM64DirtyBitmap(t *testing.T) {
	h := openARM64OrSkip(t)
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, dirtyWriter)
	data := addDataSlot(t, g)
	g.wantSystemOff(t)
	bm := make([]uint64, 1)
	if err := g.vm.GetDirtyLog(1, bm); err != nil {
		t.Fatal(err)
	}
	if bm[0] != 1|1<<3 {
		t.Errorf("dirty bitmap %#b, want pages 0 and 3", bm[0])
	}
	if data.Bytes()[3*hv.PageSize+8] != 0xab {
		t.Errorf("the guest's store is not in the slot's memory")
	}
}

func TestARM64DirtyRing(t *testing.T) {
	h := openARM64OrSkip(t)
	if err := h.Caps().Require(hv.CapDirtyRing); err != nil {
		t.Skip(err)
	}
	withBitmap := h.Caps().Has(hv.CapDirtyRingBitmap)
	g := newA64Guest(t, h, hv.VMConfig{DirtyRingBytes: 64 << 10, DirtyRingWithBitmap: withBitmap}, hv.ARM64VCPUFeatures{}, dirtyWriter)
	addDataSlot(t, g)
	g.wantSystemOff(t)
	got := map[uint64]bool{}
	if _, err := g.vcpu.HarvestDirtyRing(func(slot uint32, off uint64) {
		if slot == 1 {
			got[off] = true
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0] || !got[3] {
		t.Errorf("ring entries of slot 1: %v, want pages 0 and 3", got)
	}
	if _, err := g.vm.ResetDirtyRings(); err != nil {
		t.Fatal(err)
	}
	if !withBitmap {
		t.Logf("no backup bitmap: %v", h.Caps().Require(hv.CapDirtyRingBitmap))
		return
	}
	// With the backup bitmap, host writes are collected by GetDirtyLog.
	if err := g.vm.Store64(a64Data+5*hv.PageSize, 1); err != nil {
		t.Fatal(err)
	}
	bm := make([]uint64, 1)
	if err := g.vm.GetDirtyLog(1, bm); err != nil {
		t.Fatal(err)
	}
	if bm[0]&(1<<5) == 0 {
		t.Errorf("backup bitmap %#b lacks the host-written page 5", bm[0])
	}
}

// PSCI's two system calls become the two system-event types.
func TestARM64PSCISystemEvents(t *testing.T) {
	h := openARM64OrSkip(t)
	if !h.arch.psci02 {
		t.Skip("KVM_CAP_ARM_PSCI_0_2=0")
	}
	cases := []struct {
		name string
		fn   uint32
		want uint32
	}{
		{"SYSTEM_OFF", hv.PSCISystemOff, hv.SystemEventShutdown},
		{"SYSTEM_RESET", hv.PSCISystemReset, hv.SystemEventReset},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, func(a *a64.Assembler) {
				a.Mov(a64.W0, a64.Imm(int64(c.fn)))
				a.Hvc(0)
			})
			e := g.run(t)
			if se, ok := e.(*hv.SystemEventExit); !ok || se.Type != c.want {
				t.Fatalf("exit %v, want system-event type %d", e, c.want)
			}
		})
	}
}

// A write to a read-only slot exits as an MMIO write with the data and
// leaves the memory as it was; a read is served from the slot.
func TestARM64ReadOnlySlot(t *testing.T) {
	h := openARM64OrSkip(t)
	if err := h.Caps().Require(hv.CapReadOnlyMem); err != nil {
		t.Skip(err)
	}
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, func(a *a64.Assembler) {
		a.Mov(a64.X1, a64.Imm(a64Data))
		a.Ldr(a64.X4, a64.Ptr(a64.X1, 0))
		a.Mov(a64.X2, a64.Imm(0x77))
		a.Str(a64.X2, a64.Ptr(a64.X1, 8))
		systemOff(a)
	})
	ro, err := hv.NewMemory(a64DataSize, hv.Anonymous)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	ro.Bytes()[0] = 0x5a
	if err := g.vm.SetMemslot(hv.Memslot{Slot: 1, GPA: a64Data, Size: a64DataSize, Memory: ro, Flags: hv.MemReadOnly}); err != nil {
		t.Fatal(err)
	}
	e := g.run(t)
	m, ok := e.(*hv.MMIOExit)
	if !ok || !m.Write || m.GPA != a64Data+8 || m.Len != 8 || m.Value() != 0x77 {
		t.Fatalf("exit %v, want an 8-byte MMIO write of 0x77 at %#x", e, a64Data+8)
	}
	g.wantSystemOff(t)
	if x4 := g.reg(t, hv.ARM64X(4)); x4 != 0x5a {
		t.Errorf("read from the read-only slot = %#x, want 0x5a", x4)
	}
	if ro.Bytes()[8] != 0 {
		t.Errorf("the write reached the read-only slot's memory")
	}
}

// The context stops a guest that never exits (immediate_exit + signal,
// as on x86), and the vCPU runs again afterwards.
func TestARM64RunCancelsSpinningGuest(t *testing.T) {
	h := openARM64OrSkip(t)
	var spin uint64
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, func(a *a64.Assembler) {
		spin = a.PC()
		l := a.Here()
		a.B(l)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	e, err := g.vcpu.Run(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, %v; want the context's deadline", e, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the stop took %v", d)
	}
	if pc := g.reg(t, hv.ARM64RegPC); pc != spin {
		t.Errorf("pc = %#x, want the loop at %#x", pc, spin)
	}
	// The stale kick must not stop the next Run at once.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := g.vcpu.Run(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Run = %v, want the second context's deadline", err)
	}
}

// The vCPU's binary stats count the exits the tests see.
func TestARM64Stats(t *testing.T) {
	h := openARM64OrSkip(t)
	if err := h.Caps().Require(hv.CapStats); err != nil {
		t.Skip(err)
	}
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, func(a *a64.Assembler) {
		a.Mov(a64.X1, a64.Imm(a64MMIO))
		for range 3 {
			a.Str(a64.X1, a64.Ptr(a64.X1, 0))
		}
		systemOff(a)
	})
	for range 3 {
		if e := g.run(t); e.Kind() != hv.ExitMMIO {
			t.Fatalf("exit %v, want mmio", e)
		}
	}
	g.wantSystemOff(t)
	st, err := g.vcpu.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		min  uint64
	}{{"mmio_exit_user", 3}, {"hvc_exit_stat", 1}, {"exits", 4}} {
		if v, ok := st.Get(c.name); !ok || v < c.min {
			t.Errorf("vcpu stat %s = %d (present %v), want at least %d", c.name, v, ok, c.min)
		}
	}
}

// An MMIO access KVM cannot describe (a load pair: no valid syndrome)
// fails KVM_RUN with ENOSYS unless KVM_CAP_ARM_NISV_TO_USER is enabled,
// which this backend does not do: Run returns that error.
func TestARM64MMIOWithoutSyndrome(t *testing.T) {
	h := openARM64OrSkip(t)
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, func(a *a64.Assembler) {
		a.Mov(a64.X0, a64.Imm(a64MMIO))
		a.Ldp(a64.X4, a64.X5, a64.Ptr(a64.X0, 0))
		systemOff(a)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e, err := g.vcpu.Run(ctx); !errors.Is(err, unix.ENOSYS) {
		t.Fatalf("Run = %v, %v; want KVM_RUN's ENOSYS", e, err)
	}
}
