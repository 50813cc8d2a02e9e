package a64_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/a64"
)

// evalMov runs a MOV/MOVZ/MOVN/MOVK sequence for register rd, as decoded
// by arm64asm, and returns the value it leaves in rd.
func evalMov(code []byte, rd string, is64 bool) (uint64, error) {
	var v uint64
	for off := 0; off < len(code); off += 4 {
		text := a64.Text(binary.LittleEndian.Uint32(code[off:]), 0)
		op, args, _ := strings.Cut(text, " ")
		f := strings.Split(args, ", ")
		if len(f) < 2 || f[0] != rd || !strings.HasPrefix(f[1], "#") {
			return 0, fmt.Errorf("unexpected instruction %q", text)
		}
		imm, err := strconv.ParseInt(strings.TrimPrefix(f[1], "#"), 0, 64)
		if err != nil {
			u, err2 := strconv.ParseUint(strings.TrimPrefix(f[1], "#"), 0, 64)
			if err2 != nil {
				return 0, fmt.Errorf("%q: %v", text, err)
			}
			imm = int64(u)
		}
		var sh uint
		if len(f) == 3 {
			if _, err := fmt.Sscanf(f[2], "lsl #%d", &sh); err != nil {
				return 0, fmt.Errorf("%q: %v", text, err)
			}
		}
		switch op {
		case "mov":
			v = uint64(imm)
		case "movz":
			v = uint64(imm) << sh
		case "movn":
			v = ^(uint64(imm) << sh)
		case "movk":
			v = v&^(0xffff<<sh) | uint64(imm)<<sh
		default:
			return 0, fmt.Errorf("unexpected instruction %q", text)
		}
		if !is64 {
			v &= 0xffffffff
		}
	}
	return v, nil
}

// TestMovConst loads edge and random constants with Mov and runs the
// decoded sequence: it must produce the constant, in at most four
// instructions, and in one whenever one MOVZ, MOVN or ORR can do it.
func TestMovConst(t *testing.T) {
	consts := []int64{0, 1, -1, 0xffff, 0x10000, 0xffff0000, -0x10000, 0x7fffffffffffffff, -0x8000000000000000,
		0x5555555555555555, 0x0000ffff0000ffff, 0x123456789abcdef0, -0x123456789abcdef0, -0x0000_edcb_0000_0001, 0x1234_0000_0000_5678}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		v := rng.Int64()
		// Sparse halfwords make the interesting cases (zero or ones background).
		for h := 0; h < 4; h++ {
			switch rng.IntN(3) {
			case 0:
				v &^= 0xffff << (16 * h)
			case 1:
				v |= 0xffff << (16 * h)
			}
		}
		consts = append(consts, v)
	}
	counts := map[int]int{}
	for _, c := range consts {
		for _, is64 := range []bool{true, false} {
			rd, want := a64.X7, uint64(c)
			if !is64 {
				rd, want = a64.W7, uint64(c)&0xffffffff
			}
			a := a64.New(0)
			a.Mov(rd, a64.Imm(int64(want)))
			code, err := a.Assemble()
			if err != nil {
				t.Fatalf("Mov(%v, %#x): %v", rd, want, err)
			}
			got, err := evalMov(code, rd.String(), is64)
			if err != nil || got != want {
				t.Fatalf("Mov(%v, %#x) = %x: computes %#x (%v)", rd, want, code, got, err)
			}
			n := len(code) / 4
			counts[n]++
			if n > 4 {
				t.Errorf("Mov(%v, %#x) takes %d instructions", rd, want, n)
			}
			if _, _, _, ok := a64.BitmaskImm(want, is64); (ok || oneWide(want, is64)) && n != 1 {
				t.Errorf("Mov(%v, %#x) takes %d instructions, want 1", rd, want, n)
			}
		}
	}
	t.Logf("instructions per constant: %v", counts)
}

// oneWide reports whether one MOVZ or MOVN builds v.
func oneWide(v uint64, is64 bool) bool {
	width := 64
	if !is64 {
		width = 32
	}
	for _, x := range []uint64{v, ^v} {
		if !is64 {
			x &= 0xffffffff
		}
		for s := 0; s < width; s += 16 {
			if x&^(0xffff<<s) == 0 {
				return true
			}
		}
	}
	return false
}

// TestMovReg checks the register forms: ORR for general registers, ADD #0
// when SP is involved.
func TestMovReg(t *testing.T) {
	for _, c := range []struct {
		rd, rm a64.Reg
		want   string
	}{
		{a64.X1, a64.X2, "mov x1, x2"},
		{a64.W1, a64.WZR, "mov w1, wzr"},
		{a64.SP, a64.X3, "mov sp, x3"},
		{a64.X29, a64.SP, "mov x29, sp"},
		{a64.WSP, a64.W4, "mov wsp, w4"},
	} {
		a := a64.New(0)
		a.Mov(c.rd, c.rm)
		code, err := a.Assemble()
		if err != nil {
			t.Fatalf("Mov(%v, %v): %v", c.rd, c.rm, err)
		}
		if got := a64.Text(binary.LittleEndian.Uint32(code), 0); got != c.want || len(code) != 4 {
			t.Errorf("Mov(%v, %v) = %q, want %q", c.rd, c.rm, got, c.want)
		}
	}
}

// TestBitmaskImm checks the encoder against every encodable (N, immr,
// imms) triple, decoded by arm64asm through an AND instruction: each
// decoded value must encode back to the same triple, and the count of
// distinct 64-bit values must be the architectural 5334.
func TestBitmaskImm(t *testing.T) {
	seen := map[uint64]bool{}
	for n := uint32(0); n < 2; n++ {
		for immr := uint32(0); immr < 64; immr++ {
			for imms := uint32(0); imms < 64; imms++ {
				w := 0x92000000 | n<<22 | immr<<16 | imms<<10 // and x0, x0, #imm
				text := a64.Text(w, 0)
				if !strings.HasPrefix(text, "and x0, x0, #") {
					continue // reserved encoding
				}
				v, err := strconv.ParseUint(strings.TrimPrefix(text, "and x0, x0, #"), 0, 64)
				if err != nil {
					t.Fatalf("%q: %v", text, err)
				}
				if v == ^uint64(0) {
					// An element of all ones is reserved (the Arm ARM's
					// DecodeBitMasks is UNDEFINED for it); arm64asm still
					// decodes it.
					continue
				}
				gn, gr, gs, ok := a64.BitmaskImm(v, true)
				if !ok {
					t.Fatalf("BitmaskImm(%#x) fails; %08x encodes it", v, w)
				}
				if got := a64.Text(0x92000000|gn<<22|gr<<16|gs<<10, 0); got != text {
					t.Fatalf("BitmaskImm(%#x) = %d,%d,%d, decoding as %q", v, gn, gr, gs, got)
				}
				seen[v] = true
			}
		}
	}
	if len(seen) != 5334 {
		t.Errorf("%d distinct bitmask immediates, want 5334", len(seen))
	}
	for _, v := range []uint64{0, ^uint64(0), 0x5, 0x1234} {
		if _, _, _, ok := a64.BitmaskImm(v, true); ok {
			t.Errorf("BitmaskImm(%#x) succeeds", v)
		}
	}
	if _, _, _, ok := a64.BitmaskImm(1<<32, false); ok {
		t.Errorf("BitmaskImm(1<<32, 32-bit) succeeds")
	}
}

// TestSysRegVars checks that the exported register variables hold their
// table entries (a regression test: they were once initialized before the
// table and were all zero).
func TestSysRegVars(t *testing.T) {
	for _, r := range []a64.SysReg{a64.SCTLR_EL1, a64.TCR_EL1, a64.MAIR_EL1, a64.TTBR0_EL1, a64.VBAR_EL1, a64.ESR_EL1, a64.FAR_EL1,
		a64.ELR_EL1, a64.SPSR_EL1, a64.SP_EL0, a64.CPACR_EL1, a64.DAIF, a64.CNTVCT_EL0, a64.PMCR_EL0, a64.PMCCNTR_EL0,
		a64.PMCNTENSET_EL0, a64.MDSCR_EL1, a64.OSLAR_EL1} {
		if got, ok := a64.Sys(r.Name); !ok || got != r || r.Op0 < 2 {
			t.Errorf("%+v is not the table's entry %+v", r, got)
		}
	}
	if r, _ := a64.Sys("pmevtyper30_el0"); r.Generic() != "s3_3_c14_c15_6" {
		t.Errorf("PMEVTYPER30_EL0 = %s, want s3_3_c14_c15_6", r.Generic())
	}
}
