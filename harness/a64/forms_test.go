package a64_test

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/a64"
	"golang.org/x/arch/arm64/arm64asm"
)

// picker draws operand choices from fuzz input or from a seeded PRNG, so
// that the same generators build the form table and the fuzz programs.
type picker struct {
	data []byte
	rng  *rand.Rand
}

// pick returns a value in [0, n).
func (p *picker) pick(n int) int {
	if n <= 1 {
		return 0
	}
	if p.rng != nil {
		return p.rng.IntN(n)
	}
	var v uint64
	for i := 0; i < 4 && len(p.data) > 0; i++ {
		v = v<<8 | uint64(p.data[0])
		p.data = p.data[1:]
	}
	return int(v % uint64(n))
}

func (p *picker) bool() bool { return p.pick(2) == 1 }

// tc is one generated form: emit builds it (target is a label the harness
// binds rel bytes from the instruction), want is the GNU syntax arm64asm
// must print for it (with "@" standing for the target address), and gas is
// the GNU as source for it ("@" standing for ".+rel"), "" if GNU as is not
// asked.
type tc struct {
	name string
	emit func(a *a64.Assembler, target *a64.Label)
	want string
	gas  string
	rel  int64 // target offset in bytes from the instruction, a multiple of 4
}

// reg picks X0-X30 or W0-W30 and, with zr, sometimes the zero register.
func reg(p *picker, is64, zr bool) a64.Reg {
	n := p.pick(31)
	if zr && p.pick(8) == 0 {
		n = 31
	}
	if is64 {
		return a64.X(n)
	}
	return a64.W(n)
}

// regSP picks X0-X30 or W0-W30, sometimes the stack pointer.
func regSP(p *picker, is64 bool) a64.Reg {
	if p.pick(8) == 0 {
		if is64 {
			return a64.SP
		}
		return a64.WSP
	}
	return reg(p, is64, false)
}

func hex(v uint64) string { return fmt.Sprintf("#%#x", v) }

type family struct {
	name string
	gen  func(p *picker) tc
}

func families() []family {
	return []family{
		{"addsub-imm", genAddSubImm},
		{"addsub-reg", genAddSubReg},
		{"logical-imm", genLogicalImm},
		{"logical-reg", genLogicalReg},
		{"movewide", genMoveWide},
		{"shift", genShift},
		{"muldiv", genMulDiv},
		{"csel", genCsel},
		{"ldst", genLdSt},
		{"ldst-bh", genLdStBH},
		{"pair", genPair},
		{"exclusive", genExclusive},
		{"branch", genBranch},
		{"branch-reg", genBranchReg},
		{"sysreg", genSysReg},
		{"system", genSystem},
		{"cas", genCas},
		{"cas-bh", genCasBH},
		{"casp", genCasp},
	}
}

func genAddSubImm(p *picker) tc {
	is64 := p.bool()
	ops := []struct {
		name string
		f    func(*a64.Assembler, a64.Reg, a64.Reg, a64.Operand)
		s    bool
	}{{"add", (*a64.Assembler).Add, false}, {"sub", (*a64.Assembler).Sub, false}, {"adds", (*a64.Assembler).Adds, true}, {"subs", (*a64.Assembler).Subs, true}}
	o := ops[p.pick(len(ops))]
	var rd a64.Reg
	if o.s {
		rd = reg(p, is64, true)
	} else {
		rd = regSP(p, is64)
	}
	rn := regSP(p, is64)
	imm := uint64(p.pick(4096))
	val, text := imm, hex(imm)
	if p.bool() {
		val <<= 12
		text += ", lsl #12"
		if imm == 0 {
			val, text = 0, "#0x0"
		}
	}
	want := fmt.Sprintf("%s %v, %v, %s", o.name, rd, rn, text)
	switch {
	case o.name == "add" && val == 0 && (rd.String() == "sp" || rn.String() == "sp" || rd.String() == "wsp" || rn.String() == "wsp"):
		want = fmt.Sprintf("mov %v, %v", rd, rn)
	case o.s && (rd == a64.XZR || rd == a64.WZR):
		want = fmt.Sprintf("%s %v, %s", map[string]string{"adds": "cmn", "subs": "cmp"}[o.name], rn, text)
	}
	return tc{name: o.name + "-imm", emit: func(a *a64.Assembler, _ *a64.Label) { o.f(a, rd, rn, a64.Imm(val)) }, want: want, gas: want}
}

func genAddSubReg(p *picker) tc {
	is64 := p.bool()
	names := []string{"add", "sub", "adds", "subs"}
	fs := []func(*a64.Assembler, a64.Reg, a64.Reg, a64.Operand){(*a64.Assembler).Add, (*a64.Assembler).Sub, (*a64.Assembler).Adds, (*a64.Assembler).Subs}
	i := p.pick(4)
	rd, rn := reg(p, is64, true), reg(p, is64, false)
	op, text := shiftedOperand(p, is64, 3)
	want := fmt.Sprintf("%s %v, %v, %s", names[i], rd, rn, text)
	if i >= 2 && (rd == a64.XZR || rd == a64.WZR) {
		want = fmt.Sprintf("%s %v, %s", map[int]string{2: "cmn", 3: "cmp"}[i], rn, text)
	}
	return tc{name: names[i] + "-reg", emit: func(a *a64.Assembler, _ *a64.Label) { fs[i](a, rd, rn, op) }, want: want, gas: want}
}

// shiftedOperand picks a register shifted by one of the first kinds shift
// kinds (LSL, LSR, ASR, then ROR), and its GNU text.
func shiftedOperand(p *picker, is64 bool, kinds int) (a64.ShiftedReg, string) {
	rm := reg(p, is64, true)
	sh := a64.Shift(p.pick(kinds))
	amt := uint(p.pick(32 << b2i(is64)))
	if p.bool() {
		amt = 0
	}
	text := rm.String()
	if amt != 0 || sh != a64.LSL {
		text += fmt.Sprintf(", %v #%d", sh, amt)
	}
	return a64.Shifted(rm, sh, amt), text
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// bitmask builds a logical immediate from its parameters (element size,
// run length, rotation), the decoding direction, so that the encoder's
// search is checked against an independent construction.
func bitmask(p *picker, is64 bool) uint64 {
	sizes := []uint{2, 4, 8, 16, 32, 64}
	if !is64 {
		sizes = sizes[:5]
	}
	size := sizes[p.pick(len(sizes))]
	ones := uint(1 + p.pick(int(size)-1))
	rot := uint(p.pick(int(size)))
	mask := ^uint64(0) >> (64 - size)
	elem := uint64(1)<<ones - 1
	elem = (elem>>rot | elem<<(size-rot)) & mask
	var v uint64
	for i := uint(0); i < 64; i += size {
		v |= elem << i
	}
	if !is64 {
		v &= 0xffffffff
	}
	return v
}

var logicalNames = []string{"and", "orr", "eor", "ands"}
var logicalFuncs = []func(*a64.Assembler, a64.Reg, a64.Reg, a64.Operand){(*a64.Assembler).And, (*a64.Assembler).Orr, (*a64.Assembler).Eor, (*a64.Assembler).Ands}

func genLogicalImm(p *picker) tc {
	is64 := p.bool()
	i := p.pick(4)
	var rd a64.Reg
	if i == 3 {
		rd = reg(p, is64, true)
	} else {
		rd = regSP(p, is64)
	}
	rn := reg(p, is64, false)
	v := bitmask(p, is64)
	want := fmt.Sprintf("%s %v, %v, %s", logicalNames[i], rd, rn, hex(v))
	if i == 3 && (rd == a64.XZR || rd == a64.WZR) {
		want = fmt.Sprintf("tst %v, %s", rn, hex(v))
	}
	return tc{name: logicalNames[i] + "-imm", emit: func(a *a64.Assembler, _ *a64.Label) { logicalFuncs[i](a, rd, rn, a64.Imm(v)) }, want: want, gas: want}
}

func genLogicalReg(p *picker) tc {
	is64 := p.bool()
	i := p.pick(4)
	rd, rn := reg(p, is64, true), reg(p, is64, false)
	op, text := shiftedOperand(p, is64, 4)
	want := fmt.Sprintf("%s %v, %v, %s", logicalNames[i], rd, rn, text)
	if i == 3 && (rd == a64.XZR || rd == a64.WZR) {
		want = fmt.Sprintf("tst %v, %s", rn, text)
	}
	return tc{name: logicalNames[i] + "-reg", emit: func(a *a64.Assembler, _ *a64.Label) { logicalFuncs[i](a, rd, rn, op) }, want: want, gas: want}
}

func genMoveWide(p *picker) tc {
	is64 := p.bool()
	rd := reg(p, is64, true)
	imm := uint16(p.pick(1 << 16))
	if p.pick(4) == 0 {
		imm = []uint16{0, 0xffff, 1}[p.pick(3)]
	}
	hw := uint(p.pick(2 + 2*b2i(is64)))
	i := p.pick(3)
	shifted := uint64(imm) << (16 * hw)
	var want string
	switch i {
	case 0: // movz
		want = fmt.Sprintf("mov %v, %s", rd, hex(shifted))
		if imm == 0 && hw != 0 {
			want = fmt.Sprintf("movz %v, #0x0, lsl #%d", rd, 16*hw)
		}
	case 1: // movn
		v := ^shifted
		if !is64 {
			v &= 0xffffffff
		}
		want = fmt.Sprintf("mov %v, %s", rd, hex(v))
		if (imm == 0 && hw != 0) || (!is64 && imm == 0xffff) {
			want = fmt.Sprintf("movn %v, %s", rd, hex(uint64(imm)))
			if hw != 0 {
				want += fmt.Sprintf(", lsl #%d", 16*hw)
			}
		}
	case 2:
		want = fmt.Sprintf("movk %v, %s", rd, hex(uint64(imm)))
		if hw != 0 {
			want += fmt.Sprintf(", lsl #%d", 16*hw)
		}
	}
	fs := []func(*a64.Assembler, a64.Reg, uint16, uint){(*a64.Assembler).Movz, (*a64.Assembler).Movn, (*a64.Assembler).Movk}
	gas := strings.Replace(want, "mov ", []string{"movz ", "movn ", "movk "}[i], 1)
	if strings.HasPrefix(want, "mov ") {
		gas = fmt.Sprintf("%s %v, %s, lsl #%d", []string{"movz", "movn"}[i], rd, hex(uint64(imm)), 16*hw)
	}
	return tc{name: []string{"movz", "movn", "movk"}[i], emit: func(a *a64.Assembler, _ *a64.Label) { fs[i](a, rd, imm, 16*hw) }, want: want, gas: gas}
}

func genShift(p *picker) tc {
	is64 := p.bool()
	i := p.pick(3)
	names := []string{"lsl", "lsr", "asr"}
	fs := []func(*a64.Assembler, a64.Reg, a64.Reg, a64.Operand){(*a64.Assembler).Lsl, (*a64.Assembler).Lsr, (*a64.Assembler).Asr}
	rd, rn := reg(p, is64, true), reg(p, is64, true)
	var op a64.Operand
	var text string
	if p.bool() {
		rm := reg(p, is64, true)
		op, text = rm, rm.String()
	} else {
		n := p.pick(32 << b2i(is64))
		op, text = a64.Imm(n), fmt.Sprintf("#%d", n)
	}
	want := fmt.Sprintf("%s %v, %v, %s", names[i], rd, rn, text)
	if i == 0 && text == "#0" {
		// LSL #0 is UBFM #0, #width-1, whose preferred spelling is LSR #0
		// (GNU as encodes "lsl x1, x2, #0" the same way).
		want = fmt.Sprintf("lsr %v, %v, #0", rd, rn)
	}
	return tc{name: names[i], emit: func(a *a64.Assembler, _ *a64.Label) { fs[i](a, rd, rn, op) }, want: want, gas: want}
}

func genMulDiv(p *picker) tc {
	is64 := p.bool()
	rd, rn, rm, ra := reg(p, is64, true), reg(p, is64, true), reg(p, is64, true), reg(p, is64, false)
	switch p.pick(3) {
	case 0:
		want := fmt.Sprintf("madd %v, %v, %v, %v", rd, rn, rm, ra)
		return tc{name: "madd", emit: func(a *a64.Assembler, _ *a64.Label) { a.Madd(rd, rn, rm, ra) }, want: want, gas: want}
	case 1:
		want := fmt.Sprintf("mul %v, %v, %v", rd, rn, rm)
		return tc{name: "mul", emit: func(a *a64.Assembler, _ *a64.Label) { a.Mul(rd, rn, rm) }, want: want, gas: want}
	}
	want := fmt.Sprintf("udiv %v, %v, %v", rd, rn, rm)
	return tc{name: "udiv", emit: func(a *a64.Assembler, _ *a64.Label) { a.Udiv(rd, rn, rm) }, want: want, gas: want}
}

func genCsel(p *picker) tc {
	is64 := p.bool()
	rd, rn, rm := reg(p, is64, true), reg(p, is64, true), reg(p, is64, true)
	c := a64.Cond(p.pick(14))
	if p.bool() {
		want := fmt.Sprintf("cset %v, %v", rd, c)
		return tc{name: "cset", emit: func(a *a64.Assembler, _ *a64.Label) { a.Cset(rd, c) }, want: want, gas: want}
	}
	want := fmt.Sprintf("csel %v, %v, %v, %v", rd, rn, rm, c)
	return tc{name: "csel", emit: func(a *a64.Assembler, _ *a64.Label) { a.Csel(rd, rn, rm, c) }, want: want, gas: want}
}

// memText builds the GNU text of an address, and the Mem for it, for an
// access of 1<<size bytes whose data register is rt.
func memGen(p *picker, size uint, rt a64.Reg, load bool) (a64.Mem, string, bool) {
	base := a64.X(p.pick(31))
	if p.pick(4) == 0 {
		base = a64.SP
	}
	scale := int64(1) << size
	switch p.pick(5) {
	case 0, 1: // unsigned scaled offset
		off := int64(p.pick(4096)) * scale
		if p.pick(3) == 0 {
			off = 0
		}
		if off == 0 {
			return a64.Ptr(base, 0), fmt.Sprintf("[%v]", base), false
		}
		return a64.Ptr(base, off), fmt.Sprintf("[%v,#%d]", base, off), false
	case 2: // unscaled: negative or misaligned, so LDUR/STUR
		off := int64(p.pick(512) - 256)
		if off >= 0 && off%scale == 0 {
			off = -1 - int64(p.pick(256))
		}
		return a64.Ptr(base, off), fmt.Sprintf("[%v,#%d]", base, off), true
	case 3: // pre or post index
		off := int64(p.pick(512) - 256)
		if !base.Equal(a64.SP) && base.Num() == rt.Num() {
			base = a64.SP
		}
		if p.bool() {
			return a64.PreIndex(base, off), fmt.Sprintf("[%v,#%d]!", base, off), false
		}
		return a64.PostIndex(base, off), fmt.Sprintf("[%v],#%d", base, off), false
	}
	exts := []a64.Extend{a64.ExtLSL, a64.ExtUXTW, a64.ExtSXTW, a64.ExtSXTX}
	ext := exts[p.pick(4)]
	idx := reg(p, ext == a64.ExtLSL || ext == a64.ExtSXTX, true)
	scaled := p.bool()
	name := map[a64.Extend]string{a64.ExtLSL: "lsl", a64.ExtUXTW: "uxtw", a64.ExtSXTW: "sxtw", a64.ExtSXTX: "sxtx"}[ext]
	text := fmt.Sprintf("[%v,%v", base, idx)
	switch {
	case scaled:
		text += fmt.Sprintf(",%s #%d", name, size)
	case ext != a64.ExtLSL:
		text += "," + name
	}
	return a64.Index(base, idx, ext, scaled), text + "]", false
}

func genLdSt(p *picker) tc {
	is64 := p.bool()
	load := p.bool()
	rt := reg(p, is64, true)
	size := uint(2 + b2i(is64))
	m, text, unscaled := memGen(p, size, rt, load)
	name := map[bool]string{true: "ldr", false: "str"}[load]
	if unscaled {
		name = map[bool]string{true: "ldur", false: "stur"}[load]
	}
	want := fmt.Sprintf("%s %v, %s", name, rt, text)
	f := (*a64.Assembler).Str
	if load {
		f = (*a64.Assembler).Ldr
	}
	return tc{name: name, emit: func(a *a64.Assembler, _ *a64.Label) { f(a, rt, m) }, want: want, gas: want}
}

func genLdStBH(p *picker) tc {
	load := p.bool()
	half := p.bool()
	rt := reg(p, false, true)
	size := uint(b2i(half))
	m, text, unscaled := memGen(p, size, rt, load)
	name := map[bool]string{true: "ldr", false: "str"}[load]
	if unscaled {
		name = map[bool]string{true: "ldur", false: "stur"}[load]
	}
	name += map[bool]string{true: "h", false: "b"}[half]
	want := fmt.Sprintf("%s %v, %s", name, rt, text)
	fs := map[[2]bool]func(*a64.Assembler, a64.Reg, a64.Mem){
		{true, true}: (*a64.Assembler).Ldrh, {true, false}: (*a64.Assembler).Ldrb,
		{false, true}: (*a64.Assembler).Strh, {false, false}: (*a64.Assembler).Strb,
	}
	f := fs[[2]bool{load, half}]
	return tc{name: name, emit: func(a *a64.Assembler, _ *a64.Label) { f(a, rt, m) }, want: want, gas: want}
}

func genPair(p *picker) tc {
	is64 := p.bool()
	load := p.bool()
	rt1, rt2 := reg(p, is64, true), reg(p, is64, true)
	if load && rt1 == rt2 {
		rt2 = reg(p, is64, false)
		if rt2 == rt1 {
			rt2 = a64.X(int(rt1.Num()+1) % 31)
			if !is64 {
				rt2 = a64.W(int(rt1.Num()+1) % 31)
			}
		}
	}
	scale := int64(4) << b2i(is64)
	off := int64(p.pick(128)-64) * scale
	base := a64.SP
	if n := p.pick(31); n != int(rt1.Num()) && n != int(rt2.Num()) {
		base = a64.X(n)
	}
	var m a64.Mem
	var text string
	switch p.pick(3) {
	case 0:
		m, text = a64.Ptr(base, off), fmt.Sprintf("[%v,#%d]", base, off)
		if off == 0 {
			text = fmt.Sprintf("[%v]", base)
		}
	case 1:
		m, text = a64.PreIndex(base, off), fmt.Sprintf("[%v,#%d]!", base, off)
	default:
		m, text = a64.PostIndex(base, off), fmt.Sprintf("[%v],#%d", base, off)
	}
	name := map[bool]string{true: "ldp", false: "stp"}[load]
	f := (*a64.Assembler).Stp
	if load {
		f = (*a64.Assembler).Ldp
	}
	want := fmt.Sprintf("%s %v, %v, %s", name, rt1, rt2, text)
	return tc{name: name, emit: func(a *a64.Assembler, _ *a64.Label) { f(a, rt1, rt2, m) }, want: want, gas: want}
}

func genExclusive(p *picker) tc {
	is64 := p.bool()
	rt := reg(p, is64, true)
	rn := a64.X(p.pick(31))
	if p.pick(4) == 0 {
		rn = a64.SP
	}
	i := p.pick(6)
	names := []string{"ldxr", "ldaxr", "ldar", "stlr", "stxr", "stlxr"}
	if i < 4 {
		fs := []func(*a64.Assembler, a64.Reg, a64.Reg){(*a64.Assembler).Ldxr, (*a64.Assembler).Ldaxr, (*a64.Assembler).Ldar, (*a64.Assembler).Stlr}
		want := fmt.Sprintf("%s %v, [%v]", names[i], rt, rn)
		return tc{name: names[i], emit: func(a *a64.Assembler, _ *a64.Label) { fs[i](a, rt, rn) }, want: want, gas: want}
	}
	var ws a64.Reg
	for ws == 0 || ws.Num() == rt.Num() || (ws.Num() == rn.Num() && !rn.Equal(a64.SP)) {
		ws = a64.W(p.pick(32))
		if p.rng == nil && len(p.data) == 0 {
			ws = a64.W(int(rt.Num()+1) % 31)
			if ws.Num() == rn.Num() {
				ws = a64.W(int(rt.Num()+2) % 31)
			}
		}
	}
	f := (*a64.Assembler).Stxr
	if i == 5 {
		f = (*a64.Assembler).Stlxr
	}
	want := fmt.Sprintf("%s %v, %v, [%v]", names[i], ws, rt, rn)
	return tc{name: names[i], emit: func(a *a64.Assembler, _ *a64.Label) { f(a, ws, rt, rn) }, want: want, gas: want}
}

func genCas(p *picker) tc {
	is64 := p.bool()
	rs, rt := reg(p, is64, true), reg(p, is64, true)
	rn := a64.X(p.pick(31))
	if p.pick(4) == 0 {
		rn = a64.SP
	}
	i := p.pick(4)
	names := []string{"cas", "casa", "casl", "casal"}
	fs := []func(*a64.Assembler, a64.Reg, a64.Reg, a64.Reg){(*a64.Assembler).Cas, (*a64.Assembler).Casa, (*a64.Assembler).Casl, (*a64.Assembler).Casal}
	want := fmt.Sprintf("%s %v, %v, [%v]", names[i], rs, rt, rn)
	return tc{name: names[i], emit: func(a *a64.Assembler, _ *a64.Label) { fs[i](a, rs, rt, rn) }, want: want, gas: want}
}

var casOrders = []string{"", "a", "l", "al"}

func genCasBH(p *picker) tc {
	rs, rt := reg(p, false, true), reg(p, false, true)
	rn := a64.X(p.pick(31))
	if p.pick(4) == 0 {
		rn = a64.SP
	}
	i, half := p.pick(4), p.bool()
	fs := [][]func(*a64.Assembler, a64.Reg, a64.Reg, a64.Reg){
		{(*a64.Assembler).Casb, (*a64.Assembler).Casab, (*a64.Assembler).Caslb, (*a64.Assembler).Casalb},
		{(*a64.Assembler).Cash, (*a64.Assembler).Casah, (*a64.Assembler).Caslh, (*a64.Assembler).Casalh},
	}[b2i(half)]
	name := "cas" + casOrders[i] + map[bool]string{false: "b", true: "h"}[half]
	want := fmt.Sprintf("%s %v, %v, [%v]", name, rs, rt, rn)
	return tc{name: name, emit: func(a *a64.Assembler, _ *a64.Label) { fs[i](a, rs, rt, rn) }, want: want, gas: want}
}

// genCasp picks two even register pairs (X30 pairs with XZR).
func genCasp(p *picker) tc {
	r := a64.W
	if p.bool() {
		r = a64.X
	}
	s, t := 2*p.pick(16), 2*p.pick(16)
	rn := a64.X(p.pick(31))
	if p.pick(4) == 0 {
		rn = a64.SP
	}
	i := p.pick(4)
	fs := []func(*a64.Assembler, a64.Reg, a64.Reg, a64.Reg, a64.Reg, a64.Reg){(*a64.Assembler).Casp, (*a64.Assembler).Caspa, (*a64.Assembler).Caspl, (*a64.Assembler).Caspal}
	name := "casp" + casOrders[i]
	want := fmt.Sprintf("%s %v, %v, %v, %v, [%v]", name, r(s), r(s+1), r(t), r(t+1), rn)
	return tc{name: name, emit: func(a *a64.Assembler, _ *a64.Label) { fs[i](a, r(s), r(s+1), r(t), r(t+1), rn) }, want: want, gas: want}
}

func genBranch(p *picker) tc {
	i := p.pick(7)
	// B and BL reach ±2^25 words; the table samples ±2^20 (TestBranchRange
	// checks the edges) to keep each case's buffer small.
	ranges := []int{1 << 20, 1 << 20, 1 << 18, 1 << 18, 1 << 18, 1 << 13, 1 << 18}
	words := p.pick(2*ranges[i]) - ranges[i]
	if p.bool() {
		words = p.pick(64) - 32
	}
	rel := int64(words) * 4
	is64 := p.bool()
	rt := reg(p, is64, true)
	var t tc
	switch i {
	case 0:
		t = tc{name: "b", emit: func(a *a64.Assembler, l *a64.Label) { a.B(l) }, want: "b @"}
	case 1:
		t = tc{name: "bl", emit: func(a *a64.Assembler, l *a64.Label) { a.Bl(l) }, want: "bl @"}
	case 2:
		c := a64.Cond(p.pick(16))
		t = tc{name: "b.cond", emit: func(a *a64.Assembler, l *a64.Label) { a.Bcond(c, l) }, want: fmt.Sprintf("b.%v @", c)}
		if c == a64.NV {
			// arm64asm prints condition 15 (which executes as AL) as "al".
			t.want = "b.al @"
			t.gas = "b.nv @"
		}
	case 3:
		t = tc{name: "cbz", emit: func(a *a64.Assembler, l *a64.Label) { a.Cbz(rt, l) }, want: fmt.Sprintf("cbz %v, @", rt)}
	case 4:
		t = tc{name: "cbnz", emit: func(a *a64.Assembler, l *a64.Label) { a.Cbnz(rt, l) }, want: fmt.Sprintf("cbnz %v, @", rt)}
	case 5:
		bit := uint(p.pick(32 << b2i(is64)))
		shown := rt
		if bit < 32 && is64 {
			shown = a64.W(int(rt.Num()))
		}
		name := []string{"tbz", "tbnz"}[p.pick(2)]
		f := map[string]func(*a64.Assembler, a64.Reg, uint, *a64.Label){"tbz": (*a64.Assembler).Tbz, "tbnz": (*a64.Assembler).Tbnz}[name]
		t = tc{name: name, emit: func(a *a64.Assembler, l *a64.Label) { f(a, rt, bit, l) }, want: fmt.Sprintf("%s %v, #%d, @", name, shown, bit)}
	case 6:
		xt := reg(p, true, false)
		if p.bool() {
			t = tc{name: "adr", emit: func(a *a64.Assembler, l *a64.Label) { a.Adr(xt, l) }, want: fmt.Sprintf("adr %v, @", xt)}
			rel = int64(p.pick(1<<21) - 1<<20)
		} else {
			t = tc{name: "ldr-literal", emit: func(a *a64.Assembler, l *a64.Label) { a.LdrLabel(rt, l) }, want: fmt.Sprintf("ldr %v, @", rt)}
		}
	}
	if t.gas == "" {
		t.gas = t.want
	}
	t.rel = rel
	return t
}

func genBranchReg(p *picker) tc {
	rn := reg(p, true, true)
	switch p.pick(4) {
	case 0:
		return tc{name: "br", emit: func(a *a64.Assembler, _ *a64.Label) { a.Br(rn) }, want: fmt.Sprintf("br %v", rn), gas: fmt.Sprintf("br %v", rn)}
	case 1:
		return tc{name: "blr", emit: func(a *a64.Assembler, _ *a64.Label) { a.Blr(rn) }, want: fmt.Sprintf("blr %v", rn), gas: fmt.Sprintf("blr %v", rn)}
	case 2:
		return tc{name: "ret", emit: func(a *a64.Assembler, _ *a64.Label) { a.Ret() }, want: "ret", gas: "ret"}
	}
	want := fmt.Sprintf("ret %v", rn)
	if rn == a64.X30 {
		want = "ret"
	}
	return tc{name: "ret-reg", emit: func(a *a64.Assembler, _ *a64.Label) { a.RetReg(rn) }, want: want, gas: want}
}

func genSysReg(p *picker) tc {
	names := a64.SysRegNames()
	s, _ := a64.Sys(names[p.pick(len(names))])
	xt := reg(p, true, true)
	read := p.bool()
	if s.Name == "OSLAR_EL1" || s.Name == "PMSWINC_EL0" {
		read = false
	}
	if r, _ := a64.Sys("CNTVCT_EL0"); s == r || strings.HasPrefix(s.Name, "ID_") || strings.HasPrefix(s.Name, "PMCEID") || s.Name == "MIDR_EL1" || s.Name == "MPIDR_EL1" || s.Name == "CURRENTEL" || s.Name == "OSLSR_EL1" {
		read = true
	}
	if read {
		return tc{name: "mrs", emit: func(a *a64.Assembler, _ *a64.Label) { a.Mrs(xt, s) }, want: fmt.Sprintf("mrs %v, %s", xt, s.Generic()), gas: fmt.Sprintf("mrs %v, %s", xt, strings.ToLower(s.Name))}
	}
	return tc{name: "msr", emit: func(a *a64.Assembler, _ *a64.Label) { a.Msr(s, xt) }, want: fmt.Sprintf("msr %s, %v", s.Generic(), xt), gas: fmt.Sprintf("msr %s, %v", strings.ToLower(s.Name), xt)}
}

func genSystem(p *picker) tc {
	imm := uint16(p.pick(1 << 16))
	opts := []a64.Barrier{a64.OSHLD, a64.OSHST, a64.OSH, a64.NSHLD, a64.NSHST, a64.NSH, a64.ISHLD, a64.ISHST, a64.ISH, a64.LD, a64.ST, a64.SY}
	optNames := []string{"oshld", "oshst", "osh", "nshld", "nshst", "nsh", "ishld", "ishst", "ish", "ld", "st", "sy"}
	o := p.pick(len(opts))
	d := uint8(p.pick(16))
	all := []tc{
		{name: "hvc", emit: func(a *a64.Assembler, _ *a64.Label) { a.Hvc(imm) }, want: "hvc " + hex(uint64(imm))},
		{name: "smc", emit: func(a *a64.Assembler, _ *a64.Label) { a.Smc(imm) }, want: "smc " + hex(uint64(imm))},
		{name: "svc", emit: func(a *a64.Assembler, _ *a64.Label) { a.Svc(imm) }, want: "svc " + hex(uint64(imm))},
		{name: "brk", emit: func(a *a64.Assembler, _ *a64.Label) { a.Brk(imm) }, want: "brk " + hex(uint64(imm))},
		{name: "eret", emit: func(a *a64.Assembler, _ *a64.Label) { a.Eret() }, want: "eret"},
		{name: "wfi", emit: func(a *a64.Assembler, _ *a64.Label) { a.Wfi() }, want: "wfi"},
		{name: "nop", emit: func(a *a64.Assembler, _ *a64.Label) { a.Nop() }, want: "nop"},
		{name: "isb", emit: func(a *a64.Assembler, _ *a64.Label) { a.Isb() }, want: "isb"},
		{name: "dsb", emit: func(a *a64.Assembler, _ *a64.Label) { a.Dsb(opts[o]) }, want: "dsb " + optNames[o]},
		{name: "dmb", emit: func(a *a64.Assembler, _ *a64.Label) { a.Dmb(opts[o]) }, want: "dmb " + optNames[o]},
		{name: "msr-daifset", emit: func(a *a64.Assembler, _ *a64.Label) { a.MsrDAIFSet(d) }, want: "msr daifset, " + hex(uint64(d))},
		{name: "msr-daifclr", emit: func(a *a64.Assembler, _ *a64.Label) { a.MsrDAIFClr(d) }, want: "msr daifclr, " + hex(uint64(d))},
	}
	t := all[p.pick(len(all))]
	t.gas = t.want
	return t
}

// samplesPerFamily is how many operand samples each family contributes to
// the form table.
const samplesPerFamily = 400

// allCases is the generated table: every family × samplesPerFamily
// operand samples from a fixed seed.
func allCases() []tc {
	var cases []tc
	for fi, f := range families() {
		p := &picker{rng: rand.New(rand.NewPCG(uint64(fi), 18))}
		for i := 0; i < samplesPerFamily; i++ {
			cases = append(cases, f.gen(p))
		}
	}
	return cases
}

// build emits c at origin inside its own Assembler, with the target label
// bound c.rel bytes from the instruction, and returns the instruction word
// and its address.
func build(c tc, origin uint64) (uint32, uint64, error) {
	a := a64.New(origin)
	l := a.NewLabel()
	if c.rel <= 0 {
		// Bind the label first and pad up to the instruction.
		a.Bind(l)
		a.Space(int(-c.rel))
	}
	at := a.Len()
	c.emit(a, l)
	if a.Len() != at+4 {
		if err := a.Err(); err != nil {
			return 0, 0, err
		}
		return 0, 0, fmt.Errorf("emitted %d bytes, want 4", a.Len()-at)
	}
	if c.rel > 0 {
		a.Space(int(c.rel - 4))
		a.Bind(l)
	}
	code, err := a.Assemble()
	if err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint32(code[at:]), origin + uint64(at), nil
}

// wantText is c.want with "@" as the target address of an instruction at pc.
func wantText(c tc, pc uint64) string {
	return strings.ReplaceAll(c.want, "@", fmt.Sprintf("%#x", pc+uint64(c.rel)))
}

// TestForms checks every generated form × operand sample: the encoder
// accepts it, emits one word, and arm64asm decodes that word to the GNU
// text written independently by the generator.
func TestForms(t *testing.T) {
	cases := allCases()
	perForm := map[string]int{}
	for _, c := range cases {
		w, pc, err := build(c, 0x40000000)
		if err != nil {
			t.Errorf("%s (%s): %v", c.name, c.want, err)
			continue
		}
		if err := checkWord(c, w, pc); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		perForm[c.name]++
	}
	t.Logf("%d cases over %d forms", len(cases), len(perForm))
}

// checkWord decodes w, an encoding of c at pc, with arm64asm and compares
// its GNU text with c's. arm64asm has no decoding for HVC and SMC; for
// them the same word with SVC's low bits must decode as SVC with the same
// immediate (checking the field), and the opcode bits must be HVC's or
// SMC's (GNU as compares whole words where it is installed).
func checkWord(c tc, w uint32, pc uint64) error {
	want := wantText(c, pc)
	if c.name == "hvc" || c.name == "smc" {
		low := map[string]uint32{"hvc": 2, "smc": 3}[c.name]
		if w&0xFFE0001F != 0xD4000000|low {
			return fmt.Errorf("%08x is not %s", w, c.name)
		}
		w, want = w&^3|1, "svc"+strings.TrimPrefix(want, c.name)
	}
	if cas, ok := casSibling(c.name, w); ok {
		// arm64asm has no decoding for the LSE atomics either: a CAS*
		// word with o2, L and o1 (bits 23-21) cleared as far as needed
		// is an exclusive store with the same size, Rs, Rt and Rn (see
		// casSibling), which arm64asm must decode to the matching text;
		// bits 23-21 must be the form's, and a64.Text must name it.
		if err := checkWord(cas.tc, cas.w, pc); err != nil {
			return fmt.Errorf("%08x's sibling: %v", w, err)
		}
		if got := w >> 21 & 7; got != cas.o2Lo1 {
			return fmt.Errorf("%08x: o2:L:o1 = %03b, want %03b", w, got, cas.o2Lo1)
		}
		if got := a64.Text(w, pc); got != want {
			return fmt.Errorf("%08x is named %q, want %q", w, got, want)
		}
		return nil
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], w)
	inst, err := arm64asm.Decode(b[:])
	if err != nil {
		return fmt.Errorf("%08x does not decode: %v", w, err)
	}
	if got := a64.Text(w, pc); got != want {
		return fmt.Errorf("%08x decodes as %q (%v), want %q", w, got, inst.Op, want)
	}
	return nil
}

// Used by the tests to keep the bit-count helpers honest.
var _ = bits.OnesCount64

// casSibling is, for a CAS* form, the exclusive store word and text
// that checkWord decodes instead of w, and the o2:L:o1 bits w must have.
// CAS (word, doubleword) with o2 and L cleared is STXP or STLXP (o0
// kept) with Rt2 = 31; CASB and CASH with o2, L and o1 cleared are
// STXRB/STLXRB and STXRH/STLXRH; CASP (size 0:sz) with L and o1 cleared
// is STXRB (sz 0, W pairs) or STXRH (sz 1, X pairs), which checks sz.
func casSibling(name string, w uint32) (struct {
	tc    tc
	w     uint32
	o2Lo1 uint32
}, bool) {
	var sib struct {
		tc    tc
		w     uint32
		o2Lo1 uint32
	}
	rest, ok := strings.CutPrefix(name, "cas")
	if !ok {
		return sib, false
	}
	pair := strings.HasPrefix(rest, "p")
	rest = strings.TrimPrefix(rest, "p")
	size := ""
	if !pair && (strings.HasSuffix(rest, "b") || strings.HasSuffix(rest, "h")) {
		size, rest = rest[len(rest)-1:], rest[:len(rest)-1]
	}
	if rest != "" && rest != "a" && rest != "l" && rest != "al" {
		return sib, false
	}
	acquire := b2u(strings.HasPrefix(rest, "a"))
	op := "stxr"
	if strings.HasSuffix(rest, "l") {
		op = "stlxr"
	}
	rn := a64.X(int(w >> 5 & 31))
	if rn.Num() == 31 {
		rn = a64.SP
	}
	rs := a64.W(int(w >> 16 & 31))
	switch {
	case pair:
		sib.o2Lo1 = acquire<<1 | 1
		sib.w = w &^ (3 << 21)
		op += map[uint32]string{0: "b", 1: "h"}[w>>30&1]
		sib.tc = tc{name: op, want: fmt.Sprintf("%s %v, %v, [%v]", op, rs, a64.W(int(w&31)), rn)}
	case size != "":
		sib.o2Lo1 = 4 | acquire<<1 | 1
		sib.w = w &^ (7 << 21)
		op += size
		sib.tc = tc{name: op, want: fmt.Sprintf("%s %v, %v, [%v]", op, rs, a64.W(int(w&31)), rn)}
	default:
		reg := a64.W
		if w>>30&1 == 1 {
			reg = a64.X
		}
		sib.o2Lo1 = 4 | acquire<<1 | 1
		sib.w = w &^ (3 << 22)
		op = strings.TrimSuffix(op, "r") + "p"
		sib.tc = tc{name: op, want: fmt.Sprintf("%s %v, %v, %v, [%v]", op, rs, reg(int(w&31)), reg(31), rn)}
	}
	return sib, true
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
