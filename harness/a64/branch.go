package a64

// B emits B l (±128 MiB).
func (a *Assembler) B(l *Label) {
	if a.ownLabel("B", l) {
		a.emit("B", 0x14000000, l, fixImm26)
	}
}

// Bl emits BL l (±128 MiB), setting X30 to the return address.
func (a *Assembler) Bl(l *Label) {
	if a.ownLabel("Bl", l) {
		a.emit("Bl", 0x94000000, l, fixImm26)
	}
}

// Bcond emits B.cond l (±1 MiB).
func (a *Assembler) Bcond(cond Cond, l *Label) {
	if cond > NV {
		a.fail("Bcond", "invalid condition %v", cond)
		return
	}
	if a.ownLabel("Bcond", l) {
		a.emit("Bcond", 0x54000000|uint32(cond), l, fixImm19)
	}
}

// Cbz emits CBZ rt, l (±1 MiB).
func (a *Assembler) Cbz(rt Reg, l *Label) { a.cb("Cbz", 0x34000000, rt, l) }

// Cbnz emits CBNZ rt, l (±1 MiB).
func (a *Assembler) Cbnz(rt Reg, l *Label) { a.cb("Cbnz", 0x35000000, rt, l) }

func (a *Assembler) cb(name string, base uint32, rt Reg, l *Label) {
	if a.check(name, gpr, 0, rt) && a.ownLabel(name, l) {
		a.emit(name, rt.sf()<<31|base|rt.num(), l, fixImm19)
	}
}

// Tbz emits TBZ rt, #bit, l (±32 KiB).
func (a *Assembler) Tbz(rt Reg, bit uint, l *Label) { a.tb("Tbz", 0x36000000, rt, bit, l) }

// Tbnz emits TBNZ rt, #bit, l (±32 KiB).
func (a *Assembler) Tbnz(rt Reg, bit uint, l *Label) { a.tb("Tbnz", 0x37000000, rt, bit, l) }

func (a *Assembler) tb(name string, base uint32, rt Reg, bit uint, l *Label) {
	if !a.check(name, gpr, 0, rt) || !a.ownLabel(name, l) {
		return
	}
	if bit >= 32<<rt.sf() {
		a.fail(name, "bit %d is out of range for %v", bit, rt)
		return
	}
	a.emit(name, uint32(bit>>5)<<31|base|uint32(bit&31)<<19|rt.num(), l, fixImm14)
}

// Br emits BR rn.
func (a *Assembler) Br(rn Reg) { a.branchReg("Br", 0xD61F0000, rn) }

// Blr emits BLR rn.
func (a *Assembler) Blr(rn Reg) { a.branchReg("Blr", 0xD63F0000, rn) }

// Ret emits RET (through X30).
func (a *Assembler) Ret() { a.branchReg("Ret", 0xD65F0000, X30) }

// RetReg emits RET rn.
func (a *Assembler) RetReg(rn Reg) { a.branchReg("RetReg", 0xD65F0000, rn) }

func (a *Assembler) branchReg(name string, base uint32, rn Reg) {
	if a.check(name, gpr, X0, rn) {
		a.emit(name, base|rn.num()<<5, nil, 0)
	}
}
