// Package desc encodes the x86-64 system structures a guest runs on:
// segment descriptors, the 64-bit TSS and its descriptor, and IDT gates.
// Each type is the one source of truth for its structure: Encode gives the
// bytes the CPU reads from the GDT, IDT or TSS, and Segment gives the
// hv.Segment a vCPU holds once the selector is loaded, so the two cannot
// drift apart. Decode functions read the same layouts back, for tests and
// for an emulator that walks guest tables.
//
// Layouts follow the Intel SDM, Vol. 3A, 3.4.5 (segment descriptors),
// 7.2.3 (TSS descriptor in 64-bit mode), 7.7 (64-bit TSS) and 6.14.1
// (64-bit IDT gate descriptors).
package desc

import (
	"encoding/binary"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// Descriptor type field values (the 4-bit Type of a descriptor).
const (
	// TypeDataRW is a read/write data segment, accessed.
	TypeDataRW = 0x3
	// TypeCodeXR is an execute/read code segment, accessed.
	TypeCodeXR = 0xb
	// TypeTSSAvailable is an available 64-bit TSS (system descriptor).
	TypeTSSAvailable = 0x9
	// TypeTSSBusy is a busy 64-bit TSS: what TR holds after LTR.
	TypeTSSBusy = 0xb
	// TypeInterruptGate clears RFLAGS.IF on entry.
	TypeInterruptGate = 0xe
	// TypeTrapGate leaves RFLAGS.IF as it was.
	TypeTrapGate = 0xf
	// TypeLDT is an LDT descriptor; an unusable LDTR carries this type.
	TypeLDT = 0x2
)

// typeCode marks a code segment among non-system types; typeConforming a
// conforming one.
const (
	typeCode       = 0x8
	typeConforming = 0x4
)

// Selector is a segment selector: table index, table indicator (GDT
// only here) and requested privilege level.
type Selector uint16

// GDTSelector is the selector of GDT entry index (8-byte units) with rpl.
func GDTSelector(index int, rpl uint8) Selector { return Selector(index<<3 | int(rpl&3)) }

// Index is the table index of s.
func (s Selector) Index() int { return int(s >> 3) }

// RPL is the requested privilege level of s.
func (s Selector) RPL() uint8 { return uint8(s & 3) }

// WithRPL returns s with its RPL replaced.
func (s Selector) WithRPL(rpl uint8) Selector { return s&^3 | Selector(rpl&3) }

func (s Selector) String() string {
	return fmt.Sprintf("%#x (index %d, rpl %d)", uint16(s), s.Index(), s.RPL())
}

// Descriptor is an 8-byte code or data segment descriptor. Limit is the
// raw 20-bit field, scaled by 4 KiB when G is set.
type Descriptor struct {
	Base    uint32
	Limit   uint32
	Type    uint8
	S       bool // code or data (not a system descriptor)
	DPL     uint8
	Present bool
	AVL     bool
	L       bool // 64-bit code
	DB      bool
	G       bool
}

// Code64 is a flat 64-bit code segment at privilege dpl.
func Code64(dpl uint8) Descriptor {
	return Descriptor{Limit: 0xfffff, Type: TypeCodeXR, S: true, DPL: dpl, Present: true, L: true, G: true}
}

// Data is a flat read/write data segment at privilege dpl.
func Data(dpl uint8) Descriptor {
	return Descriptor{Limit: 0xfffff, Type: TypeDataRW, S: true, DPL: dpl, Present: true, DB: true, G: true}
}

// Code reports whether d is a code segment.
func (d Descriptor) Code() bool { return d.S && d.Type&typeCode != 0 }

// Conforming reports whether d is a conforming code segment.
func (d Descriptor) Conforming() bool { return d.Code() && d.Type&typeConforming != 0 }

// Encode returns the descriptor as it lies in the GDT.
func (d Descriptor) Encode() uint64 {
	return encodeLow(uint64(d.Base), d.Limit, d.Type, d.S, d.DPL, d.Present, d.AVL, d.L, d.DB, d.G)
}

// Segment is the segment register a vCPU holds after loading sel, which
// must select this descriptor: the cached base, the byte-granular limit
// and the attributes.
func (d Descriptor) Segment(sel Selector) hv.Segment {
	return hv.Segment{
		Base:     uint64(d.Base),
		Limit:    scaledLimit(d.Limit, d.G),
		Selector: uint16(sel),
		Type:     d.Type & 0xf,
		Present:  b2u(d.Present),
		DPL:      d.DPL & 3,
		DB:       b2u(d.DB),
		S:        b2u(d.S),
		L:        b2u(d.L),
		G:        b2u(d.G),
		AVL:      b2u(d.AVL),
	}
}

// DecodeDescriptor reads an 8-byte code or data descriptor.
func DecodeDescriptor(q uint64) Descriptor {
	f := decodeLow(q)
	return Descriptor{Base: uint32(f.base), Limit: f.limit, Type: f.typ, S: f.s, DPL: f.dpl, Present: f.present,
		AVL: f.avl, L: f.l, DB: f.db, G: f.g}
}

// TSSDescriptor is the 16-byte GDT entry of a 64-bit TSS. Limit is in
// bytes (at most 0xfffff: a TSS never needs page granularity here).
type TSSDescriptor struct {
	Base    uint64
	Limit   uint32
	DPL     uint8
	Present bool
	Busy    bool
}

// NewTSSDescriptor describes an available TSS of size bytes at base.
func NewTSSDescriptor(base uint64, size uint32) TSSDescriptor {
	return TSSDescriptor{Base: base, Limit: size - 1, Present: true}
}

func (t TSSDescriptor) typ() uint8 {
	if t.Busy {
		return TypeTSSBusy
	}
	return TypeTSSAvailable
}

// Encode returns the two quadwords of the descriptor, low first.
func (t TSSDescriptor) Encode() [2]uint64 {
	return [2]uint64{
		encodeLow(t.Base, t.Limit, t.typ(), false, t.DPL, t.Present, false, false, false, false),
		t.Base >> 32,
	}
}

// TR is the task register a vCPU holds after LTR sel: the CPU marks the
// TSS busy when it loads it, so TR's type is busy whatever the GDT says.
func (t TSSDescriptor) TR(sel Selector) hv.Segment {
	return hv.Segment{Base: t.Base, Limit: t.Limit, Selector: uint16(sel), Type: TypeTSSBusy,
		Present: b2u(t.Present), DPL: t.DPL & 3}
}

// DecodeTSSDescriptor reads a 16-byte TSS descriptor; ok is false when
// the type is not a 64-bit TSS.
func DecodeTSSDescriptor(lo, hi uint64) (t TSSDescriptor, ok bool) {
	f := decodeLow(lo)
	t = TSSDescriptor{Base: f.base | hi<<32, Limit: f.limit, DPL: f.dpl, Present: f.present, Busy: f.typ == TypeTSSBusy}
	return t, !f.s && (f.typ == TypeTSSAvailable || f.typ == TypeTSSBusy)
}

// Gate is a 16-byte 64-bit IDT gate.
type Gate struct {
	Offset   uint64 // handler address
	Selector Selector
	IST      uint8 // 0: no stack switch unless the privilege changes; 1..7: that IST stack
	Type     uint8 // TypeInterruptGate or TypeTrapGate
	DPL      uint8 // highest CPL allowed to reach it with INT n, INT3 or INTO
	Present  bool
}

// InterruptGate is a present interrupt gate to handler in code segment
// sel on stack ist, callable by software from privilege dpl and up.
func InterruptGate(handler uint64, sel Selector, ist, dpl uint8) Gate {
	return Gate{Offset: handler, Selector: sel, IST: ist, Type: TypeInterruptGate, DPL: dpl, Present: true}
}

// Encode returns the two quadwords of the gate, low first.
func (g Gate) Encode() [2]uint64 {
	lo := g.Offset&0xffff | uint64(g.Selector)<<16 | uint64(g.IST&7)<<32 |
		uint64(g.Type&0xf)<<40 | uint64(g.DPL&3)<<45 | uint64(b2u(g.Present))<<47 | (g.Offset>>16&0xffff)<<48
	return [2]uint64{lo, g.Offset >> 32 & 0xffffffff}
}

// DecodeGate reads a 16-byte IDT gate.
func DecodeGate(lo, hi uint64) Gate {
	return Gate{
		Offset:   lo&0xffff | lo>>48<<16 | (hi&0xffffffff)<<32,
		Selector: Selector(lo >> 16),
		IST:      uint8(lo >> 32 & 7),
		Type:     uint8(lo >> 40 & 0xf),
		DPL:      uint8(lo >> 45 & 3),
		Present:  lo>>47&1 != 0,
	}
}

// The 64-bit TSS (SDM 7.7): offsets of its fields and its size without an
// I/O permission bitmap.
const (
	TSSOffRSP0     = 0x04 // RSP0..RSP2, 8 bytes each
	TSSOffIST1     = 0x24 // IST1..IST7, 8 bytes each
	TSSOffIOPBBase = 0x66 // 16-bit offset of the I/O permission bitmap
	TSSHeaderSize  = 0x68
	// IOBitmapSize covers every port, one bit each.
	IOBitmapSize = 65536 / 8
)

// TSS is the 64-bit task-state segment's header: the privilege-level
// stacks, the interrupt stacks, and where the I/O bitmap starts.
type TSS struct {
	RSP      [3]uint64 // RSP0..RSP2
	IST      [7]uint64 // IST1..IST7: IST[0] is IST1
	IOPBBase uint16    // offset from the TSS base; >= the limit means no bitmap
}

// Put writes the header into b, which must hold at least TSSHeaderSize
// bytes; the reserved fields are cleared.
func (t *TSS) Put(b []byte) error {
	if len(b) < TSSHeaderSize {
		return fmt.Errorf("TSS header: %d bytes, need %d", len(b), TSSHeaderSize)
	}
	le := binary.LittleEndian
	clear(b[:TSSHeaderSize])
	for i, v := range t.RSP {
		le.PutUint64(b[TSSOffRSP0+8*i:], v)
	}
	for i, v := range t.IST {
		le.PutUint64(b[TSSOffIST1+8*i:], v)
	}
	le.PutUint16(b[TSSOffIOPBBase:], t.IOPBBase)
	return nil
}

// DecodeTSS reads a TSS header from b.
func DecodeTSS(b []byte) (TSS, error) {
	if len(b) < TSSHeaderSize {
		return TSS{}, fmt.Errorf("TSS header: %d bytes, need %d", len(b), TSSHeaderSize)
	}
	le := binary.LittleEndian
	var t TSS
	for i := range t.RSP {
		t.RSP[i] = le.Uint64(b[TSSOffRSP0+8*i:])
	}
	for i := range t.IST {
		t.IST[i] = le.Uint64(b[TSSOffIST1+8*i:])
	}
	t.IOPBBase = le.Uint16(b[TSSOffIOPBBase:])
	return t, nil
}

// UnusableLDT is the LDTR of a guest without an LDT, as KVM expects it.
func UnusableLDT() hv.Segment { return hv.Segment{Unusable: 1, Type: TypeLDT, Present: 1} }

// lowFields are the fields of a descriptor's low quadword.
type lowFields struct {
	base                      uint64 // bits 0..31 only
	limit                     uint32
	typ, dpl                  uint8
	s, present, avl, l, db, g bool
}

func encodeLow(base uint64, limit uint32, typ uint8, s bool, dpl uint8, present, avl, l, db, g bool) uint64 {
	return uint64(limit&0xffff) | (base&0xffffff)<<16 | uint64(typ&0xf)<<40 | uint64(b2u(s))<<44 |
		uint64(dpl&3)<<45 | uint64(b2u(present))<<47 | uint64(limit>>16&0xf)<<48 | uint64(b2u(avl))<<52 |
		uint64(b2u(l))<<53 | uint64(b2u(db))<<54 | uint64(b2u(g))<<55 | (base>>24&0xff)<<56
}

func decodeLow(q uint64) lowFields {
	return lowFields{
		base:    q>>16&0xffffff | q>>56<<24,
		limit:   uint32(q&0xffff | q>>48&0xf<<16),
		typ:     uint8(q >> 40 & 0xf),
		s:       q>>44&1 != 0,
		dpl:     uint8(q >> 45 & 3),
		present: q>>47&1 != 0,
		avl:     q>>52&1 != 0,
		l:       q>>53&1 != 0,
		db:      q>>54&1 != 0,
		g:       q>>55&1 != 0,
	}
}

// scaledLimit is the byte limit the CPU caches for a raw limit.
func scaledLimit(raw uint32, g bool) uint32 {
	raw &= 0xfffff
	if g {
		return raw<<12 | 0xfff
	}
	return raw
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
