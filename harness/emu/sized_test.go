package emu

import (
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestSizedFormsMatchGeneral runs every fixed-size register form of
// ops_sized.go and its general handler on the same random registers and
// flag history, and wants the same registers and RFLAGS.
func TestSizedFormsMatchGeneral(t *testing.T) {
	type form struct {
		name          string
		sized, generl func(*cpu, *inst)
		in            inst
		shift         bool // the immediate is a shift count
	}
	reg := func(r uint8) operand { return operand{kind: kReg, reg: r} }
	imm := func(v uint64) operand { return operand{kind: kImm, imm: v} }
	var forms []form
	for k, fs := range sizedALU {
		for i, f := range fs {
			if f == nil {
				continue
			}
			sz := [2]uint8{8, 4}[i%2]
			in := inst{size: sz, cc: uint8(k), dst: reg(3), src: reg(6)}
			g := opAluRR
			if i >= 2 {
				in.src = imm(0)
				g = opAluRI
			}
			forms = append(forms, form{funcName(f), f, g, in, false})
		}
	}
	for i, sz := range []uint8{8, 4} {
		r := inst{size: sz, dst: reg(1)}
		forms = append(forms,
			form{funcName([]func(*cpu, *inst){opIncR64, opIncR32}[i]), []func(*cpu, *inst){opIncR64, opIncR32}[i], opIncR, r, false},
			form{funcName([]func(*cpu, *inst){opDecR64, opDecR32}[i]), []func(*cpu, *inst){opDecR64, opDecR32}[i], opDecR, r, false},
			form{funcName([]func(*cpu, *inst){opMovRR64, opMovRR32}[i]), []func(*cpu, *inst){opMovRR64, opMovRR32}[i], opMovRR,
				inst{size: sz, dst: reg(2), src: reg(9)}, false},
			form{"opMovRIX", opMovRIX, opMovRI, inst{size: sz, dst: reg(2), src: imm(0)}, false},
			form{funcName([]func(*cpu, *inst){opImulRR64, opImulRR32}[i]), []func(*cpu, *inst){opImulRR64, opImulRR32}[i], opImulRR,
				inst{size: sz, dst: reg(5), src: reg(7), src2: reg(8)}, false},
		)
		for k, fs := range sizedShifts {
			forms = append(forms, form{funcName(fs[i]), fs[i], opShiftRI,
				inst{size: sz, cc: uint8(shShl + k), dst: reg(10), src: imm(0)}, true})
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	val := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return uint64(rng.IntN(5)) - 2 // around 0
		case 1:
			return 1<<(rng.IntN(64)) + uint64(rng.IntN(3)) - 1 // around a power of two
		}
		return rng.Uint64()
	}
	for _, f := range forms {
		for n := 0; n < 2000; n++ {
			a, b := new(cpu), new(cpu)
			for i := range 16 {
				a.regs[i] = val()
			}
			// A random flag history: exact flags, or a pending record
			// left by a random ALU operation.
			a.rflags = 2 | rng.Uint64()&0x8d5
			if rng.IntN(4) != 0 {
				h := inst{size: []uint8{1, 2, 4, 8}[rng.IntN(4)], cc: uint8(rng.IntN(aluTest + 1)), dst: reg(uint8(rng.IntN(16))), src: reg(uint8(rng.IntN(16)))}
				opAluRR(a, &h)
			}
			in := f.in
			if in.src.kind == kImm {
				in.src.imm = val() & sizeMask[in.size]
				if f.shift {
					in.src.imm = uint64(rng.IntN(256))
				}
			}
			b.regs, b.rflags, b.lz = a.regs, a.rflags, a.lz
			f.sized(a, &in)
			f.generl(b, &in)
			if a.regs != b.regs || a.getFlags() != b.getFlags() {
				t.Fatalf("%s %+v: regs %x flags %#x, general handler regs %x flags %#x", f.name, in, a.regs[:16], a.getFlags(), b.regs[:16], b.getFlags())
			}
		}
	}
}

func funcName(f func(*cpu, *inst)) string {
	n := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
	return n[strings.LastIndex(n, ".")+1:]
}

// TestSizedMemFormsMatchGeneral runs the fixed-size memory forms and
// their general handlers on a page both reach through a data-TLB hit,
// and wants the same registers, RFLAGS and memory.
func TestSizedMemFormsMatchGeneral(t *testing.T) {
	reg := func(r uint8) operand { return operand{kind: kReg, reg: r} }
	mem := operand{kind: kMem, base: 6, index: 7, scale: 8, disp: -16}
	type form struct {
		sized, generl func(*cpu, *inst)
		in            inst
	}
	var forms []form
	for i, sz := range []uint8{8, 4} {
		forms = append(forms,
			form{[]func(*cpu, *inst){opMovRM64, opMovRM32}[i], opMovRM, inst{size: sz, dst: reg(1), src: mem}},
			form{[]func(*cpu, *inst){opMovMR64, opMovMR32}[i], opMovMR, inst{size: sz, dst: mem, src: reg(2)}},
			form{opMovzxRM8, opMovzxRM, inst{size: sz, ssize: 1, dst: reg(3), src: mem}},
		)
		for k, fs := range sizedMem {
			if fs[i] == nil {
				continue
			}
			forms = append(forms,
				form{fs[i], aluForms[k][2], inst{size: sz, cc: uint8(k), dst: mem, src: reg(4)}},
				form{fs[i], aluForms[k][2], inst{size: sz, cc: uint8(k), dst: mem, src: operand{kind: kImm}}})
		}
	}
	const vpn = 0x1234
	var code uint32
	setup := func(c *cpu, page *[4096]byte) {
		c.rperm, c.wperm = permRS, permWS
		c.dtlb[vpn%tlbSize] = tlbEntry{vpn: vpn, perm: permRS | permWS, page: page, code: &code}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, f := range forms {
		for n := 0; n < 2000; n++ {
			a, b := new(cpu), new(cpu)
			pa, pb := new([4096]byte), new([4096]byte)
			for i := range pa {
				pa[i] = byte(rng.Uint32())
			}
			*pb = *pa
			setup(a, pa)
			setup(b, pb)
			for i := range 16 {
				a.regs[i] = rng.Uint64()
			}
			// base + index*8 - 16 inside the page, 8 bytes from its end at most.
			a.regs[6] = vpn<<12 + 16
			a.regs[7] = uint64(rng.IntN(4096/8 - 1))
			a.rflags = 2 | rng.Uint64()&0x8d5
			in := f.in
			if in.src.kind == kImm {
				in.src.imm = rng.Uint64() & sizeMask[in.size]
			}
			b.regs, b.rflags, b.lz = a.regs, a.rflags, a.lz
			f.sized(a, &in)
			f.generl(b, &in)
			if a.regs != b.regs || a.getFlags() != b.getFlags() || *pa != *pb {
				t.Fatalf("%s %+v: regs %x flags %#x, general handler regs %x flags %#x (memory equal: %v)",
					funcName(f.sized), in, a.regs[:16], a.getFlags(), b.regs[:16], b.getFlags(), *pa == *pb)
			}
		}
	}
}

// TestFusedPairsMatchSteps runs every fused pair handler (ops_fused.go)
// and, on a copy of the same state, its producer's own handler followed
// by the general conditional jump, and wants the same registers, RFLAGS,
// RIP and current instruction.
func TestFusedPairsMatchSteps(t *testing.T) {
	reg := func(r uint8) operand { return operand{kind: kReg, reg: r} }
	producer := func(k int) (inst, []uint8) {
		sz := [2]uint8{8, 4}
		switch {
		case k >= pairDec64 && k <= pairDec32:
			return inst{op: x86asm.DEC, size: sz[k-pairDec64], dst: reg(1), len: 2}, []uint8{4, 5}
		case k >= pairInc64 && k <= pairInc32:
			return inst{op: x86asm.INC, size: sz[k-pairInc64], dst: reg(1), len: 2}, []uint8{4, 5}
		case k >= pairCmpRR64b && k <= pairCmpRI32z:
			i := k - pairCmpRR64b
			in := inst{op: x86asm.CMP, cc: aluCmp, size: sz[i%2], dst: reg(2), src: reg(3), len: 3}
			if i%4 >= 2 {
				in.src = operand{kind: kImm}
			}
			if i >= 4 {
				return in, []uint8{4, 5}
			}
			return in, []uint8{2, 3}
		case k >= pairShr64 && k <= pairShr32:
			return inst{op: x86asm.SHR, cc: shShr, size: sz[k-pairShr64], dst: reg(4), src: operand{kind: kImm}, len: 3}, []uint8{2, 3}
		}
		t.Fatalf("pair kind %d has no test producer", k)
		return inst{}, nil
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for k := 1; k < len(pairs); k++ {
		if k == pairShrX64 || k == pairShrX32 {
			continue // three instructions: TestSkipPairsMatchSteps
		}
		p, ccs := producer(k)
		for _, cc := range ccs {
			if got := pairKind(&p, &inst{cc: cc}); got != uint8(k) {
				t.Fatalf("pairKind of %v size %d with cc %d = %d, want %d", p.op, p.size, cc, got, k)
			}
		}
		for n := 0; n < 2000; n++ {
			insts := make([]inst, 2)
			insts[0] = p
			if p.src.kind == kImm {
				insts[0].src.imm = rng.Uint64() & sizeMask[p.size]
				if p.op == x86asm.SHR {
					insts[0].src.imm = uint64(rng.IntN(256))
				}
			}
			insts[1] = inst{op: x86asm.JE, cc: ccs[rng.IntN(2)], len: 2, dst: operand{kind: kImm, imm: uint64(rng.IntN(256)) - 128}}
			a, b := new(cpu), new(cpu)
			for i := range 16 {
				a.regs[i] = rng.Uint64()
				if rng.IntN(4) == 0 {
					a.regs[i] = uint64(rng.IntN(3)) // around 0 and 1
				}
			}
			if rng.IntN(2) == 0 {
				a.regs[3] = a.regs[2] // equal operands
				if p.op == x86asm.CMP && p.src.kind == kImm {
					insts[0].src.imm = a.regs[2] & sizeMask[p.size]
				}
			}
			a.rflags = 2 | rng.Uint64()&0x8d5
			if rng.IntN(4) != 0 {
				h := inst{size: []uint8{1, 2, 4, 8}[rng.IntN(4)], cc: uint8(rng.IntN(aluTest + 1)), dst: reg(uint8(rng.IntN(16))), src: reg(uint8(rng.IntN(16)))}
				opAluRR(a, &h)
			}
			b.regs, b.rflags, b.lz = a.regs, a.rflags, a.lz
			const at = 0x10000
			a.cur, a.rip = at, at+uint64(p.len)
			b.cur, b.rip = at, at+uint64(p.len)
			pairs[k].pair(a, &insts[0])
			insts[0].pair = uint8(k)
			insts[0].one()(b, &insts[0])
			b.cur = b.rip
			b.rip += uint64(insts[1].len)
			opJcc(b, &insts[1])
			if a.regs != b.regs || a.getFlags() != b.getFlags() || a.rip != b.rip || a.cur != b.cur {
				t.Fatalf("pair %d %+v then cc %d: regs %x flags %#x rip %#x cur %#x, one at a time regs %x flags %#x rip %#x cur %#x",
					k, insts[0], insts[1].cc, a.regs[:16], a.getFlags(), a.rip, a.cur, b.regs[:16], b.getFlags(), b.rip, b.cur)
			}
		}
	}
}

// TestSkipPairsMatchSteps compares each SHR + JB/JAE + XOR handler
// (pairShrX64, pairShrX32) with the three instructions one at a time:
// registers, all flags, RIP, and the retired count the block loop ends
// with (the XOR's index plus one, less one when the jump skipped it).
func TestSkipPairsMatchSteps(t *testing.T) {
	reg := func(r uint8) operand { return operand{kind: kReg, reg: r} }
	rng := rand.New(rand.NewPCG(7, 8))
	for k := uint8(pairShrX64); k <= pairShrX32; k++ {
		sz := [2]uint8{8, 4}[k-pairShrX64]
		for n := 0; n < 4000; n++ {
			insts := make([]inst, 3)
			insts[0] = inst{op: x86asm.SHR, cc: shShr, size: sz, dst: reg(uint8(rng.IntN(16))), src: operand{kind: kImm, imm: uint64(rng.IntN(256))}, len: 3}
			if rng.IntN(8) == 0 {
				insts[0].src.imm &^= 0x3f // a count of 0
			}
			insts[0].idx = 0
			insts[0].pair = pairShr64 + k - pairShrX64
			xlen := uint8(3 + rng.IntN(5))
			insts[1] = inst{op: x86asm.JAE, cc: uint8(2 + rng.IntN(2)), len: 2, idx: 1, dst: operand{kind: kImm, imm: uint64(xlen)}}
			insts[2] = inst{op: x86asm.XOR, cc: aluXor, size: sz, len: xlen, idx: 2, dst: reg(uint8(rng.IntN(16))), src: operand{kind: kImm, imm: rng.Uint64()}}
			if rng.IntN(2) == 0 {
				insts[2].dst = insts[0].dst
			}
			if sz == 4 && rng.IntN(2) == 0 {
				insts[2].src.imm &= 0xffffffff
			}
			if got := skipKind(&insts[0], &insts[1], &insts[2]); got != k {
				t.Fatalf("skipKind of %+v = %d, want %d", insts, got, k)
			}
			insts[2].fn = sizedALU[aluXor][2+k-pairShrX64]
			a, b := new(cpu), new(cpu)
			for i := range 16 {
				a.regs[i] = rng.Uint64()
			}
			a.rflags = 2 | rng.Uint64()&0x8d5
			if rng.IntN(4) != 0 {
				h := inst{size: []uint8{1, 2, 4, 8}[rng.IntN(4)], cc: uint8(rng.IntN(aluTest + 1)), dst: reg(uint8(rng.IntN(16))), src: reg(uint8(rng.IntN(16)))}
				opAluRR(a, &h)
			}
			b.regs, b.rflags, b.lz = a.regs, a.rflags, a.lz
			const at = 0x10000
			a.cur, a.rip = at, at+uint64(insts[0].len)
			b.cur, b.rip = at, at+uint64(insts[0].len)
			insts[0].pair = k
			pairs[k].pair(a, &insts[0])
			a.st.instructions += uint64(insts[2].idx) + 1
			insts[0].one()(b, &insts[0])
			b.cur = b.rip
			b.rip += uint64(insts[1].len)
			opJcc(b, &insts[1])
			b.st.instructions += 2
			if b.rip == b.cur+uint64(insts[1].len) {
				b.cur = b.rip
				b.rip += uint64(insts[2].len)
				insts[2].fn(b, &insts[2])
				b.st.instructions++
			}
			if a.regs != b.regs || a.getFlags() != b.getFlags() || a.rip != b.rip || a.st.instructions != b.st.instructions {
				t.Fatalf("pair %d %+v: regs %x flags %#x rip %#x count %d, one at a time regs %x flags %#x rip %#x count %d",
					k, insts, a.regs[:16], a.getFlags(), a.rip, a.st.instructions, b.regs[:16], b.getFlags(), b.rip, b.st.instructions)
			}
			if want := uint64(at + 5); a.cur != want {
				t.Fatalf("pair %d: cur %#x, want %#x (the XOR)", k, a.cur, want)
			}
		}
	}
}
