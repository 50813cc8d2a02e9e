package a64_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/a64"
)

// here returns the caller's line, for checking error attribution.
func here() int {
	_, _, line, _ := runtime.Caller(1)
	return line
}

// TestInvalidOperands: each invalid call records an *Error naming the
// method and this file's line, emits nothing, and later calls emit nothing
// more into the error (the first error is kept).
func TestInvalidOperands(t *testing.T) {
	cases := []struct {
		name string
		call func(a *a64.Assembler)
		msg  string
	}{
		{"Add", func(a *a64.Assembler) { a.Add(a64.X1, a64.X2, a64.Imm(4097)) }, "not 0..4095"},
		{"Add", func(a *a64.Assembler) { a.Add(a64.X1, a64.W2, a64.Imm(1)) }, "width"},
		{"Add", func(a *a64.Assembler) { a.Add(a64.X1, a64.X2, a64.Shifted(a64.X3, a64.ROR, 1)) }, "shift ror"},
		{"Add", func(a *a64.Assembler) { a.Add(a64.X1, a64.XZR, a64.Imm(1)) }, "stack pointer"},
		{"Add", func(a *a64.Assembler) { a.Add(a64.X1, a64.X2, a64.Shifted(a64.X3, a64.LSL, 64)) }, "shift amount"},
		{"Adds", func(a *a64.Assembler) { a.Adds(a64.SP, a64.X2, a64.Imm(1)) }, "zero register"},
		{"Sub", func(a *a64.Assembler) { a.Sub(a64.X1, a64.X2, a64.Imm(-1)) }, "not 0..4095"},
		{"Cmp", func(a *a64.Assembler) { a.Cmp(a64.X1, nil) }, "not an Imm"},
		{"And", func(a *a64.Assembler) { a.And(a64.X1, a64.X2, a64.Imm(0x1234)) }, "not a bitmask immediate"},
		{"Orr", func(a *a64.Assembler) { a.Orr(a64.W1, a64.W2, a64.Imm(1<<32)) }, "not a bitmask immediate"},
		{"Tst", func(a *a64.Assembler) { a.Tst(a64.SP, a64.Imm(1)) }, "zero register"},
		{"Movz", func(a *a64.Assembler) { a.Movz(a64.W1, 1, 32) }, "multiple of 16"},
		{"Movk", func(a *a64.Assembler) { a.Movk(a64.X1, 1, 8) }, "multiple of 16"},
		{"Mov", func(a *a64.Assembler) { a.Mov(a64.W1, a64.Imm(1<<32)) }, "does not fit"},
		{"Mov", func(a *a64.Assembler) { a.Mov(a64.SP, a64.Imm(1)) }, "zero register"},
		{"Mov", func(a *a64.Assembler) { a.Mov(a64.X1, a64.W2) }, "width"},
		{"Lsl", func(a *a64.Assembler) { a.Lsl(a64.W1, a64.W2, a64.Imm(32)) }, "out of range"},
		{"Madd", func(a *a64.Assembler) { a.Madd(a64.X1, a64.X2, a64.SP, a64.X3) }, "zero register"},
		{"Cset", func(a *a64.Assembler) { a.Cset(a64.X1, a64.AL) }, "cannot be used"},
		{"Csel", func(a *a64.Assembler) { a.Csel(a64.X1, a64.X2, a64.X3, 16) }, "invalid condition"},
		{"Ldr", func(a *a64.Assembler) { a.Ldr(a64.X1, a64.Ptr(a64.X2, 260)) }, "neither"},
		{"Ldr", func(a *a64.Assembler) { a.Ldr(a64.X1, a64.Ptr(a64.X2, 8*4096)) }, "neither"},
		{"Ldr", func(a *a64.Assembler) { a.Ldr(a64.X1, a64.Ptr(a64.XZR, 0)) }, "stack pointer"},
		{"Ldr", func(a *a64.Assembler) { a.Ldr(a64.X1, a64.PreIndex(a64.X1, 8)) }, "unpredictable"},
		{"Ldr", func(a *a64.Assembler) { a.Ldr(a64.X1, a64.PostIndex(a64.X2, 256)) }, "out of range"},
		{"Str", func(a *a64.Assembler) { a.Str(a64.W3, a64.PostIndex(a64.X3, 4)) }, "unpredictable"},
		{"Ldr", func(a *a64.Assembler) { a.Ldr(a64.X1, a64.Index(a64.X2, a64.X3, a64.ExtUXTW, false)) }, "does not suit"},
		{"Ldr", func(a *a64.Assembler) { a.Ldr(a64.X1, a64.Ptr(a64.W2, 0)) }, "width"},
		{"Ldrb", func(a *a64.Assembler) { a.Ldrb(a64.X1, a64.Ptr(a64.X2, 0)) }, "W register"},
		{"Ldp", func(a *a64.Assembler) { a.Ldp(a64.X1, a64.X1, a64.Ptr(a64.X2, 0)) }, "twice"},
		{"Stp", func(a *a64.Assembler) { a.Stp(a64.X1, a64.X2, a64.Ptr(a64.SP, 12)) }, "multiple of 8"},
		{"Stp", func(a *a64.Assembler) { a.Stp(a64.X1, a64.X2, a64.Ptr(a64.SP, 512)) }, "multiple of 8"},
		{"Stp", func(a *a64.Assembler) { a.Stp(a64.X1, a64.X2, a64.PreIndex(a64.X2, 16)) }, "unpredictable"},
		{"Stp", func(a *a64.Assembler) { a.Stp(a64.X1, a64.X2, a64.Index(a64.SP, a64.X3, a64.ExtLSL, false)) }, "not available"},
		{"Stxr", func(a *a64.Assembler) { a.Stxr(a64.W1, a64.X1, a64.X2) }, "overlaps"},
		{"Stxr", func(a *a64.Assembler) { a.Stxr(a64.X3, a64.X1, a64.X2) }, "width"},
		{"Cas", func(a *a64.Assembler) { a.Cas(a64.W1, a64.X2, a64.X3) }, "width"},
		{"Casal", func(a *a64.Assembler) { a.Casal(a64.X1, a64.X2, a64.XZR) }, "stack pointer"},
		{"Casa", func(a *a64.Assembler) { a.Casa(a64.SP, a64.X2, a64.X3) }, "zero register"},
		{"Casl", func(a *a64.Assembler) { a.Casl(a64.X1, a64.X2, a64.W3) }, "width"},
		{"Casb", func(a *a64.Assembler) { a.Casb(a64.X1, a64.W2, a64.X3) }, "take W registers"},
		{"Casalh", func(a *a64.Assembler) { a.Casalh(a64.W1, a64.X2, a64.X3) }, "take W registers"},
		{"Caslb", func(a *a64.Assembler) { a.Caslb(a64.W1, a64.W2, a64.W3) }, "width"},
		{"Casah", func(a *a64.Assembler) { a.Casah(a64.W1, a64.WSP, a64.X3) }, "zero register"},
		{"Casp", func(a *a64.Assembler) { a.Casp(a64.X1, a64.X2, a64.X4, a64.X5, a64.X6) }, "must be even-numbered"},
		{"Caspa", func(a *a64.Assembler) { a.Caspa(a64.X0, a64.X1, a64.X3, a64.X4, a64.X6) }, "must be even-numbered"},
		{"Caspl", func(a *a64.Assembler) { a.Caspl(a64.X0, a64.X2, a64.X4, a64.X5, a64.X6) }, "next one after x0"},
		{"Caspal", func(a *a64.Assembler) { a.Caspal(a64.W0, a64.W1, a64.W4, a64.W4, a64.X6) }, "next one after w4"},
		{"Casp", func(a *a64.Assembler) { a.Casp(a64.W0, a64.W1, a64.X4, a64.X5, a64.X6) }, "width"},
		{"Casp", func(a *a64.Assembler) { a.Casp(a64.X30, a64.SP, a64.X4, a64.X5, a64.X6) }, "zero register"},
		{"Casp", func(a *a64.Assembler) { a.Casp(a64.X0, a64.X1, a64.X4, a64.X5, a64.XZR) }, "stack pointer"},
		{"Casp", func(a *a64.Assembler) { a.Casp(a64.X0, a64.X1, a64.X4, a64.X5, a64.W6) }, "width"},
		{"Tbz", func(a *a64.Assembler) { a.Tbz(a64.W1, 32, a.Here()) }, "out of range"},
		{"B", func(a *a64.Assembler) { a.B(nil) }, "nil label"},
		{"B", func(a *a64.Assembler) { a.B(a64.New(0).NewLabel()) }, "another Assembler"},
		{"Bcond", func(a *a64.Assembler) { a.Bcond(16, a.Here()) }, "invalid condition"},
		{"Br", func(a *a64.Assembler) { a.Br(a64.W1) }, "width"},
		{"Mrs", func(a *a64.Assembler) { a.Mrs(a64.X1, a64.OSLAR_EL1) }, "write-only"},
		{"Msr", func(a *a64.Assembler) { a.Msr(a64.CNTVCT_EL0, a64.X1) }, "read-only"},
		{"Mrs", func(a *a64.Assembler) { a.Mrs(a64.X1, a64.PMEVCNTR(31)) }, "no MRS/MSR encoding"},
		{"Msr", func(a *a64.Assembler) { a.Msr(a64.DBGBVR(16), a64.X1) }, "no MRS/MSR encoding"},
		{"Mrs", func(a *a64.Assembler) { a.Mrs(a64.W1, a64.SCTLR_EL1) }, "width"},
		{"MsrDAIFSet", func(a *a64.Assembler) { a.MsrDAIFSet(16) }, "out of range"},
		{"Dsb", func(a *a64.Assembler) { a.Dsb(0) }, "invalid barrier"},
		{"Align", func(a *a64.Assembler) { a.Align(12) }, "power of two"},
		{"Bind", func(a *a64.Assembler) { a.Bind(a.Here()) }, "already bound"},
	}
	for _, c := range cases {
		a := a64.New(0x1000)
		a.Nop()
		line := here() + 1
		c.call(a)
		var e *a64.Error
		if !errors.As(a.Err(), &e) {
			t.Errorf("%s (%s): no error", c.name, c.msg)
			continue
		}
		if e.Op != c.name || !strings.Contains(e.Msg, c.msg) {
			t.Errorf("%s: error %v, want op %s and %q", c.name, e, c.name, c.msg)
		}
		// The call is a closure in the table, so attribution names the
		// table line inside this file: check the file, and that the line is
		// within the table.
		if filepath.Base(e.File) != "error_test.go" || e.Line == 0 || e.Line >= line {
			t.Errorf("%s: error at %s:%d, want a line of the table in error_test.go", c.name, e.File, e.Line)
		}
		if c.name != "Bind" && a.Len() != 4 {
			t.Errorf("%s: emitted %d bytes after the error", c.name, a.Len()-4)
		}
		a.Nop()
		if _, err := a.Assemble(); err != e {
			t.Errorf("%s: Assemble returned %v, want the first error", c.name, err)
		}
	}
}

// TestErrorLine checks the exact line of an error from a direct call.
func TestErrorLine(t *testing.T) {
	a := a64.New(0)
	line := here() + 1
	a.Add(a64.X1, a64.X2, a64.Imm(5000))
	want := fmt.Sprintf("error_test.go:%d: a64: Add: immediate 5000", line)
	if err := a.Err(); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v, want prefix %q", err, want)
	}
	if a := a64.New(2); a.Err() == nil {
		t.Errorf("New(2) records no error for an unaligned origin")
	}
}

// TestBranchRange checks each label field at its exact range edges: the
// furthest reachable target assembles, one word further fails with a
// range error naming the branch's source line; an unaligned target and an
// unbound label fail too.
func TestBranchRange(t *testing.T) {
	cases := []struct {
		name     string
		emit     func(a *a64.Assembler, l *a64.Label)
		min, max int64 // reachable byte offsets
	}{
		{"Tbz", func(a *a64.Assembler, l *a64.Label) { a.Tbz(a64.X1, 3, l) }, -1 << 15, 1<<15 - 4},
		{"Cbz", func(a *a64.Assembler, l *a64.Label) { a.Cbz(a64.X1, l) }, -1 << 20, 1<<20 - 4},
		{"Bcond", func(a *a64.Assembler, l *a64.Label) { a.Bcond(a64.NE, l) }, -1 << 20, 1<<20 - 4},
		{"LdrLabel", func(a *a64.Assembler, l *a64.Label) { a.LdrLabel(a64.X1, l) }, -1 << 20, 1<<20 - 4},
		{"Adr", func(a *a64.Assembler, l *a64.Label) { a.Adr(a64.X1, l) }, -1 << 20, 1<<20 - 1},
		{"B", func(a *a64.Assembler, l *a64.Label) { a.B(l) }, -1 << 27, 1<<27 - 4},
	}
	for _, c := range cases {
		if testing.Short() && c.name == "B" {
			continue // 128 MiB buffers
		}
		step := int64(4)
		if c.name == "Adr" {
			step = 1
		}
		for _, off := range []int64{c.min, c.max, c.min - step, c.max + step} {
			c := c
			ok := off >= c.min && off <= c.max
			t.Run(c.name, func(t *testing.T) {
				w, pc, err := build(tc{name: c.name, emit: c.emit, rel: off}, 0)
				if ok {
					if err != nil {
						t.Fatalf("offset %d: %v", off, err)
					}
					text := a64.Text(w, pc)
					if want := " " + hexAddr(pc, off); !strings.HasSuffix(text, want) {
						t.Errorf("offset %d: %q does not end in %q", off, text, want)
					}
					return
				}
				var e *a64.Error
				if !errors.As(err, &e) || !strings.Contains(e.Msg, "out of range") || filepath.Base(e.File) != "error_test.go" {
					t.Errorf("offset %d: error %v, want an out-of-range error from error_test.go", off, err)
				}
			})
		}
	}
	a := a64.New(0)
	l := a.NewLabel()
	a.B(l)
	a.Space(2)
	a.Bind(l)
	if _, err := a.Assemble(); err == nil || !strings.Contains(err.Error(), "not word aligned") {
		t.Errorf("branch to an unaligned label: %v", err)
	}
	a = a64.New(0)
	a.Cbz(a64.X0, a.NewLabel())
	if _, err := a.Assemble(); err == nil || !strings.Contains(err.Error(), "never bound") {
		t.Errorf("branch to an unbound label: %v", err)
	}
}

func hexAddr(pc uint64, off int64) string { return fmt.Sprintf("%#x", pc+uint64(off)) }
