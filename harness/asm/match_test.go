package asm_test

import (
	"fmt"
	"slices"

	"github.com/kvmspec/kvmspec/harness/asm"
	"golang.org/x/arch/x86/x86asm"
)

// This file maps our operands onto x86asm's and compares an x86asm
// decoding with the instruction a test case asked for.

// Placeholder labels in case tables. A case is built before the Assembler
// that will emit it, so its operands name these and labels.resolve swaps in
// the real ones: self is bound at the instruction, next right after it.
var (
	selfL = &asm.Label{}
	nextL = &asm.Label{}
)

// labels are the real labels standing in for the placeholders.
type labels struct{ self, next *asm.Label }

func (l labels) label(x *asm.Label) *asm.Label {
	switch x {
	case selfL:
		return l.self
	case nextL:
		return l.next
	}
	return x
}

// op resolves placeholders in an operand.
func (l labels) op(o asm.Operand) asm.Operand {
	if m, ok := o.(asm.Mem); ok && m.Label != nil {
		m.Label = l.label(m.Label)
		return m
	}
	return o
}

// relTo is an expected branch displacement to a (placeholder) label.
type relTo struct{ l *asm.Label }

// addrOf is an expected immediate holding a (placeholder) label's address.
type addrOf struct{ l *asm.Label }

// xreg maps a Reg onto x86asm's register numbering.
func xreg(r asm.Reg) x86asm.Reg {
	n := x86asm.Reg(r.Num())
	switch r.Size() {
	case 8:
		return x86asm.RAX + n
	case 4:
		return x86asm.EAX + n
	case 2:
		return x86asm.AX + n
	case 1:
		// x86asm numbers AH..BH before SPL..DIL; we have no AH..BH, so
		// numbers 4..7 are always SPL..DIL.
		if n >= 4 && n < 8 {
			return x86asm.SPB + n - 4
		}
		if n >= 8 {
			return x86asm.R8B + n - 8
		}
		return x86asm.AL + n
	}
	return 0
}

// site is where a decoded instruction sits, to resolve label references.
type site struct {
	a  *asm.Assembler
	l  labels
	pc uint64 // address of the instruction
	n  int    // its length
}

func (s site) addr(l *asm.Label) uint64 {
	v, ok := s.a.Addr(s.l.label(l))
	if !ok {
		panic(fmt.Sprintf("label %v unbound", l))
	}
	return v
}

// want converts an expected operand of a case into the x86asm argument a
// correct decoding has. Mem.Size is not part of x86asm.Mem; it is checked
// against Inst.MemBytes separately.
func (s site) want(w any) x86asm.Arg {
	switch w := w.(type) {
	case asm.Reg:
		return xreg(w)
	case x86asm.Reg:
		return w
	case asm.Imm:
		return x86asm.Imm(w)
	case asm.Mem:
		m := x86asm.Mem{Base: xreg(w.Base), Disp: int64(w.Disp)}
		if w.Index != asm.NoReg {
			m.Index, m.Scale = xreg(w.Index), max(w.Scale, 1)
		}
		if w.Label != nil {
			m.Base = x86asm.RIP
			m.Disp = int64(s.addr(w.Label)) + int64(w.Disp) - int64(s.pc+uint64(s.n))
		}
		return m
	case relTo:
		return x86asm.Rel(int64(s.addr(w.l)) - int64(s.pc+uint64(s.n)))
	case addrOf:
		return x86asm.Imm(s.addr(w.l))
	case x86asm.Arg:
		return w
	}
	panic(fmt.Sprintf("unexpected operand %T", w))
}

// normArg removes differences in how x86asm spells equal operands: the
// implied segment of string operands, the scale it reports for SIB forms
// without an index, and disp32, which x86asm zero-extends (Disp 0xfffffff0
// for -16) although the CPU sign-extends it.
func normArg(a x86asm.Arg) x86asm.Arg {
	if m, ok := a.(x86asm.Mem); ok {
		m.Segment = 0
		m.Disp = int64(int32(m.Disp))
		if m.Index == 0 {
			m.Scale = 0
		}
		return m
	}
	return a
}

// argEqual compares a decoded argument with an expected one. Immediates are
// compared at immSize bytes when it is 1, 2 or 4, because x86asm shows the
// same imm8 as 255 in one form and -1 in another.
func argEqual(got, want x86asm.Arg, immSize int) bool {
	gi, ok1 := got.(x86asm.Imm)
	wi, ok2 := want.(x86asm.Imm)
	if ok1 && ok2 && immSize > 0 && immSize < 8 {
		mask := uint64(1)<<(8*immSize) - 1
		return uint64(gi)&mask == uint64(wi)&mask
	}
	return normArg(got) == normArg(want)
}

// visiblePrefixes returns the prefixes of inst that change its meaning
// beyond operand size: LOCK, REP, REPNE, and anything x86asm flags as
// ignored or stray (which a correct encoder never emits).
func visiblePrefixes(inst x86asm.Inst) []x86asm.Prefix {
	var out []x86asm.Prefix
	for _, p := range inst.Prefix {
		if p == 0 {
			break
		}
		if p.IsREX() && p&x86asm.PrefixIgnored == 0 {
			continue
		}
		if p&x86asm.PrefixImplicit != 0 {
			continue
		}
		out = append(out, p)
	}
	return out
}

// check compares a decoding with case c emitted at s.
func (c *tc) check(inst x86asm.Inst, s site) error {
	if inst.Op != c.op {
		return fmt.Errorf("decoded op %v, want %v", inst.Op, c.op)
	}
	var got []x86asm.Arg
	for _, a := range inst.Args {
		if a == nil {
			break
		}
		got = append(got, a)
	}
	want := make([]x86asm.Arg, len(c.args))
	for i, w := range c.args {
		want[i] = s.want(w)
	}
	if !c.argsMatch(got, want) && !(c.swap && len(got) == 2 && c.argsMatch([]x86asm.Arg{got[1], got[0]}, want)) {
		return fmt.Errorf("decoded args %v, want %v", got, want)
	}
	for _, w := range c.args {
		if m, ok := w.(asm.Mem); ok && m.Size != 0 && inst.MemBytes != 0 && inst.MemBytes != m.Size {
			return fmt.Errorf("decoded memory size %d, want %d", inst.MemBytes, m.Size)
		}
	}
	var wantPfx []x86asm.Prefix
	if c.lock {
		wantPfx = append(wantPfx, x86asm.PrefixLOCK)
	}
	if c.rep != 0 {
		wantPfx = append(wantPfx, c.rep)
	}
	if gotPfx := visiblePrefixes(inst); !slices.Equal(gotPfx, wantPfx) {
		return fmt.Errorf("decoded prefixes %v, want %v", gotPfx, wantPfx)
	}
	if c.n != 0 && s.n != c.n {
		return fmt.Errorf("encoded in %d bytes, want %d", s.n, c.n)
	}
	return nil
}

func (c *tc) argsMatch(got, want []x86asm.Arg) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !argEqual(got[i], want[i], c.imm) {
			return false
		}
	}
	return true
}

// emitCase emits c on a at the current PC and returns the site and bytes
// range of the instruction (valid after Assemble).
func emitCase(a *asm.Assembler, c *tc) (l labels, start, end int) {
	l = labels{self: a.Here(), next: a.NewLabel()}
	start = a.Len()
	c.emit(a, l)
	end = a.Len()
	a.Bind(l.next)
	return l, start, end
}

// runCase emits c alone at origin, assembles and decodes it, and reports
// any mismatch.
func runCase(c *tc, origin uint64) (code []byte, err error) {
	a := asm.New(origin)
	l, start, end := emitCase(a, c)
	code, err = a.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble: %v", err)
	}
	code = code[start:end]
	return code, c.verify(a, l, origin+uint64(start), code)
}

// verify decodes code, which c emitted at pc, and compares.
func (c *tc) verify(a *asm.Assembler, l labels, pc uint64, code []byte) error {
	if c.op == 0 { // x86asm cannot decode it: compare bytes
		if !slices.Equal(code, c.raw) {
			return fmt.Errorf("encoded % x, want % x", code, c.raw)
		}
		return nil
	}
	inst, err := x86asm.Decode(code, 64)
	if err != nil {
		return fmt.Errorf("% x does not decode: %v", code, err)
	}
	if inst.Len != len(code) {
		return fmt.Errorf("% x decodes as %d-byte %v, not one %d-byte instruction", code, inst.Len, inst, len(code))
	}
	if err := c.check(inst, site{a: a, l: l, pc: pc, n: len(code)}); err != nil {
		return fmt.Errorf("% x (%s): %v", code, x86asm.IntelSyntax(inst, pc, nil), err)
	}
	return nil
}
