package desc

import (
	"bytes"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// The golden quadwords are the flat segments every 64-bit OS uses (Linux's
// GDT_ENTRY_INIT(0xa09b/0xc093/0xa0fb/0xc0f3, 0, 0xfffff)).
func TestDescriptorEncode(t *testing.T) {
	cases := []struct {
		name string
		d    Descriptor
		want uint64
		seg  hv.Segment
	}{
		{"kernel code", Code64(0), 0x00af9b000000ffff,
			hv.Segment{Selector: 0x08, Limit: 0xffffffff, Type: 11, Present: 1, S: 1, L: 1, G: 1}},
		{"kernel data", Data(0), 0x00cf93000000ffff,
			hv.Segment{Selector: 0x08, Limit: 0xffffffff, Type: 3, Present: 1, S: 1, DB: 1, G: 1}},
		{"user code", Code64(3), 0x00affb000000ffff,
			hv.Segment{Selector: 0x08, Limit: 0xffffffff, Type: 11, Present: 1, S: 1, L: 1, G: 1, DPL: 3}},
		{"user data", Data(3), 0x00cff3000000ffff,
			hv.Segment{Selector: 0x08, Limit: 0xffffffff, Type: 3, Present: 1, S: 1, DB: 1, G: 1, DPL: 3}},
		{"byte granular with a base", Descriptor{Base: 0x12345678, Limit: 0xabcde, Type: TypeDataRW, S: true, Present: true, AVL: true},
			0x121a93345678bcde, hv.Segment{Selector: 0x08, Base: 0x12345678, Limit: 0xabcde, Type: 3, Present: 1, S: 1, AVL: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.d.Encode(); got != c.want {
				t.Fatalf("Encode = %#016x, want %#016x", got, c.want)
			}
			if got := DecodeDescriptor(c.want); got != c.d {
				t.Fatalf("Decode = %+v, want %+v", got, c.d)
			}
			if got := c.d.Segment(0x08); got != c.seg {
				t.Fatalf("Segment = %+v, want %+v", got, c.seg)
			}
		})
	}
}

func TestTSSDescriptor(t *testing.T) {
	d := NewTSSDescriptor(0xffff_8000_1234_5000, 0x68+IOBitmapSize+1)
	e := d.Encode()
	// Limit 0x2068, base split over bits 16-39, 56-63 and the high quadword.
	if e[0] != 0x12_0089_345000_2068 || e[1] != 0xffff8000 {
		t.Fatalf("Encode = %#x %#x", e[0], e[1])
	}
	back, ok := DecodeTSSDescriptor(e[0], e[1])
	if !ok || back != d {
		t.Fatalf("Decode = %+v %v, want %+v", back, ok, d)
	}
	tr := d.TR(0x28)
	want := hv.Segment{Base: d.Base, Limit: 0x2068, Selector: 0x28, Type: TypeTSSBusy, Present: 1}
	if tr != want {
		t.Fatalf("TR = %+v, want %+v", tr, want)
	}
	if _, ok := DecodeTSSDescriptor(Code64(0).Encode(), 0); ok {
		t.Fatal("a code segment decoded as a TSS")
	}
}

func TestGate(t *testing.T) {
	g := InterruptGate(0xffffffff_81234567, 0x08, 1, 3)
	e := g.Encode()
	if e[0] != 0x8123_ee01_0008_4567 || e[1] != 0xffffffff {
		t.Fatalf("Encode = %#x %#x", e[0], e[1])
	}
	if back := DecodeGate(e[0], e[1]); back != g {
		t.Fatalf("Decode = %+v, want %+v", back, g)
	}
}

func TestTSS(t *testing.T) {
	ts := TSS{RSP: [3]uint64{1, 2, 3}, IST: [7]uint64{11, 12, 13, 14, 15, 16, 17}, IOPBBase: TSSHeaderSize}
	b := bytes.Repeat([]byte{0xee}, TSSHeaderSize+1)
	if err := ts.Put(b); err != nil {
		t.Fatal(err)
	}
	// Spot checks at the SDM's offsets, then the reserved fields are zero.
	if b[0x04] != 1 || b[0x14] != 3 || b[0x24] != 11 || b[0x54] != 17 || b[0x66] != 0x68 || b[TSSHeaderSize] != 0xee {
		t.Fatalf("TSS bytes % x", b)
	}
	for _, off := range []int{0, 1, 2, 3, 0x1c, 0x23, 0x5c, 0x65} {
		if b[off] != 0 {
			t.Fatalf("reserved byte %#x = %#x", off, b[off])
		}
	}
	back, err := DecodeTSS(b)
	if err != nil || back != ts {
		t.Fatalf("DecodeTSS = %+v, %v", back, err)
	}
	if err := ts.Put(make([]byte, 10)); err == nil {
		t.Fatal("Put into 10 bytes succeeded")
	}
	if _, err := DecodeTSS(make([]byte, 10)); err == nil {
		t.Fatal("DecodeTSS of 10 bytes succeeded")
	}
}

func TestTables(t *testing.T) {
	gdt := NewGDT()
	kc := gdt.Add(Code64(0))
	ud := gdt.Add(Data(3))
	tss := gdt.AddTSS(NewTSSDescriptor(0x1000, 0x68))
	if kc != 0x08 || ud != 0x13 || tss != 0x18 || gdt.Len() != 40 {
		t.Fatalf("selectors %v %v %v, size %d", kc, ud, tss, gdt.Len())
	}
	if dt := gdt.DTable(0x1000); dt.Limit != 39 || dt.Base != 0x1000 {
		t.Fatalf("GDTR %+v", dt)
	}
	b := gdt.Bytes()
	if DecodeDescriptor(le64(b[8:])) != Code64(0) || DecodeDescriptor(le64(b[16:])) != Data(3) {
		t.Fatal("GDT bytes do not decode to what was added")
	}
	var idt IDT
	idt[3] = InterruptGate(0x10000, kc, 1, 3)
	ib := idt.Bytes()
	if len(ib) != 4096 || DecodeGate(le64(ib[48:]), le64(ib[56:])) != idt[3] || DecodeGate(le64(ib[0:]), 0).Present {
		t.Fatal("IDT bytes do not decode to the gates")
	}
	if idt.DTable(0x2000).Limit != 4095 {
		t.Fatal("IDT limit")
	}
}

func le64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// FuzzDecode: every bit pattern decodes, and encoding what was decoded
// gives the same bits back for the fields the types carry.
func FuzzDecode(f *testing.F) {
	f.Add(uint64(0x00af9b000000ffff), uint64(0))
	f.Add(uint64(0x8123ee0100084567), uint64(0xffffffff))
	f.Fuzz(func(t *testing.T, lo, hi uint64) {
		if got := DecodeDescriptor(lo).Encode(); got != lo {
			t.Fatalf("descriptor %#x re-encodes as %#x", lo, got)
		}
		g := DecodeGate(lo, hi)
		const gateBits = 0xffff_ef07_ffff_ffff // reserved bits 35-39 and 44 are dropped
		if e := g.Encode(); e[0] != lo&gateBits || e[1] != hi&0xffffffff {
			t.Fatalf("gate %#x %#x re-encodes as %#x", lo, hi, e)
		}
		if d, ok := DecodeTSSDescriptor(lo, hi); ok {
			// AVL, L, DB and G (bits 52-55) are not TSS fields; the high
			// quadword's upper half is reserved.
			if e := d.Encode(); e[0] != lo&^(0xf<<52) || e[1] != hi&0xffffffff {
				t.Fatalf("TSS descriptor %#x %#x re-encodes as %#x", lo, hi, e)
			}
		}
	})
}
