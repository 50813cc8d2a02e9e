package a64_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/a64"
)

// FuzzRoundTrip reads fuzz input as a program: per instruction, a family
// index and the family's operand choices. It emits the program into one
// Assembler at a fuzzed origin, with every label operand bound to the
// program's start, and decodes every word back to the requested
// instruction; the listing must show the same instructions, each
// attributed to this file.
func FuzzRoundTrip(f *testing.F) {
	fams := families()
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	for i := range fams {
		f.Add([]byte{0, byte(i), byte(3 * i), byte(7 * i), 1, 2, 3, 4, byte(i), 5, 0xff, 0x80, 9})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &picker{data: data}
		origin := uint64(p.pick(1<<16)) << 12
		a := a64.New(origin)
		start := a.Here()
		var prog []tc
		for len(p.data) > 0 && len(prog) < 64 {
			c := fams[p.pick(len(fams))].gen(p)
			c.rel = -int64(a.Len()) // the target is start
			at := a.Len()
			c.emit(a, start)
			if a.Len() != at+4 {
				t.Fatalf("%s (%s): emitted %d bytes: %v", c.name, c.want, a.Len()-at, a.Err())
			}
			prog = append(prog, c)
		}
		code, err := a.Assemble()
		if err != nil {
			t.Fatalf("assemble: %v", err)
		}
		lines, err := a.Listing()
		if err != nil || len(lines) != len(prog)+0 {
			t.Fatalf("listing: %d lines for %d instructions (%v)", len(lines), len(prog), err)
		}
		for i, c := range prog {
			pc := origin + uint64(4*i)
			w := binary.LittleEndian.Uint32(code[4*i:])
			if err := checkWord(c, w, pc); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if l := lines[i]; l.PC != pc || l.Text != a64.Text(w, pc) || !strings.HasSuffix(l.File, "forms_test.go") {
				t.Fatalf("listing line %d = %v", i, l)
			}
		}
	})
}

// FuzzInvalidOperands calls instruction methods with arbitrary register
// values (valid or not), immediates, shifts, conditions, addresses and
// system registers. The Assembler must not panic; a call that records no
// error must emit whole instructions that decode, and a call that records
// one must emit nothing.
func FuzzInvalidOperands(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0xC1, 0xC2, 5, 0, 0, 0, 1})
	f.Add([]byte{9, 0xff, 0x3f, 0xdf, 2, 2, 2, 2, 200, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &picker{data: data}
		a := a64.New(0x8000)
		r := func() a64.Reg { return a64.Reg(p.pick(256)) }
		imm := func() int64 {
			v := int64(0)
			for i := 0; i < 8; i++ {
				v = v<<8 | int64(p.pick(256))
			}
			if p.bool() {
				v >>= uint(p.pick(64))
			}
			return v
		}
		opnd := func() a64.Operand {
			switch p.pick(4) {
			case 0:
				return a64.Imm(imm())
			case 1:
				return r()
			case 2:
				return a64.Shifted(r(), a64.Shift(p.pick(6)), uint(p.pick(80)))
			}
			return nil
		}
		mem := func() a64.Mem {
			switch p.pick(4) {
			case 0:
				return a64.Ptr(r(), imm()>>uint(p.pick(64)))
			case 1:
				return a64.PreIndex(r(), int64(p.pick(600))-300)
			case 2:
				return a64.PostIndex(r(), int64(p.pick(600))-300)
			}
			return a64.Index(r(), r(), a64.Extend(p.pick(8)), p.bool())
		}
		labels := []*a64.Label{a.Here(), a.NewLabel(), nil, a64.New(0).NewLabel()}
		lbl := func() *a64.Label { return labels[p.pick(len(labels))] }
		sysNames := a64.SysRegNames()
		sys := func() a64.SysReg {
			if p.bool() {
				s, _ := a64.Sys(sysNames[p.pick(len(sysNames))])
				return s
			}
			return a64.SysReg{Op0: uint8(p.pick(256)), Op1: uint8(p.pick(16)), CRn: uint8(p.pick(32)), CRm: uint8(p.pick(32)), Op2: uint8(p.pick(16))}
		}
		calls := []func(){
			func() { a.Add(r(), r(), opnd()) }, func() { a.Subs(r(), r(), opnd()) }, func() { a.Cmp(r(), opnd()) },
			func() { a.And(r(), r(), opnd()) }, func() { a.Orr(r(), r(), opnd()) }, func() { a.Tst(r(), opnd()) },
			func() { a.Mov(r(), opnd()) }, func() { a.Movk(r(), uint16(imm()), uint(p.pick(70))) },
			func() { a.Lsl(r(), r(), opnd()) }, func() { a.Asr(r(), r(), opnd()) },
			func() { a.Madd(r(), r(), r(), r()) }, func() { a.Udiv(r(), r(), r()) },
			func() { a.Csel(r(), r(), r(), a64.Cond(p.pick(20))) }, func() { a.Cset(r(), a64.Cond(p.pick(20))) },
			func() { a.Ldr(r(), mem()) }, func() { a.Strb(r(), mem()) }, func() { a.Ldrh(r(), mem()) },
			func() { a.Ldp(r(), r(), mem()) }, func() { a.Stp(r(), r(), mem()) },
			func() { a.Stlxr(r(), r(), r()) }, func() { a.Ldar(r(), r()) },
			func() { a.Casal(r(), r(), r()) }, func() { a.Cas(r(), r(), r()) },
			func() { a.Casb(r(), r(), r()) }, func() { a.Casalh(r(), r(), r()) },
			func() { a.Casp(r(), r(), r(), r(), r()) }, func() { a.Caspal(r(), r(), r(), r(), r()) },
			func() { a.B(lbl()) }, func() { a.Bcond(a64.Cond(p.pick(20)), lbl()) }, func() { a.Tbnz(r(), uint(p.pick(80)), lbl()) },
			func() { a.Cbz(r(), lbl()) }, func() { a.LdrLabel(r(), lbl()) }, func() { a.Adr(r(), lbl()) },
			func() { a.Blr(r()) }, func() { a.Mrs(r(), sys()) }, func() { a.Msr(sys(), r()) },
			func() { a.MsrDAIFClr(uint8(p.pick(32))) }, func() { a.Dmb(a64.Barrier(p.pick(20))) },
		}
		for len(p.data) > 0 {
			before := a.Len()
			calls[p.pick(len(calls))]()
			if a.Err() != nil {
				if a.Len() != before {
					t.Fatalf("a failing call emitted %d bytes: %v", a.Len()-before, a.Err())
				}
				return
			}
			if n := a.Len() - before; n == 0 || n%4 != 0 {
				t.Fatalf("a call emitted %d bytes", n)
			}
		}
		a.Bind(labels[1])
		code, err := a.Assemble()
		if err != nil {
			return // e.g. a branch out of range cannot happen here, but errors are fine
		}
		for i := 0; i < len(code); i += 4 {
			if text := a64.Text(binary.LittleEndian.Uint32(code[i:]), 0x8000+uint64(i)); strings.HasPrefix(text, ".inst") {
				t.Fatalf("word %d (%x) does not decode", i/4, code[i:i+4])
			}
		}
	})
}
