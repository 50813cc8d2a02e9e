package asm

// This file holds the string instructions. Their operands are implicit
// ([rsi], [rdi], rAX, DX), so each width is its own method, as in Intel
// mnemonics. Rep, and Repne for CMPS/SCAS, prefix the next one; the RepXxx
// methods are shorthands for the common combinations.

// str encodes a string instruction: op8 for bytes, op8+1 with the usual
// size prefixes otherwise.
func (a *Assembler) str(op string, op8 byte, size int, rep repMode) {
	in := &ins{op: op, code: []byte{byteOr(op8, size)}, rep: rep}
	in.setSize(size)
	a.emit(in)
}

// Stosb emits STOSB: store AL at [rdi], advance rdi.
func (a *Assembler) Stosb() { a.str("Stosb", 0xAA, 1, repPlain) }

// Stosw emits STOSW.
func (a *Assembler) Stosw() { a.str("Stosw", 0xAA, 2, repPlain) }

// Stosd emits STOSD.
func (a *Assembler) Stosd() { a.str("Stosd", 0xAA, 4, repPlain) }

// Stosq emits STOSQ.
func (a *Assembler) Stosq() { a.str("Stosq", 0xAA, 8, repPlain) }

// Movsb emits MOVSB: copy a byte from [rsi] to [rdi], advance both.
func (a *Assembler) Movsb() { a.str("Movsb", 0xA4, 1, repPlain) }

// Movsw emits MOVSW.
func (a *Assembler) Movsw() { a.str("Movsw", 0xA4, 2, repPlain) }

// Movsd emits the string instruction MOVSD (not the SSE move).
func (a *Assembler) Movsd() { a.str("Movsd", 0xA4, 4, repPlain) }

// Movsq emits MOVSQ.
func (a *Assembler) Movsq() { a.str("Movsq", 0xA4, 8, repPlain) }

// Lodsb emits LODSB: load AL from [rsi], advance rsi.
func (a *Assembler) Lodsb() { a.str("Lodsb", 0xAC, 1, repPlain) }

// Lodsw emits LODSW.
func (a *Assembler) Lodsw() { a.str("Lodsw", 0xAC, 2, repPlain) }

// Lodsd emits LODSD.
func (a *Assembler) Lodsd() { a.str("Lodsd", 0xAC, 4, repPlain) }

// Lodsq emits LODSQ.
func (a *Assembler) Lodsq() { a.str("Lodsq", 0xAC, 8, repPlain) }

// Scasb emits SCASB: compare AL with [rdi], advance rdi.
func (a *Assembler) Scasb() { a.str("Scasb", 0xAE, 1, repCond) }

// Scasw emits SCASW.
func (a *Assembler) Scasw() { a.str("Scasw", 0xAE, 2, repCond) }

// Scasd emits SCASD.
func (a *Assembler) Scasd() { a.str("Scasd", 0xAE, 4, repCond) }

// Scasq emits SCASQ.
func (a *Assembler) Scasq() { a.str("Scasq", 0xAE, 8, repCond) }

// Cmpsb emits CMPSB: compare [rsi] with [rdi], advance both.
func (a *Assembler) Cmpsb() { a.str("Cmpsb", 0xA6, 1, repCond) }

// Cmpsw emits CMPSW.
func (a *Assembler) Cmpsw() { a.str("Cmpsw", 0xA6, 2, repCond) }

// Cmpsd emits the string instruction CMPSD (not the SSE compare).
func (a *Assembler) Cmpsd() { a.str("Cmpsd", 0xA6, 4, repCond) }

// Cmpsq emits CMPSQ.
func (a *Assembler) Cmpsq() { a.str("Cmpsq", 0xA6, 8, repCond) }

// Insb emits INSB: read a byte from port DX into [rdi].
func (a *Assembler) Insb() { a.str("Insb", 0x6C, 1, repPlain) }

// Insw emits INSW.
func (a *Assembler) Insw() { a.str("Insw", 0x6C, 2, repPlain) }

// Insd emits INSD.
func (a *Assembler) Insd() { a.str("Insd", 0x6C, 4, repPlain) }

// Outsb emits OUTSB: write the byte at [rsi] to port DX.
func (a *Assembler) Outsb() { a.str("Outsb", 0x6E, 1, repPlain) }

// Outsw emits OUTSW.
func (a *Assembler) Outsw() { a.str("Outsw", 0x6E, 2, repPlain) }

// Outsd emits OUTSD.
func (a *Assembler) Outsd() { a.str("Outsd", 0x6E, 4, repPlain) }

// RepStosb emits REP STOSB: fill RCX bytes at [rdi] with AL.
func (a *Assembler) RepStosb() { a.Rep().Stosb() }

// RepStosq emits REP STOSQ: fill RCX quadwords at [rdi] with RAX.
func (a *Assembler) RepStosq() { a.Rep().Stosq() }

// RepMovsb emits REP MOVSB: copy RCX bytes from [rsi] to [rdi].
func (a *Assembler) RepMovsb() { a.Rep().Movsb() }

// RepMovsq emits REP MOVSQ: copy RCX quadwords from [rsi] to [rdi].
func (a *Assembler) RepMovsq() { a.Rep().Movsq() }

// RepInsb emits REP INSB: read RCX bytes from port DX into [rdi].
func (a *Assembler) RepInsb() { a.Rep().Insb() }

// RepOutsb emits REP OUTSB: write RCX bytes at [rsi] to port DX.
func (a *Assembler) RepOutsb() { a.Rep().Outsb() }

// RepeCmpsb emits REPE CMPSB: compare bytes while equal and RCX != 0.
func (a *Assembler) RepeCmpsb() { a.Rep().Cmpsb() }

// RepneScasb emits REPNE SCASB: scan [rdi] for AL while RCX != 0.
func (a *Assembler) RepneScasb() { a.Repne().Scasb() }
