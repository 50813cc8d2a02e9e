package asm_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
)

func TestListing(t *testing.T) {
	const origin = 0x7000
	a := asm.New(origin)
	type want struct {
		line  int
		text  string
		bytes int
	}
	var wants []want
	add := func(line int, text string, n int) { wants = append(wants, want{line, text, n}) }

	loop := a.Here()
	a.Mov(asm.RAX, asm.RCX)
	add(callerLine()-1, "mov rax, rcx", 3)
	a.Lock().Xadd(asm.Q(asm.RDI, 8), asm.RAX)
	add(callerLine()-1, "lock xadd qword ptr [rdi+0x8], rax", 6)
	a.Jcc(asm.CondNE, loop)
	add(callerLine()-1, "jnz 0x7000", 2)
	a.Vmcall()
	add(callerLine()-1, "vmcall", 3)
	a.Quad(0x1234)
	add(callerLine()-1, ".quad 0x1234", 8)
	a.Word(0xBEEF)
	add(callerLine()-1, ".word 0xbeef", 2)
	a.Long(7)
	add(callerLine()-1, ".long 0x7", 4)
	a.Byte(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	line := callerLine() - 1
	add(line, ".byte 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08", 8)
	add(line, ".byte 0x09, 0x0a", 2)
	a.Space(32, 0xCC)
	add(callerLine()-1, ".fill 32, 1, 0xcc", 32)
	a.Space(0, 0xCC) // nothing, and no line

	lines, err := a.Listing()
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != len(wants) {
		for _, l := range lines {
			t.Log(l)
		}
		t.Fatalf("%d lines, want %d", len(lines), len(wants))
	}
	pc := uint64(origin)
	for i, l := range lines {
		w := wants[i]
		if filepath.Base(l.File) != "listing_test.go" || l.LineNo != w.line {
			t.Errorf("line %d: source %s:%d, want listing_test.go:%d", i, l.File, l.LineNo, w.line)
		}
		if l.Text != w.text || len(l.Bytes) != w.bytes || l.PC != pc {
			t.Errorf("line %d: %#x %q (%d bytes), want %#x %q (%d bytes)", i, l.PC, l.Text, len(l.Bytes), pc, w.text, w.bytes)
		}
		if s := l.String(); !strings.Contains(s, w.text) || !strings.Contains(s, "asm/listing_test.go:") {
			t.Errorf("line %d: String() = %q", i, s)
		}
		pc += uint64(len(l.Bytes))
	}

	// SourceAt maps any byte of an instruction back to its call.
	for _, off := range []uint64{0, 2, 3, 8} {
		file, line, ok := a.SourceAt(origin + off)
		w := wants[0]
		if off >= 3 {
			w = wants[1]
		}
		if !ok || filepath.Base(file) != "listing_test.go" || line != w.line {
			t.Errorf("SourceAt(%#x) = %s:%d %v, want listing_test.go:%d", origin+off, file, line, ok, w.line)
		}
	}
	for _, pc := range []uint64{origin - 1, a.PC(), a.PC() + 100} {
		if _, _, ok := a.SourceAt(pc); ok {
			t.Errorf("SourceAt(%#x) succeeded outside the program", pc)
		}
	}
}

// TestListingError checks that Listing reports the assembly error.
func TestListingError(t *testing.T) {
	a := asm.New(0)
	a.Jmp(a.NewLabel())
	if _, err := a.Listing(); err == nil || !strings.Contains(err.Error(), "never bound") {
		t.Errorf("Listing error %v, want the unbound label", err)
	}
}

// emitViaHelper stands in for a helper package such as harness/guest.
func emitViaHelper(a *asm.Assembler) { a.Hlt() }

// TestSkipCallerPackage checks that a hidden package's frames are passed
// over. The only package at hand is this test package itself, so hiding
// it moves attribution to the testing package that called the test.
func TestSkipCallerPackage(t *testing.T) {
	a := asm.New(0)
	emitViaHelper(a)
	a.SkipCallerPackage(reflect.TypeOf(labels{}).PkgPath())
	a.SkipCallerPackage(reflect.TypeOf(labels{}).PkgPath()) // twice is harmless
	file, _, ok := a.SourceAt(0)
	if !ok || filepath.Base(file) != "testing.go" {
		t.Errorf("SourceAt with the test package hidden = %s, %v; want testing.go", file, ok)
	}
	a.Mov(asm.RAX, asm.Imm(1<<40))
	a.Mov(asm.EAX, asm.RAX)
	if e, ok := a.Err().(*asm.Error); !ok || filepath.Base(e.File) != "testing.go" {
		t.Errorf("error %v not attributed to testing.go", a.Err())
	}
}

func TestDisasm(t *testing.T) {
	a := asm.New(0x1000)
	a.Mov(asm.EAX, asm.Imm(1))
	a.Vmcall()
	a.Out(asm.DX, asm.AL)
	code, err := a.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	code = append(code, 0xE9, 0x00) // truncated jmp rel32
	lines := asm.Disasm(code, 0x1000)
	want := []struct {
		pc   uint64
		text string
	}{
		{0x1000, "mov eax, 0x1"},
		{0x1005, "vmcall"},
		{0x1008, "out dx, al"},
		{0x1009, ".byte 0xe9"},
	}
	if len(lines) != len(want) {
		t.Fatalf("Disasm gave %d lines, want %d: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		if lines[i].PC != w.pc || lines[i].Text != w.text || lines[i].File != "" {
			t.Errorf("line %d: %v, want %#x %s", i, lines[i], w.pc, w.text)
		}
	}
	if got := asm.Disasm(nil, 0); len(got) != 0 {
		t.Errorf("Disasm(nil) = %v", got)
	}
}
