package emu

import "unsafe"

// nextInst is the instruction after in in its block (runBlocks steps with
// it only past an instruction without postLast, so the pointer stays
// inside the block's array: no index, no bounds check, one value fewer
// live across the handler call).
func nextInst(in *inst) *inst {
	return (*inst)(unsafe.Add(unsafe.Pointer(in), unsafe.Sizeof(inst{})))
}

// firstInst is b's first instruction (a block is never empty).
func firstInst(b *block) *inst { return unsafe.SliceData(b.insts) }
