package a64

import (
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/arch/arm64/arm64asm"
)

// Line is one line of a listing: an instruction or a data item.
type Line struct {
	PC     uint64 // guest address of the first byte
	Bytes  []byte // the encoded bytes
	Text   string // GNU syntax from arm64asm, or a directive such as ".quad 0x1000"
	File   string // Go source file that emitted it
	LineNo int    // line in File
}

// String formats the line as "0x1000  d2800540  mov x0, #0x2a  ; file.go:12".
func (l Line) String() string {
	s := fmt.Sprintf("%#x  % -12x  %s", l.PC, l.Bytes, l.Text)
	if l.File != "" {
		file := l.File
		if i := strings.LastIndexByte(file, '/'); i >= 0 {
			file = file[i+1:]
		}
		s += fmt.Sprintf("  ; %s:%d", file, l.LineNo)
	}
	return s
}

// Text disassembles one instruction word in GNU syntax, with PC-relative
// targets shown as absolute addresses for an instruction at pc.
func Text(w uint32, pc uint64) string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], w)
	inst, err := arm64asm.Decode(b[:])
	if err != nil {
		// arm64asm has no table entries for HVC and SMC (it targets user
		// code), and guests use HVC for every exit: name them here.
		switch w &^ (0xffff << 5) {
		case 0xD4000002:
			return fmt.Sprintf("hvc #%#x", w>>5&0xffff)
		case 0xD4000003:
			return fmt.Sprintf("smc #%#x", w>>5&0xffff)
		}
		// Nor for the FEAT_LSE atomics; guests use CAS (page_fault_test's
		// guest_cas): name the compare-and-swap forms.
		if text, ok := casText(w); ok {
			return text
		}
		return fmt.Sprintf(".inst %#08x", w)
	}
	s := strings.TrimSpace(arm64asm.GNUSyntax(inst))
	for _, arg := range inst.Args {
		if rel, ok := arg.(arm64asm.PCRel); ok {
			// GNUSyntax prints ".+0x..." with the offset as unsigned.
			if i := strings.Index(s, ".+"); i >= 0 {
				s = s[:i] + fmt.Sprintf("%#x", pc+uint64(rel))
			}
		}
	}
	return s
}

// Listing assembles the program and returns one Line per instruction and
// data item, attributed to the Go source line that emitted it.
func (a *Assembler) Listing() ([]Line, error) {
	code, err := a.Assemble()
	if err != nil {
		return nil, err
	}
	lines := make([]Line, 0, len(a.items))
	for _, it := range a.items {
		b := code[it.off : it.off+it.n]
		pc := a.origin + uint64(it.off)
		file, line := a.source(it.stack)
		var text string
		switch it.kind {
		case itemInsn:
			text = Text(binary.LittleEndian.Uint32(b), pc)
		case itemLong:
			text = fmt.Sprintf(".long %#x", binary.LittleEndian.Uint32(b))
		case itemQuad:
			text = fmt.Sprintf(".quad %#x", binary.LittleEndian.Uint64(b))
		case itemAlign:
			text = fmt.Sprintf(".balign %d", it.align)
		case itemSpace:
			text = fmt.Sprintf(".space %d", len(b))
		}
		lines = append(lines, Line{PC: pc, Bytes: b, Text: text, File: file, LineNo: line})
	}
	return lines, nil
}

// casText is the GNU syntax of a CAS, CASB, CASH or CASP word with its
// ordering (A, L, AL or none); ok is false for other words and for a
// CASP with an odd register (reserved: GNU as names no such pair).
func casText(w uint32) (text string, ok bool) {
	if w&0x3FA07C00 != casBase && w&0xBFA07C00 != caspBase {
		return "", false
	}
	order := map[uint32]string{0: "", 1: "l", 2: "a", 3: "al"}[w>>22&1<<1|w>>15&1]
	rn := "sp"
	if n := int(w >> 5 & 31); n != 31 {
		rn = X(n).String()
	}
	r := W
	if w&0xBFA07C00 == caspBase {
		if w>>30&1 == 1 {
			r = X
		}
		s, t := int(w>>16&31), int(w&31)
		if s%2 != 0 || t%2 != 0 {
			return "", false
		}
		return fmt.Sprintf("casp%s %v, %v, %v, %v, [%s]", order, r(s), r(s+1), r(t), r(t+1), rn), true
	}
	name := "cas" + order + []string{"b", "h", "", ""}[w>>30]
	if w>>30 == 3 {
		r = X
	}
	return fmt.Sprintf("%s %v, %v, [%s]", name, r(int(w>>16&31)), r(int(w&31)), rn), true
}
