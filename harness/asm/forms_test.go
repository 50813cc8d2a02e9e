package asm_test

import (
	"fmt"
	"math"
	"strings"

	"github.com/kvmspec/kvmspec/harness/asm"
	"golang.org/x/arch/x86/x86asm"
)

// This file generates test cases: one family per instruction method and
// operand shape, each a function of a picker. Enumerating every choice of
// the picker gives the exhaustive table of TestEncodeForms and TestGNUAs;
// reading the choices from fuzz input gives FuzzRoundTrip's programs.

// tc is one instruction to emit and what it must decode to.
type tc struct {
	name string                           // the Go call, for messages
	emit func(a *asm.Assembler, l labels) // emits the instruction
	op   x86asm.Op                        // expected x86asm op; 0 means compare raw
	args []any                            // expected args in decoded (Intel) order
	imm  int                              // operand size immediates are compared at
	swap bool                             // the two args may decode in either order
	lock bool                             // expect a LOCK prefix
	rep  x86asm.Prefix                    // expect this REP/REPNE prefix
	n    int                              // expected length, 0 = any
	raw  []byte                           // expected bytes when op == 0
	gas  string                           // GNU as source; "" = not comparable
}

// picker makes a family's choices: every combination in turn, odometer
// style (the choice tree may differ per branch, so radices are learnt as
// choices are made), or choices read from fuzz input.
type picker struct {
	fuzzing bool
	data    []byte
	path    []int
	radix   []int
	pos     int
}

func (p *picker) pick(n int) int {
	if p.fuzzing {
		if len(p.data) == 0 {
			return 0
		}
		b := p.data[0]
		p.data = p.data[1:]
		return int(b) % n
	}
	if p.pos == len(p.path) {
		p.path = append(p.path, 0)
		p.radix = append(p.radix, n)
	}
	p.radix[p.pos] = n
	c := p.path[p.pos]
	p.pos++
	return c
}

// advance moves to the next combination and reports whether there is one.
func (p *picker) advance() bool {
	p.path, p.radix = p.path[:p.pos], p.radix[:p.pos]
	p.pos = 0
	for i := len(p.path) - 1; i >= 0; i-- {
		if p.path[i]+1 < p.radix[i] {
			p.path[i]++
			p.path, p.radix = p.path[:i+1], p.radix[:i+1]
			return true
		}
	}
	return false
}

func pickOf[T any](p *picker, xs []T) T { return xs[p.pick(len(xs))] }

// family is one instruction method with one family of operand shapes.
type family struct {
	name string
	gen  func(p *picker) tc
}

// allCases enumerates every family completely.
func allCases() []tc {
	var out []tc
	for _, f := range families() {
		p := &picker{}
		for {
			out = append(out, f.gen(p))
			if !p.advance() {
				break
			}
		}
	}
	return out
}

var (
	allSizes  = []int{1, 2, 4, 8}
	wideSizes = []int{2, 4, 8}
)

func regsOf(size int) []asm.Reg {
	rs := make([]asm.Reg, 16)
	for i := range rs {
		rs[i] = (asm.RAX + asm.Reg(i)).As(size)
	}
	return rs
}

// memForms covers every ModRM/SIB special case: SIB for RSP/R12 bases,
// disp8 0 for RBP/R13 bases, disp8/disp32 boundaries, index with each
// scale, R12 as index, no base, absolute (also negative), RIP-relative.
var memForms = []asm.Mem{
	{Base: asm.RAX},
	{Base: asm.RSP},
	{Base: asm.R12},
	{Base: asm.RBP},
	{Base: asm.R13},
	{Base: asm.RBX, Disp: 127},
	{Base: asm.RSI, Disp: -128},
	{Base: asm.RDI, Disp: 128},
	{Base: asm.R15, Disp: -129},
	{Base: asm.R8, Disp: 0x12345678},
	{Base: asm.RAX, Index: asm.RCX},
	{Base: asm.RSP, Index: asm.R12, Scale: 2, Disp: 8},
	{Base: asm.RBP, Index: asm.RAX, Scale: 4},
	{Base: asm.R13, Index: asm.R9, Scale: 8, Disp: -4},
	{Index: asm.RCX, Scale: 8, Disp: 0x1000},
	{Disp: 0x1000},
	{Disp: -16},
	{Label: selfL},
	{Label: selfL, Disp: 24},
}

// pickMem picks a memory form. Every other form leaves Size 0 so that size
// inference from the other operand is exercised; want has the size set.
func pickMem(p *picker, size int) (call, want asm.Mem) {
	i := p.pick(len(memForms))
	want = memForms[i].WithSize(size)
	call = want
	if i%2 == 1 {
		call.Size = 0
	}
	return call, want
}

// sizedMem picks a memory form that carries its size (for operands whose
// size nothing else gives).
func sizedMem(p *picker, size int) asm.Mem {
	return pickOf(p, memForms).WithSize(size)
}

// immsOf lists immediates for an operand size: boundaries of imm8
// sign-extension and of the full immediate width.
func immsOf(size int) []asm.Imm {
	switch size {
	case 1:
		return []asm.Imm{0, 1, -1, 127, -128, 128, 255}
	case 2:
		return []asm.Imm{0, -1, 127, -128, 128, 0x7FFF, -0x8000, 0xFFFF}
	case 4:
		return []asm.Imm{0, -1, 127, 128, -129, 0x7FFFFFFF, -0x80000000, 0xFFFFFFFF}
	}
	return []asm.Imm{0, -1, 127, 128, -129, 0x7FFFFFFF, -0x80000000}
}

// movImms64 adds the values only MOVABS can load.
var movImms64 = []asm.Imm{0x80000000, 0xFFFFFFFF, 0x123456789A, math.MinInt64, math.MaxInt64}

// condOps maps a condition to the x86asm ops of Jcc, SETcc and CMOVcc.
var (
	jccOps   = [16]x86asm.Op{x86asm.JO, x86asm.JNO, x86asm.JB, x86asm.JAE, x86asm.JE, x86asm.JNE, x86asm.JBE, x86asm.JA, x86asm.JS, x86asm.JNS, x86asm.JP, x86asm.JNP, x86asm.JL, x86asm.JGE, x86asm.JLE, x86asm.JG}
	setccOps = [16]x86asm.Op{x86asm.SETO, x86asm.SETNO, x86asm.SETB, x86asm.SETAE, x86asm.SETE, x86asm.SETNE, x86asm.SETBE, x86asm.SETA, x86asm.SETS, x86asm.SETNS, x86asm.SETP, x86asm.SETNP, x86asm.SETL, x86asm.SETGE, x86asm.SETLE, x86asm.SETG}
	cmovOps  = [16]x86asm.Op{x86asm.CMOVO, x86asm.CMOVNO, x86asm.CMOVB, x86asm.CMOVAE, x86asm.CMOVE, x86asm.CMOVNE, x86asm.CMOVBE, x86asm.CMOVA, x86asm.CMOVS, x86asm.CMOVNS, x86asm.CMOVP, x86asm.CMOVNP, x86asm.CMOVL, x86asm.CMOVGE, x86asm.CMOVLE, x86asm.CMOVG}
)

var allConds = []asm.Cond{asm.CondO, asm.CondNO, asm.CondB, asm.CondAE, asm.CondE, asm.CondNE, asm.CondBE, asm.CondA, asm.CondS, asm.CondNS, asm.CondP, asm.CondNP, asm.CondL, asm.CondGE, asm.CondLE, asm.CondG}

// gasArg formats an operand for GNU as in Intel syntax; {self} and {next}
// are replaced by per-case label names when the source file is written.
func gasArg(x any) string {
	switch x := x.(type) {
	case asm.Reg:
		return x.String()
	case asm.Imm:
		return fmt.Sprint(int64(x))
	case asm.Mem:
		return gasMem(x)
	case *asm.Label:
		if x == selfL {
			return "{self}"
		}
		return "{next}"
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(x)
}

var gasPtr = map[int]string{1: "BYTE PTR ", 2: "WORD PTR ", 4: "DWORD PTR ", 8: "QWORD PTR "}

func gasMem(m asm.Mem) string {
	ptr := gasPtr[m.Size]
	if m.Label != nil {
		return fmt.Sprintf("%s[rip+{self}%+d]", ptr, m.Disp)
	}
	if m.Base == asm.NoReg && m.Index == asm.NoReg {
		return fmt.Sprintf("%sds:%d", ptr, m.Disp)
	}
	var parts []string
	if m.Base != asm.NoReg {
		parts = append(parts, m.Base.String())
	}
	if m.Index != asm.NoReg {
		parts = append(parts, fmt.Sprintf("%v*%d", m.Index, max(m.Scale, 1)))
	}
	s := strings.Join(parts, "+")
	if m.Disp != 0 {
		s += fmt.Sprintf("%+d", m.Disp)
	}
	return ptr + "[" + s + "]"
}

// gasLine formats "mnemonic a, b" with an optional prefix.
func gasLine(prefix, mnemonic string, args ...any) string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = gasArg(a)
	}
	line := mnemonic
	if len(s) > 0 {
		line += " " + strings.Join(s, ", ")
	}
	if prefix != "" {
		line = prefix + " " + line
	}
	return line
}

// callName formats a Go call for messages, e.g. "Lock().Add(qword ptr [rax], rcx)".
func callName(lock bool, method string, args ...any) string {
	s := make([]string, len(args))
	for i, a := range args {
		switch a := a.(type) {
		case *asm.Label:
			if a == selfL {
				s[i] = "self"
			} else {
				s[i] = "next"
			}
		case asm.Imm:
			s[i] = fmt.Sprintf("Imm(%d)", int64(a))
		default:
			s[i] = fmt.Sprint(a)
		}
	}
	name := method + "(" + strings.Join(s, ", ") + ")"
	if lock {
		name = "Lock()." + name
	}
	return name
}

// prefixLen is the number of operand-size and REX bytes an instruction
// on registers rs (all of one size) needs.
func prefixLen(rs ...asm.Reg) int {
	n := 0
	rex := rs[0].Size() == 8
	if rs[0].Size() == 2 {
		n++
	}
	for _, r := range rs {
		if r.Num() >= 8 || r.Size() == 1 && r.Num() >= 4 {
			rex = true
		}
	}
	if rex {
		n++
	}
	return n
}

type (
	fn0  func(*asm.Assembler)
	fn1  func(*asm.Assembler, asm.Operand)
	fn2  func(*asm.Assembler, asm.Operand, asm.Operand)
	fnRO func(*asm.Assembler, asm.Reg, asm.Operand)
	fnL  func(*asm.Assembler, *asm.Label)
	fnM  func(*asm.Assembler, asm.Mem)
)

// withLock wraps an emitter in Lock() when lock is set.
func withLock(lock bool, f func(a *asm.Assembler, l labels)) func(a *asm.Assembler, l labels) {
	if !lock {
		return f
	}
	return func(a *asm.Assembler, l labels) { f(a.Lock(), l) }
}

func lockPfx(lock bool) string {
	if lock {
		return "lock"
	}
	return ""
}

// binCase builds the case for a two-operand call fn(dst, src) whose
// decoding is op wantDst, wantSrc.
func binCase(method string, fn fn2, op x86asm.Op, mnem string, lock bool, size int, dst, src, wantDst, wantSrc asm.Operand) tc {
	return tc{
		name: callName(lock, method, dst, src),
		emit: withLock(lock, func(a *asm.Assembler, l labels) { fn(a, l.op(dst), l.op(src)) }),
		op:   op, args: []any{wantDst, wantSrc}, imm: size, lock: lock,
		gas: gasLine(lockPfx(lock), mnem, wantDst, wantSrc),
	}
}

// twoOpFamily generates the r,r / r,m / m,r / r,imm / m,imm forms of an
// ALU-like instruction. lockable instructions are also generated with LOCK
// on their memory-destination forms. immOK=false drops the imm forms.
func twoOpFamily(method string, fn fn2, op x86asm.Op, lockable, immOK bool) family {
	mnem := strings.ToLower(method)
	return family{method, func(p *picker) tc {
		forms := 3
		if immOK {
			forms = 5
		}
		form := p.pick(forms)
		size := pickOf(p, allSizes)
		switch form {
		case 0:
			d, s := pickOf(p, regsOf(size)), pickOf(p, regsOf(size))
			return binCase(method, fn, op, mnem, false, size, d, s, d, s)
		case 1:
			d := pickOf(p, regsOf(size))
			m, wm := pickMem(p, size)
			return binCase(method, fn, op, mnem, false, size, d, m, d, wm)
		case 2:
			m, wm := pickMem(p, size)
			s := pickOf(p, regsOf(size))
			lock := lockable && p.pick(2) == 1
			return binCase(method, fn, op, mnem, lock, size, m, s, wm, s)
		case 3:
			d := pickOf(p, regsOf(size))
			v := pickOf(p, immsOf(size))
			return binCase(method, fn, op, mnem, false, size, d, v, d, v)
		default:
			m := sizedMem(p, size)
			v := pickOf(p, immsOf(size))
			lock := lockable && p.pick(2) == 1
			return binCase(method, fn, op, mnem, lock, size, m, v, m, v)
		}
	}}
}

func families() []family {
	fs := []family{
		twoOpFamily("Add", (*asm.Assembler).Add, x86asm.ADD, true, true),
		twoOpFamily("Or", (*asm.Assembler).Or, x86asm.OR, true, true),
		twoOpFamily("Adc", (*asm.Assembler).Adc, x86asm.ADC, true, true),
		twoOpFamily("Sbb", (*asm.Assembler).Sbb, x86asm.SBB, true, true),
		twoOpFamily("And", (*asm.Assembler).And, x86asm.AND, true, true),
		twoOpFamily("Sub", (*asm.Assembler).Sub, x86asm.SUB, true, true),
		twoOpFamily("Xor", (*asm.Assembler).Xor, x86asm.XOR, true, true),
		twoOpFamily("Cmp", (*asm.Assembler).Cmp, x86asm.CMP, false, true),
		twoOpFamily("Mov", (*asm.Assembler).Mov, x86asm.MOV, false, true),
		{"Mov/imm64", genMovImm64},
		{"MovAbs", genMovAbs},
		{"MovLabel", genMovLabel},
		{"Test", genTest},
		{"Movzx/Movsx", genMovx},
		{"Movsxd", genMovsxd},
		{"Lea", genLea},
		{"Unary", genUnary},
		{"Imul", genImul},
		{"Imul3", genImul3},
		{"Shift", genShift},
		{"Shld/Shrd", genDoubleShift},
		{"Bt", genBt},
		{"Bsf/Bsr", genBsf},
		{"Bswap", genBswap},
		{"Xchg", genXchg},
		{"Cmpxchg/Xadd", genCmpxchg},
		{"Setcc", genSetcc},
		{"Cmovcc", genCmovcc},
		{"Branch", genBranch},
		{"Indirect", genIndirect},
		{"Push/Pop", genPushPop},
		{"Fixed", genFixed},
		{"Imm8", genImm8Insn},
		{"In/Out", genInOut},
		{"CR/DR", genMovSys},
		{"DescTable", genDescTable},
		{"Ltr", genLtr},
		{"String", genString},
	}
	return fs
}

func genMovImm64(p *picker) tc {
	d := pickOf(p, regsOf(8))
	v := pickOf(p, movImms64)
	c := binCase("Mov", (*asm.Assembler).Mov, x86asm.MOV, "mov", false, 8, d, v, d, v)
	c.n = 10
	return c
}

func genMovAbs(p *picker) tc {
	d := pickOf(p, regsOf(8))
	v := pickOf(p, []uint64{0, 1, 0xFFFFFFFF, 1 << 63, math.MaxUint64})
	return tc{
		name: fmt.Sprintf("MovAbs(%v, %#x)", d, v),
		emit: func(a *asm.Assembler, l labels) { a.MovAbs(d, v) },
		op:   x86asm.MOV, args: []any{d, asm.Imm(v)}, n: 10,
		gas: fmt.Sprintf("movabs %v, %#x", d, v),
	}
}

func genMovLabel(p *picker) tc {
	d := pickOf(p, regsOf(8))
	// The absolute address needs a relocation in GNU as's object file, so
	// this form is not compared with it; TestLabels covers the value.
	return tc{
		name: fmt.Sprintf("MovLabel(%v, self)", d),
		emit: func(a *asm.Assembler, l labels) { a.MovLabel(d, l.self) },
		op:   x86asm.MOV, args: []any{d, addrOf{selfL}}, n: 10,
	}
}

func genTest(p *picker) tc {
	fn := (*asm.Assembler).Test
	size := pickOf(p, allSizes)
	switch p.pick(5) {
	case 0:
		d, s := pickOf(p, regsOf(size)), pickOf(p, regsOf(size))
		return binCase("Test", fn, x86asm.TEST, "test", false, size, d, s, d, s)
	case 1:
		m, wm := pickMem(p, size)
		s := pickOf(p, regsOf(size))
		return binCase("Test", fn, x86asm.TEST, "test", false, size, m, s, wm, s)
	case 2: // reg, mem: only encodable as mem, reg
		d := pickOf(p, regsOf(size))
		m, wm := pickMem(p, size)
		return binCase("Test", fn, x86asm.TEST, "test", false, size, d, m, wm, d)
	case 3:
		d := pickOf(p, regsOf(size))
		v := pickOf(p, immsOf(size))
		return binCase("Test", fn, x86asm.TEST, "test", false, size, d, v, d, v)
	default:
		m := sizedMem(p, size)
		v := pickOf(p, immsOf(size))
		return binCase("Test", fn, x86asm.TEST, "test", false, size, m, v, m, v)
	}
}

// regOrMem picks a register or memory operand of size; call may leave the
// memory size to be inferred (inferOK), want always has it.
func regOrMem(p *picker, size int, inferOK bool) (call, want asm.Operand) {
	if p.pick(2) == 0 {
		r := pickOf(p, regsOf(size))
		return r, r
	}
	if inferOK {
		m, wm := pickMem(p, size)
		return m, wm
	}
	m := sizedMem(p, size)
	return m, m
}

// roCase builds a case for fn(dst Reg, src Operand).
func roCase(method, mnem string, fn fnRO, op x86asm.Op, dst asm.Reg, src, wantSrc asm.Operand) tc {
	return tc{
		name: callName(false, method, dst, src),
		emit: func(a *asm.Assembler, l labels) { fn(a, dst, l.op(src)) },
		op:   op, args: []any{dst, wantSrc},
		gas: gasLine("", mnem, dst, wantSrc),
	}
}

func genMovx(p *picker) tc {
	method, mnem, fn, op := "Movzx", "movzx", (*asm.Assembler).Movzx, x86asm.MOVZX
	if p.pick(2) == 1 {
		method, mnem, fn, op = "Movsx", "movsx", (*asm.Assembler).Movsx, x86asm.MOVSX
	}
	dsize := pickOf(p, wideSizes)
	ssize := 1
	if dsize > 2 {
		ssize = pickOf(p, []int{1, 2})
	}
	d := pickOf(p, regsOf(dsize))
	src, want := regOrMem(p, ssize, false)
	return roCase(method, mnem, fn, op, d, src, want)
}

func genMovsxd(p *picker) tc {
	d := pickOf(p, regsOf(8))
	src, want := regOrMem(p, 4, true)
	return roCase("Movsxd", "movsxd", (*asm.Assembler).Movsxd, x86asm.MOVSXD, d, src, want)
}

func genLea(p *picker) tc {
	d := pickOf(p, regsOf(pickOf(p, wideSizes)))
	m := pickOf(p, memForms)
	return tc{
		name: callName(false, "Lea", d, m),
		emit: func(a *asm.Assembler, l labels) { a.Lea(d, l.op(m).(asm.Mem)) },
		op:   x86asm.LEA, args: []any{d, m},
		gas: gasLine("", "lea", d, m),
	}
}

var unaryTable = []struct {
	method string
	fn     fn1
	op     x86asm.Op
	mnem   string
	lock   bool
}{
	{"Inc", (*asm.Assembler).Inc, x86asm.INC, "inc", true},
	{"Dec", (*asm.Assembler).Dec, x86asm.DEC, "dec", true},
	{"Not", (*asm.Assembler).Not, x86asm.NOT, "not", true},
	{"Neg", (*asm.Assembler).Neg, x86asm.NEG, "neg", true},
	{"Mul", (*asm.Assembler).Mul, x86asm.MUL, "mul", false},
	{"Imul1", (*asm.Assembler).Imul1, x86asm.IMUL, "imul", false},
	{"Div", (*asm.Assembler).Div, x86asm.DIV, "div", false},
	{"Idiv", (*asm.Assembler).Idiv, x86asm.IDIV, "idiv", false},
}

func genUnary(p *picker) tc {
	u := pickOf(p, unaryTable)
	size := pickOf(p, allSizes)
	x, _ := regOrMem(p, size, false)
	_, isMem := x.(asm.Mem)
	lock := u.lock && isMem && p.pick(2) == 1
	return tc{
		name: callName(lock, u.method, x),
		emit: withLock(lock, func(a *asm.Assembler, l labels) { u.fn(a, l.op(x)) }),
		op:   u.op, args: []any{x}, lock: lock,
		gas: gasLine(lockPfx(lock), u.mnem, x),
	}
}

func genImul(p *picker) tc {
	size := pickOf(p, wideSizes)
	d := pickOf(p, regsOf(size))
	src, want := regOrMem(p, size, true)
	return roCase("Imul", "imul", (*asm.Assembler).Imul, x86asm.IMUL, d, src, want)
}

func genImul3(p *picker) tc {
	size := pickOf(p, wideSizes)
	d := pickOf(p, regsOf(size))
	src, want := regOrMem(p, size, true)
	vals := []int32{0, 1, -1, 127, -128, 128, -129, math.MaxInt32, math.MinInt32}
	if size == 2 {
		vals = []int32{0, 1, -1, 127, -128, 128, -129, 0x7FFF, -0x8000, 0xFFFF}
	}
	v := pickOf(p, vals)
	return tc{
		name: fmt.Sprintf("Imul3(%v, %v, %d)", d, src, v),
		emit: func(a *asm.Assembler, l labels) { a.Imul3(d, l.op(src), v) },
		op:   x86asm.IMUL, args: []any{d, want, asm.Imm(v)}, imm: size,
		gas: gasLine("", "imul", d, want, asm.Imm(v)),
	}
}

var shiftTable = []struct {
	method string
	fn     fn2
	op     x86asm.Op
}{
	{"Shl", (*asm.Assembler).Shl, x86asm.SHL},
	{"Shr", (*asm.Assembler).Shr, x86asm.SHR},
	{"Sar", (*asm.Assembler).Sar, x86asm.SAR},
	{"Rol", (*asm.Assembler).Rol, x86asm.ROL},
	{"Ror", (*asm.Assembler).Ror, x86asm.ROR},
	{"Rcl", (*asm.Assembler).Rcl, x86asm.RCL},
	{"Rcr", (*asm.Assembler).Rcr, x86asm.RCR},
}

var shiftCounts = []asm.Operand{asm.Imm(1), asm.Imm(0), asm.Imm(5), asm.Imm(255), asm.CL}

func genShift(p *picker) tc {
	s := pickOf(p, shiftTable)
	size := pickOf(p, allSizes)
	x, _ := regOrMem(p, size, false)
	cnt := pickOf(p, shiftCounts)
	c := binCase(s.method, s.fn, s.op, strings.ToLower(s.method), false, 1, x, cnt, x, cnt)
	if r, ok := x.(asm.Reg); ok && cnt == asm.Imm(1) {
		c.n = 2 + prefixLen(r) // the D0/D1 short form
	}
	return c
}

func genDoubleShift(p *picker) tc {
	method, mnem, fn, op := "Shld", "shld", (*asm.Assembler).Shld, x86asm.SHLD
	if p.pick(2) == 1 {
		method, mnem, fn, op = "Shrd", "shrd", (*asm.Assembler).Shrd, x86asm.SHRD
	}
	size := pickOf(p, wideSizes)
	dst, want := regOrMem(p, size, true)
	src := pickOf(p, regsOf(size))
	cnt := pickOf(p, []asm.Operand{asm.Imm(0), asm.Imm(7), asm.Imm(255), asm.CL})
	return tc{
		name: callName(false, method, dst, src, cnt),
		emit: func(a *asm.Assembler, l labels) { fn(a, l.op(dst), src, cnt) },
		op:   op, args: []any{want, src, cnt}, imm: 1,
		gas: gasLine("", mnem, want, src, cnt),
	}
}

var btTable = []struct {
	method string
	fn     fn2
	op     x86asm.Op
	lock   bool
}{
	{"Bt", (*asm.Assembler).Bt, x86asm.BT, false},
	{"Bts", (*asm.Assembler).Bts, x86asm.BTS, true},
	{"Btr", (*asm.Assembler).Btr, x86asm.BTR, true},
	{"Btc", (*asm.Assembler).Btc, x86asm.BTC, true},
}

func genBt(p *picker) tc {
	b := pickOf(p, btTable)
	size := pickOf(p, wideSizes)
	var dst, want, bit asm.Operand
	if p.pick(2) == 0 {
		bit = pickOf(p, regsOf(size))
		dst, want = regOrMem(p, size, true)
	} else {
		bit = pickOf(p, []asm.Imm{0, 5, 31, 63, 255})
		dst, want = regOrMem(p, size, false)
	}
	_, isMem := dst.(asm.Mem)
	lock := b.lock && isMem && p.pick(2) == 1
	c := binCase(b.method, b.fn, b.op, strings.ToLower(b.method), lock, 1, dst, bit, want, bit)
	return c
}

func genBsf(p *picker) tc {
	method, mnem, fn, op := "Bsf", "bsf", (*asm.Assembler).Bsf, x86asm.BSF
	if p.pick(2) == 1 {
		method, mnem, fn, op = "Bsr", "bsr", (*asm.Assembler).Bsr, x86asm.BSR
	}
	size := pickOf(p, wideSizes)
	d := pickOf(p, regsOf(size))
	src, want := regOrMem(p, size, true)
	return roCase(method, mnem, fn, op, d, src, want)
}

func genBswap(p *picker) tc {
	r := pickOf(p, regsOf(pickOf(p, []int{4, 8})))
	return tc{
		name: callName(false, "Bswap", r),
		emit: func(a *asm.Assembler, l labels) { a.Bswap(r) },
		op:   x86asm.BSWAP, args: []any{r},
		gas: gasLine("", "bswap", r),
	}
}

func genXchg(p *picker) tc {
	fn := (*asm.Assembler).Xchg
	size := pickOf(p, allSizes)
	switch p.pick(3) {
	case 0:
		x, y := pickOf(p, regsOf(size)), pickOf(p, regsOf(size))
		c := binCase("Xchg", fn, x86asm.XCHG, "xchg", false, size, x, y, x, y)
		c.swap = true
		if size > 1 && (x.Num() == 0) != (y.Num() == 0) {
			c.n = 1 + prefixLen(x, y) // the 90+r short form
		}
		return c
	case 1:
		x := pickOf(p, regsOf(size))
		m, wm := pickMem(p, size)
		lock := p.pick(2) == 1
		c := binCase("Xchg", fn, x86asm.XCHG, "xchg", lock, size, x, m, wm, x)
		return c
	default:
		m, wm := pickMem(p, size)
		x := pickOf(p, regsOf(size))
		lock := p.pick(2) == 1
		return binCase("Xchg", fn, x86asm.XCHG, "xchg", lock, size, m, x, wm, x)
	}
}

func genCmpxchg(p *picker) tc {
	method, mnem, fn, op := "Cmpxchg", "cmpxchg", (*asm.Assembler).Cmpxchg, x86asm.CMPXCHG
	if p.pick(2) == 1 {
		method, mnem, fn, op = "Xadd", "xadd", (*asm.Assembler).Xadd, x86asm.XADD
	}
	size := pickOf(p, allSizes)
	dst, want := regOrMem(p, size, true)
	src := pickOf(p, regsOf(size))
	_, isMem := dst.(asm.Mem)
	lock := isMem && p.pick(2) == 1
	return tc{
		name: callName(lock, method, dst, src),
		emit: withLock(lock, func(a *asm.Assembler, l labels) { fn(a, l.op(dst), src) }),
		op:   op, args: []any{want, src}, lock: lock,
		gas: gasLine(lockPfx(lock), mnem, want, src),
	}
}

func genSetcc(p *picker) tc {
	cc := pickOf(p, allConds)
	dst, want := regOrMem(p, 1, true)
	return tc{
		name: fmt.Sprintf("Setcc(%v, %v)", cc, dst),
		emit: func(a *asm.Assembler, l labels) { a.Setcc(cc, l.op(dst)) },
		op:   setccOps[cc], args: []any{want},
		gas: gasLine("", "set"+cc.String(), want),
	}
}

func genCmovcc(p *picker) tc {
	cc := pickOf(p, allConds)
	size := pickOf(p, wideSizes)
	d := pickOf(p, regsOf(size))
	src, want := regOrMem(p, size, true)
	c := roCase("Cmovcc", "cmov"+cc.String(), func(a *asm.Assembler, d asm.Reg, s asm.Operand) { a.Cmovcc(cc, d, s) }, cmovOps[cc], d, src, want)
	c.name = fmt.Sprintf("Cmovcc(%v, %v, %v)", cc, d, src)
	return c
}

func genBranch(p *picker) tc {
	target := pickOf(p, []*asm.Label{selfL, nextL})
	type br struct {
		method string
		fn     fnL
		op     x86asm.Op
		mnem   string
		n      int // length for a backward (self) target
	}
	branches := []br{
		{"Jmp", (*asm.Assembler).Jmp, x86asm.JMP, "jmp", 2},
		{"JmpShort", (*asm.Assembler).JmpShort, x86asm.JMP, "jmp", 2},
		{"Call", (*asm.Assembler).Call, x86asm.CALL, "call", 5},
		{"Loop", (*asm.Assembler).Loop, x86asm.LOOP, "loop", 2},
		{"Loope", (*asm.Assembler).Loope, x86asm.LOOPE, "loope", 2},
		{"Loopne", (*asm.Assembler).Loopne, x86asm.LOOPNE, "loopne", 2},
		{"Jrcxz", (*asm.Assembler).Jrcxz, x86asm.JRCXZ, "jrcxz", 2},
	}
	for _, cc := range allConds {
		branches = append(branches,
			br{"Jcc/" + cc.String(), func(a *asm.Assembler, l *asm.Label) { a.Jcc(cc, l) }, jccOps[cc], "j" + cc.String(), 2},
			br{"JccShort/" + cc.String(), func(a *asm.Assembler, l *asm.Label) { a.JccShort(cc, l) }, jccOps[cc], "j" + cc.String(), 2})
	}
	b := pickOf(p, branches)
	n := b.n
	if target == nextL && !strings.Contains(b.method, "Short") && n == 2 && !strings.HasPrefix(b.method, "Loop") && b.method != "Jrcxz" {
		// Forward branches are rel32: E9 (5 bytes) or 0F 8x (6 bytes).
		n = 5
		if b.method != "Jmp" {
			n = 6
		}
	}
	return tc{
		name: callName(false, b.method, target),
		emit: func(a *asm.Assembler, l labels) { b.fn(a, l.label(target)) },
		op:   b.op, args: []any{relTo{target}}, n: n,
		gas: gasLine("", b.mnem, target),
	}
}

func genIndirect(p *picker) tc {
	method, mnem, fn, op := "JmpInd", "jmp", (*asm.Assembler).JmpInd, x86asm.JMP
	if p.pick(2) == 1 {
		method, mnem, fn, op = "CallInd", "call", (*asm.Assembler).CallInd, x86asm.CALL
	}
	x, want := regOrMem(p, 8, true)
	return tc{
		name: callName(false, method, x),
		emit: func(a *asm.Assembler, l labels) { fn(a, l.op(x)) },
		op:   op, args: []any{want},
		gas: gasLine("", mnem, want),
	}
}

func genPushPop(p *picker) tc {
	push := p.pick(2) == 0
	method, mnem, fn, op := "Push", "push", (*asm.Assembler).Push, x86asm.PUSH
	if !push {
		method, mnem, fn, op = "Pop", "pop", (*asm.Assembler).Pop, x86asm.POP
	}
	var x, want asm.Operand
	imm := 0
	switch k := p.pick(3); {
	case k == 0:
		r := pickOf(p, regsOf(pickOf(p, []int{8, 2})))
		x, want = r, r
	case k == 1 || !push:
		size := pickOf(p, []int{8, 2})
		x, want = regOrMem(p, size, size == 8)
		if r, ok := x.(asm.Reg); ok {
			x, want = r.As(8), r.As(8)
		}
	default:
		v := pickOf(p, []asm.Imm{0, -1, 127, -128, 128, math.MaxInt32, math.MinInt32})
		x, want, imm = v, v, 8
	}
	return tc{
		name: callName(false, method, x),
		emit: func(a *asm.Assembler, l labels) { fn(a, l.op(x)) },
		op:   op, args: []any{want}, imm: imm,
		gas: gasLine("", mnem, want),
	}
}

// fixedTable lists the instructions without explicit operands.
var fixedTable = []struct {
	method string
	fn     fn0
	op     x86asm.Op
	args   []any
	gas    string
	raw    []byte
}{
	{"Hlt", (*asm.Assembler).Hlt, x86asm.HLT, nil, "hlt", []byte{0xF4}},
	{"Int3", (*asm.Assembler).Int3, x86asm.INT, []any{asm.Imm(3)}, "int3", []byte{0xCC}},
	{"Int1", (*asm.Assembler).Int1, x86asm.ICEBP, nil, "int1", []byte{0xF1}},
	{"Ud2", (*asm.Assembler).Ud2, x86asm.UD2, nil, "ud2", []byte{0x0F, 0x0B}},
	{"Nop", (*asm.Assembler).Nop, x86asm.NOP, nil, "nop", []byte{0x90}},
	{"Pause", (*asm.Assembler).Pause, x86asm.PAUSE, nil, "pause", []byte{0xF3, 0x90}},
	{"Cpuid", (*asm.Assembler).Cpuid, x86asm.CPUID, nil, "cpuid", []byte{0x0F, 0xA2}},
	{"Rdmsr", (*asm.Assembler).Rdmsr, x86asm.RDMSR, nil, "rdmsr", []byte{0x0F, 0x32}},
	{"Wrmsr", (*asm.Assembler).Wrmsr, x86asm.WRMSR, nil, "wrmsr", []byte{0x0F, 0x30}},
	{"Rdpmc", (*asm.Assembler).Rdpmc, x86asm.RDPMC, nil, "rdpmc", []byte{0x0F, 0x33}},
	{"Rdtsc", (*asm.Assembler).Rdtsc, x86asm.RDTSC, nil, "rdtsc", []byte{0x0F, 0x31}},
	{"Rdtscp", (*asm.Assembler).Rdtscp, x86asm.RDTSCP, nil, "rdtscp", []byte{0x0F, 0x01, 0xF9}},
	{"Cli", (*asm.Assembler).Cli, x86asm.CLI, nil, "cli", []byte{0xFA}},
	{"Sti", (*asm.Assembler).Sti, x86asm.STI, nil, "sti", []byte{0xFB}},
	{"Clc", (*asm.Assembler).Clc, x86asm.CLC, nil, "clc", []byte{0xF8}},
	{"Stc", (*asm.Assembler).Stc, x86asm.STC, nil, "stc", []byte{0xF9}},
	{"Cmc", (*asm.Assembler).Cmc, x86asm.CMC, nil, "cmc", []byte{0xF5}},
	{"Cld", (*asm.Assembler).Cld, x86asm.CLD, nil, "cld", []byte{0xFC}},
	{"Std", (*asm.Assembler).Std, x86asm.STD, nil, "std", []byte{0xFD}},
	{"Iretq", (*asm.Assembler).Iretq, x86asm.IRETQ, nil, "iretq", []byte{0x48, 0xCF}},
	{"Vmcall", (*asm.Assembler).Vmcall, 0, nil, "vmcall", []byte{0x0F, 0x01, 0xC1}},
	{"Vmmcall", (*asm.Assembler).Vmmcall, 0, nil, "vmmcall", []byte{0x0F, 0x01, 0xD9}},
	{"Mfence", (*asm.Assembler).Mfence, x86asm.MFENCE, nil, "mfence", []byte{0x0F, 0xAE, 0xF0}},
	{"Lfence", (*asm.Assembler).Lfence, x86asm.LFENCE, nil, "lfence", []byte{0x0F, 0xAE, 0xE8}},
	{"Sfence", (*asm.Assembler).Sfence, x86asm.SFENCE, nil, "sfence", []byte{0x0F, 0xAE, 0xF8}},
	{"Wbinvd", (*asm.Assembler).Wbinvd, x86asm.WBINVD, nil, "wbinvd", []byte{0x0F, 0x09}},
	{"Invd", (*asm.Assembler).Invd, x86asm.INVD, nil, "invd", []byte{0x0F, 0x08}},
	{"Clts", (*asm.Assembler).Clts, x86asm.CLTS, nil, "clts", []byte{0x0F, 0x06}},
	{"Xgetbv", (*asm.Assembler).Xgetbv, x86asm.XGETBV, nil, "xgetbv", []byte{0x0F, 0x01, 0xD0}},
	{"Xsetbv", (*asm.Assembler).Xsetbv, x86asm.XSETBV, nil, "xsetbv", []byte{0x0F, 0x01, 0xD1}},
	{"Monitor", (*asm.Assembler).Monitor, x86asm.MONITOR, nil, "monitor", []byte{0x0F, 0x01, 0xC8}},
	{"Mwait", (*asm.Assembler).Mwait, x86asm.MWAIT, nil, "mwait", []byte{0x0F, 0x01, 0xC9}},
	{"Leave", (*asm.Assembler).Leave, x86asm.LEAVE, nil, "leave", []byte{0xC9}},
	{"Ret", (*asm.Assembler).Ret, x86asm.RET, nil, "ret", []byte{0xC3}},
	{"Pushfq", (*asm.Assembler).Pushfq, x86asm.PUSHFQ, nil, "pushfq", []byte{0x9C}},
	{"Popfq", (*asm.Assembler).Popfq, x86asm.POPFQ, nil, "popfq", []byte{0x9D}},
	{"Cbw", (*asm.Assembler).Cbw, x86asm.CBW, nil, "cbw", []byte{0x66, 0x98}},
	{"Cwde", (*asm.Assembler).Cwde, x86asm.CWDE, nil, "cwde", []byte{0x98}},
	{"Cdqe", (*asm.Assembler).Cdqe, x86asm.CDQE, nil, "cdqe", []byte{0x48, 0x98}},
	{"Cwd", (*asm.Assembler).Cwd, x86asm.CWD, nil, "cwd", []byte{0x66, 0x99}},
	{"Cdq", (*asm.Assembler).Cdq, x86asm.CDQ, nil, "cdq", []byte{0x99}},
	{"Cqo", (*asm.Assembler).Cqo, x86asm.CQO, nil, "cqo", []byte{0x48, 0x99}},
}

func genFixed(p *picker) tc {
	f := pickOf(p, fixedTable)
	return tc{
		name: f.method + "()",
		emit: func(a *asm.Assembler, l labels) { f.fn(a) },
		op:   f.op, args: f.args, raw: f.raw, n: len(f.raw),
		gas: f.gas,
	}
}

// genImm8Insn covers Int and RetImm, whose operand is a plain integer.
func genImm8Insn(p *picker) tc {
	if p.pick(2) == 0 {
		n := pickOf(p, []uint8{0, 3, 0x80, 255})
		return tc{
			name: fmt.Sprintf("Int(%d)", n),
			emit: func(a *asm.Assembler, l labels) { a.Int(n) },
			op:   x86asm.INT, args: []any{asm.Imm(n)}, imm: 1, n: 2,
			// GNU as turns "int 3" into INT3 (CC); x86asm shows both as
			// INT 3, so the comparison still holds.
			gas: fmt.Sprintf("int %d", n),
		}
	}
	n := pickOf(p, []uint16{0, 8, 0xFFFF})
	return tc{
		name: fmt.Sprintf("RetImm(%d)", n),
		emit: func(a *asm.Assembler, l labels) { a.RetImm(n) },
		op:   x86asm.RET, args: []any{asm.Imm(n)}, imm: 2, n: 3,
		gas: fmt.Sprintf("ret %d", n),
	}
}

func genInOut(p *picker) tc {
	r := pickOf(p, []asm.Reg{asm.AL, asm.AX, asm.EAX})
	port := pickOf(p, []asm.Operand{asm.Imm(0), asm.Imm(0x80), asm.Imm(255), asm.DX})
	if p.pick(2) == 0 {
		return tc{
			name: callName(false, "In", r, port),
			emit: func(a *asm.Assembler, l labels) { a.In(r, port) },
			op:   x86asm.IN, args: []any{r, port}, imm: 1,
			gas: gasLine("", "in", r, port),
		}
	}
	return tc{
		name: callName(false, "Out", port, r),
		emit: func(a *asm.Assembler, l labels) { a.Out(port, r) },
		op:   x86asm.OUT, args: []any{port, r}, imm: 1,
		gas: gasLine("", "out", port, r),
	}
}

func genMovSys(p *picker) tc {
	r := pickOf(p, regsOf(8))
	k := p.pick(4)
	var (
		name string
		emit func(a *asm.Assembler, l labels)
		spec x86asm.Reg
		sn   string
	)
	if k < 2 {
		cr := pickOf(p, []asm.CReg{asm.CR0, asm.CR2, asm.CR3, asm.CR4, asm.CR8})
		spec, sn = x86asm.CR0+x86asm.Reg(cr), cr.String()
		if k == 0 {
			name, emit = fmt.Sprintf("MovToCR(%v, %v)", cr, r), func(a *asm.Assembler, l labels) { a.MovToCR(cr, r) }
		} else {
			name, emit = fmt.Sprintf("MovFromCR(%v, %v)", r, cr), func(a *asm.Assembler, l labels) { a.MovFromCR(r, cr) }
		}
	} else {
		dr := asm.DReg(p.pick(8))
		spec, sn = x86asm.DR0+x86asm.Reg(dr), dr.String()
		if k == 2 {
			name, emit = fmt.Sprintf("MovToDR(%v, %v)", dr, r), func(a *asm.Assembler, l labels) { a.MovToDR(dr, r) }
		} else {
			name, emit = fmt.Sprintf("MovFromDR(%v, %v)", r, dr), func(a *asm.Assembler, l labels) { a.MovFromDR(r, dr) }
		}
	}
	args, gas := []any{spec, r}, fmt.Sprintf("mov %s, %v", sn, r)
	if k%2 == 1 {
		args, gas = []any{r, spec}, fmt.Sprintf("mov %v, %s", r, sn)
	}
	return tc{name: name, emit: emit, op: x86asm.MOV, args: args, gas: gas}
}

func genDescTable(p *picker) tc {
	d := pickOf(p, []struct {
		method string
		fn     fnM
		op     x86asm.Op
	}{
		{"Lgdt", (*asm.Assembler).Lgdt, x86asm.LGDT},
		{"Lidt", (*asm.Assembler).Lidt, x86asm.LIDT},
		{"Sgdt", (*asm.Assembler).Sgdt, x86asm.SGDT},
		{"Sidt", (*asm.Assembler).Sidt, x86asm.SIDT},
		{"Invlpg", (*asm.Assembler).Invlpg, x86asm.INVLPG},
	})
	m := pickOf(p, memForms)
	return tc{
		name: callName(false, d.method, m),
		emit: func(a *asm.Assembler, l labels) { d.fn(a, l.op(m).(asm.Mem)) },
		op:   d.op, args: []any{m},
		gas: gasLine("", strings.ToLower(d.method), m),
	}
}

func genLtr(p *picker) tc {
	x, want := regOrMem(p, 2, true)
	return tc{
		name: callName(false, "Ltr", x),
		emit: func(a *asm.Assembler, l labels) { a.Ltr(l.op(x)) },
		op:   x86asm.LTR, args: []any{want},
		gas: gasLine("", "ltr", want),
	}
}

// stringTable lists the string instructions and their implicit operands as
// x86asm reports them.
var stringTable = []struct {
	method string
	fn     fn0
	op     x86asm.Op
	rep    int // 0 none, 1 rep, 2 rep/repne
	args   []any
}{
	{"Stosb", (*asm.Assembler).Stosb, x86asm.STOSB, 1, []any{memDI, asm.AL}},
	{"Stosw", (*asm.Assembler).Stosw, x86asm.STOSW, 1, []any{memDI, asm.AX}},
	{"Stosd", (*asm.Assembler).Stosd, x86asm.STOSD, 1, []any{memDI, asm.EAX}},
	{"Stosq", (*asm.Assembler).Stosq, x86asm.STOSQ, 1, []any{memDI, asm.RAX}},
	{"Movsb", (*asm.Assembler).Movsb, x86asm.MOVSB, 1, []any{memDI, memSI}},
	{"Movsw", (*asm.Assembler).Movsw, x86asm.MOVSW, 1, []any{memDI, memSI}},
	{"Movsd", (*asm.Assembler).Movsd, x86asm.MOVSD, 1, []any{memDI, memSI}},
	{"Movsq", (*asm.Assembler).Movsq, x86asm.MOVSQ, 1, []any{memDI, memSI}},
	{"Lodsb", (*asm.Assembler).Lodsb, x86asm.LODSB, 1, []any{asm.AL, memSI}},
	{"Lodsw", (*asm.Assembler).Lodsw, x86asm.LODSW, 1, []any{asm.AX, memSI}},
	{"Lodsd", (*asm.Assembler).Lodsd, x86asm.LODSD, 1, []any{asm.EAX, memSI}},
	{"Lodsq", (*asm.Assembler).Lodsq, x86asm.LODSQ, 1, []any{asm.RAX, memSI}},
	{"Scasb", (*asm.Assembler).Scasb, x86asm.SCASB, 2, []any{asm.AL, memDI}},
	{"Scasw", (*asm.Assembler).Scasw, x86asm.SCASW, 2, []any{asm.AX, memDI}},
	{"Scasd", (*asm.Assembler).Scasd, x86asm.SCASD, 2, []any{asm.EAX, memDI}},
	{"Scasq", (*asm.Assembler).Scasq, x86asm.SCASQ, 2, []any{asm.RAX, memDI}},
	{"Cmpsb", (*asm.Assembler).Cmpsb, x86asm.CMPSB, 2, []any{memSI, memDI}},
	{"Cmpsw", (*asm.Assembler).Cmpsw, x86asm.CMPSW, 2, []any{memSI, memDI}},
	{"Cmpsd", (*asm.Assembler).Cmpsd, x86asm.CMPSD, 2, []any{memSI, memDI}},
	{"Cmpsq", (*asm.Assembler).Cmpsq, x86asm.CMPSQ, 2, []any{memSI, memDI}},
	{"Insb", (*asm.Assembler).Insb, x86asm.INSB, 1, []any{memDI, asm.DX}},
	{"Insw", (*asm.Assembler).Insw, x86asm.INSW, 1, []any{memDI, asm.DX}},
	{"Insd", (*asm.Assembler).Insd, x86asm.INSD, 1, []any{memDI, asm.DX}},
	{"Outsb", (*asm.Assembler).Outsb, x86asm.OUTSB, 1, []any{asm.DX, memSI}},
	{"Outsw", (*asm.Assembler).Outsw, x86asm.OUTSW, 1, []any{asm.DX, memSI}},
	{"Outsd", (*asm.Assembler).Outsd, x86asm.OUTSD, 1, []any{asm.DX, memSI}},
}

var (
	memDI = asm.Mem{Base: asm.RDI}
	memSI = asm.Mem{Base: asm.RSI}
)

func genString(p *picker) tc {
	s := pickOf(p, stringTable)
	rep := p.pick(s.rep + 1)
	c := tc{
		name: s.method + "()",
		emit: func(a *asm.Assembler, l labels) { s.fn(a) },
		op:   s.op, args: s.args,
		gas: strings.ToLower(s.method),
	}
	switch rep {
	case 1:
		c.name, c.rep, c.gas = "Rep()."+c.name, x86asm.PrefixREP, "rep "+c.gas
		c.emit = func(a *asm.Assembler, l labels) { s.fn(a.Rep()) }
	case 2:
		c.name, c.rep, c.gas = "Repne()."+c.name, x86asm.PrefixREPN, "repne "+c.gas
		c.emit = func(a *asm.Assembler, l labels) { s.fn(a.Repne()) }
	}
	return c
}
