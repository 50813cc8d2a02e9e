package emu

import (
	"math/bits"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/arch/x86/x86asm"
)

// Arithmetic flags are computed lazily: an ALU instruction records its
// operands and kind, and the six status flags are only worked out when an
// instruction reads them (jcc, setcc, pushf, adc...). Most results are
// never looked at, so this saves the bulk of the flag work.
//
// Producers write only the fields their kind reads (never the whole
// record), and cond answers the common conditions straight from the
// record: ZF, SF and PF depend on the result alone whatever the kind, and
// the carry and overflow of a logic op or a lzFixed record are known.
const (
	lzNone = iota // c.rflags holds the exact flags
	lzAdd         // res = a + b
	lzAdc         // res = a + b + cin
	lzSub         // res = a - b (also CMP, CMPS, SCAS, CMPXCHG)
	lzSbb         // res = a - b - cin
	lzNeg         // res = 0 - a
	// From here on cin holds CF itself (cf reads it directly).
	lzLogic // AND, OR, XOR, TEST: CF = OF = AF = 0
	lzInc   // res = a + 1, CF = cin (unchanged)
	lzDec   // res = a - 1, CF = cin (unchanged)
	lzFixed // CF, OF and AF are the flag bits in a; SF ZF PF from res
)

// lazyFlags is the pending flag computation. Which fields are meaningful
// depends on op: res always; a and b for add/sub kinds; a alone for
// inc/dec/neg and lzFixed; cin for adc/sbb/inc/dec.
type lazyFlags struct {
	op   uint8
	size uint8 // operand size in bytes
	res  uint64
	a, b uint64
	cin  uint64 // carry in (adc/sbb) or preserved CF (inc/dec), 0 or 1
}

// Producers. Each writes the fields its kind reads and nothing else.

func (l *lazyFlags) setLogic(sz uint8, r uint64) {
	l.op, l.size, l.res, l.cin = lzLogic, sz, r, 0
}

func (l *lazyFlags) setAdd(sz uint8, r, a, b uint64) {
	l.op, l.size, l.res, l.a, l.b = lzAdd, sz, r, a, b
}

func (l *lazyFlags) setSub(sz uint8, r, a, b uint64) {
	l.op, l.size, l.res, l.a, l.b = lzSub, sz, r, a, b
}

func (l *lazyFlags) setCarry(op, sz uint8, r, a, b, cin uint64) {
	l.op, l.size, l.res, l.a, l.b, l.cin = op, sz, r, a, b, cin
}

// setIncDec records INC or DEC (op) of a: b is not read for them.
func (l *lazyFlags) setIncDec(op, sz uint8, r, a, cin uint64) {
	l.op, l.size, l.res, l.a, l.cin = op, sz, r, a, cin
}

// setFixed records a result whose CF, OF and AF are already known (f holds
// those flag bits; others are ignored).
func (l *lazyFlags) setFixed(sz uint8, r, f uint64) {
	l.op, l.size, l.res, l.a, l.cin = lzFixed, sz, r, f&(hv.FlagCF|hv.FlagOF|hv.FlagAF), f&hv.FlagCF
}

// Indexed by operand size in bytes; 16 entries so that an index masked
// with 15 needs no bounds check.
var sizeMask = [16]uint64{1: 0xff, 2: 0xffff, 4: 0xffffffff, 8: ^uint64(0)}
var signBit = [16]uint64{1: 0x80, 2: 0x8000, 4: 0x80000000, 8: 1 << 63}

// parity[b] is hv.FlagPF when b has an even number of set bits.
var parity = func() (p [256]uint8) {
	for i := range p {
		if bits.OnesCount8(uint8(i))%2 == 0 {
			p[i] = hv.FlagPF
		}
	}
	return
}()

// eval computes the six arithmetic flags of a pending operation.
func (l *lazyFlags) eval() uint64 {
	m, sb := sizeMask[l.size&15], signBit[l.size&15]
	r := l.res & m
	f := uint64(parity[uint8(r)])
	if r == 0 {
		f |= hv.FlagZF
	}
	if r&sb != 0 {
		f |= hv.FlagSF
	}
	switch l.op {
	case lzAdd, lzAdc:
		a, b := l.a&m, l.b&m
		if r < a || (l.op == lzAdc && l.cin != 0 && r == a) {
			f |= hv.FlagCF
		}
		if (a^r)&(b^r)&sb != 0 {
			f |= hv.FlagOF
		}
		f |= (a ^ b ^ r) & hv.FlagAF
	case lzSub, lzSbb:
		a, b := l.a&m, l.b&m
		if a < b || (l.op == lzSbb && l.cin != 0 && a == b) {
			f |= hv.FlagCF
		}
		if (a^b)&(a^r)&sb != 0 {
			f |= hv.FlagOF
		}
		f |= (a ^ b ^ r) & hv.FlagAF
	case lzLogic:
	case lzInc:
		f |= l.cin
		if r == sb {
			f |= hv.FlagOF
		}
		f |= (l.a ^ r) & hv.FlagAF
	case lzDec:
		f |= l.cin
		if r == sb-1 {
			f |= hv.FlagOF
		}
		f |= (l.a ^ r) & hv.FlagAF
	case lzNeg:
		a := l.a & m
		if a != 0 {
			f |= hv.FlagCF
		}
		if a == sb {
			f |= hv.FlagOF
		}
		f |= (a ^ r) & hv.FlagAF
	case lzFixed:
		f |= l.a
	}
	return f
}

// cf computes only the carry flag (0 or 1) of a pending operation.
func (c *cpu) cf() uint64 {
	if c.lz.op >= lzLogic {
		return c.lz.cin
	}
	return c.cfSlow()
}

// cfSlow is cf for the kinds that do not hold CF in cin.
func (c *cpu) cfSlow() uint64 {
	l := &c.lz
	switch l.op {
	case lzNone:
		return c.rflags & hv.FlagCF
	case lzSub:
		m := sizeMask[l.size&15]
		return b2f(l.a&m < l.b&m, hv.FlagCF)
	case lzAdd:
		m := sizeMask[l.size&15]
		return b2f(l.res&m < l.a&m, hv.FlagCF)
	}
	return l.eval() & hv.FlagCF
}

// getFlags returns the architectural RFLAGS.
func (c *cpu) getFlags() uint64 {
	if c.lz.op == lzNone {
		return c.rflags
	}
	return c.rflags&^hv.FlagsArith | c.lz.eval()
}

// materialize folds pending flags into c.rflags.
func (c *cpu) materialize() {
	if c.lz.op != lzNone {
		c.rflags = c.rflags&^hv.FlagsArith | c.lz.eval()
		c.lz.op = lzNone
	}
}

// setArith sets the arithmetic flags in mask to the bits of v.
func (c *cpu) setArith(mask, v uint64) {
	c.materialize()
	c.rflags = c.rflags&^mask | v&mask
}

// cond evaluates condition code cc (the low nibble of Jcc/SETcc/CMOVcc).
func (c *cpu) cond(cc uint8) bool {
	l := &c.lz
	switch l.op {
	case lzNone:
		return flagCond(c.rflags, cc)
	case lzSub:
		// The common case after CMP/SUB: straight from the operands.
		if cc >= 2 {
			return subCond(l, cc)
		}
	default:
		// ZF, SF and PF come from the result whatever produced it; after
		// a logic op CF and OF are 0, so every condition is cheap.
		sz := l.size & 15
		r := l.res & sizeMask[sz]
		var v bool
		switch cc >> 1 {
		case 2:
			return (r == 0) != (cc&1 != 0)
		case 4:
			return (r&signBit[sz] != 0) != (cc&1 != 0)
		case 5:
			return (parity[uint8(r)] != 0) != (cc&1 != 0)
		}
		if l.op == lzLogic {
			switch cc >> 1 {
			case 0, 1:
				v = false
			case 3:
				v = r == 0
			case 6:
				v = r&signBit[sz] != 0
			case 7:
				v = r == 0 || r&signBit[sz] != 0
			}
			return v != (cc&1 != 0)
		}
	}
	return flagCond(c.getFlags(), cc)
}

// subCond is a condition after SUB/CMP, cc >= 2.
func subCond(l *lazyFlags, cc uint8) bool {
	var v bool
	sz := l.size & 15
	m, sb := sizeMask[sz], signBit[sz]
	a, b, r := l.a&m, l.b&m, l.res&m
	switch cc >> 1 {
	case 1:
		v = a < b
	case 2:
		v = r == 0
	case 3:
		v = a <= b
	case 4:
		v = r&sb != 0
	case 5:
		v = parity[uint8(r)] != 0
	case 6:
		v = int64(a<<(64-8*sz)) < int64(b<<(64-8*sz))
	case 7:
		v = int64(a<<(64-8*sz)) <= int64(b<<(64-8*sz))
	}
	return v != (cc&1 != 0)
}

// flagCond evaluates condition code cc on RFLAGS f.
func flagCond(f uint64, cc uint8) bool {
	var v bool
	switch cc >> 1 {
	case 0:
		v = f&hv.FlagOF != 0
	case 1:
		v = f&hv.FlagCF != 0
	case 2:
		v = f&hv.FlagZF != 0
	case 3:
		v = f&(hv.FlagCF|hv.FlagZF) != 0
	case 4:
		v = f&hv.FlagSF != 0
	case 5:
		v = f&hv.FlagPF != 0
	case 6:
		v = (f&hv.FlagSF != 0) != (f&hv.FlagOF != 0)
	case 7:
		v = f&hv.FlagZF != 0 || (f&hv.FlagSF != 0) != (f&hv.FlagOF != 0)
	}
	return v != (cc&1 != 0)
}

// UndefinedFlags returns the RFLAGS status bits that the SDM leaves
// undefined after op, so a differential test can mask them. count is the
// masked shift or rotate count (ignored for other instructions); size is
// the operand size in bytes. Flags an instruction does not touch at all are
// not "undefined": they must be unchanged.
//
//	AND OR XOR TEST            AF
//	MUL IMUL (all forms)       SF ZF AF PF
//	DIV IDIV                   CF OF SF ZF AF PF
//	SHL SHR SAR, count != 0    AF; OF unless count == 1; CF when count >= width (8/16-bit)
//	ROL ROR RCL RCR            OF unless count == 1
//	SHLD SHRD, count != 0      AF; OF unless count == 1; all when count > width (16-bit)
//	BT BTS BTR BTC             OF SF AF PF
//	BSF BSR                    CF OF SF AF PF
//
// The emulator itself gives these flags the values common Intel parts
// produce where they are stable (AF = 0 after logic ops, SF/ZF/PF from the
// low half after MUL), but nothing may depend on them.
func UndefinedFlags(op x86asm.Op, count int, size int) uint64 {
	const all = hv.FlagsArith
	switch op {
	case x86asm.AND, x86asm.OR, x86asm.XOR, x86asm.TEST:
		return hv.FlagAF
	case x86asm.MUL, x86asm.IMUL:
		return hv.FlagSF | hv.FlagZF | hv.FlagAF | hv.FlagPF
	case x86asm.DIV, x86asm.IDIV:
		return all
	case x86asm.SHL, x86asm.SHR, x86asm.SAR:
		if count == 0 {
			return 0
		}
		u := uint64(hv.FlagAF)
		if count != 1 {
			u |= hv.FlagOF
		}
		if count >= 8*size {
			u |= hv.FlagCF
		}
		return u
	case x86asm.ROL, x86asm.ROR, x86asm.RCL, x86asm.RCR:
		if count == 0 || count == 1 {
			return 0
		}
		return hv.FlagOF
	case x86asm.SHLD, x86asm.SHRD:
		if count == 0 {
			return 0
		}
		if count > 8*size {
			return all
		}
		u := uint64(hv.FlagAF)
		if count != 1 {
			u |= hv.FlagOF
		}
		return u
	case x86asm.BT, x86asm.BTS, x86asm.BTR, x86asm.BTC:
		return hv.FlagOF | hv.FlagSF | hv.FlagAF | hv.FlagPF
	case x86asm.BSF, x86asm.BSR:
		return hv.FlagCF | hv.FlagOF | hv.FlagSF | hv.FlagAF | hv.FlagPF
	}
	return 0
}
