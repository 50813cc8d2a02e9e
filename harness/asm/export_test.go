package asm

// X86asmGaps exposes the fallback names of instructions x86asm cannot
// decode, so the external tests can check each is still a gap.
var X86asmGaps = x86asmGaps
