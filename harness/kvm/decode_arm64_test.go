package kvm

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// A KVM_EXIT_DEBUG image as arm64 KVM writes it: the syndrome split in
// hsr/hsr_high, and far.
func TestDecodeARM64DebugExit(t *testing.T) {
	cases := []struct {
		name         string
		hsr, hsrHigh uint32
		far          uint64
		ec           uint32
		esr          uint64
	}{
		{"brk #0", 0xf2000000, 0, 0, 0x3c, 0xf2000000},
		{"software step", 0xca000022, 0, 0, 0x32, 0xca000022},
		{"watchpoint with far", 0xd6000050, 0, 0x40001008, 0x35, 0xd6000050},
		{"hsr_high carries ESR[63:32]", 0xf2000000, 0x2, 0, 0x3c, 0x2_f2000000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := make([]byte, 16)
			binary.LittleEndian.PutUint32(u[0:], c.hsr)
			binary.LittleEndian.PutUint32(u[4:], c.hsrHigh)
			binary.LittleEndian.PutUint64(u[8:], c.far)
			e, ok := runWith(exitDebug, u).decodeExit().(*hv.DebugExit)
			if !ok {
				t.Fatal("not a *hv.DebugExit")
			}
			if e.Exception != c.ec || e.ESR != c.esr || e.FAR != c.far {
				t.Errorf("got ec %#x esr %#x far %#x, want ec %#x esr %#x far %#x", e.Exception, e.ESR, e.FAR, c.ec, c.esr, c.far)
			}
		})
	}
}

func TestARMIRQLineField(t *testing.T) {
	cases := []struct {
		name  string
		kind  hv.ARM64IRQKind
		vcpu  int
		intid uint32
		want  uint32
		bad   bool
	}{
		{"SPI 32", hv.ARM64IRQSPI, 0, 32, 0x0100_0020, false},
		{"SPI ignores the vcpu", hv.ARM64IRQSPI, 5, 100, 0x0100_0064, false},
		{"SPI 1019", hv.ARM64IRQSPI, 0, 1019, 0x0100_03fb, false},
		{"PPI 23 of vcpu 3", hv.ARM64IRQPPI, 3, 23, 0x0203_0017, false},
		{"PPI of vcpu 300 uses vcpu2", hv.ARM64IRQPPI, 300, 27, 0x122c_001b, false},
		{"CPU FIQ of vcpu 1", hv.ARM64IRQCPU, 1, 1, 0x0001_0001, false},
		{"SPI below 32", hv.ARM64IRQSPI, 0, 31, 0, true},
		{"SPI 1020 (special)", hv.ARM64IRQSPI, 0, 1020, 0, true},
		{"PPI 15 is an SGI", hv.ARM64IRQPPI, 0, 15, 0, true},
		{"PPI 32", hv.ARM64IRQPPI, 0, 32, 0, true},
		{"CPU line 2", hv.ARM64IRQCPU, 0, 2, 0, true},
		{"vcpu 4096", hv.ARM64IRQPPI, 4096, 20, 0, true},
		{"negative vcpu", hv.ARM64IRQPPI, -1, 20, 0, true},
		{"unknown kind", 3, 0, 40, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := armIRQLineField(c.kind, c.vcpu, c.intid)
			if c.bad {
				if !errors.Is(err, unix.EINVAL) {
					t.Fatalf("= %#x, %v; want EINVAL", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("= %#x, %v; want %#x", got, err, c.want)
			}
		})
	}
}

func TestARMVCPUFeatureBits(t *testing.T) {
	cases := []struct {
		name   string
		f      hv.ARM64VCPUFeatures
		psci02 bool
		want   uint32
	}{
		{"default", hv.ARM64VCPUFeatures{}, true, 1 << 2},
		{"no PSCI 0.2 in KVM", hv.ARM64VCPUFeatures{}, false, 0},
		{"PMUv3", hv.ARM64VCPUFeatures{PMUv3: true}, true, 1<<2 | 1<<3},
		{"powered off", hv.ARM64VCPUFeatures{PowerOff: true}, true, 1<<2 | 1},
	}
	for _, c := range cases {
		if got := (archVCPU{features: c.f}).featureBits(c.psci02); got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, got, c.want)
		}
	}
}

func TestARMDebugCaps(t *testing.T) {
	all := guestDbgEnable | guestDbgSingleStep | guestDbgUseSWBP | guestDbgUseHW
	cases := []struct {
		name     string
		debug    bool
		mask     uint32
		bps, wps int
		wantMask uint32
		ok       map[hv.Cap]bool
	}{
		{"everything", true, all, 6, 4, all, map[hv.Cap]bool{hv.CapSingleStep: true, hv.CapSoftwareBP: true, hv.CapHWBreakpoint: true, hv.CapWatchpoint: true, hv.CapBlockIRQ: false}},
		{"pre-5.16 mask assumed", true, 0, 2, 2, all, map[hv.Cap]bool{hv.CapSingleStep: true, hv.CapHWBreakpoint: true}},
		{"no watchpoints", true, all, 2, 0, all, map[hv.Cap]bool{hv.CapHWBreakpoint: true, hv.CapWatchpoint: false}},
		{"no hw in mask", true, guestDbgEnable | guestDbgSingleStep, 2, 2, guestDbgEnable | guestDbgSingleStep, map[hv.Cap]bool{hv.CapSingleStep: true, hv.CapSoftwareBP: false, hv.CapHWBreakpoint: false}},
		{"no guest debug", false, 0, 0, 0, 0, map[hv.Cap]bool{hv.CapSingleStep: false, hv.CapSoftwareBP: false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var caps hv.Caps
			if m := armDebugCaps(&caps, c.debug, c.mask, c.bps, c.wps); m != c.wantMask {
				t.Errorf("mask %#x, want %#x", m, c.wantMask)
			}
			for cp, ok := range c.ok {
				s, there := caps.Features[cp]
				if !there || s.OK != ok || s.Reason == "" {
					t.Errorf("%s = %+v, want OK=%v with a reason", cp, s, ok)
				}
			}
			if c.bps > 0 && caps.Has(hv.CapHWBreakpoint) && caps.Value(hv.CapHWBreakpoint) != uint64(c.bps) {
				t.Errorf("hw-breakpoint value %d, want %d", caps.Value(hv.CapHWBreakpoint), c.bps)
			}
		})
	}
}

func TestCheckARMDebugFlags(t *testing.T) {
	var caps hv.Caps
	caps.Set(hv.CapGuestDebug, true, 1, "")
	mask := armDebugCaps(&caps, true, guestDbgEnable|guestDbgSingleStep|guestDbgUseSWBP, 0, 0)
	cases := []struct {
		name  string
		f     hv.DebugFlags
		cap   hv.Cap // "" = accepted
		inval bool
	}{
		{"off", 0, "", false},
		{"single-step", hv.DebugEnable | hv.DebugSingleStep, "", false},
		{"sw bp", hv.DebugEnable | hv.DebugUseSWBP, "", false},
		{"hw not in mask", hv.DebugEnable | hv.DebugUseHWBP, hv.CapHWBreakpoint, false},
		{"x86 blockirq", hv.DebugEnable | hv.DebugBlockIRQ, hv.CapBlockIRQ, false},
		{"x86 inject", hv.DebugEnable | hv.DebugInjectDB, hv.CapDebugInject, false},
		{"unknown bit", 1 << 30, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkARMDebugFlags(caps, mask, c.f)
			var ue *hv.UnsupportedError
			switch {
			case c.inval:
				if !errors.Is(err, unix.EINVAL) {
					t.Fatalf("err %v, want EINVAL", err)
				}
			case c.cap == "":
				if err != nil {
					t.Fatalf("err %v", err)
				}
			case !errors.As(err, &ue) || ue.Cap != c.cap:
				t.Fatalf("err %v, want unsupported %s", err, c.cap)
			}
		})
	}
}

func TestOneRegSizeLimit(t *testing.T) {
	if err := checkOneRegSize(hv.ARM64RegPC); err != nil {
		t.Errorf("pc: %v", err)
	}
	if err := checkOneRegSize(0x6040_0000_0010_0054); !errors.Is(err, unix.EINVAL) { // v0, 128 bits
		t.Errorf("v0: %v, want EINVAL", err)
	}
}

// checkIRQLineField: the encoder either refuses with EINVAL or gives a
// field whose parts decode back to the request (the vCPU is 0 for SPIs,
// which KVM routes through the distributor).
func checkIRQLineField(t *testing.T, kind hv.ARM64IRQKind, vcpu int, intid uint32) {
	t.Helper()
	irq, err := armIRQLineField(kind, vcpu, intid)
	if err != nil {
		if !errors.Is(err, unix.EINVAL) {
			t.Fatalf("error %v does not wrap EINVAL", err)
		}
		return
	}
	if kind == hv.ARM64IRQSPI {
		vcpu = 0
	}
	gotKind := hv.ARM64IRQKind(irq >> armIRQTypeShift & 0xf)
	gotVCPU := int(irq>>armIRQVCPUShift&0xff) | int(irq>>armIRQVCPU2Shift&0xf)<<8
	if gotKind != kind || gotVCPU != vcpu || irq&armIRQNumMask != intid {
		t.Fatalf("%#x decodes to kind %d vcpu %d intid %d; asked kind %d vcpu %d intid %d", irq, gotKind, gotVCPU, irq&armIRQNumMask, kind, vcpu, intid)
	}
}

// Every interrupt number of every kind, at the vCPU indexes around the
// field boundaries (fuzzing needs worker processes, which qemu-user
// cannot start: this is the sweep that runs there).
func TestARMIRQLineFieldSweep(t *testing.T) {
	for kind := hv.ARM64IRQKind(0); kind < 5; kind++ {
		for _, vcpu := range []int{-1, 0, 1, 255, 256, 300, 4095, 4096} {
			for intid := uint32(0); intid < 1100; intid++ {
				checkIRQLineField(t, kind, vcpu, intid)
			}
		}
	}
}

func FuzzARMIRQLineField(f *testing.F) {
	f.Add(uint8(1), 0, uint32(40))
	f.Add(uint8(2), 300, uint32(27))
	f.Add(uint8(0), 1, uint32(1))
	f.Fuzz(func(t *testing.T, kind uint8, vcpu int, intid uint32) {
		checkIRQLineField(t, hv.ARM64IRQKind(kind), vcpu, intid)
	})
}
