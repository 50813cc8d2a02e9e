package kvm

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// The redistributor attribute carries the affinity of MPIDR_EL1 (Aff3 at
// bits 39:32 of the register, Aff2..Aff0 at 23:0) as Aff3.Aff2.Aff1.Aff0
// in its upper 32 bits, the register offset in its lower.
func TestRedistAttrOf(t *testing.T) {
	for _, tc := range []struct {
		mpidr uint64
		off   uint32
		want  uint64
	}{
		{0x8000_0000, 0x70, 0x70}, // RES1 bit 31 is no affinity
		{0x8000_0001, 0x0, 0x1 << 32},
		{0x8001_0203, 0x78, 0x0001_0203<<32 | 0x78},
		{0x44_8000_0000, 0x8, 0x4400_0000<<32 | 0x8},
		{0xff_c0ff_ffff, 0xfffc, 0xffff_ffff<<32 | 0xfffc},
		{0x8000_0001, 0x1_0200, 0x1<<32 | 0x1_0200}, // GICR_ISPENDR0 in the SGI_base frame
	} {
		if got := redistAttrOf(tc.mpidr, tc.off); got != tc.want {
			t.Errorf("redistAttrOf(%#x, %#x) = %#x, want %#x", tc.mpidr, tc.off, got, tc.want)
		}
	}
}

// Guest-physical places of the ITS test: the ITS frame where the virt
// board has it, its tables in RAM (64 KiB aligned, as GITS_BASER with
// 64 KiB pages and GICR_PENDBASER want).
const (
	a64ITS      = 0x0808_0000
	a64DevTable = a64RAM + 0x10_0000
	a64CollTab  = a64RAM + 0x11_0000
	a64ITT      = a64RAM + 0x12_0000
	a64CmdQ     = a64RAM + 0x13_0000
	a64PropTab  = a64RAM + 0x14_0000
	a64PendTab  = a64RAM + 0x16_0000
)

// With KVM's ITS the host alone can build a translation: it programs the
// redistributor and the ITS registers through device attributes, queues
// MAPD, MAPC and MAPTI in guest memory and writes GITS_CWRITER; KVM runs
// them at once (GITS_CREADR catches up) and SAVE_TABLES writes the
// device table entry, the ITT entry and the collection table entry (ABI
// rev 0) into guest memory.
func TestITSHostCommandsAndSave(t *testing.T) {
	h := openARM64OrSkip(t)
	if err := h.Caps().Require(hv.CapVGICITS); err != nil {
		t.Skip(err)
	}
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, nil)
	if _, err := g.vm.CreateITS(a64ITS); !errors.Is(err, unix.ENXIO) {
		t.Errorf("CreateITS before the vGIC = %v, want ENXIO", err)
	}
	if err := g.vm.CreateVGICv3(a64GICD, a64GICR, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := g.vm.CreateITS(a64ITS + 0x1000); !errors.Is(err, unix.EINVAL) {
		t.Errorf("CreateITS at an unaligned base = %v, want EINVAL", err)
	}
	its, err := g.vm.CreateITSDevice(a64ITS)
	if err != nil {
		t.Fatal(err)
	}
	typer, err := its.GetReg(hv.GITSTyper)
	if err != nil {
		t.Fatal(err)
	}
	if typer&1 == 0 || typer>>4&0xf != 7 {
		t.Errorf("GITS_TYPER %#x: want Physical (bit 0) and an ITT entry size of 8 bytes (7 in bits 7:4)", typer)
	}
	set64 := func(off uint32, v uint64) {
		t.Helper()
		if err := g.vm.SetRedistReg(0, off, uint32(v)); err != nil {
			t.Fatal(err)
		}
		if err := g.vm.SetRedistReg(0, off+4, uint32(v>>32)); err != nil {
			t.Fatal(err)
		}
	}
	set64(hv.GICRPropBaser, hv.GICRPropBaserValue(a64PropTab, 14))
	set64(hv.GICRPendBaser, hv.GICRPendBaserValue(a64PendTab))
	lo, err := g.vm.GetRedistReg(0, hv.GICRPropBaser)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(lo)&^0xfff != a64PropTab&0xffff_ffff || lo&0x1f != 13 {
		t.Errorf("GICR_PROPBASER low half %#x: want the table at %#x, 13 in IDbits", lo, a64PropTab)
	}
	if _, err := g.vm.GetRedistReg(1, hv.GICRCtlr); !errors.Is(err, unix.ENOENT) {
		t.Errorf("redistributor of a vCPU that does not exist = %v, want ENOENT", err)
	}
	regs := []struct {
		off uint32
		v   uint64
	}{
		{hv.GITSBaser0, hv.ITSBaserValue(a64DevTable, 1)},
		{hv.GITSBaser0 + 8, hv.ITSBaserValue(a64CollTab, 1)},
		{hv.GITSCBaser, hv.ITSCBaserValue(a64CmdQ, 1)},
		{hv.GITSCtlr, hv.GITSCtlrEnabled},
	}
	for _, r := range regs {
		if err := its.SetReg(r.off, r.v); err != nil {
			t.Fatal(err)
		}
	}
	// KVM keeps the command queue 64 KiB aligned: address bits 15:12 of
	// GITS_CBASER read as 0 whatever was written (set it before Enabled).
	if err := its.SetReg(hv.GITSCtlr, 0); err != nil {
		t.Fatal(err)
	}
	if err := its.SetReg(hv.GITSCBaser, hv.ITSCBaserValue(a64CmdQ+0x3000, 1)); err != nil {
		t.Fatal(err)
	}
	if v, err := its.GetReg(hv.GITSCBaser); err != nil || v&0x000f_ffff_ffff_f000 != a64CmdQ {
		t.Errorf("GITS_CBASER written with %#x reads %#x, %v: want the address %#x", a64CmdQ+0x3000, v, err, a64CmdQ)
	}
	for _, r := range regs[2:] {
		if err := its.SetReg(r.off, r.v); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []uint64{a64DevTable, a64CollTab} {
		v, err := its.GetReg(hv.GITSBaser0 + 8*uint32(i))
		if err != nil {
			t.Fatal(err)
		}
		if v>>63 == 0 || v&0xffff_ffff_0000 != want {
			t.Errorf("GITS_BASER%d = %#x: want valid, at %#x", i, v, want)
		}
	}
	const dev, ev, lpi, icid = 600, 3, 8192 + 40, 2
	cmds := []hv.ITSCommand{hv.ITSMapD(dev, a64ITT, 4, true), hv.ITSMapC(icid, 0, true), hv.ITSMapTI(dev, ev, lpi, icid)}
	mem := g.mem.Bytes()
	for i, c := range cmds {
		copy(mem[a64CmdQ-a64RAM+32*uint64(i):], c.Bytes())
	}
	if err := its.SetReg(hv.GITSCWriter, 32*uint64(len(cmds))); err != nil {
		t.Fatal(err)
	}
	if r, err := its.GetReg(hv.GITSCReadr); err != nil || r != 32*uint64(len(cmds)) {
		t.Fatalf("GITS_CREADR = %#x, %v after the commands: want %#x", r, err, 32*len(cmds))
	}
	if err := its.Ctrl(hv.ITSSaveTables); err != nil {
		t.Fatal(err)
	}
	word := func(gpa uint64) uint64 { return binary.LittleEndian.Uint64(mem[gpa-a64RAM:]) }
	if dte, want := word(a64DevTable+8*dev), uint64(1)<<63|(a64ITT>>8)<<5|3; dte != want {
		t.Errorf("saved DTE of device %d = %#x, want %#x (valid, ITT %#x, 4 event bits)", dev, dte, want, a64ITT)
	}
	if ite, want := word(a64ITT+8*ev), uint64(lpi)<<16|icid; ite != want {
		t.Errorf("saved ITE of event %d = %#x, want %#x (LPI %d, collection %d)", ev, ite, want, lpi, icid)
	}
	if cte, want := word(a64CollTab), uint64(1)<<63|icid; cte != want {
		t.Errorf("saved CTE = %#x, want %#x (valid, vCPU 0, collection %d)", cte, want, icid)
	}
	if err := its.Ctrl(hv.ARM64ITSCtrl(77)); !errors.Is(err, unix.EINVAL) {
		t.Errorf("an unknown control = %v, want EINVAL", err)
	}
	if err := its.Close(); err != nil {
		t.Fatal(err)
	}
	if err := its.Ctrl(hv.ITSSaveTables); !errors.Is(err, unix.EBADF) {
		t.Errorf("SAVE_TABLES after Close = %v, want EBADF", err)
	}
	if err := its.Close(); err != nil {
		t.Errorf("a second Close = %v", err)
	}
}

// The redistributor attribute reaches both of a vCPU's frames: registers
// of the SGI_base frame sit at 64 KiB + their offset (GICR_IGROUPR0 reads
// back what the host wrote, GICR_ISPENDR0 shows nothing pending), and an
// offset beyond the two frames is refused before KVM sees it.
func TestRedistSGIFrame(t *testing.T) {
	h := openARM64OrSkip(t)
	if err := h.Caps().Require(hv.CapVGICv3); err != nil {
		t.Skip(err)
	}
	g := newA64Guest(t, h, hv.VMConfig{}, hv.ARM64VCPUFeatures{}, nil)
	if err := g.vm.CreateVGICv3(a64GICD, a64GICR, 0); err != nil {
		t.Fatal(err)
	}
	const igroupr0, ispendr0 = 0x1_0080, 0x1_0200
	if err := g.vm.SetRedistReg(0, igroupr0, 0xa5a5_5a5a); err != nil {
		t.Fatal(err)
	}
	if v, err := g.vm.GetRedistReg(0, igroupr0); err != nil || v != 0xa5a5_5a5a {
		t.Errorf("GICR_IGROUPR0 = %#x, %v; want the 0xa5a55a5a written", v, err)
	}
	if v, err := g.vm.GetRedistReg(0, ispendr0); err != nil || v != 0 {
		t.Errorf("GICR_ISPENDR0 of a vCPU that never ran = %#x, %v; want 0", v, err)
	}
	if _, err := g.vm.GetRedistReg(0, 0x2_0000); !errors.Is(err, unix.EINVAL) {
		t.Errorf("an offset beyond both frames = %v, want EINVAL", err)
	}
}
