package asm

// This file holds data directives: bytes placed in the program as they are,
// for tables, descriptors and strings that guests read.

// data appends a data item. A pending Lock/Rep cannot apply to data, so it
// is reported here rather than silently prefixing the bytes.
func (a *Assembler) data(op string, k recKind, b []byte, fix []fixup) {
	if p := a.prefix; p != nil {
		a.fail(op, "%s prefix cannot apply to data", p.op)
		return
	}
	if len(b) == 0 {
		return // an empty item would only add a blank listing line
	}
	a.appendItem(k, b, fix)
}

// Byte emits bytes.
func (a *Assembler) Byte(bs ...byte) {
	a.data("Byte", recByte, bs, nil)
}

// Word emits a little-endian 16-bit value.
func (a *Assembler) Word(v uint16) {
	a.data("Word", recWord, []byte{byte(v), byte(v >> 8)}, nil)
}

// Long emits a little-endian 32-bit value.
func (a *Assembler) Long(v uint32) {
	var b [4]byte
	putLE(b[:], uint64(v), 4)
	a.data("Long", recLong, b[:], nil)
}

// Quad emits a little-endian 64-bit value.
func (a *Assembler) Quad(v uint64) {
	var b [8]byte
	putLE(b[:], v, 8)
	a.data("Quad", recQuad, b[:], nil)
}

// QuadLabel emits the 64-bit absolute address of l (patched by Assemble),
// for jump tables, IDT handler addresses and the like.
func (a *Assembler) QuadLabel(l *Label) {
	const op = "QuadLabel"
	if !a.checkLabel(op, l) {
		return
	}
	a.data(op, recQuad, make([]byte, 8), []fixup{{kind: fixAbs64, l: l, op: op}})
}

// Align pads with fill bytes until the PC (the guest address, not the
// offset from origin) is a multiple of n. Use fill 0x90 (NOP) in code that
// may be executed through, 0xCC (INT3) to trap stray execution.
func (a *Assembler) Align(n int, fill byte) {
	if n <= 0 {
		a.fail("Align", "alignment %d is not positive", n)
		return
	}
	pad := (uint64(n) - a.PC()%uint64(n)) % uint64(n)
	if pad > 0 {
		a.data("Align", recByte, filled(int(pad), fill), nil)
	}
}

// Space emits n fill bytes.
func (a *Assembler) Space(n int, fill byte) {
	if n < 0 {
		a.fail("Space", "size %d is negative", n)
		return
	}
	a.data("Space", recByte, filled(n, fill), nil)
}

func filled(n int, fill byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = fill
	}
	return b
}
