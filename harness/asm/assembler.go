// Package asm is an x86-64 assembler for the small guest programs the
// conformance suite runs. Guests are written in Go as calls on an Assembler:
//
//	a := asm.New(0x1000)
//	loop := a.Here()
//	a.Lock().Add(asm.Q(asm.RDI, 0), asm.Imm(1))
//	a.Dec(asm.RCX)
//	a.Jcc(asm.CondNZ, loop)
//	a.Hlt()
//	code, err := a.Assemble()
//
// Every encoding decodes with golang.org/x/arch/x86/x86asm to exactly the
// instruction that was asked for, because the emulator backend decodes guest
// code with that package. Where several encodings exist the shortest standard
// one is used, except where shortening would change what executes (see Imm).
//
// Errors never panic. An invalid operand combination records an *Error that
// names the method and the Go file:line that called it, emits nothing, and
// the Assembler carries on so that one run reports the first mistake with
// its place; Assemble and Err return that first error.
//
// Branch sizing is decided when the branch is emitted, so PC() and Len() are
// exact at every point of construction (guests often need the address of the
// next instruction while they are being built): a branch to an already-bound
// label uses rel8 when it fits, a branch to a label that is not bound yet uses
// rel32. JmpShort, JccShort, Loop and the other rel8-only forms always use
// rel8 and report an error at Assemble if the target is out of range.
package asm

import (
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
)

// Label is a position in the program, created by NewLabel or Here and bound
// to a PC by Bind. Labels belong to the Assembler that created them.
type Label struct {
	a   *Assembler
	id  int
	off int // offset from origin once bound, -1 before
}

// String returns the label's name in listings and errors, e.g. "L3".
func (l *Label) String() string {
	if l == nil {
		return "L<nil>"
	}
	return fmt.Sprintf("L%d", l.id)
}

// Error is an assembly error, attributed to the Go source line that called
// the offending Assembler method.
type Error struct {
	Op   string // Assembler method, e.g. "Mov"
	File string // Go source file of the call; "" if unknown
	Line int    // line in File
	Msg  string // what is wrong
}

// Error formats the error as "file.go:12: asm: Mov: message".
func (e *Error) Error() string {
	loc := "?"
	if e.File != "" {
		loc = fmt.Sprintf("%s:%d", filepath.Base(e.File), e.Line)
	}
	return fmt.Sprintf("%s: asm: %s: %s", loc, e.Op, e.Msg)
}

// recKind says what produced a record, for the listing text.
type recKind uint8

const (
	recInsn recKind = iota
	recByte         // Byte, Align, Space
	recWord
	recLong
	recQuad // Quad, QuadLabel
)

// record is one emitted item: an instruction or one data directive.
type record struct {
	off, n         int
	kind           recKind
	pcStart, pcLen int32 // slice of Assembler.pcs: the Go call stack that emitted it
}

// fixKind is the kind of value a fixup patches in.
type fixKind uint8

const (
	fixRel8  fixKind = iota // signed 8-bit branch displacement
	fixRel32                // signed 32-bit branch or RIP-relative displacement
	fixAbs64                // 64-bit absolute address
)

// fixup patches a label-dependent field once all labels are bound.
type fixup struct {
	kind fixKind
	at   int // offset of the field
	end  int // offset the displacement is relative to (end of the instruction)
	l    *Label
	add  int64 // addend (Mem.Disp of a RIP-relative operand)
	rec  int   // record that owns the field, for error attribution
	op   string
}

// pending is a prefix requested by Lock, Rep or Repne and not yet consumed.
type pending struct {
	op   string // "Lock", "Rep" or "Repne"
	lock bool
	rep  byte // 0xF3, 0xF2 or 0
	pcs  []uintptr
}

// maxCallers bounds the Go call stack kept per emitted item. Frames inside
// package asm and skipped packages are discarded when resolving, so this
// only needs to reach past a few helper layers to the caller of interest.
const maxCallers = 24

// asmPkg is this package's import path; its frames are never the "source".
var asmPkg = reflect.TypeOf(Assembler{}).PkgPath()

// Assembler builds one x86-64 program. It is not safe for concurrent use.
type Assembler struct {
	origin  uint64
	buf     []byte
	recs    []record
	pcs     []uintptr // call stacks of recs, concatenated
	fixups  []fixup
	nlabels int
	err     error
	prefix  *pending
	skip    []string // caller packages hidden from source attribution
}

// New returns an Assembler whose first byte will live at guest virtual
// address origin; labels, RIP-relative operands and listings use it.
func New(origin uint64) *Assembler {
	return &Assembler{origin: origin}
}

// SkipCallerPackage hides the package with import path pkgPath from source
// attribution (errors, Listing, SourceAt), in addition to package asm itself.
// A helper package that emits instructions on behalf of its caller, such as
// harness/guest, calls this on each Assembler it works on, so that a listing
// line or error points at the spec that called the helper rather than at the
// helper's own code. It is per Assembler (not a global registry) so that
// tests cannot influence each other; calling it twice is harmless.
// A package can name itself with reflect.TypeOf(T{}).PkgPath() for any of its
// types T.
func (a *Assembler) SkipCallerPackage(pkgPath string) {
	for _, p := range a.skip {
		if p == pkgPath {
			return
		}
	}
	a.skip = append(a.skip, pkgPath)
}

// NewLabel returns a new unbound label.
func (a *Assembler) NewLabel() *Label {
	a.nlabels++
	return &Label{a: a, id: a.nlabels, off: -1}
}

// Bind binds l to the current PC. Binding a label twice, or a label of
// another Assembler, is an error.
func (a *Assembler) Bind(l *Label) {
	if !a.checkLabel("Bind", l) {
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

// PC returns the guest virtual address of the next byte to be emitted.
func (a *Assembler) PC() uint64 { return a.origin + uint64(len(a.buf)) }

// Len returns the number of bytes emitted so far.
func (a *Assembler) Len() int { return len(a.buf) }

// Addr returns the absolute address of l, and false if l is unbound or
// belongs to another Assembler.
func (a *Assembler) Addr(l *Label) (uint64, bool) {
	if l == nil || l.a != a || l.off < 0 {
		return 0, false
	}
	return a.origin + uint64(l.off), true
}

// Err returns the first recorded error, or nil.
func (a *Assembler) Err() error { return a.err }

// Assemble resolves label references and returns a copy of the program. It
// fails with the first recorded error, or with the first unbound label,
// out-of-range short branch or dangling Lock/Rep. Assemble may be called
// again after more instructions are added.
func (a *Assembler) Assemble() ([]byte, error) {
	if a.err != nil {
		return nil, a.err
	}
	if p := a.prefix; p != nil {
		a.prefix = nil
		file, line := a.source(p.pcs)
		a.setErr(&Error{Op: p.op, File: file, Line: line, Msg: "prefix is not followed by an instruction"})
		return nil, a.err
	}
	for i := range a.fixups {
		if err := a.resolve(&a.fixups[i]); err != nil {
			a.setErr(err)
			return nil, err
		}
	}
	out := make([]byte, len(a.buf))
	copy(out, a.buf)
	return out, nil
}

// resolve patches one fixup.
func (a *Assembler) resolve(f *fixup) error {
	fail := func(format string, args ...any) error {
		r := a.recs[f.rec]
		file, line := a.source(a.pcs[r.pcStart : r.pcStart+r.pcLen])
		return &Error{Op: f.op, File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	if f.l.off < 0 {
		return fail("label %v is never bound", f.l)
	}
	target := int64(f.l.off) + f.add
	switch f.kind {
	case fixRel8:
		d := target - int64(f.end)
		if d < -128 || d > 127 {
			return fail("target %v is %d bytes away, out of rel8 range [-128, 127]", f.l, d)
		}
		a.buf[f.at] = byte(d)
	case fixRel32:
		d := target - int64(f.end)
		if d < -1<<31 || d >= 1<<31 {
			return fail("target %v is %d bytes away, out of rel32 range", f.l, d)
		}
		putLE(a.buf[f.at:], uint64(d), 4)
	case fixAbs64:
		putLE(a.buf[f.at:], a.origin+uint64(target), 8)
	}
	return nil
}

// putLE writes the low n bytes of v little-endian.
func putLE(b []byte, v uint64, n int) {
	for i := 0; i < n; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

// SourceAt returns the Go source position that emitted the instruction or
// data item covering guest address pc.
func (a *Assembler) SourceAt(pc uint64) (file string, line int, ok bool) {
	if pc < a.origin || pc >= a.PC() {
		return "", 0, false
	}
	off := int(pc - a.origin)
	// recs are in offset order; find the last one starting at or before off.
	lo, hi := 0, len(a.recs)
	for lo < hi {
		m := (lo + hi) / 2
		if a.recs[m].off <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return "", 0, false
	}
	r := a.recs[lo-1]
	if off >= r.off+r.n {
		return "", 0, false
	}
	file, line = a.source(a.pcs[r.pcStart : r.pcStart+r.pcLen])
	return file, line, file != ""
}

// checkLabel reports whether l can be used with a, recording an error if not.
func (a *Assembler) checkLabel(op string, l *Label) bool {
	switch {
	case l == nil:
		a.fail(op, "nil label")
		return false
	case l.a != a:
		a.fail(op, "label %v was not created by this Assembler (use NewLabel or Here)", l)
		return false
	}
	return true
}

// setErr records err unless an error is already recorded.
func (a *Assembler) setErr(err error) {
	if a.err == nil {
		a.err = err
	}
}

// fail records an error for method op, attributed to the caller of the
// public method. A pending prefix is dropped with it, so that one mistake
// does not cascade into a second error on the next instruction.
func (a *Assembler) fail(op, format string, args ...any) {
	a.prefix = nil
	if a.err != nil {
		return // only the first error is kept; skip the stack walk
	}
	file, line := a.source(callers(nil))
	a.err = &Error{Op: op, File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// callers appends the current Go call stack (above this function) to dst.
func callers(dst []uintptr) []uintptr {
	n := len(dst)
	dst = append(dst, make([]uintptr, maxCallers)...)
	got := runtime.Callers(2, dst[n:])
	return dst[:n+got]
}

// source returns the first frame of stack pcs outside package asm and the
// skipped packages.
func (a *Assembler) source(pcs []uintptr) (string, int) {
	if len(pcs) == 0 {
		return "", 0
	}
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		if !a.hidden(funcPackage(f.Function)) {
			return f.File, f.Line
		}
		if !more {
			return "", 0
		}
	}
}

func (a *Assembler) hidden(pkg string) bool {
	if pkg == asmPkg {
		return true
	}
	for _, p := range a.skip {
		if p == pkg {
			return true
		}
	}
	return false
}

// funcPackage returns the import path of a fully qualified function name as
// reported by runtime.Frame.Function, e.g.
// "github.com/x/y.(*T).M.func1" -> "github.com/x/y". Dots in the last path
// element are escaped by the toolchain, so the first dot after the last slash
// ends the path.
func funcPackage(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	if dot := strings.IndexByte(fn[slash+1:], '.'); dot >= 0 {
		return fn[:slash+1+dot]
	}
	return fn
}

// appendItem appends an emitted instruction or data item with its fixups
// (whose offsets are relative to the item's start) and records who emitted
// it.
func (a *Assembler) appendItem(k recKind, b []byte, fix []fixup) {
	off := len(a.buf)
	a.buf = append(a.buf, b...)
	start := len(a.pcs)
	a.pcs = callers(a.pcs)
	a.recs = append(a.recs, record{off: off, n: len(b), kind: k, pcStart: int32(start), pcLen: int32(len(a.pcs) - start)})
	for _, f := range fix {
		f.at += off
		f.end += off
		f.rec = len(a.recs) - 1
		a.fixups = append(a.fixups, f)
	}
}
