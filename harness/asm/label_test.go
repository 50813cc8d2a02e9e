package asm_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"golang.org/x/arch/x86/x86asm"
)

// decodeAt decodes the instruction at offset off of code, placed at origin,
// and returns it with the absolute target of its branch or RIP-relative
// operand (0 if none).
func decodeAt(t *testing.T, code []byte, origin uint64, off int) (x86asm.Inst, uint64) {
	t.Helper()
	inst, err := x86asm.Decode(code[off:], 64)
	if err != nil {
		t.Fatalf("decode at %#x: %v", off, err)
	}
	end := origin + uint64(off+inst.Len)
	for _, a := range inst.Args {
		switch a := a.(type) {
		case x86asm.Rel:
			return inst, end + uint64(int64(a))
		case x86asm.Mem:
			if a.Base == x86asm.RIP {
				return inst, end + uint64(int64(int32(a.Disp)))
			}
		}
	}
	return inst, 0
}

func TestBranchSizing(t *testing.T) {
	// pad is the number of bytes between a label and a branch to it (for
	// backward) or between the branch and the label (for forward).
	for _, c := range []struct {
		name     string
		backward bool
		pad      int
		emit     func(a *asm.Assembler, l *asm.Label)
		wantLen  int
		wantErr  string
	}{
		// Backward: rel8 reaches -128 from the end of the 2-byte branch.
		{"jmp back -128", true, 126, func(a *asm.Assembler, l *asm.Label) { a.Jmp(l) }, 2, ""},
		{"jmp back -129", true, 127, func(a *asm.Assembler, l *asm.Label) { a.Jmp(l) }, 5, ""},
		{"jcc back -128", true, 126, func(a *asm.Assembler, l *asm.Label) { a.Jcc(asm.CondL, l) }, 2, ""},
		{"jcc back -129", true, 127, func(a *asm.Assembler, l *asm.Label) { a.Jcc(asm.CondL, l) }, 6, ""},
		{"loop back -128", true, 126, func(a *asm.Assembler, l *asm.Label) { a.Loop(l) }, 2, ""},
		{"loop back -129", true, 127, func(a *asm.Assembler, l *asm.Label) { a.Loop(l) }, 0, "Loop: target L1 is -129 bytes away"},
		{"jmpshort back -129", true, 127, func(a *asm.Assembler, l *asm.Label) { a.JmpShort(l) }, 0, "JmpShort: target L1 is -129 bytes away"},
		// Forward: always rel32, except the rel8-only forms, which reach +127.
		{"jmp fwd +0", false, 0, func(a *asm.Assembler, l *asm.Label) { a.Jmp(l) }, 5, ""},
		{"jmp fwd +1000", false, 1000, func(a *asm.Assembler, l *asm.Label) { a.Jmp(l) }, 5, ""},
		{"jccshort fwd +127", false, 127, func(a *asm.Assembler, l *asm.Label) { a.JccShort(asm.CondE, l) }, 2, ""},
		{"jccshort fwd +128", false, 128, func(a *asm.Assembler, l *asm.Label) { a.JccShort(asm.CondE, l) }, 0, "JccShort: target L1 is 128 bytes away"},
		{"jrcxz fwd +127", false, 127, func(a *asm.Assembler, l *asm.Label) { a.Jrcxz(l) }, 2, ""},
		{"loop fwd +128", false, 128, func(a *asm.Assembler, l *asm.Label) { a.Loop(l) }, 0, "Loop: target L1 is 128 bytes away"},
		{"call fwd", false, 3, func(a *asm.Assembler, l *asm.Label) { a.Call(l) }, 5, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			const origin uint64 = 0xFFFF_FFFF_8000_0000
			a := asm.New(origin)
			l := a.NewLabel()
			var at int
			if c.backward {
				a.Bind(l)
				a.Space(c.pad, 0x90)
				at = a.Len()
				c.emit(a, l)
			} else {
				at = a.Len()
				c.emit(a, l)
				a.Space(c.pad, 0x90)
				a.Bind(l)
			}
			code, err := a.Assemble()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "label_test.go:") {
					t.Fatalf("error %v, want one containing %q and label_test.go", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			inst, target := decodeAt(t, code, origin, at)
			if inst.Len != c.wantLen {
				t.Errorf("branch is %d bytes (%v), want %d", inst.Len, inst, c.wantLen)
			}
			if want, _ := a.Addr(l); target != want {
				t.Errorf("branch target %#x, want %#x", target, want)
			}
		})
	}
}

// TestLabelFixups checks every kind of label reference, at an origin in the
// kernel half so that sign and width mistakes show.
func TestLabelFixups(t *testing.T) {
	const origin uint64 = 0xFFFF_8000_0010_0000
	a := asm.New(origin)
	fwd, back := a.NewLabel(), a.Here()
	if got, ok := a.Addr(back); !ok || got != origin {
		t.Fatalf("Addr(Here()) = %#x, %v; want %#x", got, ok, origin)
	}
	a.Nop()
	offMovBack := a.Len()
	a.MovLabel(asm.RAX, back)
	offMovFwd := a.Len()
	a.MovLabel(asm.R11, fwd)
	offLea := a.Len()
	a.Lea(asm.RSI, asm.Rel(0, fwd))
	offRelDisp := a.Len()
	a.Mov(asm.Mem{Label: fwd, Disp: 8, Size: 4}, asm.Imm(0x12345678)) // the imm follows the disp
	offJmp := a.Len()
	a.Jmp(fwd)
	offCall := a.Len()
	a.Call(back)
	a.Align(16, 0xCC)
	if a.PC()%16 != 0 {
		t.Fatalf("PC %#x not aligned after Align(16)", a.PC())
	}
	a.Bind(fwd)
	fwdAddr := a.PC()
	offQuad := a.Len()
	a.QuadLabel(fwd)
	a.QuadLabel(back)
	code, err := a.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Addr(fwd); got != fwdAddr {
		t.Errorf("Addr(fwd) = %#x, want %#x", got, fwdAddr)
	}
	imm := func(off int) uint64 { return binary.LittleEndian.Uint64(code[off+2:]) }
	if got := imm(offMovBack); got != origin {
		t.Errorf("MovLabel(back) loads %#x, want %#x", got, origin)
	}
	if got := imm(offMovFwd); got != fwdAddr {
		t.Errorf("MovLabel(fwd) loads %#x, want %#x", got, fwdAddr)
	}
	for _, c := range []struct {
		name string
		off  int
		want uint64
	}{
		{"Lea Rel", offLea, fwdAddr},
		{"Mov Rel+8 with imm32", offRelDisp, fwdAddr + 8},
		{"Jmp forward", offJmp, fwdAddr},
		{"Call backward", offCall, origin},
	} {
		if _, target := decodeAt(t, code, origin, c.off); target != c.want {
			t.Errorf("%s: target %#x, want %#x", c.name, target, c.want)
		}
	}
	if got := binary.LittleEndian.Uint64(code[offQuad:]); got != fwdAddr {
		t.Errorf("QuadLabel(fwd) = %#x, want %#x", got, fwdAddr)
	}
	if got := binary.LittleEndian.Uint64(code[offQuad+8:]); got != origin {
		t.Errorf("QuadLabel(back) = %#x, want %#x", got, origin)
	}

	// Assemble again after adding code: earlier fixups stay right and the
	// new one resolves.
	a.Jmp(back)
	code2, err := a.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	if string(code2[:len(code)]) != string(code) {
		t.Error("reassembling changed earlier bytes")
	}
	if _, target := decodeAt(t, code2, origin, len(code)); target != origin {
		t.Errorf("jmp after reassembly targets %#x, want %#x", target, origin)
	}
}

func TestLabelErrors(t *testing.T) {
	t.Run("unbound", func(t *testing.T) {
		a := asm.New(0)
		l := a.NewLabel()
		a.Nop()
		a.Jcc(asm.CondE, l) // the error points here
		line := callerLine() - 1
		a.Hlt()
		_, err := a.Assemble()
		wantErr(t, err, "Jcc", line, "L1 is never bound")
		if a.Err() != err {
			t.Errorf("Err() = %v, want the Assemble error", a.Err())
		}
	})
	t.Run("double bind", func(t *testing.T) {
		a := asm.New(0x1000)
		l := a.Here()
		a.Nop()
		a.Bind(l)
		line := callerLine() - 1
		_, err := a.Assemble()
		wantErr(t, err, "Bind", line, "already bound at 0x1000")
		if got, _ := a.Addr(l); got != 0x1000 {
			t.Errorf("second Bind moved the label to %#x", got)
		}
	})
	t.Run("foreign label", func(t *testing.T) {
		a, b := asm.New(0), asm.New(0)
		l := b.Here()
		a.Jmp(l)
		line := callerLine() - 1
		wantErr(t, a.Err(), "Jmp", line, "was not created by this Assembler")
		if a.Len() != 0 {
			t.Errorf("failed Jmp emitted %d bytes", a.Len())
		}
		if _, ok := a.Addr(l); ok {
			t.Error("Addr of a foreign label succeeded")
		}
	})
	t.Run("nil label", func(t *testing.T) {
		a := asm.New(0)
		a.QuadLabel(nil)
		line := callerLine() - 1
		wantErr(t, a.Err(), "QuadLabel", line, "nil label")
	})
}
