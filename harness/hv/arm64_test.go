package hv

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/a64"
)

// The ids are KVM's ONE_REG encoding; the kvm backend's golden test
// checks a sample against the arm64 headers, these check the structure.
func TestARM64CoreRegIDs(t *testing.T) {
	cases := []struct {
		name string
		id   uint64
		want uint64
	}{
		{"x0", ARM64X(0), 0x6030_0000_0010_0000},
		{"x1", ARM64X(1), 0x6030_0000_0010_0002},
		{"x30", ARM64X(30), 0x6030_0000_0010_003c},
		{"sp", ARM64RegSP, 0x6030_0000_0010_003e},
		{"pc", ARM64RegPC, 0x6030_0000_0010_0040},
		{"pstate", ARM64RegPSTATE, 0x6030_0000_0010_0042},
		{"sp_el1", ARM64RegSPEL1, 0x6030_0000_0010_0044},
		{"elr_el1", ARM64RegELREL1, 0x6030_0000_0010_0046},
		{"spsr[0]", ARM64SPSR(0), 0x6030_0000_0010_0048},
		{"fpsr (32-bit)", ARM64CoreReg(848, 4), 0x6020_0000_0010_00d4},
	}
	for _, c := range cases {
		if c.id != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.id, c.want)
		}
	}
	if n := ARM64RegBytes(ARM64RegPC); n != 8 {
		t.Errorf("ARM64RegBytes(pc) = %d", n)
	}
	if n := ARM64RegBytes(ARM64CoreReg(848, 4)); n != 4 {
		t.Errorf("ARM64RegBytes(fpsr) = %d", n)
	}
	if n := ARM64RegBytes(0x6040_0000_0010_0054); n != 16 { // v0, a 128-bit core register
		t.Errorf("ARM64RegBytes(v0) = %d", n)
	}
}

func TestARM64SysRegRoundTrip(t *testing.T) {
	cases := []struct {
		name                    string
		op0, op1, crn, crm, op2 uint8
		want                    uint64
	}{
		{"SCTLR_EL1", 3, 0, 1, 0, 0, 0x6030_0000_0013_c080},
		{"MPIDR_EL1", 3, 0, 0, 0, 5, 0x6030_0000_0013_c005},
		{"CNTV_CTL_EL0", 3, 3, 14, 3, 1, 0x6030_0000_0013_df19},
		{"MDSCR_EL1", 2, 0, 0, 2, 2, 0x6030_0000_0013_8012},
	}
	for _, c := range cases {
		id := ARM64SysReg(c.op0, c.op1, c.crn, c.crm, c.op2)
		if id != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, id, c.want)
		}
		op0, op1, crn, crm, op2, ok := ARM64SysRegFields(id)
		if !ok || op0 != c.op0 || op1 != c.op1 || crn != c.crn || crm != c.crm || op2 != c.op2 {
			t.Errorf("%s: fields (%d,%d,%d,%d,%d) ok=%v", c.name, op0, op1, crn, crm, op2, ok)
		}
	}
	for _, id := range []uint64{ARM64RegPC, ARM64FWReg(0), 0} {
		if _, _, _, _, _, ok := ARM64SysRegFields(id); ok {
			t.Errorf("ARM64SysRegFields(%#x) ok for a non-system register", id)
		}
	}
}

func TestARM64RegName(t *testing.T) {
	cases := map[uint64]string{
		ARM64X(7):                      "x7",
		ARM64RegPC:                     "pc",
		ARM64RegSP:                     "sp_el0",
		ARM64SPSR(2):                   "spsr[2]",
		ARM64SCTLREL1:                  "sysreg(3,0,1,0,0)",
		ARM64FWReg(0):                  "reg 0x6030000000140000",
		ARM64SysReg(3, 3, 14, 3, 1):    "sysreg(3,3,14,3,1)",
		ARM64CoreReg(arm64OffPC, 4):    "reg 0x6020000000100040",
		ARM64CoreReg(arm64OffSPEL1, 8): "sp_el1",
	}
	for id, want := range cases {
		if got := ARM64RegName(id); got != want {
			t.Errorf("ARM64RegName(%#x) = %q, want %q", id, got, want)
		}
	}
}

func TestGuestArch(t *testing.T) {
	if a := (Caps{}).GuestArch(); a != ArchX86_64 {
		t.Errorf("empty Arch = %q, want x86-64", a)
	}
	if a := (Caps{Arch: ArchARM64}).GuestArch(); a != ArchARM64 {
		t.Errorf("GuestArch = %q", a)
	}
}

func TestSystemEventExit(t *testing.T) {
	e := &SystemEventExit{Type: SystemEventShutdown, Data: []uint64{0}}
	if e.Kind() != ExitSystemEvent || e.Kind().String() != "system-event" {
		t.Fatalf("kind %v", e.Kind())
	}
	if s := e.String(); s != "system-event shutdown data [0x0]" {
		t.Errorf("String = %q", s)
	}
	if s := (&SystemEventExit{Type: 9}).String(); s != "system-event type 9 data []" {
		t.Errorf("String = %q", s)
	}
	d := &DebugExit{Exception: 0x3c, PC: 0x1000, ESR: 0xf2000000}
	if s := d.String(); s != "debug ec 0x3c pc 0x1000 esr 0xf2000000 far 0x0" {
		t.Errorf("arm64 DebugExit String = %q", s)
	}
}

// The well-known ids agree with the assembler's system register table,
// an encoding written independently (from the MRS/MSR operands).
func TestARM64SysRegsMatchAssembler(t *testing.T) {
	cases := []struct {
		name string
		id   uint64
	}{
		{"SCTLR_EL1", ARM64SCTLREL1}, {"TTBR0_EL1", ARM64TTBR0EL1}, {"TCR_EL1", ARM64TCREL1},
		{"ESR_EL1", ARM64ESREL1}, {"FAR_EL1", ARM64FAREL1}, {"MAIR_EL1", ARM64MAIREL1},
		{"VBAR_EL1", ARM64VBAREL1}, {"MPIDR_EL1", ARM64MPIDREL1}, {"MIDR_EL1", ARM64MIDREL1},
		{"CPACR_EL1", ARM64CPACREL1}, {"TPIDR_EL1", ARM64TPIDREL1}, {"PMCR_EL0", ARM64PMCREL0},
		{"ID_AA64DFR0_EL1", ARM64IDAA64DFR0},
	}
	for _, c := range cases {
		r, ok := a64.Sys(c.name)
		if !ok {
			t.Errorf("%s: not in the assembler's table", c.name)
			continue
		}
		if want := ARM64SysReg(r.Op0, r.Op1, r.CRn, r.CRm, r.Op2); c.id != want {
			t.Errorf("%s = %#x, the assembler's encoding gives %#x", c.name, c.id, want)
		}
	}
}
