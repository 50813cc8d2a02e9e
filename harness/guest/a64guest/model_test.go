package a64guest

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/a64"
)

// model is a small AArch64 interpreter for the instructions the runtime
// and the ucall sequences use, written from the Arm ARM's encodings (not
// from harness/a64), so the runtime's logic can run on this x86 host:
// boot, vectors, the common path, handlers, EL moves and ucalls. Memory
// accesses and fetches translate through a Walker once SCTLR_EL1.M is
// set, and a fault is taken as the CPU takes it (ESR, FAR, ELR, SPSR,
// vector offset). Anything outside the subset stops the model with an
// error, so a test cannot pass by skipping an instruction.
type model struct {
	x      [31]uint64
	sp     [2]uint64 // SP_EL0, SP_EL1
	pc     uint64
	cur    uint64 // the instruction being executed
	el     int
	spsel  int
	nzcv   uint64 // bits 31:28
	daif   uint64 // bits 9:6
	sys    map[string]uint64
	mem    Memory
	mode   Mode // for the walker, once the MMU is on
	mmio   func(pa, v uint64, size int) error
	trace  []string
	steps  int
	halted bool
}

func newModel(mem Memory, mode Mode) *model {
	return &model{sys: map[string]uint64{}, mem: mem, mode: mode, el: 1, spsel: 1, daif: SPSRDAIF}
}

// sysName maps an MRS/MSR encoding to the a64 table's name.
func sysName(enc uint32) string {
	for _, n := range a64.SysRegNames() {
		r, _ := a64.Sys(n)
		if uint32(r.Op0&3)<<14|uint32(r.Op1)<<11|uint32(r.CRn)<<7|uint32(r.CRm)<<3|uint32(r.Op2) == enc {
			return n
		}
	}
	return fmt.Sprintf("sys%#x", enc)
}

func (c *model) reg(n uint32, sp bool) uint64 {
	switch {
	case n < 31:
		return c.x[n]
	case sp:
		return c.sp[c.curSP()]
	}
	return 0
}

func (c *model) setReg(n uint32, v uint64, sp bool) {
	switch {
	case n < 31:
		c.x[n] = v
	case sp:
		c.sp[c.curSP()] = v
	}
}

func (c *model) curSP() int {
	if c.el == 0 {
		return 0
	}
	return c.spsel
}

func (c *model) pstate() uint64 {
	return c.nzcv | c.daif | uint64(c.el)<<2 | uint64(c.spsel)
}

// translate maps va for an access, or returns the fault.
func (c *model) translate(va uint64, a Access) (uint64, *Fault) {
	if c.sys["SCTLR_EL1"]&SCTLRM == 0 {
		return va, nil
	}
	w, err := NewWalker(c.sys["TCR_EL1"], c.sys["TTBR0_EL1"], c.sys["SCTLR_EL1"], c.mem)
	if err != nil {
		return 0, &Fault{Kind: FaultTranslation, VA: va, Access: a, Err: err}
	}
	tr, err := w.Translate(va, a)
	if err != nil {
		var f *Fault
		errors.As(err, &f)
		return 0, f
	}
	return tr.PA, nil
}

// exception enters EL1h at the vector for a synchronous exception.
func (c *model) exception(ec uint32, iss uint32, far uint64, preferred uint64) {
	off := uint64(0x400) // lower EL
	if c.el == 1 {
		off = uint64(c.spsel) * 0x200
	}
	c.sys["ESR_EL1"] = uint64(ec)<<26 | 1<<25 | uint64(iss)
	c.sys["FAR_EL1"] = far
	c.sys["ELR_EL1"] = preferred
	c.sys["SPSR_EL1"] = c.pstate()
	c.el, c.spsel, c.daif = 1, 1, SPSRDAIF
	c.pc = c.sys["VBAR_EL1"] + off
	c.trace = append(c.trace, fmt.Sprintf("exception ec %#x", ec))
}

func (c *model) abort(f *Fault, write bool) {
	ec := uint32(ECDABTCurrent)
	if f.Access.Exec {
		ec = ECIABTCurrent
	}
	if c.el == 0 {
		ec--
	}
	iss := f.FSC()
	if write {
		iss |= ESRWnR
	}
	c.exception(ec, iss, f.VA, c.cur)
}

func (c *model) load(va uint64, size int) (uint64, bool, error) {
	pa, f := c.translate(va, Access{EL: c.el})
	if f != nil {
		c.abort(f, false)
		return 0, false, nil
	}
	b := make([]byte, 8)
	if err := c.mem.ReadGPA(pa, b[:size]); err != nil {
		return 0, false, fmt.Errorf("model: load %#x (pa %#x): %w", va, pa, err)
	}
	return binary.LittleEndian.Uint64(b), true, nil
}

func (c *model) store(va, v uint64, size int) (bool, error) {
	pa, f := c.translate(va, Access{EL: c.el, Write: true})
	if f != nil {
		c.abort(f, true)
		return false, nil
	}
	if pa >= UcallMMIOGPA && pa < UcallMMIOGPA+0x10000 {
		return true, c.mmio(pa, v, size)
	}
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, v)
	if err := c.mem.WriteGPA(pa, b[:size]); err != nil {
		return false, fmt.Errorf("model: store %#x (pa %#x): %w", va, pa, err)
	}
	return true, nil
}

// decodeBitMask is the Arm ARM's DecodeBitMasks for logical immediates.
func decodeBitMask(n, immr, imms uint32, is64 bool) (uint64, bool) {
	length := 6
	combined := n<<6 | (^imms & 0x3f)
	for length >= 0 && combined&(1<<uint(length)) == 0 {
		length--
	}
	if length < 1 {
		return 0, false
	}
	esize := uint32(1) << uint(length)
	levels := esize - 1
	s, r := imms&levels, immr&levels
	if s == levels {
		return 0, false
	}
	welem := uint64(1)<<(s+1) - 1
	if r != 0 {
		welem = (welem>>r | welem<<(esize-r)) & (uint64(1)<<esize - 1)
	}
	var v uint64
	for i := uint32(0); i < 64; i += esize {
		v |= welem << i
	}
	if !is64 {
		v &= 0xffffffff
	}
	return v, true
}

func sext(v uint64, bits uint) int64 { return int64(v<<(64-bits)) >> (64 - bits) }

func (c *model) cond(cc uint32) bool {
	n, z, cf, v := c.nzcv>>31&1 == 1, c.nzcv>>30&1 == 1, c.nzcv>>29&1 == 1, c.nzcv>>28&1 == 1
	var r bool
	switch cc >> 1 {
	case 0:
		r = z
	case 1:
		r = cf
	case 2:
		r = n
	case 3:
		r = v
	case 4:
		r = cf && !z
	case 5:
		r = n == v
	case 6:
		r = n == v && !z
	default:
		return true
	}
	if cc&1 == 1 {
		return !r
	}
	return r
}

// run steps until stop says so, an error, or limit instructions.
func (c *model) run(limit int) error {
	for i := 0; i < limit; i++ {
		if err := c.step(); err != nil {
			return err
		}
		if c.halted {
			return nil
		}
	}
	return fmt.Errorf("model: still running after %d instructions at pc %#x", limit, c.pc)
}

func (c *model) step() error {
	c.steps++
	c.cur = c.pc
	pa, f := c.translate(c.pc, Access{EL: c.el, Exec: true})
	if f != nil {
		c.abort(f, false)
		return nil
	}
	var wb [4]byte
	if err := c.mem.ReadGPA(pa, wb[:]); err != nil {
		return fmt.Errorf("model: fetch %#x: %w", c.pc, err)
	}
	w := binary.LittleEndian.Uint32(wb[:])
	pc := c.pc
	c.pc += 4
	rd, rn, rt2 := w&31, w>>5&31, w>>10&31
	is64 := w>>31 == 1
	mask := ^uint64(0)
	if !is64 {
		mask = 0xffffffff
	}
	unsupported := func() error {
		return fmt.Errorf("model: unsupported instruction %#08x (%s) at %#x", w, a64.Text(w, pc), pc)
	}
	switch {
	case w == 0xd503201f, w == 0xd5033fdf, w == 0xd503379f, w == 0xd5033a9f, w == 0xd5033b9f,
		w == tlbiVMALLE1, w == tlbiVMALLE1IS: // nop, isb, dsb nsh/ishst/ish, tlbi
		c.trace = append(c.trace, a64.Text(w, pc))
	case w == 0xd69f03e0: // eret
		spsr := c.sys["SPSR_EL1"]
		c.pc = c.sys["ELR_EL1"]
		c.el, c.spsel = int(spsr>>2&3), int(spsr&1)
		c.nzcv, c.daif = spsr&0xf0000000, spsr&SPSRDAIF
		c.trace = append(c.trace, fmt.Sprintf("eret to el%d sp%d at %#x", c.el, c.spsel, c.pc))
	case w&0xffe0001f == 0xd4000001: // svc
		c.exception(ECSVC64, w>>5&0xffff, 0, c.pc)
	case w&0xffe0001f == 0xd4200000: // brk
		c.exception(ECBRK64, w>>5&0xffff, 0, pc)
	case w>>23&0x3f == 0b100101: // movn/movz/movk
		hw := uint(w>>21&3) * 16
		imm := uint64(w>>5&0xffff) << hw
		switch w >> 29 & 3 {
		case 0:
			c.setReg(rd, ^imm&mask, false)
		case 2:
			c.setReg(rd, imm, false)
		case 3:
			c.setReg(rd, (c.reg(rd, false)&^(0xffff<<hw)|imm)&mask, false)
		default:
			return unsupported()
		}
	case w>>23&0x3f == 0b100100: // logical immediate
		imm, ok := decodeBitMask(w>>22&1, w>>16&0x3f, w>>10&0x3f, is64)
		if !ok {
			return unsupported()
		}
		a := c.reg(rn, false)
		switch w >> 29 & 3 {
		case 0:
			c.setReg(rd, a&imm&mask, true)
		case 1:
			c.setReg(rd, (a|imm)&mask, true)
		default:
			return unsupported()
		}
	case w>>23&0x3f == 0b100010: // add/sub immediate
		imm := uint64(w >> 10 & 0xfff)
		if w>>22&1 == 1 {
			imm <<= 12
		}
		a := c.reg(rn, true) & mask
		sub, s := w>>30&1 == 1, w>>29&1 == 1
		r := a + imm
		if sub {
			r = a - imm
		}
		r &= mask
		if s {
			c.setFlags(a, imm, r, sub, is64)
		}
		c.setReg(rd, r, !s)
	case w>>24&0x1f == 0b01011 && w>>21&1 == 0: // add/sub shifted register
		if w>>29&1 == 1 || w>>22&3 != 0 {
			return unsupported()
		}
		b := c.reg(w>>16&31, false) << (w >> 10 & 0x3f)
		a := c.reg(rn, false)
		if w>>30&1 == 1 {
			c.setReg(rd, (a-b)&mask, false)
		} else {
			c.setReg(rd, (a+b)&mask, false)
		}
	case w>>24&0x1f == 0b01010: // logical shifted register
		if w>>29&3 != 1 || w>>21&1 != 0 || w>>22&3 != 0 || w>>10&0x3f != 0 {
			return unsupported() // ORR without shift only
		}
		c.setReg(rd, (c.reg(rn, false)|c.reg(w>>16&31, false))&mask, false)
	case w>>23&0x3f == 0b100110 && w>>29&3 == 2: // ubfm: lsr/lsl
		immr, imms := w>>16&0x3f, w>>10&0x3f
		a := c.reg(rn, false)
		switch {
		case is64 && imms == 63:
			c.setReg(rd, a>>immr, false)
		case is64 && imms+1 == immr:
			c.setReg(rd, a<<(64-immr), false)
		default:
			return unsupported()
		}
	case w>>24&0x3f == 0b111001: // ldr/str unsigned offset
		size := 1 << (w >> 30)
		if size < 4 || w>>22&3 > 1 {
			return unsupported()
		}
		va := c.reg(rn, true) + uint64(w>>10&0xfff)*uint64(size)
		if w>>22&1 == 1 {
			v, ok, err := c.load(va, size)
			if err != nil || !ok {
				return err
			}
			c.setReg(w&31, v, false)
			return nil
		}
		_, err := c.store(va, c.reg(w&31, false), size)
		return err
	case w>>22&0x3fe == 0b1010100100: // stp/ldp signed offset, 64-bit
		va := c.reg(rn, true) + uint64(sext(uint64(w>>15&0x7f), 7)*8)
		if w>>22&1 == 1 {
			v1, ok, err := c.load(va, 8)
			if err != nil || !ok {
				return err
			}
			v2, ok, err := c.load(va+8, 8)
			if err != nil || !ok {
				return err
			}
			c.setReg(w&31, v1, false)
			c.setReg(rt2, v2, false)
			return nil
		}
		if ok, err := c.store(va, c.reg(w&31, false), 8); err != nil || !ok {
			return err
		}
		_, err := c.store(va+8, c.reg(rt2, false), 8)
		return err
	case w&0x9f000000 == 0x10000000: // adr
		off := sext(uint64(w>>5&0x7ffff)<<2|uint64(w>>29&3), 21)
		c.setReg(rd, uint64(int64(pc)+off), false)
	case w&0xfc000000 == 0x14000000: // b
		c.pc = uint64(int64(pc) + sext(uint64(w&0x3ffffff), 26)*4)
	case w&0xff000010 == 0x54000000: // b.cond
		if c.cond(w & 15) {
			c.pc = uint64(int64(pc) + sext(uint64(w>>5&0x7ffff), 19)*4)
		}
	case w&0x7e000000 == 0x34000000: // cbz/cbnz
		v := c.reg(w&31, false) & mask
		if (v == 0) == (w>>24&1 == 0) {
			c.pc = uint64(int64(pc) + sext(uint64(w>>5&0x7ffff), 19)*4)
		}
	case w&0xfff00000 == 0xd5300000 || w&0xfff00000 == 0xd5100000: // mrs/msr
		if c.el == 0 {
			return fmt.Errorf("model: system register access at EL0 (%s) at %#x", a64.Text(w, pc), pc)
		}
		name := sysName(w >> 5 & 0xffff)
		if w>>21&1 == 1 {
			var v uint64
			switch name {
			case "NZCV":
				v = c.nzcv
			case "DAIF":
				v = c.daif
			case "SP_EL0":
				v = c.sp[0]
			default:
				v = c.sys[name]
			}
			c.setReg(w&31, v, false)
		} else {
			v := c.reg(w&31, false)
			switch name {
			case "NZCV":
				c.nzcv = v & 0xf0000000
			case "DAIF":
				c.daif = v & SPSRDAIF
			case "SP_EL0":
				c.sp[0] = v
			default:
				c.sys[name] = v
			}
			c.trace = append(c.trace, fmt.Sprintf("msr %s %#x", name, v))
		}
	default:
		return unsupported()
	}
	return nil
}

func (c *model) setFlags(a, b, r uint64, sub, is64 bool) {
	bits := uint(64)
	if !is64 {
		bits = 32
	}
	top := func(v uint64) uint64 { return v >> (bits - 1) & 1 }
	n := top(r)
	var z, cf, v uint64
	if r == 0 {
		z = 1
	}
	if sub {
		if a >= b {
			cf = 1
		}
		v = (top(a) ^ top(b)) & (top(a) ^ top(r))
	} else {
		if r < a {
			cf = 1
		}
		v = ^(top(a) ^ top(b)) & (top(a) ^ top(r)) & 1
	}
	c.nzcv = n<<31 | z<<30 | cf<<29 | v<<28
}
