package emu

import (
	"math/bits"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// ALU operations in the order of the x86 /digit field, plus TEST.
const (
	aluAdd = iota
	aluOr
	aluAdc
	aluSbb
	aluAnd
	aluSub
	aluXor
	aluCmp
	aluTest
)

// getReg reads a register operand at size sz.
func (c *cpu) getReg(o *operand, sz uint8) uint64 {
	if o.hi {
		return c.regs[o.reg&3] >> 8 & 0xff
	}
	return c.regs[o.reg&15] & sizeMask[sz]
}

// setReg writes a register with the x86-64 rules: 32-bit writes
// zero-extend, 8- and 16-bit writes keep the rest.
func (c *cpu) setReg(o *operand, sz uint8, v uint64) {
	if o.hi {
		p := &c.regs[o.reg&3]
		*p = *p&^0xff00 | (v&0xff)<<8
		return
	}
	setGPR(&c.regs[o.reg&15], sz, v)
}

func setGPR(p *uint64, sz uint8, v uint64) {
	switch sz {
	case 8:
		*p = v
	case 4:
		*p = v & 0xffffffff
	case 2:
		*p = *p&^0xffff | v&0xffff
	default:
		*p = *p&^0xff | v&0xff
	}
}

// ea computes an operand's linear address.
func (c *cpu) ea(o *operand, in *inst) uint64 {
	a := c.offset(o, in)
	if o.seg != segNone {
		a += c.segBase(o.seg)
	}
	return a
}

// segBase is the base of an FS or GS override.
func (c *cpu) segBase(seg uint8) uint64 {
	if seg == segFS {
		return c.sr.FS.Base
	}
	return c.sr.GS.Base
}

// offset is the effective address without the segment base (LEA).
// regs[regNone] and regs[regRIP] are always 0, so a missing base or index
// adds nothing.
func (c *cpu) offset(o *operand, in *inst) uint64 {
	a := uint64(o.disp) + c.regs[o.base&31] + c.regs[o.index&31]*uint64(o.scale)
	if o.base == regRIP {
		a += c.rip
	}
	if in.a32 {
		a &= 0xffffffff
	}
	return a
}

// get reads an operand at size sz.
func (c *cpu) get(o *operand, in *inst, sz uint8) uint64 {
	switch o.kind {
	case kReg:
		return c.getReg(o, sz)
	case kImm:
		return o.imm
	case kMem:
		return c.rd(c.ea(o, in), sz)
	}
	return 0
}

// set writes an operand at size sz.
func (c *cpu) set(o *operand, in *inst, sz uint8, v uint64) {
	if o.kind == kReg {
		c.setReg(o, sz, v)
		return
	}
	c.wr(c.ea(o, in), sz, v)
}

// alu computes a op b, records the flags and returns the result.
func (c *cpu) alu(k int, a, b uint64, sz uint8) uint64 {
	var cin uint64
	if k == aluAdc || k == aluSbb {
		cin = c.cf()
	}
	return c.aluRes(k, a, b, cin, sz)
}

// aluRes is the one definition of the two-operand ALU operations: a op b
// with carry-in cin (ADC/SBB only), flags recorded, result masked to sz.
// A LOCKed operation calls it inside its compare-and-swap loop, so the
// flags it leaves are those of the attempt that succeeded.
func (c *cpu) aluRes(k int, a, b, cin uint64, sz uint8) uint64 {
	switch k {
	case aluAdd:
		return c.add(a, b, sz)
	case aluOr:
		return c.or(a, b, sz)
	case aluAdc:
		return c.adc(a, b, cin, sz)
	case aluSbb:
		return c.sbb(a, b, cin, sz)
	case aluAnd, aluTest:
		return c.and(a, b, sz)
	case aluSub, aluCmp:
		return c.sub(a, b, sz)
	}
	return c.xor(a, b, sz)
}

// The ALU operations, one definition each (aluRes and the form handlers
// of ops_fast.go call them): result masked to sz, flags recorded.

func (c *cpu) add(a, b uint64, sz uint8) uint64 {
	r := a + b
	c.lz.setAdd(sz, r, a, b)
	return r & sizeMask[sz&15]
}

func (c *cpu) adc(a, b, cin uint64, sz uint8) uint64 {
	r := a + b + cin
	c.lz.setCarry(lzAdc, sz, r, a, b, cin)
	return r & sizeMask[sz&15]
}

func (c *cpu) sub(a, b uint64, sz uint8) uint64 {
	r := a - b
	c.lz.setSub(sz, r, a, b)
	return r & sizeMask[sz&15]
}

func (c *cpu) sbb(a, b, cin uint64, sz uint8) uint64 {
	r := a - b - cin
	c.lz.setCarry(lzSbb, sz, r, a, b, cin)
	return r & sizeMask[sz&15]
}

func (c *cpu) and(a, b uint64, sz uint8) uint64 {
	r := a & b
	c.lz.setLogic(sz, r)
	return r & sizeMask[sz&15]
}

func (c *cpu) or(a, b uint64, sz uint8) uint64 {
	r := a | b
	c.lz.setLogic(sz, r)
	return r & sizeMask[sz&15]
}

func (c *cpu) xor(a, b uint64, sz uint8) uint64 {
	r := a ^ b
	c.lz.setLogic(sz, r)
	return r & sizeMask[sz&15]
}

func aluOp(c *cpu, in *inst, k int) {
	sz := in.size
	b := c.get(&in.src, in, sz)
	if in.dst.kind == kReg {
		a := c.getReg(&in.dst, sz)
		r := c.alu(k, a, b, sz)
		if k != aluCmp && k != aluTest {
			c.setReg(&in.dst, sz, r)
		}
		return
	}
	va := c.ea(&in.dst, in)
	if k == aluCmp || k == aluTest {
		c.alu(k, c.rd(va, sz), b, sz)
		return
	}
	if in.lock {
		var cin uint64
		if k == aluAdc || k == aluSbb {
			cin = c.cf()
		}
		c.lockedRMW(va, sz, func(a uint64) uint64 { return c.aluRes(k, a, b, cin, sz) })
		return
	}
	l := c.rmwLoc(va, sz)
	r := c.alu(k, c.ldLoc(l, sz), b, sz)
	c.stLoc(l, sz, r)
}

// unary applies f to the destination (register or memory, LOCK aware)
// and returns the old value.
func (c *cpu) unary(in *inst, f func(uint64) uint64) (old, res uint64) {
	sz := in.size
	if in.dst.kind == kReg {
		old = c.getReg(&in.dst, sz)
		res = f(old) & sizeMask[sz]
		c.setReg(&in.dst, sz, res)
		return
	}
	va := c.ea(&in.dst, in)
	if in.lock {
		m := sizeMask[sz]
		old = c.lockedRMW(va, sz, func(a uint64) uint64 {
			res = f(a) & m
			return res
		})
		return
	}
	l := c.rmwLoc(va, sz)
	old = c.ldLoc(l, sz)
	res = f(old) & sizeMask[sz]
	c.stLoc(l, sz, res)
	return
}

func opInc(c *cpu, in *inst) {
	cin := c.cf()
	old, res := c.unary(in, func(a uint64) uint64 { return a + 1 })
	c.lz.setIncDec(lzInc, in.size, res, old, cin)
}

func opDec(c *cpu, in *inst) {
	cin := c.cf()
	old, res := c.unary(in, func(a uint64) uint64 { return a - 1 })
	c.lz.setIncDec(lzDec, in.size, res, old, cin)
}

func opNeg(c *cpu, in *inst) {
	old, res := c.unary(in, func(a uint64) uint64 { return -a })
	c.lz.op, c.lz.size, c.lz.res, c.lz.a = lzNeg, in.size, res, old
}

func opNot(c *cpu, in *inst) {
	c.unary(in, func(a uint64) uint64 { return ^a })
}

// accumulator pair helpers for MUL/DIV: (rdx:rax) at size sz.
func (c *cpu) setAccPair(sz uint8, lo, hi uint64) {
	if sz == 1 {
		setGPR(&c.regs[0], 2, lo&0xff|(hi&0xff)<<8)
		return
	}
	setGPR(&c.regs[0], sz, lo)
	setGPR(&c.regs[2], sz, hi)
}

func (c *cpu) mulFlags(overflow bool, lo uint64, sz uint8) {
	c.lz.setFixed(sz, lo, b2f(overflow, hv.FlagCF|hv.FlagOF))
}

func opMul(c *cpu, in *inst) {
	sz := in.size
	b := c.get(&in.dst, in, sz)
	a := c.regs[0] & sizeMask[sz]
	var lo, hi uint64
	if sz == 8 {
		hi, lo = bits.Mul64(a, b)
	} else {
		p := a * b
		lo, hi = p&sizeMask[sz], p>>(8*sz)
	}
	c.setAccPair(sz, lo, hi)
	c.mulFlags(hi != 0, lo, sz)
}

func sext(v uint64, sz uint8) int64 {
	s := 64 - 8*uint(sz)
	return int64(v<<s) >> s
}

// smul128 is the full signed product of a and b.
func smul128(a, b int64) (hi, lo uint64) {
	hi, lo = bits.Mul64(uint64(a), uint64(b))
	if a < 0 {
		hi -= uint64(b)
	}
	if b < 0 {
		hi -= uint64(a)
	}
	return
}

func opImul1(c *cpu, in *inst) {
	sz := in.size
	b := sext(c.get(&in.dst, in, sz), sz)
	a := sext(c.regs[0], sz)
	var lo, hi uint64
	var ovf bool
	if sz == 8 {
		hi, lo = smul128(a, b)
		ovf = hi != uint64(int64(lo)>>63)
	} else {
		p := a * b
		lo = uint64(p) & sizeMask[sz]
		hi = uint64(p>>(8*sz)) & sizeMask[sz]
		ovf = p != sext(uint64(p), sz)
	}
	c.setAccPair(sz, lo, hi)
	c.mulFlags(ovf, lo, sz)
}

// opImulN is the two- and three-operand IMUL: dst = src * src2.
func opImulN(c *cpu, in *inst) {
	sz := in.size
	a := sext(c.get(&in.src, in, sz), sz)
	b := sext(c.get(&in.src2, in, sz), sz)
	r, ovf := imulRes(a, b, sz)
	c.setReg(&in.dst, sz, r)
	c.mulFlags(ovf, r, sz)
}

// imulRes is the truncated signed product of a and b at size sz and
// whether it overflowed (CF = OF).
func imulRes(a, b int64, sz uint8) (uint64, bool) {
	if sz == 8 {
		return imul64(a, b)
	}
	return imulNarrow(a, b, sz)
}

// imul64 and imulNarrow are imulRes at 64 bits and below (separate so
// that each inlines where the size is known).
func imul64(a, b int64) (uint64, bool) {
	hi, lo := smul128(a, b)
	return lo, hi != uint64(int64(lo)>>63)
}

func imulNarrow(a, b int64, sz uint8) (uint64, bool) {
	p := a * b
	return uint64(p) & sizeMask[sz&15], p != sext(uint64(p), sz)
}

func opDiv(c *cpu, in *inst) {
	sz := in.size
	d := c.get(&in.dst, in, sz)
	if d == 0 {
		c.raise(vecDE)
	}
	if sz == 8 {
		hi, lo := c.regs[2], c.regs[0]
		if hi >= d {
			c.raise(vecDE)
		}
		q, r := bits.Div64(hi, lo, d)
		c.regs[0], c.regs[2] = q, r
		return
	}
	var n uint64
	if sz == 1 {
		n = c.regs[0] & 0xffff
	} else {
		n = (c.regs[2]&sizeMask[sz])<<(8*sz) | c.regs[0]&sizeMask[sz]
	}
	q, r := n/d, n%d
	if q > sizeMask[sz] {
		c.raise(vecDE)
	}
	c.setAccPair(sz, q, r)
}

func opIdiv(c *cpu, in *inst) {
	sz := in.size
	d := sext(c.get(&in.dst, in, sz), sz)
	if d == 0 {
		c.raise(vecDE)
	}
	if sz == 8 {
		hi, lo := c.regs[2], c.regs[0]
		neg := int64(hi) < 0
		if neg { // magnitude of the 128-bit dividend
			lo = -lo
			hi = ^hi
			if lo == 0 {
				hi++
			}
		}
		ad := uint64(d)
		if d < 0 {
			ad = -ad
		}
		if hi >= ad {
			c.raise(vecDE)
		}
		q, r := bits.Div64(hi, lo, ad)
		qneg := neg != (d < 0)
		if (!qneg && q > 1<<63-1) || (qneg && q > 1<<63) {
			c.raise(vecDE)
		}
		if qneg {
			q = -q
		}
		if neg {
			r = -r
		}
		c.regs[0], c.regs[2] = q, r
		return
	}
	var n int64
	if sz == 1 {
		n = sext(c.regs[0], 2)
	} else {
		n = sext((c.regs[2]&sizeMask[sz])<<(8*sz)|c.regs[0]&sizeMask[sz], 2*sz)
	}
	q, r := n/d, n%d
	if q != sext(uint64(q), sz) {
		c.raise(vecDE)
	}
	c.setAccPair(sz, uint64(q), uint64(r))
}

// shiftTarget reads a shift or rotate's count (from cntOp, masked to 5
// bits, 6 for 64-bit operands) and its destination, register or memory
// (kept as a read-modify-write location). done is true for a count of 0:
// flags and value are unchanged, but hardware still writes a 32-bit
// register destination, which zero-extends it, and that is done here.
func (c *cpu) shiftTarget(in *inst, cntOp *operand) (cnt uint64, l loc, a uint64, done bool) {
	sz := in.size
	mask := uint64(0x1f)
	if sz == 8 {
		mask = 0x3f
	}
	cnt = c.get(cntOp, in, 1) & mask
	if in.dst.kind == kReg {
		a = c.getReg(&in.dst, sz)
	} else {
		l = c.rmwLoc(c.ea(&in.dst, in), sz)
		a = c.ldLoc(l, sz)
	}
	if cnt == 0 {
		if in.dst.kind == kReg && sz == 4 {
			c.setReg(&in.dst, sz, a)
		}
		return cnt, l, a, true
	}
	return cnt, l, a, false
}

// opShift implements SHL SHR SAR ROL ROR RCL RCR. A shift by a nonzero
// count replaces all six arithmetic flags (AF reads as 0), so the flags
// before it are never evaluated; a rotate changes only CF and OF.
func opShift(c *cpu, in *inst) {
	sz := in.size
	cnt, l, a, done := c.shiftTarget(in, &in.src)
	if done {
		return
	}
	w := uint64(8 * sz)
	m, sb := sizeMask[sz], signBit[sz]
	var r, cf, fx, f uint64
	rotate := false
	switch in.cc {
	case shShl, shShr, shSar:
		r, fx = shiftRes(in.cc, a, cnt, sz)
	default:
		rotate = true
		f = c.getFlags()
		switch in.cc {
		case shRol:
			rc := cnt % w
			r = (a<<rc | a>>(w-rc)) & m
			if rc == 0 {
				r = a
			}
			cf = r & 1
			f = f&^(hv.FlagCF|hv.FlagOF) | cf | b2f((r&sb != 0) != (cf != 0), hv.FlagOF)
		case shRor:
			rc := cnt % w
			r = (a>>rc | a<<(w-rc)) & m
			if rc == 0 {
				r = a
			}
			cf = r >> (w - 1) & 1
			f = f&^(hv.FlagCF|hv.FlagOF) | cf | b2f((r&sb != 0) != (r&(sb>>1) != 0), hv.FlagOF)
		case shRcl, shRcr:
			cin := f & hv.FlagCF
			rc := cnt % (w + 1)
			r, cf = a, cin
			of := false
			if in.cc == shRcr {
				of = (a&sb != 0) != (cin != 0)
			}
			for i := uint64(0); i < rc; i++ {
				if in.cc == shRcl {
					out := r >> (w - 1) & 1
					r = (r<<1 | cf) & m
					cf = out
				} else {
					out := r & 1
					r = r>>1 | cf<<(w-1)
					cf = out
				}
			}
			if in.cc == shRcl {
				of = (r&sb != 0) != (cf != 0)
			}
			f = f&^(hv.FlagCF|hv.FlagOF) | cf | b2f(of, hv.FlagOF)
		}
	}
	if in.dst.kind == kReg {
		c.setReg(&in.dst, sz, r)
	} else {
		c.stLoc(l, sz, r)
	}
	if rotate {
		c.lz.op = lzNone
		c.rflags = f
	} else {
		c.lz.setFixed(sz, r, fx)
	}
}

// shiftRes is SHL, SHR or SAR of a (size sz) by a nonzero masked count:
// the result and its CF and OF (AF reads as 0; SF ZF PF follow the
// result).
func shiftRes(kind uint8, a, cnt uint64, sz uint8) (r, fx uint64) {
	switch kind {
	case shShl:
		return shlRes(a, cnt, sz)
	case shShr:
		return shrRes(a, cnt, sz)
	case shSar:
		return sarRes(a, cnt, sz)
	}
	return 0, 0
}

// shlRes, shrRes and sarRes are shiftRes's three operations, each small
// enough to inline where the size is a constant (ops_sized.go).
func shlRes(a, cnt uint64, sz uint8) (r, fx uint64) {
	w := uint64(8 * sz)
	var cf uint64
	if cnt < w {
		r = a << cnt & sizeMask[sz&15]
		cf = a >> (w - cnt) & 1
	} else if cnt == w {
		cf = a & 1
	}
	return r, cf | b2f((r&signBit[sz&15] != 0) != (cf != 0), hv.FlagOF)
}

func shrRes(a, cnt uint64, sz uint8) (r, fx uint64) {
	w := uint64(8 * sz)
	var cf uint64
	if cnt < w {
		r = a >> cnt
		cf = a >> (cnt - 1) & 1
	} else if cnt == w {
		cf = a >> (w - 1) & 1
	}
	return r, cf | b2f(a&signBit[sz&15] != 0, hv.FlagOF)
}

func sarRes(a, cnt uint64, sz uint8) (r, fx uint64) {
	w := uint64(8 * sz)
	s := sext(a, sz)
	k := min(cnt, w)
	r = uint64(s>>(k-1)>>1) & sizeMask[sz&15]
	return r, uint64(s>>(k-1)) & 1
}

func b2f(b bool, flag uint64) uint64 {
	if b {
		return flag
	}
	return 0
}

// opShxd implements SHLD (cc 0) and SHRD (cc 1).
func opShxd(c *cpu, in *inst) {
	sz := in.size
	b := c.getReg(&in.src, sz)
	cnt, l, a, done := c.shiftTarget(in, &in.src2)
	if done {
		return
	}
	w := uint64(8 * sz)
	m, sb := sizeMask[sz], signBit[sz]
	var r, cf uint64
	if sz == 2 && cnt > 16 {
		// Undefined result; model the 32-bit concatenation a:b:a hardware uses.
		cnt -= 16
		a, b = b, a
	}
	if in.cc == 0 {
		r = (a<<cnt | b>>(w-cnt)) & m
		cf = a >> (w - cnt) & 1
	} else {
		r = (a>>cnt | b<<(w-cnt)) & m
		cf = a >> (cnt - 1) & 1
	}
	of := (r&sb != 0) != (a&sb != 0)
	if in.dst.kind == kReg {
		c.setReg(&in.dst, sz, r)
	} else {
		c.stLoc(l, sz, r)
	}
	c.lz.setFixed(sz, r, cf|b2f(of, hv.FlagOF))
}

// opBt implements BT (cc 0), BTS (1), BTR (2), BTC (3).
func opBt(c *cpu, in *inst) {
	sz := in.size
	w := uint64(8 * sz)
	apply := func(a, bit uint64) uint64 {
		switch in.cc {
		case 1:
			return a | 1<<bit
		case 2:
			return a &^ (1 << bit)
		case 3:
			return a ^ 1<<bit
		}
		return a
	}
	var old, bit uint64
	if in.dst.kind == kReg {
		bit = c.get(&in.src, in, sz) & (w - 1)
		old = c.getReg(&in.dst, sz)
		if in.cc != 0 {
			c.setReg(&in.dst, sz, apply(old, bit))
		}
	} else {
		va := c.ea(&in.dst, in)
		if in.src.kind == kImm {
			bit = in.src.imm & (w - 1)
		} else {
			off := sext(c.getReg(&in.src, sz), sz)
			va += uint64(off>>bits.TrailingZeros64(w)) * uint64(sz)
			bit = uint64(off) & (w - 1)
		}
		switch {
		case in.cc == 0:
			old = c.rd(va, sz)
		case in.lock:
			old = c.lockedRMW(va, sz, func(a uint64) uint64 { return apply(a, bit) })
		default:
			l := c.rmwLoc(va, sz)
			old = c.ldLoc(l, sz)
			c.stLoc(l, sz, apply(old, bit))
		}
	}
	c.setArith(hv.FlagCF, old>>bit&1)
}

func opBsf(c *cpu, in *inst) {
	s := c.get(&in.src, in, in.size)
	if s == 0 {
		c.setArith(hv.FlagZF, hv.FlagZF)
		return
	}
	c.setReg(&in.dst, in.size, uint64(bits.TrailingZeros64(s)))
	c.setArith(hv.FlagZF, 0)
}

func opBsr(c *cpu, in *inst) {
	s := c.get(&in.src, in, in.size)
	if s == 0 {
		c.setArith(hv.FlagZF, hv.FlagZF)
		return
	}
	c.setReg(&in.dst, in.size, uint64(63-bits.LeadingZeros64(s)))
	c.setArith(hv.FlagZF, 0)
}

func opBswap(c *cpu, in *inst) {
	v := c.getReg(&in.dst, in.size)
	switch in.size {
	case 8:
		v = bits.ReverseBytes64(v)
	case 4:
		v = uint64(bits.ReverseBytes32(uint32(v)))
	default:
		v = 0 // BSWAP r16 is undefined; hardware clears the word
	}
	c.setReg(&in.dst, in.size, v)
}

func opMov(c *cpu, in *inst) {
	sz := in.size
	if in.dst.kind == kReg && in.src.kind == kReg && !in.dst.hi && !in.src.hi {
		setGPR(&c.regs[in.dst.reg&15], sz, c.regs[in.src.reg&15])
		return
	}
	c.set(&in.dst, in, sz, c.get(&in.src, in, sz))
}

func opMovzx(c *cpu, in *inst) {
	c.setReg(&in.dst, in.size, c.get(&in.src, in, in.ssize))
}

func opMovsx(c *cpu, in *inst) {
	v := sext(c.get(&in.src, in, in.ssize), in.ssize)
	c.setReg(&in.dst, in.size, uint64(v))
}

func opLea(c *cpu, in *inst) {
	c.setReg(&in.dst, in.size, c.offset(&in.src, in))
}

func opXchg(c *cpu, in *inst) {
	sz := in.size
	if in.dst.kind == kMem {
		v := c.getReg(&in.src, sz)
		old := c.lockedRMW(c.ea(&in.dst, in), sz, func(uint64) uint64 { return v })
		c.setReg(&in.src, sz, old)
		return
	}
	a, b := c.getReg(&in.dst, sz), c.getReg(&in.src, sz)
	c.setReg(&in.dst, sz, b)
	c.setReg(&in.src, sz, a)
}

func opCmpxchg(c *cpu, in *inst) {
	sz := in.size
	acc := c.regs[0] & sizeMask[sz]
	src := c.getReg(&in.src, sz)
	var d uint64
	if in.dst.kind == kReg {
		d = c.getReg(&in.dst, sz)
		if d == acc {
			c.setReg(&in.dst, sz, src)
		}
	} else {
		va := c.ea(&in.dst, in)
		if in.lock {
			d = c.lockedRMW(va, sz, func(cur uint64) uint64 {
				if cur&sizeMask[sz] == acc {
					return src
				}
				return cur
			})
		} else {
			l := c.rmwLoc(va, sz)
			d = c.ldLoc(l, sz)
			// The destination is written either way (with its own value
			// on failure), as the locked bus cycle does on hardware.
			if d == acc {
				c.stLoc(l, sz, src)
			} else {
				c.stLoc(l, sz, d)
			}
		}
	}
	c.alu(aluCmp, acc, d, sz)
	if d != acc {
		// Only the accumulator is written on failure: a register
		// destination keeps its upper half (no zero-extension).
		setGPR(&c.regs[0], sz, d)
	}
}

func opXadd(c *cpu, in *inst) {
	sz := in.size
	b := c.getReg(&in.src, sz)
	if in.dst.kind == kReg {
		a := c.getReg(&in.dst, sz)
		c.setReg(&in.src, sz, a)
		c.setReg(&in.dst, sz, c.aluRes(aluAdd, a, b, 0, sz))
		return
	}
	va := c.ea(&in.dst, in)
	var a uint64
	if in.lock {
		a = c.lockedRMW(va, sz, func(x uint64) uint64 { return c.aluRes(aluAdd, x, b, 0, sz) })
	} else {
		l := c.rmwLoc(va, sz)
		a = c.ldLoc(l, sz)
		c.stLoc(l, sz, c.aluRes(aluAdd, a, b, 0, sz))
	}
	c.setReg(&in.src, sz, a)
}

func opCmov(c *cpu, in *inst) {
	v := c.get(&in.src, in, in.size)
	if c.cond(in.cc) {
		c.setReg(&in.dst, in.size, v)
	} else if in.size == 4 {
		// A 32-bit CMOV writes its destination even when the condition is
		// false, so the upper half is cleared.
		c.setReg(&in.dst, 4, c.getReg(&in.dst, 4))
	}
}

func opSetcc(c *cpu, in *inst) {
	var v uint64
	if c.cond(in.cc) {
		v = 1
	}
	c.set(&in.dst, in, 1, v)
}

// opCext: CBW, CWDE, CDQE (sign-extend the lower half of the accumulator).
func opCext(c *cpu, in *inst) {
	sz := in.size
	setGPR(&c.regs[0], sz, uint64(sext(c.regs[0], sz/2)))
}

// opCdq: CWD, CDQ, CQO (sign of the accumulator into rDX).
func opCdq(c *cpu, in *inst) {
	sz := in.size
	var v uint64
	if c.regs[0]&signBit[sz] != 0 {
		v = ^uint64(0)
	}
	setGPR(&c.regs[2], sz, v)
}

func opLahf(c *cpu, in *inst) {
	f := c.getFlags()&(hv.FlagSF|hv.FlagZF|hv.FlagAF|hv.FlagPF|hv.FlagCF) | 2
	c.regs[0] = c.regs[0]&^0xff00 | f<<8
}

func opSahf(c *cpu, in *inst) {
	m := uint64(hv.FlagSF | hv.FlagZF | hv.FlagAF | hv.FlagPF | hv.FlagCF)
	c.setArith(m, c.regs[0]>>8)
}
