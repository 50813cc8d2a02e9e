// Package a64 is an AArch64 (A64) assembler for the small guest programs the
// conformance suite runs on arm64. Guests are written in Go as calls on an
// Assembler:
//
//	a := a64.New(0x1000)
//	loop := a.Here()
//	a.Sub(a64.X0, a64.X0, a64.Imm(1))
//	a.Cbnz(a64.X0, loop)
//	a.Hvc(0)
//	code, err := a.Assemble()
//
// It covers the subset the suites need: data processing (arithmetic and
// logical immediates and shifted registers, wide moves and a Mov that builds
// any 64-bit constant, shifts, multiply and divide, conditional select),
// loads and stores (all addressing modes of LDR/STR, pairs, exclusive and
// acquire/release forms, the FEAT_LSE compare-and-swap family CAS, CASB,
// CASH and CASP, PC-relative literals), branches with labels,
// system register access by name, barriers, exception-generating
// instructions and data directives.
//
// Every instruction is one 32-bit little-endian word, so PC and Len are
// exact at every point of construction; label references are patched by
// Assemble, which reports a target out of the instruction's range. Every
// form decodes with golang.org/x/arch/arm64/arm64asm to the instruction that
// was asked for (tests check each one, and compare bytes with GNU as where
// aarch64-linux-gnu-as is installed).
//
// Errors never panic. An invalid operand combination records an *Error that
// names the method and the Go file:line that called it, emits nothing, and
// the Assembler carries on; Assemble and Err return the first error.
package a64

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
)

// Label is a position in the program, created by NewLabel or Here and bound
// to a PC by Bind. Labels belong to the Assembler that created them.
type Label struct {
	owner *Assembler
	id    int
	off   int // offset from origin once bound, -1 before
}

// String returns the label's name in errors, e.g. "L3".
func (l *Label) String() string {
	if l == nil {
		return "L<nil>"
	}
	return fmt.Sprintf("L%d", l.id)
}

// Error is an assembly error, attributed to the Go source line that called
// the offending Assembler method.
type Error struct {
	Op   string // Assembler method, e.g. "Add"
	File string // Go source file of the call; "" if unknown
	Line int    // line in File
	Msg  string // what is wrong
}

// Error formats the error as "file.go:12: a64: Add: message".
func (e *Error) Error() string {
	where := "?"
	if e.File != "" {
		where = fmt.Sprintf("%s:%d", filepath.Base(e.File), e.Line)
	}
	return fmt.Sprintf("%s: a64: %s: %s", where, e.Op, e.Msg)
}

// itemKind says what produced an item, for the listing.
type itemKind uint8

const (
	itemInsn  itemKind = iota
	itemLong           // Long, raw words
	itemQuad           // Quad, QuadLabel
	itemAlign          // Align padding
	itemSpace          // Space
)

// item is one emitted instruction or data directive, with the Go call stack
// that emitted it (for listings and fixup errors).
type item struct {
	off, n int
	kind   itemKind
	align  int // itemAlign: the alignment asked for
	stack  []uintptr
}

// fixKind is the field a label reference patches.
type fixKind uint8

const (
	fixImm26 fixKind = iota // B, BL: bits 25:0, words
	fixImm19                // B.cond, CBZ/CBNZ, LDR literal: bits 23:5, words
	fixImm14                // TBZ/TBNZ: bits 18:5, words
	fixAdr                  // ADR: immhi 23:5, immlo 30:29, bytes
	fixAbs64                // QuadLabel: 64-bit absolute address
)

// fixup is a label reference to patch once all labels are bound.
type fixup struct {
	kind fixKind
	at   int // offset of the instruction or data word
	l    *Label
	item int // index of the item, for error attribution
	op   string
}

// ownPkg is this package's import path; its frames are never the source of
// an instruction.
var ownPkg = reflect.TypeOf(Assembler{}).PkgPath()

// Assembler builds one AArch64 program. It is not safe for concurrent use.
type Assembler struct {
	origin  uint64
	buf     []byte
	items   []item
	fixups  []fixup
	nlabels int
	err     error
	skip    map[string]bool // caller packages hidden from attribution
}

// New returns an Assembler whose first instruction will live at guest
// address origin. A64 instructions are word aligned, so an origin that is
// not a multiple of 4 is recorded as an error.
func New(origin uint64) *Assembler {
	a := &Assembler{origin: origin}
	if origin%4 != 0 {
		a.fail("New", "origin %#x is not 4-byte aligned", origin)
	}
	return a
}

// SkipCallerPackage hides the package with import path pkgPath from source
// attribution, so that a helper package emitting code for its caller (a
// guest runtime) has errors and listing lines point at its caller.
func (a *Assembler) SkipCallerPackage(pkgPath string) {
	if a.skip == nil {
		a.skip = map[string]bool{}
	}
	a.skip[pkgPath] = true
}

// NewLabel returns a new unbound label.
func (a *Assembler) NewLabel() *Label {
	a.nlabels++
	return &Label{owner: a, id: a.nlabels, off: -1}
}

// Bind binds l to the current PC. Binding a label twice, or a label of
// another Assembler, is an error.
func (a *Assembler) Bind(l *Label) {
	if !a.ownLabel("Bind", l) {
		return
	}
	if l.off >= 0 {
		a.fail("Bind", "label %v already bound at %#x", l, a.origin+uint64(l.off))
		return
	}
	l.off = len(a.buf)
}

// Here returns a new label bound at the current PC.
func (a *Assembler) Here() *Label {
	l := a.NewLabel()
	l.off = len(a.buf)
	return l
}

// PC returns the guest address of the next byte to be emitted.
func (a *Assembler) PC() uint64 { return a.origin + uint64(len(a.buf)) }

// Len returns the number of bytes emitted so far.
func (a *Assembler) Len() int { return len(a.buf) }

// Addr returns the address of l, and false if l is unbound or foreign.
func (a *Assembler) Addr(l *Label) (uint64, bool) {
	if l == nil || l.owner != a || l.off < 0 {
		return 0, false
	}
	return a.origin + uint64(l.off), true
}

// Err returns the first recorded error, or nil.
func (a *Assembler) Err() error { return a.err }

// Assemble resolves label references and returns a copy of the program. It
// fails with the first recorded error, or the first unbound label or
// out-of-range branch. It may be called again after more code is added.
func (a *Assembler) Assemble() ([]byte, error) {
	if a.err != nil {
		return nil, a.err
	}
	for i := range a.fixups {
		if err := a.patch(&a.fixups[i]); err != nil {
			a.err = err
			return nil, err
		}
	}
	return append([]byte(nil), a.buf...), nil
}

// fieldRange is the reach of each PC-relative field, for errors.
var fieldRange = map[fixKind]struct {
	bits  uint
	scale int64
	name  string
}{
	fixImm26: {26, 4, "±128 MiB"},
	fixImm19: {19, 4, "±1 MiB"},
	fixImm14: {14, 4, "±32 KiB"},
	fixAdr:   {21, 1, "±1 MiB"},
}

// patch resolves one fixup into a.buf.
func (a *Assembler) patch(f *fixup) error {
	errf := func(format string, args ...any) error {
		file, line := a.source(a.items[f.item].stack)
		return &Error{Op: f.op, File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	if f.l.off < 0 {
		return errf("label %v is never bound", f.l)
	}
	if f.kind == fixAbs64 {
		binary.LittleEndian.PutUint64(a.buf[f.at:], a.origin+uint64(f.l.off))
		return nil
	}
	fr := fieldRange[f.kind]
	d := int64(f.l.off) - int64(f.at)
	if d%fr.scale != 0 {
		return errf("target %v at %#x is not word aligned", f.l, a.origin+uint64(f.l.off))
	}
	v := d / fr.scale
	if v < -(1<<(fr.bits-1)) || v >= 1<<(fr.bits-1) {
		return errf("target %v is %d bytes away, out of range (%s)", f.l, d, fr.name)
	}
	u := uint32(v) & (1<<fr.bits - 1)
	w := binary.LittleEndian.Uint32(a.buf[f.at:])
	switch f.kind {
	case fixImm26:
		w |= u
	case fixImm19, fixImm14:
		w |= u << 5
	case fixAdr:
		w |= (u&3)<<29 | (u>>2)<<5
	}
	binary.LittleEndian.PutUint32(a.buf[f.at:], w)
	return nil
}

// SourceAt returns the Go source position that emitted the instruction or
// data item covering guest address pc.
func (a *Assembler) SourceAt(pc uint64) (file string, line int, ok bool) {
	if pc < a.origin || pc >= a.PC() {
		return "", 0, false
	}
	off := int(pc - a.origin)
	for i := len(a.items) - 1; i >= 0; i-- {
		if it := a.items[i]; it.off <= off && off < it.off+it.n {
			file, line = a.source(it.stack)
			return file, line, file != ""
		}
	}
	return "", 0, false
}

// ownLabel reports whether l can be used with a, recording an error if not.
func (a *Assembler) ownLabel(op string, l *Label) bool {
	if l == nil {
		a.fail(op, "nil label")
		return false
	}
	if l.owner != a {
		a.fail(op, "label %v belongs to another Assembler", l)
		return false
	}
	return true
}

// fail records an error for method op at the caller's source line, unless
// one is already recorded.
func (a *Assembler) fail(op, format string, args ...any) {
	if a.err != nil {
		return
	}
	file, line := a.source(stack())
	a.err = &Error{Op: op, File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// stack returns the Go call stack above its caller.
func stack() []uintptr {
	pcs := make([]uintptr, 24)
	return pcs[:runtime.Callers(3, pcs)]
}

// source returns the first frame of pcs outside this package and the
// skipped ones.
func (a *Assembler) source(pcs []uintptr) (string, int) {
	frames := runtime.CallersFrames(pcs)
	for len(pcs) > 0 {
		f, more := frames.Next()
		fn := f.Function
		pkg := fn
		if dot := strings.IndexByte(fn[strings.LastIndexByte(fn, '/')+1:], '.'); dot >= 0 {
			pkg = fn[:strings.LastIndexByte(fn, '/')+1+dot]
		}
		if pkg != ownPkg && !a.skip[pkg] {
			return f.File, f.Line
		}
		if !more {
			break
		}
	}
	return "", 0
}

// emit appends one instruction word, with an optional label reference.
func (a *Assembler) emit(op string, w uint32, l *Label, k fixKind) {
	off := len(a.buf)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, w)
	a.items = append(a.items, item{off: off, n: 4, kind: itemInsn, stack: stack()})
	if l != nil {
		a.fixups = append(a.fixups, fixup{kind: k, at: off, l: l, item: len(a.items) - 1, op: op})
	}
}
