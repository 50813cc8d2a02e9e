package guest

import (
	"encoding/binary"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/asm"
)

// DebugLogEntries is how many #DB records a DebugLog holds; later ones
// wrap around.
const DebugLogEntries = 64

// DebugLogSize is the bytes a DebugLog's records take.
const DebugLogSize = 16 * DebugLogEntries

// DebugRecord is one #DB as a DebugLog handler saw it.
type DebugRecord struct {
	RIP uint64 // the saved RIP: the faulting instruction or the one after a trap
	DR6 uint64
}

// DebugLog is a #DB handler that records each exception at
// log + 16*n (n: the handler's count before it, modulo DebugLogEntries):
// the saved RIP, then DR6. It then clears DR6 (the CPU never clears
// B0-B3 itself) and returns with RFLAGS.RF set, so that an execute
// breakpoint lets its instruction run once; after a trap RF only shields
// the next instruction. log must be DebugLogSize bytes of guest memory
// mapped at the same address, for one vCPU (the index is that vCPU's count).
func DebugLog(log uint64) Handler {
	return Handler{Vector: 1, Body: func(p *Program, f Frame) {
		p.Mov(asm.ECX, p.InterruptCount(1))
		p.And(asm.ECX, asm.Imm(DebugLogEntries-1))
		p.Shl(asm.ECX, asm.Imm(4))
		p.MovAbs(asm.RDX, log)
		p.Mov(asm.RAX, f.RIP)
		p.Mov(asm.Q(asm.RDX, 0).Idx(asm.RCX, 1), asm.RAX)
		p.MovFromDR(asm.RAX, asm.DR6)
		p.Mov(asm.Q(asm.RDX, 8).Idx(asm.RCX, 1), asm.RAX)
		p.MovAbs(asm.RAX, 0xffff0ff0) // DR6 with nothing reported
		p.MovToDR(asm.DR6, asm.RAX)
		p.Or(f.RFLAGS, asm.Imm(1<<16)) // RF
	}}
}

// DebugRecords reads vCPU i's records of a DebugLog at log, oldest first
// (the last DebugLogEntries when it wrapped).
func (g *Guest) DebugRecords(i int, log uint64) ([]DebugRecord, error) {
	n, err := g.InterruptCount(i, 1)
	if err != nil {
		return nil, err
	}
	b, err := g.Bytes(log, DebugLogSize)
	if err != nil {
		return nil, fmt.Errorf("debug log: %w", err)
	}
	first := uint32(0)
	if n > DebugLogEntries {
		first = n - DebugLogEntries
	}
	var out []DebugRecord
	for k := first; k < n; k++ {
		r := b[16*(k%DebugLogEntries):]
		out = append(out, DebugRecord{RIP: binary.LittleEndian.Uint64(r), DR6: binary.LittleEndian.Uint64(r[8:])})
	}
	return out, nil
}
