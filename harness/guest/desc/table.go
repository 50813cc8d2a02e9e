package desc

import (
	"encoding/binary"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// GDT builds a global descriptor table, entry 0 being the null descriptor.
type GDT struct {
	q []uint64
}

// NewGDT starts a table holding only the null descriptor.
func NewGDT() *GDT { return &GDT{q: []uint64{0}} }

// Add appends a code or data descriptor and returns its selector, with
// the RPL set to the descriptor's DPL (what code at that level loads).
func (t *GDT) Add(d Descriptor) Selector {
	t.q = append(t.q, d.Encode())
	return GDTSelector(len(t.q)-1, d.DPL)
}

// AddTSS appends a 16-byte TSS descriptor and returns its selector.
func (t *GDT) AddTSS(d TSSDescriptor) Selector {
	e := d.Encode()
	t.q = append(t.q, e[0], e[1])
	return GDTSelector(len(t.q)-2, 0)
}

// Len is the table's size in bytes.
func (t *GDT) Len() int { return 8 * len(t.q) }

// Bytes is the table as it lies in guest memory.
func (t *GDT) Bytes() []byte {
	b := make([]byte, t.Len())
	for i, q := range t.q {
		binary.LittleEndian.PutUint64(b[8*i:], q)
	}
	return b
}

// DTable is the GDTR for the table placed at base.
func (t *GDT) DTable(base uint64) hv.DTable { return hv.DTable{Base: base, Limit: uint16(t.Len() - 1)} }

// IDTVectors is the number of vectors an IDT describes.
const IDTVectors = 256

// GateSize is the size of one 64-bit gate in bytes.
const GateSize = 16

// IDT is a full interrupt descriptor table; a zero Gate is not present.
type IDT [IDTVectors]Gate

// Bytes is the table as it lies in guest memory.
func (t *IDT) Bytes() []byte {
	b := make([]byte, IDTVectors*GateSize)
	for v, g := range t {
		e := g.Encode()
		binary.LittleEndian.PutUint64(b[GateSize*v:], e[0])
		binary.LittleEndian.PutUint64(b[GateSize*v+8:], e[1])
	}
	return b
}

// DTable is the IDTR for the table placed at base.
func (t *IDT) DTable(base uint64) hv.DTable {
	return hv.DTable{Base: base, Limit: IDTVectors*GateSize - 1}
}
