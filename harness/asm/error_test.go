package asm_test

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
)

// callerLine returns the line number of its caller.
func callerLine() int {
	_, _, line, _ := runtime.Caller(1)
	return line
}

// wantErr checks that err is an *asm.Error for method op at this file's
// line, whose text contains msg.
func wantErr(t *testing.T, err error, op string, line int, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s error at line %d containing %q", op, line, msg)
	}
	var e *asm.Error
	if !errorsAs(err, &e) {
		t.Fatalf("error %v is %T, want *asm.Error", err, err)
	}
	loc := fmt.Sprintf("_test.go:%d: ", line)
	if s := err.Error(); !strings.Contains(s, loc) || !strings.Contains(s, "asm: "+op+": ") || !strings.Contains(s, msg) {
		t.Errorf("error %q, want it to contain %q, %q and %q", s, loc, "asm: "+op+": ", msg)
	}
	if e.Op != op || e.Line != line || !strings.HasSuffix(e.File, "_test.go") {
		t.Errorf("Error{Op: %q, File: %q, Line: %d}, want Op %q at line %d of a _test.go file", e.Op, e.File, e.Line, op, line)
	}
}

func errorsAs(err error, target **asm.Error) bool {
	e, ok := err.(*asm.Error)
	*target = e
	return ok
}

// funcLine returns the line a func literal starts on: the one-line emitters
// below make their single call there.
func funcLine(f any) int {
	_, line := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).FileLine(reflect.ValueOf(f).Pointer())
	return line
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		op   string
		emit func(a *asm.Assembler)
		msg  string
	}{
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.Imm(1), asm.RAX) }, "destination 0x1 is an immediate"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.Q(asm.RAX, 0), asm.Q(asm.RBX, 0)) }, "memory-to-memory"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.RAX, asm.ECX) }, "size mismatch: rax is 8 bytes, want 4"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.D(asm.RAX, 0), asm.RCX) }, "size mismatch"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.RAX, nil) }, "missing operand"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.NoReg, asm.RAX) }, "invalid register noreg"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.Reg(200), asm.Imm(1)) }, "invalid register Reg(200)"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.Q(asm.RAX, 0).Idx(asm.RSP, 1), asm.RAX) }, "rsp cannot be an index"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.RAX, asm.Mem{Base: asm.EAX}) }, "base register eax is not a 64-bit register"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.RAX, asm.Mem{Base: asm.RAX, Index: asm.ECX}) }, "index register ecx"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.RAX, asm.Q(asm.RAX, 0).Idx(asm.RCX, 3)) }, "scale 3 is not 1, 2, 4 or 8"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.RAX, asm.Mem{Base: asm.RAX, Scale: 4}) }, "scale 4 without an index"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.RAX, asm.Mem{Base: asm.RAX, Label: a.Here()}) }, "cannot have a base or index"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.Q(asm.RAX, 0), asm.Imm(0x80000000)) }, "does not fit a 8-byte operand"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.EAX, asm.Imm(1<<32)) }, "does not fit a 4-byte operand"},
		{"Mov", func(a *asm.Assembler) { a.Mov(asm.Mem{Base: asm.RAX}, asm.Imm(1)) }, "ambiguous"},
		{"Add", func(a *asm.Assembler) { a.Add(asm.RAX, asm.Imm(0x80000000)) }, "does not fit"},
		{"Add", func(a *asm.Assembler) { a.Add(asm.AL, asm.Imm(256)) }, "does not fit a 1-byte operand"},
		{"Add", func(a *asm.Assembler) { a.Add(asm.AX, asm.Imm(-0x8001)) }, "does not fit a 2-byte operand"},
		{"Test", func(a *asm.Assembler) { a.Test(asm.Imm(1), asm.RAX) }, "is an immediate"},
		{"Inc", func(a *asm.Assembler) { a.Inc(asm.Mem{Base: asm.RAX}) }, "ambiguous: set Mem.Size"},
		{"Inc", func(a *asm.Assembler) { a.Inc(asm.Imm(1)) }, "must be a register or memory"},
		{"Movzx", func(a *asm.Assembler) { a.Movzx(asm.EAX, asm.EAX) }, "cannot extend a 4-byte source into eax"},
		{"Movzx", func(a *asm.Assembler) { a.Movzx(asm.AX, asm.CX) }, "cannot extend"},
		{"Movsx", func(a *asm.Assembler) { a.Movsx(asm.EAX, asm.Mem{Base: asm.RAX}) }, "set Mem.Size to 1 or 2"},
		{"Movsxd", func(a *asm.Assembler) { a.Movsxd(asm.EAX, asm.ECX) }, "register eax has size 4, want 8 bytes"},
		{"Lea", func(a *asm.Assembler) { a.Lea(asm.AL, asm.Q(asm.RAX, 0)) }, "want 2, 4 or 8 bytes"},
		{"Imul3", func(a *asm.Assembler) { a.Imul3(asm.AX, asm.CX, 0x10000) }, "does not fit a 2-byte operand"},
		{"Shl", func(a *asm.Assembler) { a.Shl(asm.RAX, asm.CX) }, "must be cl"},
		{"Shl", func(a *asm.Assembler) { a.Shl(asm.RAX, asm.Imm(256)) }, "not in 0..255"},
		{"Shld", func(a *asm.Assembler) { a.Shld(asm.RAX, asm.ECX, asm.Imm(1)) }, "size mismatch"},
		{"Bt", func(a *asm.Assembler) { a.Bt(asm.AL, asm.Imm(1)) }, "want 2, 4 or 8 bytes"},
		{"Bswap", func(a *asm.Assembler) { a.Bswap(asm.AX) }, "want 4 or 8 bytes"},
		{"Xchg", func(a *asm.Assembler) { a.Xchg(asm.RAX, asm.Imm(1)) }, "immediate source"},
		{"Setcc", func(a *asm.Assembler) { a.Setcc(asm.CondE, asm.EAX) }, "size mismatch"},
		{"Setcc", func(a *asm.Assembler) { a.Setcc(asm.Cond(16), asm.AL) }, "invalid condition"},
		{"Cmovcc", func(a *asm.Assembler) { a.Cmovcc(asm.CondE, asm.AL, asm.CL) }, "want 2, 4 or 8 bytes"},
		{"Jcc", func(a *asm.Assembler) { a.Jcc(asm.Cond(99), a.Here()) }, "invalid condition"},
		{"Jmp", func(a *asm.Assembler) { a.Jmp(nil) }, "nil label"},
		{"JmpInd", func(a *asm.Assembler) { a.JmpInd(asm.EAX) }, "want 8 bytes"},
		{"CallInd", func(a *asm.Assembler) { a.CallInd(asm.D(asm.RAX, 0)) }, "want 8 bytes"},
		{"Push", func(a *asm.Assembler) { a.Push(asm.EAX) }, "want 8 or 2 bytes"},
		{"Push", func(a *asm.Assembler) { a.Push(asm.Imm(1 << 31)) }, "does not fit int32"},
		{"Pop", func(a *asm.Assembler) { a.Pop(asm.Imm(1)) }, "cannot pop into an immediate"},
		{"In", func(a *asm.Assembler) { a.In(asm.BL, asm.DX) }, "must be al, ax or eax, have bl"},
		{"In", func(a *asm.Assembler) { a.In(asm.RAX, asm.DX) }, "must be al, ax or eax"},
		{"In", func(a *asm.Assembler) { a.In(asm.AL, asm.Imm(256)) }, "use DX for higher ports"},
		{"In", func(a *asm.Assembler) { a.In(asm.AL, asm.CX) }, "port register must be dx"},
		{"Out", func(a *asm.Assembler) { a.Out(asm.DX, asm.CL) }, "must be al, ax or eax"},
		{"MovToCR", func(a *asm.Assembler) { a.MovToCR(asm.CReg(1), asm.RAX) }, "invalid control register CReg(1)"},
		{"MovToCR", func(a *asm.Assembler) { a.MovToCR(asm.CR0, asm.EAX) }, "want 8 bytes"},
		{"MovFromDR", func(a *asm.Assembler) { a.MovFromDR(asm.RAX, asm.DReg(8)) }, "invalid debug register"},
		{"Ltr", func(a *asm.Assembler) { a.Ltr(asm.EAX) }, "want 2 bytes"},
		{"Add", func(a *asm.Assembler) { a.Lock().Add(asm.RAX, asm.RCX) }, "LOCK prefix needs a memory destination"},
		{"Add", func(a *asm.Assembler) { a.Lock().Add(asm.RAX, asm.Q(asm.RDI, 0)) }, "LOCK prefix needs a memory destination"},
		{"Cmp", func(a *asm.Assembler) { a.Lock().Cmp(asm.Q(asm.RAX, 0), asm.RCX) }, "LOCK prefix not allowed"},
		{"Mov", func(a *asm.Assembler) { a.Lock().Mov(asm.Q(asm.RAX, 0), asm.RCX) }, "LOCK prefix not allowed"},
		{"Xchg", func(a *asm.Assembler) { a.Lock().Xchg(asm.RAX, asm.RCX) }, "LOCK prefix needs a memory destination"},
		{"Nop", func(a *asm.Assembler) { a.Lock().Nop() }, "LOCK prefix not allowed"},
		{"Lock", func(a *asm.Assembler) { a.Lock().Lock() }, "a Lock prefix is already pending"},
		{"Add", func(a *asm.Assembler) { a.Rep().Add(asm.RAX, asm.RCX) }, "Rep prefix not allowed"},
		{"Stosb", func(a *asm.Assembler) { a.Repne().Stosb() }, "Repne prefix not allowed"},
		{"Byte", func(a *asm.Assembler) { a.Lock().Byte(1) }, "Lock prefix cannot apply to data"},
		{"Align", func(a *asm.Assembler) { a.Align(0, 0) }, "not positive"},
		{"Space", func(a *asm.Assembler) { a.Space(-1, 0) }, "negative"},
	} {
		line := funcLine(c.emit)
		t.Run(fmt.Sprintf("%s/line%d", c.op, line), func(t *testing.T) {
			a := asm.New(0x1000)
			c.emit(a)
			wantErr(t, a.Err(), c.op, line, c.msg)
			// The assembler carries on: later instructions are emitted
			// (for the listing), but Assemble still reports the first error.
			n := a.Len()
			a.Nop()
			if a.Len() != n+1 {
				t.Errorf("Nop after the error emitted %d bytes", a.Len()-n)
			}
			if _, err := a.Assemble(); err != a.Err() {
				t.Errorf("Assemble error %v, want the first error %v", err, a.Err())
			}
		})
	}
}

// TestErrorEmitsNothing checks that a failed instruction leaves no bytes,
// so PC() stays exact for whatever the builder does next.
func TestErrorEmitsNothing(t *testing.T) {
	a := asm.New(0)
	a.Nop()
	a.Mov(asm.Q(asm.RAX, 0), asm.Q(asm.RAX, 0))
	a.Lock().Add(asm.RAX, asm.RAX)
	a.Add(asm.RAX, asm.Mem{Base: asm.RAX, Index: asm.RSP})
	if a.Len() != 1 {
		t.Errorf("Len() = %d after failed instructions, want 1", a.Len())
	}
}

// TestDanglingPrefix checks that a Lock without an instruction is reported
// at the Lock call.
func TestDanglingPrefix(t *testing.T) {
	a := asm.New(0)
	a.Nop()
	a.Lock()
	line := callerLine() - 1
	_, err := a.Assemble()
	wantErr(t, err, "Lock", line, "not followed by an instruction")
}
