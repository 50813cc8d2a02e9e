package a64

// Extend is how the index register of a register-offset address is
// extended before it is (optionally) scaled and added to the base.
type Extend uint8

// Index extensions: an X index as is (LSL), or a W index zero- or
// sign-extended, or an X index as SXTX.
const (
	ExtLSL  Extend = 3 // X index
	ExtUXTW Extend = 2 // W index, zero-extended
	ExtSXTW Extend = 6 // W index, sign-extended
	ExtSXTX Extend = 7 // X index
)

type addrMode uint8

const (
	modeOffset addrMode = iota // [base, #off]
	modePre                    // [base, #off]!
	modePost                   // [base], #off
	modeReg                    // [base, index, ext #scale]
)

// Mem is a load/store address, built by Ptr, PreIndex, PostIndex or Index.
type Mem struct {
	Base   Reg
	Off    int64
	Idx    Reg
	Ext    Extend
	Scaled bool // shift the index by the access size
	mode   addrMode
}

// Ptr returns the address [base, #off].
func Ptr(base Reg, off int64) Mem { return Mem{Base: base, Off: off} }

// PreIndex returns [base, #off]!: base is updated before the access.
func PreIndex(base Reg, off int64) Mem { return Mem{Base: base, Off: off, mode: modePre} }

// PostIndex returns [base], #off: base is updated after the access.
func PostIndex(base Reg, off int64) Mem { return Mem{Base: base, Off: off, mode: modePost} }

// Index returns [base, index, ext {#log2(size)}], the index extended by ext
// and, if scaled, multiplied by the access size.
func Index(base, index Reg, ext Extend, scaled bool) Mem {
	return Mem{Base: base, Idx: index, Ext: ext, Scaled: scaled, mode: modeReg}
}

// Ldr emits LDR rt, m: 32-bit for a W register, 64-bit for an X register.
// A non-negative offset that is a multiple of the size and in range uses
// the scaled unsigned-offset form; other offsets in -256..255 use LDUR.
func (a *Assembler) Ldr(rt Reg, m Mem) { a.ldst("Ldr", sizeOf(rt), 1, rt, m) }

// Str emits STR rt, m, as Ldr.
func (a *Assembler) Str(rt Reg, m Mem) { a.ldst("Str", sizeOf(rt), 0, rt, m) }

// Ldrb emits LDRB wt, m (zero-extending byte load).
func (a *Assembler) Ldrb(rt Reg, m Mem) { a.ldstW("Ldrb", 0, 1, rt, m) }

// Strb emits STRB wt, m.
func (a *Assembler) Strb(rt Reg, m Mem) { a.ldstW("Strb", 0, 0, rt, m) }

// Ldrh emits LDRH wt, m (zero-extending halfword load).
func (a *Assembler) Ldrh(rt Reg, m Mem) { a.ldstW("Ldrh", 1, 1, rt, m) }

// Strh emits STRH wt, m.
func (a *Assembler) Strh(rt Reg, m Mem) { a.ldstW("Strh", 1, 0, rt, m) }

// sizeOf is the log2 access size of a full-register load or store.
func sizeOf(r Reg) uint32 {
	if r.is64() {
		return 3
	}
	return 2
}

func (a *Assembler) ldstW(name string, size, opc uint32, rt Reg, m Mem) {
	if rt.valid() && rt.is64() {
		a.fail(name, "%v: byte and halfword accesses take a W register", rt)
		return
	}
	a.ldst(name, size, opc, rt, m)
}

// ldst encodes the single-register load/store forms.
func (a *Assembler) ldst(name string, size, opc uint32, rt Reg, m Mem) {
	if !a.check(name, gpr, 0, rt) || !a.check(name, gprSP, X0, m.Base) {
		return
	}
	head := size<<30 | opc<<22 | m.Base.num()<<5 | rt.num()
	switch m.mode {
	case modeOffset:
		scale := int64(1) << size
		if m.Off >= 0 && m.Off%scale == 0 && m.Off/scale < 4096 {
			a.emit(name, head|0x39000000|uint32(m.Off/scale)<<10, nil, 0)
			return
		}
		if m.Off < -256 || m.Off > 255 {
			a.fail(name, "offset %d is neither a multiple of %d in 0..%d nor in -256..255", m.Off, scale, 4095*scale)
			return
		}
		a.emit(name, head|0x38000000|(uint32(m.Off)&0x1ff)<<12, nil, 0)
	case modePre, modePost:
		if m.Off < -256 || m.Off > 255 {
			a.fail(name, "writeback offset %d is out of range -256..255", m.Off)
			return
		}
		if m.Base.num() == rt.num() && !m.Base.isSP() {
			a.fail(name, "writeback to %v, which is also the transferred register, is unpredictable", m.Base)
			return
		}
		mode := uint32(0x400)
		if m.mode == modePre {
			mode = 0xC00
		}
		a.emit(name, head|0x38000000|(uint32(m.Off)&0x1ff)<<12|mode, nil, 0)
	case modeReg:
		wantW := m.Ext == ExtUXTW || m.Ext == ExtSXTW
		switch {
		case m.Ext != ExtLSL && m.Ext != ExtUXTW && m.Ext != ExtSXTW && m.Ext != ExtSXTX:
			a.fail(name, "invalid index extension %d", m.Ext)
			return
		case !a.check(name, gpr, 0, m.Idx):
			return
		case m.Idx.is64() == wantW:
			a.fail(name, "index register %v does not suit its extension", m.Idx)
			return
		}
		var s uint32
		if m.Scaled {
			s = 1
		}
		a.emit(name, head|0x38200800|m.Idx.num()<<16|uint32(m.Ext)<<13|s<<12, nil, 0)
	}
}

// LdrLabel emits LDR rt, l: a PC-relative literal load of 32 or 64 bits
// from within ±1 MiB.
func (a *Assembler) LdrLabel(rt Reg, l *Label) {
	if !a.check("LdrLabel", gpr, 0, rt) || !a.ownLabel("LdrLabel", l) {
		return
	}
	a.emit("LdrLabel", rt.sf()<<30|0x18000000|rt.num(), l, fixImm19)
}

// Ldp emits LDP rt1, rt2, m (m from Ptr, PreIndex or PostIndex; the
// offset a multiple of the register size in -64..63 of them).
func (a *Assembler) Ldp(rt1, rt2 Reg, m Mem) { a.pair("Ldp", 1, rt1, rt2, m) }

// Stp emits STP rt1, rt2, m, as Ldp.
func (a *Assembler) Stp(rt1, rt2 Reg, m Mem) { a.pair("Stp", 0, rt1, rt2, m) }

func (a *Assembler) pair(name string, l uint32, rt1, rt2 Reg, m Mem) {
	if !a.check(name, gpr, rt1, rt1, rt2) || !a.check(name, gprSP, X0, m.Base) {
		return
	}
	scale := int64(4) << rt1.sf()
	if m.Off%scale != 0 || m.Off/scale < -64 || m.Off/scale > 63 {
		a.fail(name, "offset %d is not a multiple of %d in %d..%d", m.Off, scale, -64*scale, 63*scale)
		return
	}
	if l == 1 && rt1 == rt2 {
		a.fail(name, "loading %v twice is unpredictable", rt1)
		return
	}
	var mode uint32
	switch m.mode {
	case modeOffset:
		mode = 2
	case modePre:
		mode = 3
	case modePost:
		mode = 1
	default:
		a.fail(name, "register-offset addressing is not available for pairs")
		return
	}
	if mode != 2 && !m.Base.isSP() && (m.Base.num() == rt1.num() || m.Base.num() == rt2.num()) {
		a.fail(name, "writeback to %v, which is also a transferred register, is unpredictable", m.Base)
		return
	}
	a.emit(name, rt1.sf()<<31|0x28000000|mode<<23|l<<22|(uint32(m.Off/scale)&0x7f)<<15|rt2.num()<<10|m.Base.num()<<5|rt1.num(), nil, 0)
}

// Ldxr emits LDXR rt, [rn] (load exclusive).
func (a *Assembler) Ldxr(rt, rn Reg) { a.exclusive("Ldxr", 0x085F7C00, 0, rt, rn) }

// Ldaxr emits LDAXR rt, [rn] (load-acquire exclusive).
func (a *Assembler) Ldaxr(rt, rn Reg) { a.exclusive("Ldaxr", 0x085FFC00, 0, rt, rn) }

// Ldar emits LDAR rt, [rn] (load-acquire).
func (a *Assembler) Ldar(rt, rn Reg) { a.exclusive("Ldar", 0x08DFFC00, 0, rt, rn) }

// Stlr emits STLR rt, [rn] (store-release).
func (a *Assembler) Stlr(rt, rn Reg) { a.exclusive("Stlr", 0x089FFC00, 0, rt, rn) }

// Stxr emits STXR ws, rt, [rn]: ws is 0 if the store happened, 1 if not.
func (a *Assembler) Stxr(ws, rt, rn Reg) { a.exclusive("Stxr", 0x08007C00, ws, rt, rn) }

// Stlxr emits STLXR ws, rt, [rn] (store-release exclusive).
func (a *Assembler) Stlxr(ws, rt, rn Reg) { a.exclusive("Stlxr", 0x0800FC00, ws, rt, rn) }

func (a *Assembler) exclusive(name string, base uint32, ws, rt, rn Reg) {
	if !a.check(name, gpr, 0, rt) || !a.check(name, gprSP, X0, rn) {
		return
	}
	if ws != 0 {
		if !a.check(name, gpr, W0, ws) {
			return
		}
		if ws.num() == rt.num() || (ws.num() == rn.num() && !rn.isSP()) {
			a.fail(name, "status register %v overlaps a data or address register (unpredictable)", ws)
			return
		}
		base |= ws.num() << 16
	}
	a.emit(name, (2+rt.sf())<<30|base|rn.num()<<5|rt.num(), nil, 0)
}

// Cas emits CAS rs, rt, [rn] (FEAT_LSE compare and swap): if the word or
// doubleword at rn equals rs, rt is stored there; rs receives the value
// read either way. rs and rt have the same width; rn is an X register or
// SP. Casa, Casl and Casal add acquire, release, and both; the B and H
// forms (Casb, Cash, ...) compare and swap a byte or halfword, and the P
// forms (Casp, ...) a pair of consecutive registers.
func (a *Assembler) Cas(rs, rt, rn Reg) { a.cas("Cas", 0, 0, rs, rt, rn) }

// Casa emits CASA rs, rt, [rn] (acquire), as Cas.
func (a *Assembler) Casa(rs, rt, rn Reg) { a.cas("Casa", 1, 0, rs, rt, rn) }

// Casl emits CASL rs, rt, [rn] (release), as Cas.
func (a *Assembler) Casl(rs, rt, rn Reg) { a.cas("Casl", 0, 1, rs, rt, rn) }

// Casal emits CASAL rs, rt, [rn] (acquire and release), as Cas.
func (a *Assembler) Casal(rs, rt, rn Reg) { a.cas("Casal", 1, 1, rs, rt, rn) }

// casBase is CAS's word with size, L, Rs, o0, Rn and Rt clear.
const casBase = 0x08A07C00

func (a *Assembler) cas(name string, acquire, release uint32, rs, rt, rn Reg) {
	if !a.check(name, gpr, rs, rs, rt) || !a.check(name, gprSP, X0, rn) {
		return
	}
	a.emit(name, (2+rt.sf())<<30|casBase|acquire<<22|rs.num()<<16|release<<15|rn.num()<<5|rt.num(), nil, 0)
}

// Casb emits CASB ws, wt, [xn]: CAS of the byte at rn with the low byte
// of ws (the byte read is zero-extended into ws); W registers only.
// Casab, Caslb and Casalb add acquire, release, and both.
func (a *Assembler) Casb(rs, rt, rn Reg) { a.casBH("Casb", 0, 0, 0, rs, rt, rn) }

// Casab emits CASAB ws, wt, [xn] (acquire), as Casb.
func (a *Assembler) Casab(rs, rt, rn Reg) { a.casBH("Casab", 0, 1, 0, rs, rt, rn) }

// Caslb emits CASLB ws, wt, [xn] (release), as Casb.
func (a *Assembler) Caslb(rs, rt, rn Reg) { a.casBH("Caslb", 0, 0, 1, rs, rt, rn) }

// Casalb emits CASALB ws, wt, [xn] (acquire and release), as Casb.
func (a *Assembler) Casalb(rs, rt, rn Reg) { a.casBH("Casalb", 0, 1, 1, rs, rt, rn) }

// Cash emits CASH ws, wt, [xn]: CAS of the halfword at rn, as Casb.
func (a *Assembler) Cash(rs, rt, rn Reg) { a.casBH("Cash", 1, 0, 0, rs, rt, rn) }

// Casah emits CASAH ws, wt, [xn] (acquire), as Cash.
func (a *Assembler) Casah(rs, rt, rn Reg) { a.casBH("Casah", 1, 1, 0, rs, rt, rn) }

// Caslh emits CASLH ws, wt, [xn] (release), as Cash.
func (a *Assembler) Caslh(rs, rt, rn Reg) { a.casBH("Caslh", 1, 0, 1, rs, rt, rn) }

// Casalh emits CASALH ws, wt, [xn] (acquire and release), as Cash.
func (a *Assembler) Casalh(rs, rt, rn Reg) { a.casBH("Casalh", 1, 1, 1, rs, rt, rn) }

func (a *Assembler) casBH(name string, size, acquire, release uint32, rs, rt, rn Reg) {
	for _, r := range []Reg{rs, rt} {
		if r.valid() && r.is64() {
			a.fail(name, "%v: byte and halfword compare and swap take W registers", r)
			return
		}
	}
	if !a.check(name, gpr, W0, rs, rt) || !a.check(name, gprSP, X0, rn) {
		return
	}
	a.emit(name, size<<30|casBase|acquire<<22|rs.num()<<16|release<<15|rn.num()<<5|rt.num(), nil, 0)
}

// Casp emits CASP rs, rs1, rt, rt1, [rn] (FEAT_LSE compare and swap
// pair): if the two words or doublewords at rn equal rs:rs1 (rs at the
// lower address), rt:rt1 are stored there; rs:rs1 receive what was read
// either way. Each pair is an even-numbered register and the next one
// (X30 pairs with XZR), all four of one width; rn is an X register or SP
// and must be aligned to the pair's size. Caspa, Caspl and Caspal add
// acquire, release, and both.
func (a *Assembler) Casp(rs, rs1, rt, rt1, rn Reg) { a.casp("Casp", 0, 0, rs, rs1, rt, rt1, rn) }

// Caspa emits CASPA rs, rs1, rt, rt1, [rn] (acquire), as Casp.
func (a *Assembler) Caspa(rs, rs1, rt, rt1, rn Reg) { a.casp("Caspa", 1, 0, rs, rs1, rt, rt1, rn) }

// Caspl emits CASPL rs, rs1, rt, rt1, [rn] (release), as Casp.
func (a *Assembler) Caspl(rs, rs1, rt, rt1, rn Reg) { a.casp("Caspl", 0, 1, rs, rs1, rt, rt1, rn) }

// Caspal emits CASPAL rs, rs1, rt, rt1, [rn] (acquire and release), as
// Casp.
func (a *Assembler) Caspal(rs, rs1, rt, rt1, rn Reg) { a.casp("Caspal", 1, 1, rs, rs1, rt, rt1, rn) }

// caspBase is CASP's word with sz, L, Rs, o0, Rn and Rt clear.
const caspBase = 0x08207C00

func (a *Assembler) casp(name string, acquire, release uint32, rs, rs1, rt, rt1, rn Reg) {
	if !a.check(name, gpr, rs, rs, rs1, rt, rt1) || !a.check(name, gprSP, X0, rn) {
		return
	}
	for _, p := range [][2]Reg{{rs, rs1}, {rt, rt1}} {
		switch {
		case p[0].num()%2 != 0:
			a.fail(name, "register pair %v, %v: the first register must be even-numbered", p[0], p[1])
			return
		case p[1].num() != p[0].num()+1:
			a.fail(name, "register pair %v, %v: the second register must be the next one after %v", p[0], p[1], p[0])
			return
		}
	}
	a.emit(name, rs.sf()<<30|caspBase|acquire<<22|rs.num()<<16|release<<15|rn.num()<<5|rt.num(), nil, 0)
}
