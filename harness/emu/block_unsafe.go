package emu

import "unsafe"

// nextInst is the instruction after in in its block (runBlocks steps with
// it only past an instruction without postLast, so the pointer stays
// inside the block's array: no index, no bounds check, one value fewer
// live across the handler call).
func nextInst(in *inst) *inst {
	return (*inst)(unsafe.Add(unsafe.Pointer(in), unsafe.Sizeof(inst{})))
}

// instIndex is the index of in, an element of b.insts.
func instIndex(b *block, in *inst) int {
	return int((uintptr(unsafe.Pointer(in)) - uintptr(unsafe.Pointer(unsafe.SliceData(b.insts)))) / unsafe.Sizeof(inst{}))
}

// firstInst is b's first instruction (a block is never empty).
func firstInst(b *block) *inst { return unsafe.SliceData(b.insts) }
