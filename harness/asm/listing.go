package asm

import (
	"bytes"
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// Line is one line of a listing: an instruction or a piece of data.
type Line struct {
	PC     uint64 // guest virtual address of the first byte
	Bytes  []byte // the encoded bytes
	Text   string // Intel syntax from x86asm, or a directive such as ".quad 0x1000"
	File   string // Go source file that emitted it; "" from Disasm
	LineNo int    // line in File
}

// String formats the line as "0x1000  48 89 c8      mov rax, rcx  ; file.go:12".
func (l Line) String() string {
	s := fmt.Sprintf("%#x  % -24x  %s", l.PC, l.Bytes, l.Text)
	if l.File != "" {
		s += fmt.Sprintf("  ; %s:%d", shortFile(l.File), l.LineNo)
	}
	return s
}

// shortFile keeps the last directory and the file name, enough to find a
// source line in a report without the builder's absolute path.
func shortFile(f string) string {
	i := strings.LastIndexByte(f, '/')
	if i <= 0 {
		return f
	}
	if j := strings.LastIndexByte(f[:i], '/'); j >= 0 {
		return f[j+1:]
	}
	return f
}

// Listing assembles the program (see Assemble) and returns one Line per
// instruction and per data item, each attributed to the Go source line that
// emitted it. Long byte data is split over several lines; runs of one fill
// byte are shown as a single .fill line.
func (a *Assembler) Listing() ([]Line, error) {
	code, err := a.Assemble()
	if err != nil {
		return nil, err
	}
	lines := make([]Line, 0, len(a.recs))
	for _, r := range a.recs {
		file, lineNo := a.source(a.pcs[r.pcStart : r.pcStart+r.pcLen])
		b := code[r.off : r.off+r.n]
		pc := a.origin + uint64(r.off)
		add := func(b []byte, text string, pc uint64) {
			lines = append(lines, Line{PC: pc, Bytes: b, Text: text, File: file, LineNo: lineNo})
		}
		switch r.kind {
		case recInsn:
			text, n := insnText(b, pc)
			if n != len(b) {
				// Cannot happen for bytes this package produced; show the
				// raw bytes rather than a misleading partial decoding.
				text = byteDirective(b)
			}
			add(b, text, pc)
		case recWord:
			add(b, fmt.Sprintf(".word %#x", uint16(le(b))), pc)
		case recLong:
			add(b, fmt.Sprintf(".long %#x", uint32(le(b))), pc)
		case recQuad:
			add(b, fmt.Sprintf(".quad %#x", le(b)), pc)
		case recByte:
			if len(b) > bytesPerLine && bytes.Count(b, b[:1]) == len(b) {
				add(b, fmt.Sprintf(".fill %d, 1, 0x%02x", len(b), b[0]), pc)
				continue
			}
			for i := 0; i < len(b); i += bytesPerLine {
				c := b[i:min(i+bytesPerLine, len(b))]
				add(c, byteDirective(c), pc+uint64(i))
			}
		}
	}
	return lines, nil
}

// bytesPerLine is how many bytes of data one listing line shows.
const bytesPerLine = 8

// le decodes up to 8 bytes little-endian.
func le(b []byte) uint64 {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func byteDirective(b []byte) string {
	var s strings.Builder
	s.WriteString(".byte ")
	for i, c := range b {
		if i > 0 {
			s.WriteString(", ")
		}
		fmt.Fprintf(&s, "0x%02x", c)
	}
	return s.String()
}

// x86asmGaps names instructions that x86asm (as of v0.32.0) does not
// decode, so that listings of guests that use them stay readable. They are
// all fixed three-byte encodings in the 0F 01 group. The emulator backend
// must handle these itself; see the package tests for the check that they
// are still undecodable, which fails when x86asm learns them.
var x86asmGaps = map[[3]byte]string{
	{0x0F, 0x01, 0xC1}: "vmcall",
	{0x0F, 0x01, 0xC2}: "vmlaunch",
	{0x0F, 0x01, 0xC3}: "vmresume",
	{0x0F, 0x01, 0xC4}: "vmxoff",
	{0x0F, 0x01, 0xCA}: "clac",
	{0x0F, 0x01, 0xCB}: "stac",
	{0x0F, 0x01, 0xD8}: "vmrun",
	{0x0F, 0x01, 0xD9}: "vmmcall",
	{0x0F, 0x01, 0xDA}: "vmload",
	{0x0F, 0x01, 0xDB}: "vmsave",
	{0x0F, 0x01, 0xDC}: "stgi",
	{0x0F, 0x01, 0xDD}: "clgi",
	{0x0F, 0x01, 0xDE}: "skinit",
	{0x0F, 0x01, 0xDF}: "invlpga",
	{0x0F, 0x01, 0xE8}: "serialize",
	{0x0F, 0x01, 0xEE}: "rdpkru",
	{0x0F, 0x01, 0xEF}: "wrpkru",
}

// insnText decodes the instruction at the start of b and returns its Intel
// syntax and length, or n == 0 if it does not decode.
func insnText(b []byte, pc uint64) (text string, n int) {
	inst, err := x86asm.Decode(b, 64)
	// x86asm reports a lone prefix it cannot attach as an instruction with
	// Op 0 and no error; treat that as undecodable too.
	if err == nil && inst.Op != 0 {
		text = x86asm.IntelSyntax(inst, pc, nil)
		// x86asm prints RIP-relative operands as [rip+disp]; the address
		// they reach is what a reader of a guest listing wants.
		for _, arg := range inst.Args {
			if m, ok := arg.(x86asm.Mem); ok && m.Base == x86asm.RIP {
				// x86asm zero-extends disp32; the CPU sign-extends it.
				text += fmt.Sprintf("  # %#x", pc+uint64(inst.Len)+uint64(int64(int32(m.Disp))))
			}
		}
		return text, inst.Len
	}
	if len(b) >= 3 {
		if s, ok := x86asmGaps[[3]byte(b[:3])]; ok {
			return s, 3
		}
	}
	return "", 0
}

// Disasm decodes code placed at guest address origin into Intel-syntax
// lines, for showing guest programs in reports. It stops at the first byte
// that does not start a decodable instruction, which gets a final
// ".byte 0x.." line.
func Disasm(code []byte, origin uint64) []Line {
	var lines []Line
	for off := 0; off < len(code); {
		pc := origin + uint64(off)
		text, n := insnText(code[off:], pc)
		if n == 0 {
			return append(lines, Line{PC: pc, Bytes: code[off : off+1], Text: byteDirective(code[off : off+1])})
		}
		lines = append(lines, Line{PC: pc, Bytes: code[off : off+n], Text: text})
		off += n
	}
	return lines
}
