package emu

// Register forms at a fixed operand size, 64 or 32 bits (the sizes
// compilers emit for almost every register operation): the same one
// definition per operation (add, sub, ... in ops_alu.go, shlRes, ...)
// called with a constant size, so the size switches of setGPR and the
// masks fold away. A 32-bit result is zero-extended into the register,
// as setGPR does for size 4. specialize picks them through sizedForms.

func opAddRR64(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.add(*d, c.regs[in.src.reg&15], 8)
}

func opAddRR32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.add(*d&0xffffffff, c.regs[in.src.reg&15]&0xffffffff, 4)
}

func opAddRI64(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.add(*d, in.src.imm, 8)
}

func opAddRI32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.add(*d&0xffffffff, in.src.imm, 4)
}

func opSubRR64(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.sub(*d, c.regs[in.src.reg&15], 8)
}

func opSubRR32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.sub(*d&0xffffffff, c.regs[in.src.reg&15]&0xffffffff, 4)
}

func opSubRI64(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.sub(*d, in.src.imm, 8)
}

func opSubRI32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.sub(*d&0xffffffff, in.src.imm, 4)
}

func opCmpRR64(c *cpu, in *inst) { c.sub(c.regs[in.dst.reg&15], c.regs[in.src.reg&15], 8) }

func opCmpRR32(c *cpu, in *inst) {
	c.sub(c.regs[in.dst.reg&15]&0xffffffff, c.regs[in.src.reg&15]&0xffffffff, 4)
}

func opCmpRI64(c *cpu, in *inst) { c.sub(c.regs[in.dst.reg&15], in.src.imm, 8) }

func opCmpRI32(c *cpu, in *inst) { c.sub(c.regs[in.dst.reg&15]&0xffffffff, in.src.imm, 4) }

func opAndRR64(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.and(*d, c.regs[in.src.reg&15], 8)
}

func opAndRR32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.and(*d&0xffffffff, c.regs[in.src.reg&15]&0xffffffff, 4)
}

func opAndRI64(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.and(*d, in.src.imm, 8)
}

func opAndRI32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.and(*d&0xffffffff, in.src.imm, 4)
}

func opOrRR64(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.or(*d, c.regs[in.src.reg&15], 8)
}

func opOrRR32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.or(*d&0xffffffff, c.regs[in.src.reg&15]&0xffffffff, 4)
}

func opOrRI64(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.or(*d, in.src.imm, 8)
}

func opOrRI32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.or(*d&0xffffffff, in.src.imm, 4)
}

func opXorRR64(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.xor(*d, c.regs[in.src.reg&15], 8)
}

func opXorRR32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.xor(*d&0xffffffff, c.regs[in.src.reg&15]&0xffffffff, 4)
}

func opXorRI64(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.xor(*d, in.src.imm, 8)
}

func opXorRI32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	*d = c.xor(*d&0xffffffff, in.src.imm, 4)
}

func opTestRR64(c *cpu, in *inst) { c.and(c.regs[in.dst.reg&15], c.regs[in.src.reg&15], 8) }

func opTestRR32(c *cpu, in *inst) {
	c.and(c.regs[in.dst.reg&15]&0xffffffff, c.regs[in.src.reg&15]&0xffffffff, 4)
}

func opTestRI64(c *cpu, in *inst) { c.and(c.regs[in.dst.reg&15], in.src.imm, 8) }

func opTestRI32(c *cpu, in *inst) { c.and(c.regs[in.dst.reg&15]&0xffffffff, in.src.imm, 4) }

// sizedALU[k] are operation k's register-register and register-immediate
// forms at 64 and 32 bits: {RR64, RR32, RI64, RI32} (nil: none).
var sizedALU = [aluTest + 1][4]func(*cpu, *inst){
	aluAdd:  {opAddRR64, opAddRR32, opAddRI64, opAddRI32},
	aluOr:   {opOrRR64, opOrRR32, opOrRI64, opOrRI32},
	aluAnd:  {opAndRR64, opAndRR32, opAndRI64, opAndRI32},
	aluSub:  {opSubRR64, opSubRR32, opSubRI64, opSubRI32},
	aluXor:  {opXorRR64, opXorRR32, opXorRI64, opXorRI32},
	aluCmp:  {opCmpRR64, opCmpRR32, opCmpRI64, opCmpRI32},
	aluTest: {opTestRR64, opTestRR32, opTestRI64, opTestRI32},
}

// incR and decR are INC and DEC of *d at size sz (8 or 4: the result
// zero-extends) with CF kept as cin; they return the result.
func (c *cpu) incR(d *uint64, sz uint8, cin uint64) uint64 {
	a := *d & sizeMask[sz&15]
	r := (a + 1) & sizeMask[sz&15]
	*d = r
	c.lz.setIncDec(lzInc, sz, r, a, cin)
	return r
}

func (c *cpu) decR(d *uint64, sz uint8, cin uint64) uint64 {
	a := *d & sizeMask[sz&15]
	r := (a - 1) & sizeMask[sz&15]
	*d = r
	c.lz.setIncDec(lzDec, sz, r, a, cin)
	return r
}

func opIncR64(c *cpu, in *inst) { c.incR(&c.regs[in.dst.reg&15], 8, c.cf()) }

func opIncR32(c *cpu, in *inst) { c.incR(&c.regs[in.dst.reg&15], 4, c.cf()) }

func opDecR64(c *cpu, in *inst) { c.decR(&c.regs[in.dst.reg&15], 8, c.cf()) }

func opDecR32(c *cpu, in *inst) { c.decR(&c.regs[in.dst.reg&15], 4, c.cf()) }

func opMovRR64(c *cpu, in *inst) { c.regs[in.dst.reg&15] = c.regs[in.src.reg&15] }

func opMovRR32(c *cpu, in *inst) { c.regs[in.dst.reg&15] = c.regs[in.src.reg&15] & 0xffffffff }

// opMovRIX is MOV of an immediate to a 64- or 32-bit GPR: build masks
// the immediate to the operand size, which is the zero extension.
func opMovRIX(c *cpu, in *inst) { c.regs[in.dst.reg&15] = in.src.imm }

func opImulRR64(c *cpu, in *inst) {
	r, ovf := imul64(int64(c.regs[in.src.reg&15]), int64(c.regs[in.src2.reg&15]))
	c.regs[in.dst.reg&15] = r
	c.mulFlags(ovf, r, 8)
}

func opImulRR32(c *cpu, in *inst) {
	r, ovf := imulNarrow(int64(int32(c.regs[in.src.reg&15])), int64(int32(c.regs[in.src2.reg&15])), 4)
	c.regs[in.dst.reg&15] = r
	c.mulFlags(ovf, r, 4)
}

// Shifts of a GPR by an immediate count (decode masks it to 8 bits;
// the count mask is applied here, as opShiftRI does).

func opShlRI64(c *cpu, in *inst) {
	cnt := in.src.imm & 0x3f
	if cnt == 0 {
		return
	}
	d := &c.regs[in.dst.reg&15]
	r, fx := shlRes(*d, cnt, 8)
	*d = r
	c.lz.setFixed(8, r, fx)
}

func opShlRI32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	a := *d & 0xffffffff
	cnt := in.src.imm & 0x1f
	if cnt == 0 {
		*d = a
		return
	}
	r, fx := shlRes(a, cnt, 4)
	*d = r
	c.lz.setFixed(4, r, fx)
}

func opShrRI64(c *cpu, in *inst) {
	cnt := in.src.imm & 0x3f
	if cnt == 0 {
		return
	}
	d := &c.regs[in.dst.reg&15]
	r, fx := shrRes(*d, cnt, 8)
	*d = r
	c.lz.setFixed(8, r, fx)
}

func opShrRI32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	a := *d & 0xffffffff
	cnt := in.src.imm & 0x1f
	if cnt == 0 {
		*d = a
		return
	}
	r, fx := shrRes(a, cnt, 4)
	*d = r
	c.lz.setFixed(4, r, fx)
}

func opSarRI64(c *cpu, in *inst) {
	cnt := in.src.imm & 0x3f
	if cnt == 0 {
		return
	}
	d := &c.regs[in.dst.reg&15]
	r, fx := sarRes(*d, cnt, 8)
	*d = r
	c.lz.setFixed(8, r, fx)
}

func opSarRI32(c *cpu, in *inst) {
	d := &c.regs[in.dst.reg&15]
	a := *d & 0xffffffff
	cnt := in.src.imm & 0x1f
	if cnt == 0 {
		*d = a
		return
	}
	r, fx := sarRes(a, cnt, 4)
	*d = r
	c.lz.setFixed(4, r, fx)
}

// Memory forms at a fixed size, for operands without a segment
// override, RIP base or 32-bit addressing (specialize checks plainMem):
// the address is base + index*scale + disp, and a data-TLB hit
// (rdHit64, ...) is a pointer to the bytes. Anything else - a miss,
// MMIO, a page boundary, a logged or code page, a fault - runs the
// general form handler, which starts over: nothing has changed yet.

// plainMem reports whether o is a memory operand whose address is
// base + index*scale + disp (plainEA).
func plainMem(o *operand, in *inst) bool {
	return o.kind == kMem && o.seg == segNone && o.base != regRIP && !in.a32
}

// plainEA is offset for a plainMem operand.
func (c *cpu) plainEA(o *operand) uint64 {
	return uint64(o.disp) + c.regs[o.base&31] + c.regs[o.index&31]*uint64(o.scale)
}

func opMovRM64(c *cpu, in *inst) {
	if p := c.rdHit64(c.plainEA(&in.src)); p != nil {
		c.regs[in.dst.reg&15] = *p
		return
	}
	opMovRM(c, in)
}

func opMovRM32(c *cpu, in *inst) {
	if p := c.rdHit32(c.plainEA(&in.src)); p != nil {
		c.regs[in.dst.reg&15] = uint64(*p)
		return
	}
	opMovRM(c, in)
}

func opMovMR64(c *cpu, in *inst) {
	if p := c.wrHit64(c.plainEA(&in.dst)); p != nil {
		*p = c.regs[in.src.reg&15]
		return
	}
	opMovMR(c, in)
}

func opMovMR32(c *cpu, in *inst) {
	if p := c.wrHit32(c.plainEA(&in.dst)); p != nil {
		*p = uint32(c.regs[in.src.reg&15])
		return
	}
	opMovMR(c, in)
}

// opMovzxRM8 is MOVZX of a memory byte to a 32- or 64-bit GPR.
func opMovzxRM8(c *cpu, in *inst) {
	if p := c.rdHit8(c.plainEA(&in.src)); p != nil {
		c.regs[in.dst.reg&15] = uint64(*p)
		return
	}
	opMovzxRM(c, in)
}

// The ALU on memory with a GPR or immediate source (aluForms' memory
// forms, whose fallbacks they are).

// srcX is the source of an ALU memory form: a GPR (masked to sz by the
// caller's conversion) or the immediate.
func (c *cpu) srcX(in *inst) uint64 {
	if in.src.kind == kReg {
		return c.regs[in.src.reg&15]
	}
	return in.src.imm
}

func opAddMX64(c *cpu, in *inst) {
	if p := c.wrHit64(c.plainEA(&in.dst)); p != nil {
		*p = c.add(*p, c.srcX(in), 8)
		return
	}
	opAddMX(c, in)
}

func opAddMX32(c *cpu, in *inst) {
	if p := c.wrHit32(c.plainEA(&in.dst)); p != nil {
		*p = uint32(c.add(uint64(*p), c.srcX(in)&0xffffffff, 4))
		return
	}
	opAddMX(c, in)
}

func opSubMX64(c *cpu, in *inst) {
	if p := c.wrHit64(c.plainEA(&in.dst)); p != nil {
		*p = c.sub(*p, c.srcX(in), 8)
		return
	}
	opSubMX(c, in)
}

func opSubMX32(c *cpu, in *inst) {
	if p := c.wrHit32(c.plainEA(&in.dst)); p != nil {
		*p = uint32(c.sub(uint64(*p), c.srcX(in)&0xffffffff, 4))
		return
	}
	opSubMX(c, in)
}

func opCmpMX64(c *cpu, in *inst) {
	if p := c.rdHit64(c.plainEA(&in.dst)); p != nil {
		c.sub(*p, c.srcX(in), 8)
		return
	}
	opCmpMX(c, in)
}

func opCmpMX32(c *cpu, in *inst) {
	if p := c.rdHit32(c.plainEA(&in.dst)); p != nil {
		c.sub(uint64(*p), c.srcX(in)&0xffffffff, 4)
		return
	}
	opCmpMX(c, in)
}

// sizedMem[k] are ALU operation k's memory forms at 64 and 32 bits.
var sizedMem = [aluTest + 1][2]func(*cpu, *inst){
	aluAdd: {opAddMX64, opAddMX32},
	aluSub: {opSubMX64, opSubMX32},
	aluCmp: {opCmpMX64, opCmpMX32},
}

// Quadword stack forms: PUSH/POP of a GPR, near CALL and RET with the
// stack access's data-TLB hit inlined (only canonical pages are ever in
// the TLB, so a hit needs no #SS check); push8 and peek8 do the rest.

func opPushR64(c *cpu, in *inst) {
	rsp := c.regs[4] - 8
	if p := c.wrHit64(rsp); p != nil {
		*p = c.regs[in.dst.reg&15]
		c.regs[4] = rsp
		return
	}
	c.push8(c.regs[in.dst.reg&15])
}

func opPopR64(c *cpu, in *inst) {
	if p := c.rdHit64(c.regs[4]); p != nil {
		v := *p
		c.regs[4] += 8
		c.regs[in.dst.reg&15] = v
		return
	}
	opPopR(c, in)
}

func opCallRel64(c *cpu, in *inst) {
	t := c.rip + in.dst.imm
	rsp := c.regs[4] - 8
	if p := c.wrHit64(rsp); p != nil && canonical(t) {
		*p = c.rip
		c.regs[4] = rsp
		c.rip = t
		return
	}
	opCallRel(c, in)
}

func opRet64(c *cpu, in *inst) {
	if p := c.rdHit64(c.regs[4]); p != nil {
		if t := *p; canonical(t) {
			c.regs[4] += 8 + in.dst.imm
			c.rip = t
			return
		}
	}
	opRet(c, in)
}
