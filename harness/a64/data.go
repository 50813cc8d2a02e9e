package a64

import "encoding/binary"

// Align pads with NOPs (when the PC is word aligned, as it is after
// instructions) or zero bytes to the next multiple of n, a power of two.
func (a *Assembler) Align(n int) {
	if n <= 0 || n&(n-1) != 0 {
		a.fail("Align", "alignment %d is not a power of two", n)
		return
	}
	pad := int((uint64(n) - a.PC()%uint64(n)) % uint64(n))
	if pad == 0 {
		return
	}
	b := make([]byte, 0, pad)
	for len(b)+4 <= pad && a.PC()%4 == 0 {
		b = binary.LittleEndian.AppendUint32(b, 0xD503201F)
	}
	for len(b) < pad {
		b = append(b, 0)
	}
	a.data(itemAlign, b, nil)
	a.items[len(a.items)-1].align = n
}

// Long emits a 32-bit little-endian word (e.g. an instruction encoding the
// assembler does not offer).
func (a *Assembler) Long(v uint32) { a.data(itemLong, binary.LittleEndian.AppendUint32(nil, v), nil) }

// Quad emits a 64-bit little-endian word.
func (a *Assembler) Quad(v uint64) { a.data(itemQuad, binary.LittleEndian.AppendUint64(nil, v), nil) }

// QuadLabel emits the 64-bit absolute address of l.
func (a *Assembler) QuadLabel(l *Label) {
	if a.ownLabel("QuadLabel", l) {
		a.data(itemQuad, make([]byte, 8), l)
	}
}

func (a *Assembler) data(k itemKind, b []byte, l *Label) {
	off := len(a.buf)
	a.buf = append(a.buf, b...)
	a.items = append(a.items, item{off: off, n: len(b), kind: k, stack: stack()})
	if l != nil {
		a.fixups = append(a.fixups, fixup{kind: fixAbs64, at: off, l: l, item: len(a.items) - 1, op: "QuadLabel"})
	}
}

// Space emits n zero bytes.
func (a *Assembler) Space(n int) {
	if n < 0 {
		a.fail("Space", "negative size %d", n)
		return
	}
	a.data(itemSpace, make([]byte, n), nil)
}
