package asm_test

import (
	"encoding/binary"
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"golang.org/x/arch/x86/x86asm"
)

// FuzzRoundTrip reads fuzz input as a program: per instruction, a family
// index and then the family's operand choices (register, memory form,
// immediate, lock, ...). It emits the program in one Assembler at a fuzzed
// origin, assembles it, and decodes every instruction back to compare it
// with the request; the listing must show the same instructions.
func FuzzRoundTrip(f *testing.F) {
	fams := families()
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0xFF, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	for i := range fams {
		// One seed per family, with varied choices after the index.
		f.Add([]byte{0, 0, byte(i), byte(3 * i), byte(7 * i), 1, 2, 3, 4, byte(i), 5})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &picker{fuzzing: true, data: data}
		origin := uint64(p.pick(256)) << 12
		if p.pick(2) == 1 {
			origin |= 0xFFFF_8000_0000_0000 // kernel half: sign matters
		}
		a := asm.New(origin)
		type emitted struct {
			c          tc
			l          labels
			start, end int
		}
		var prog []emitted
		for len(p.data) > 0 && len(prog) < 64 {
			c := fams[p.pick(len(fams))].gen(p)
			l, start, end := emitCase(a, &c)
			prog = append(prog, emitted{c, l, start, end})
		}
		code, err := a.Assemble()
		if err != nil {
			t.Fatalf("assemble: %v", err)
		}
		for _, e := range prog {
			if err := e.c.verify(a, e.l, origin+uint64(e.start), code[e.start:e.end]); err != nil {
				t.Fatalf("%s: %v", e.c.name, err)
			}
		}
		lines, err := a.Listing()
		if err != nil {
			t.Fatalf("listing: %v", err)
		}
		if len(lines) != len(prog) {
			t.Fatalf("listing has %d lines for %d instructions", len(lines), len(prog))
		}
		dis := asm.Disasm(code, origin)
		if len(dis) != len(prog) {
			t.Fatalf("Disasm found %d instructions, want %d", len(dis), len(prog))
		}
		for i, l := range lines {
			if l.PC != origin+uint64(prog[i].start) || l.Text != dis[i].Text || l.LineNo == 0 {
				t.Fatalf("listing line %d = %v, want PC %#x and text %q", i, l, origin+uint64(prog[i].start), dis[i].Text)
			}
		}
	})
}

// FuzzInvalidOperands calls instruction methods with arbitrary operands,
// including invalid registers, sizes, scales and foreign labels. Whatever
// it is given, the Assembler must not panic; a call that records no error
// must emit exactly one instruction that decodes, and a call that records
// one must emit nothing.
func FuzzInvalidOperands(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 1, 2, 2, 5, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{3, 2, 200, 7, 9, 9, 9, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Fuzz(func(t *testing.T, data []byte) {
		other := asm.New(0)
		foreign := other.Here()
		a := asm.New(0x1000)
		own := a.Here()
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		imm := func() int64 {
			var b [8]byte
			for i := range b[:next()%9] {
				b[i] = next()
			}
			return int64(binary.LittleEndian.Uint64(b[:]))
		}
		operand := func() asm.Operand {
			switch next() % 5 {
			case 0:
				return nil
			case 1, 2:
				return asm.Reg(next() % 70)
			case 3:
				return asm.Imm(imm())
			}
			m := asm.Mem{Base: asm.Reg(next() % 70), Index: asm.Reg(next() % 70), Scale: next() % 10, Disp: int32(imm()), Size: int(next() % 10)}
			switch next() % 4 {
			case 1:
				m.Label = own
			case 2:
				m.Label, m.Base, m.Index = own, asm.NoReg, asm.NoReg
			case 3:
				m.Label, m.Base, m.Index = foreign, asm.NoReg, asm.NoReg
			}
			return m
		}
		reg := func() asm.Reg { return asm.Reg(next() % 70) }
		mem := func() asm.Mem { m, _ := operand().(asm.Mem); return m }
		calls := []func(){
			func() { a.Mov(operand(), operand()) },
			func() { a.Add(operand(), operand()) },
			func() { a.Test(operand(), operand()) },
			func() { a.Xchg(operand(), operand()) },
			func() { a.Shl(operand(), operand()) },
			func() { a.Bts(operand(), operand()) },
			func() { a.Inc(operand()) },
			func() { a.Push(operand()) },
			func() { a.Pop(operand()) },
			func() { a.JmpInd(operand()) },
			func() { a.Ltr(operand()) },
			func() { a.Setcc(asm.Cond(next()%20), operand()) },
			func() { a.Movzx(reg(), operand()) },
			func() { a.Movsxd(reg(), operand()) },
			func() { a.Imul3(reg(), operand(), int32(imm())) },
			func() { a.Cmovcc(asm.Cond(next()%20), reg(), operand()) },
			func() { a.In(reg(), operand()) },
			func() { a.Out(operand(), reg()) },
			func() { a.Cmpxchg(operand(), reg()) },
			func() { a.Shld(operand(), reg(), operand()) },
			func() { a.Lea(reg(), mem()) },
			func() { a.Lidt(mem()) },
			func() { a.MovAbs(reg(), uint64(imm())) },
			func() { a.MovToCR(asm.CReg(next()%10), reg()) },
			func() { a.MovFromDR(reg(), asm.DReg(next()%10)) },
			func() { a.Bswap(reg()) },
			func() { a.Lock() },
			func() { a.Rep() },
		}
		for len(data) > 0 {
			start := a.Len()
			calls[int(next())%len(calls)]()
			if a.Err() != nil {
				if a.Len() != start {
					t.Fatalf("failed call emitted %d bytes: %v", a.Len()-start, a.Err())
				}
				a = asm.New(0x1000) // continue from a clean Assembler
				own = a.Here()
				continue
			}
			if a.Len() == start {
				continue // Lock or Rep: nothing yet
			}
			code, err := a.Assemble()
			if err != nil {
				// Only label range problems are found this late, and none
				// of the calls above can produce them.
				t.Fatalf("assemble: %v", err)
			}
			b := code[start:]
			inst, err := x86asm.Decode(b, 64)
			if err != nil || inst.Op == 0 || inst.Len != len(b) {
				t.Fatalf("emitted % x, which does not decode as one instruction (%v, %v)", b, inst, err)
			}
		}
	})
}
