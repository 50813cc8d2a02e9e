package asm

// This file holds system, I/O and miscellaneous instructions: the ones
// guests use to provoke exits and inspect CPU state.

// Hlt emits HLT.
func (a *Assembler) Hlt() { a.fixed("Hlt", 0xF4) }

// Int3 emits the one-byte breakpoint INT3 (CC), which differs from INT 3
// (CD 03) in how it interacts with IOPL and VM86 checks.
func (a *Assembler) Int3() { a.fixed("Int3", 0xCC) }

// Int emits INT n (CD ib).
func (a *Assembler) Int(n uint8) {
	a.emit(&ins{op: "Int", code: []byte{0xCD}, imm: int64(n), immLen: 1})
}

// Int1 emits INT1/ICEBP (F1), the undocumented-until-recently debug trap.
func (a *Assembler) Int1() { a.fixed("Int1", 0xF1) }

// Ud2 emits UD2, the architecturally guaranteed invalid opcode.
func (a *Assembler) Ud2() { a.fixed("Ud2", 0x0F, 0x0B) }

// Nop emits the one-byte NOP.
func (a *Assembler) Nop() { a.fixed("Nop", 0x90) }

// Pause emits PAUSE (F3 90), which may cause a PAUSE-loop exit.
func (a *Assembler) Pause() { a.fixed("Pause", pfxRep, 0x90) }

// Cpuid emits CPUID.
func (a *Assembler) Cpuid() { a.fixed("Cpuid", 0x0F, 0xA2) }

// Rdmsr emits RDMSR.
func (a *Assembler) Rdmsr() { a.fixed("Rdmsr", 0x0F, 0x32) }

// Wrmsr emits WRMSR.
func (a *Assembler) Wrmsr() { a.fixed("Wrmsr", 0x0F, 0x30) }

// Rdpmc emits RDPMC.
func (a *Assembler) Rdpmc() { a.fixed("Rdpmc", 0x0F, 0x33) }

// Rdtsc emits RDTSC.
func (a *Assembler) Rdtsc() { a.fixed("Rdtsc", 0x0F, 0x31) }

// Rdtscp emits RDTSCP.
func (a *Assembler) Rdtscp() { a.fixed("Rdtscp", 0x0F, 0x01, 0xF9) }

// Cli emits CLI.
func (a *Assembler) Cli() { a.fixed("Cli", 0xFA) }

// Sti emits STI.
func (a *Assembler) Sti() { a.fixed("Sti", 0xFB) }

// Clc emits CLC.
func (a *Assembler) Clc() { a.fixed("Clc", 0xF8) }

// Stc emits STC.
func (a *Assembler) Stc() { a.fixed("Stc", 0xF9) }

// Cmc emits CMC.
func (a *Assembler) Cmc() { a.fixed("Cmc", 0xF5) }

// Cld emits CLD.
func (a *Assembler) Cld() { a.fixed("Cld", 0xFC) }

// Std emits STD.
func (a *Assembler) Std() { a.fixed("Std", 0xFD) }

// Iretq emits IRETQ (REX.W CF); a bare CF would be the 32-bit IRETD.
func (a *Assembler) Iretq() { a.fixed("Iretq", rexBase|rexW, 0xCF) }

// Vmcall emits VMCALL (0F 01 C1), the Intel hypercall instruction.
// x86asm cannot decode it; Listing and Disasm name it from a fallback table.
func (a *Assembler) Vmcall() { a.fixed("Vmcall", 0x0F, 0x01, 0xC1) }

// Vmmcall emits VMMCALL (0F 01 D9), the AMD hypercall instruction.
// x86asm cannot decode it; Listing and Disasm name it from a fallback table.
func (a *Assembler) Vmmcall() { a.fixed("Vmmcall", 0x0F, 0x01, 0xD9) }

// Mfence emits MFENCE.
func (a *Assembler) Mfence() { a.fixed("Mfence", 0x0F, 0xAE, 0xF0) }

// Lfence emits LFENCE.
func (a *Assembler) Lfence() { a.fixed("Lfence", 0x0F, 0xAE, 0xE8) }

// Sfence emits SFENCE.
func (a *Assembler) Sfence() { a.fixed("Sfence", 0x0F, 0xAE, 0xF8) }

// Wbinvd emits WBINVD.
func (a *Assembler) Wbinvd() { a.fixed("Wbinvd", 0x0F, 0x09) }

// Invd emits INVD.
func (a *Assembler) Invd() { a.fixed("Invd", 0x0F, 0x08) }

// Clts emits CLTS (clear CR0.TS).
func (a *Assembler) Clts() { a.fixed("Clts", 0x0F, 0x06) }

// Xgetbv emits XGETBV.
func (a *Assembler) Xgetbv() { a.fixed("Xgetbv", 0x0F, 0x01, 0xD0) }

// Xsetbv emits XSETBV.
func (a *Assembler) Xsetbv() { a.fixed("Xsetbv", 0x0F, 0x01, 0xD1) }

// Monitor emits MONITOR (address in RAX, extensions in ECX, hints in EDX).
func (a *Assembler) Monitor() { a.fixed("Monitor", 0x0F, 0x01, 0xC8) }

// Mwait emits MWAIT.
func (a *Assembler) Mwait() { a.fixed("Mwait", 0x0F, 0x01, 0xC9) }

// In emits IN dst, port: dst is AL, AX or EAX; port is an Imm 0..255 or DX.
func (a *Assembler) In(dst Reg, port Operand) { a.inOut("In", 0xE4, dst, port) }

// Out emits OUT port, src: src is AL, AX or EAX; port is an Imm 0..255 or DX.
func (a *Assembler) Out(port Operand, src Reg) { a.inOut("Out", 0xE6, src, port) }

// inOut encodes IN (E4/E5 ib, EC/ED) and OUT (E6/E7 ib, EE/EF).
func (a *Assembler) inOut(op string, opImm byte, r Reg, port Operand) {
	if r != AL && r != AX && r != EAX {
		a.fail(op, "data register must be al, ax or eax, have %v", r)
		return
	}
	in := &ins{op: op, opsize: r == AX}
	switch p := port.(type) {
	case Imm:
		if p < 0 || p > 255 {
			a.fail(op, "port %s is not in 0..255: use DX for higher ports", operandString(p))
			return
		}
		in.code = []byte{byteOr(opImm, r.Size())}
		in.imm, in.immLen = int64(p), 1
	case Reg:
		if p != DX {
			a.fail(op, "port register must be dx, have %v", p)
			return
		}
		in.code = []byte{byteOr(opImm+8, r.Size())}
	default:
		a.fail(op, "port %s must be an immediate or dx", operandString(port))
		return
	}
	a.emit(in)
}

// MovToCR emits MOV cr, src (0F 22); src is a 64-bit register.
func (a *Assembler) MovToCR(cr CReg, src Reg) {
	if !cr.valid() {
		a.fail("MovToCR", "invalid control register %v", cr)
		return
	}
	a.movSys("MovToCR", 0x22, int(cr), src)
}

// MovFromCR emits MOV dst, cr (0F 20); dst is a 64-bit register.
func (a *Assembler) MovFromCR(dst Reg, cr CReg) {
	if !cr.valid() {
		a.fail("MovFromCR", "invalid control register %v", cr)
		return
	}
	a.movSys("MovFromCR", 0x20, int(cr), dst)
}

// MovToDR emits MOV dr, src (0F 23); src is a 64-bit register.
func (a *Assembler) MovToDR(dr DReg, src Reg) {
	if !dr.valid() {
		a.fail("MovToDR", "invalid debug register %v", dr)
		return
	}
	a.movSys("MovToDR", 0x23, int(dr), src)
}

// MovFromDR emits MOV dst, dr (0F 21); dst is a 64-bit register.
func (a *Assembler) MovFromDR(dst Reg, dr DReg) {
	if !dr.valid() {
		a.fail("MovFromDR", "invalid debug register %v", dr)
		return
	}
	a.movSys("MovFromDR", 0x21, int(dr), dst)
}

// movSys encodes MOV to/from control and debug registers: the special
// register goes in ModRM.reg (REX.R selects CR8), the general register in
// ModRM.rm, and the operand size is always 64 bits without REX.W.
func (a *Assembler) movSys(op string, opc byte, special int, r Reg) {
	if !a.checkReg(op, r, 8) {
		return
	}
	in := &ins{op: op, code: []byte{0x0F, opc}}
	in.modRM(NoReg, special, r)
	a.emit(in)
}

// Lgdt emits LGDT m (m addresses a 10-byte pseudo-descriptor; m.Size is
// ignored).
func (a *Assembler) Lgdt(m Mem) { a.descTable("Lgdt", []byte{0x0F, 0x01}, 2, m) }

// Lidt emits LIDT m (m addresses a 10-byte pseudo-descriptor; m.Size is
// ignored).
func (a *Assembler) Lidt(m Mem) { a.descTable("Lidt", []byte{0x0F, 0x01}, 3, m) }

// Sgdt emits SGDT m (stores a 10-byte pseudo-descriptor; m.Size is ignored).
func (a *Assembler) Sgdt(m Mem) { a.descTable("Sgdt", []byte{0x0F, 0x01}, 0, m) }

// Sidt emits SIDT m (stores a 10-byte pseudo-descriptor; m.Size is ignored).
func (a *Assembler) Sidt(m Mem) { a.descTable("Sidt", []byte{0x0F, 0x01}, 1, m) }

// Invlpg emits INVLPG m (m.Size is ignored).
func (a *Assembler) Invlpg(m Mem) { a.descTable("Invlpg", []byte{0x0F, 0x01}, 7, m) }

// descTable encodes a memory-only /digit instruction whose operand size is
// implied by the instruction.
func (a *Assembler) descTable(op string, code []byte, digit int, m Mem) {
	m.Size = 0
	in := &ins{op: op, code: code}
	in.modRM(NoReg, digit, m)
	a.emit(in)
}

// Ltr emits LTR x: load the task register from a 16-bit register or 16-bit
// memory (Size 0 or 2) holding a selector.
func (a *Assembler) Ltr(x Operand) {
	const op = "Ltr"
	if m, ok := x.(Mem); ok && m.Size == 0 {
		x = m.WithSize(2)
	}
	rm, _, ok := a.unary(op, x, 2)
	if !ok {
		return
	}
	// LTR's operand is always 16 bits; a 66 prefix would be redundant.
	in := &ins{op: op, code: []byte{0x0F, 0x00}}
	in.modRM(NoReg, 3, rm)
	a.emit(in)
}
